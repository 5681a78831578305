"""The VAE experiments end to end through the command line, the exam VAE against scipy quadrature, bad input."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import config
from scipy import integrate, stats
from vlab.experiments import vae_exam

from vlab import data
from vlab.cli.main import main

VAE = config("vae")
FAST = ["train.steps=120", "train.chunk_size=60", "data.n_train=300", "data.n_test=100", "data.dim=36",
        "model.hidden=[32]", "eval.iwae_k=8", "eval.iwae_points=40"]


def _run(tmp_path, *args) -> tuple[int, dict]:
    out = tmp_path / "run"
    code = main(["run", *args, "--out", str(out), "--quiet"])
    metrics = json.loads((out / "metrics.json").read_text()) if (out / "metrics.json").exists() else {}
    return code, metrics


# ------------------------------------------------------------------------------------------------ exam VAE


def test_exam_reconstruction_term_matches_scipy_dblquad(x64):
    x = jnp.array([0.8, 0.3, 0.6])
    w = jnp.array([1.0, -0.5])
    mu1, var1 = (np.asarray(a) for a in vae_exam.encoder(w, x))
    q = stats.multivariate_normal(mu1, np.diag(var1))
    logp = jax.jit(lambda z: vae_exam.log_px_given_z(w, x, z))
    f = lambda z2, z1: q.pdf([z1, z2]) * float(logp(jnp.array([z1, z2])))
    s = np.sqrt(var1)
    ref, _ = integrate.dblquad(f, mu1[0] - 9 * s[0], mu1[0] + 9 * s[0], mu1[1] - 9 * s[1], mu1[1] + 9 * s[1],
                               epsabs=1e-11, epsrel=1e-11)
    assert float(vae_exam.rec_term(w, x, 64)) == pytest.approx(ref, abs=1e-7)


def test_exam_kl_depends_on_w1_only_and_matches_seed(x64):
    x = jnp.array([0.2, -0.7, 1.1])
    for w in (jnp.array([0.3, 2.0]), jnp.array([-1.5, -0.4])):
        g = jax.grad(vae_exam.kl_term)(w, x)
        assert float(g[1]) == 0.0
        assert float(g[0]) == pytest.approx(float(vae_exam.kl_grad_w1_seed(w, x)), rel=1e-12)
        g_rec = jax.grad(vae_exam.rec_term)(w, x, 32)
        assert abs(float(g_rec[0])) > 1e-6 and abs(float(g_rec[1])) > 1e-6  # the likelihood term holds both


def test_exam_estimators_are_unbiased(x64):
    x = jnp.array([0.8, 0.3, 0.6])
    w = jnp.array([1.0, 1.0])
    exact = np.asarray(jax.grad(vae_exam.elbo)(w, x, 48))
    eps = jax.random.normal(jax.random.PRNGKey(0), (200_000, 2))
    for fn in (vae_exam.reparam_grad, vae_exam.score_grad):
        g = np.asarray(jax.jit(jax.vmap(fn, in_axes=(None, None, 0)))(w, x, eps))
        se = g.std(0) / np.sqrt(g.shape[0])
        assert np.all(np.abs(g.mean(0) - exact) < 5 * se), (fn.__name__, g.mean(0), exact, se)


def test_exam_run_checks_pass(tmp_path):
    code, m = _run(tmp_path, config("vae_exam"), "replicates=50", "grid=5",
                   "samples=[1,8,64]")
    assert code == 0
    assert all(c["ok"] for c in m["checks"]), [c for c in m["checks"] if not c["ok"]]
    assert m["kl_grad"]["w2"] == 0.0 and m["variance_ratio_score_over_reparam"]["w2"] == pytest.approx(1.0)
    assert m["elbo"] == pytest.approx(-8.06716, abs=1e-5)


def test_exam_bad_x_length(tmp_path, capsys):
    code, _ = _run(tmp_path, config("vae_exam"), "x=[1,2]")
    assert code == 2 and "key 'x'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ VAE


def test_vae_runs_and_reports(tmp_path):
    code, m = _run(tmp_path, VAE, *FAST, "model.z_dim=3", "objective.kl_estimator=mc", "objective.free_bits=0.2",
                   "objective.warmup_steps=50", "objective.n_samples=2")
    assert code == 0
    t = m["test"]
    assert set(t) >= {"elbo", "rec", "kl", "kl_per_dim", "active_units", "iwae"}
    assert len(t["kl_per_dim"]) == 3 and t["kl"] == pytest.approx(sum(t["kl_per_dim"]), rel=1e-4)
    assert t["elbo"] == pytest.approx(t["rec"] - t["kl"], abs=1e-3)
    assert t["iwae"] >= t["elbo"] - 0.05 and set(m["train"]) == {"elbo", "rec", "kl"}
    pngs = {p.name for p in (tmp_path / "run").glob("*.png")}
    assert {"reconstructions_and_samples.png", "latent_traversal.png", "latents_kl_curves.png"} <= pngs


def test_vae_beta_sweep_and_seeds_are_one_program(tmp_path):
    code, m = _run(tmp_path, VAE, *FAST, "objective.beta=[0.5,4.0]", "n_seeds=2", "model.z_dim=4",
                   "eval.amortisation_points=20", "eval.amortisation_steps=30",
                   "model.likelihood=gaussian_learned", "data.embedding=mlp", "data.dim=10")
    assert code == 0
    rows = m["by_beta"]
    assert [r["beta"] for r in rows] == [0.5, 4.0]
    assert len(rows[0]["elbo"]["values"]) == 2 and rows[0]["elbo"]["std"] >= 0
    assert rows[1]["kl"]["mean"] < rows[0]["kl"]["mean"]  # a larger beta buys a smaller KL
    assert m["amortisation"]["optimised_elbo"] >= m["amortisation"]["amortised_elbo"] - 0.02
    assert (tmp_path / "run" / "beta_sweep.png").exists()


def test_a_member_of_a_beta_list_is_its_separate_run(tmp_path):
    """Every beta of ``objective.beta`` is a member of one vmapped program, with the initialisation and the keys of
    the run that trains that beta alone."""
    args = [*FAST, "eval.iwae_points=0", "objective.warmup_steps=40"]
    code, both = _run(tmp_path / "both", VAE, *args, "objective.beta=[0.5,2.0]")
    assert code == 0
    code, one = _run(tmp_path / "one", VAE, *args, "objective.beta=[2.0]")
    assert code == 0 and [r["beta"] for r in both["by_beta"]] == [0.5, 2.0] and one["beta"] == 2.0
    for k in ("elbo", "rec", "kl"):
        assert both["by_beta"][1][k] == pytest.approx(one["test"][k], rel=1e-5)
        assert both["by_beta"][1]["train"][k] == pytest.approx(one["train"][k], rel=1e-5)


def test_vae_on_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "idx"
    root.mkdir()
    for split, n in (("train", 64), ("test", 32)):
        stem_i, stem_l = data.IDX_FILES[split]
        data.write_idx(root / f"{stem_i}.gz", rng.integers(0, 256, size=(n, 6, 6), dtype=np.uint8))
        data.write_idx(root / f"{stem_l}.gz", rng.integers(0, 3, size=(n,), dtype=np.uint8))
    code, m = _run(tmp_path, VAE, *FAST, "data.source=idx", f"data.root={root}", "data.image_shape=[6,6]",
                   "data.binarize=dynamic")
    assert code == 0 and m["test"]["elbo"] < 0


@pytest.mark.parametrize("override,needle", [
    ("model.z_dim=0", "model.z_dim"),
    ("eval.iwae_k=0", "eval.iwae_k"),
    ("objective.beta=[]", "objective.beta"),
    ("data.source=idx", "does not exist"),
    ("data.dim=50", "data.dim"),
])
def test_vae_bad_input_is_one_line_and_status_2(tmp_path, capsys, override, needle):
    args = [override]
    if override == "data.source=idx":
        args.append(f"data.root={tmp_path / 'nowhere'}")
    code, _ = _run(tmp_path, VAE, *args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and needle in err[-1]


def test_vae_image_shape_mismatch(tmp_path, capsys):
    root = tmp_path / "idx"
    root.mkdir()
    for split in ("train", "test"):
        stem_i, stem_l = data.IDX_FILES[split]
        data.write_idx(root / stem_i, np.zeros((4, 5, 5), np.uint8))
        data.write_idx(root / stem_l, np.zeros((4,), np.uint8))
    code, _ = _run(tmp_path, VAE, "data.source=idx", f"data.root={root}")
    assert code == 2 and "data.image_shape" in capsys.readouterr().err


def test_vae_nan_during_training_is_a_clear_error(tmp_path, capsys):
    code, _ = _run(tmp_path, VAE, *FAST, "model.likelihood=gaussian_learned", "model.sigma_x=1e-30")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and "non-finite" in err[-1]


# ------------------------------------------------------------------------------------------------ forward KL


def test_forward_kl_covers_mass_and_reverse_wins_elbo(tmp_path):
    code, m = _run(tmp_path, config("vae_forward_kl"), "train.steps=600", "train.chunk_size=300",
                   "n_test=200", "grid=1001", "hidden=[32]")
    assert code == 0 and all(c["ok"] for c in m["checks"])
    r, f = m["elbo_trained"], m["forward_kl_trained"]
    assert f["posterior_mass_covered"] > r["posterior_mass_covered"] + 0.1
    assert r["elbo"] > f["elbo"] and f["kl_forward"] < r["kl_forward"]


def test_forward_kl_exact_measures_against_closed_form(x64):
    from vlab.experiments import vae_forward_kl as fk

    # ELBO of any q = log p(x) - KL(q || p(z|x)); check log p(x) against scipy quadrature
    x, s = 1.3, 0.5
    ref, _ = integrate.quad(lambda z: stats.norm.pdf(z) * stats.norm.pdf(x, z * z, s), -10, 10, epsabs=1e-13)
    m = fk.exact_measures(jnp.array([0.4]), jnp.array([0.8]), jnp.array([x]), s, 4001)
    assert float(m["log_px"][0]) == pytest.approx(np.log(ref), abs=1e-9)
    q = stats.norm(0.4, 0.8)
    kl_rev, _ = integrate.quad(lambda z: q.pdf(z) * (q.logpdf(z) - (stats.norm.logpdf(z)
                               + stats.norm.logpdf(x, z * z, s) - np.log(ref))), -10, 10, epsabs=1e-12)
    assert float(m["kl_reverse"][0]) == pytest.approx(kl_rev, abs=1e-7)


def test_kl_gradients_checks_pass(tmp_path):
    code, m = _run(tmp_path, config("vae_kl_gradients"), "samples=20000")
    assert code == 0 and all(c["ok"] for c in m["checks"])
    assert m["additivity"]["sum_of_dims"] == pytest.approx(m["additivity"]["full_covariance"], abs=1e-10)


def test_kl_gradients_figure_labels_both_axes_of_each_panel(x64):
    from vlab.experiments.vae_kl_gradients import gradient_figure

    fig = gradient_figure(jnp.float64, jax.random.key(1))
    assert [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes] == [
        ("mu (sigma = 1.3)", "dKL/dmu"), ("sigma (mu = 0.5)", "dKL/dsigma")]


def test_kl_gradients_bad_pairs(tmp_path, capsys):
    code, _ = _run(tmp_path, config("vae_kl_gradients"), "mu=[1,2]", "sigma=[1]")
    assert code == 2 and "key 'sigma'" in capsys.readouterr().err
