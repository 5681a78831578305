"""EM as coordinate ascent: E-step and M-step are block maximisers of F, F = log p(x) - KL, monotone ascent."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from vlab.algorithms import em
from vlab.cli.main import main
from vlab.distributions import mixture_1d


def _setup():
    rng = np.random.default_rng(0)
    z = rng.random(200) < 0.4
    x = jnp.asarray(np.where(z, rng.normal(-2.0, 0.8, 200), rng.normal(1.5, 1.1, 200)))
    p = mixture_1d([0.5, 0.5], [-1.0, 0.3], [1.5, 1.0])
    return x, p


def test_e_step_is_bayes_rule(x64):
    x, p = _setup()
    xn = np.asarray(x)
    joint = np.stack([w * stats.norm.pdf(xn, m, s) for w, m, s in zip(*map(np.asarray, p), strict=True)], 1)
    np.testing.assert_allclose(np.asarray(em.e_step(x, p)), joint / joint.sum(1, keepdims=True), atol=1e-13)
    assert float(em.log_likelihood(x, p)) == pytest.approx(np.log(joint.sum(1)).sum(), rel=1e-13)


def test_free_energy_is_loglik_minus_kl_for_any_q(x64):
    x, p = _setup()
    q = jnp.asarray(np.random.default_rng(1).dirichlet(np.ones(2), x.shape[0]))
    lhs = em.free_energy(x, p, q)
    assert float(lhs) == pytest.approx(float(em.log_likelihood(x, p) - em.posterior_kl(x, p, q)), abs=1e-10)
    assert float(em.posterior_kl(x, p, q)) > 0
    # after the E-step the bound is tight
    assert float(em.free_energy(x, p, em.e_step(x, p))) == pytest.approx(float(em.log_likelihood(x, p)), abs=1e-10)


def test_m_step_maximises_the_ecll(x64):
    x, p = _setup()
    q = em.e_step(x, p)
    new = em.m_step(x, q)
    assert float(em.m_step_gradient(x, new, q)) < 1e-10
    best = float(em.ecll(x, new, q))
    rng = np.random.default_rng(10)
    for _ in range(20):
        u = jax.tree.map(lambda a: a + 0.05 * rng.normal(size=a.shape), em.unconstrained(new))
        assert float(em.ecll(x, em.constrained(u), q)) < best


def test_em_never_decreases_f_and_reaches_a_stationary_point(x64):
    x, p = _setup()
    tr = em.em(x, p, 200)
    f = np.stack([np.asarray(tr.f_after_e), np.asarray(tr.f_after_m)], 1).ravel()
    assert np.all(np.diff(f) >= -1e-10)
    assert float(em.likelihood_gradient(x, jax.tree.map(lambda a: a[-1], tr.params))) < 1e-6
    assert float(em.e_step_gradient(x, p)) < 1e-12


def test_ecll_with_a_stale_posterior_does_not_give_the_mle(x64):
    # seed 002 q1.1: the ECLL maximiser coincides with the likelihood maximiser only when q = p(z | x)
    x, p = _setup()
    stale = em.m_step(x, em.e_step(x, p))
    tr = em.em(x, p, 300)
    mle = jax.tree.map(lambda a: a[-1], tr.params)
    assert float(em.log_likelihood(x, stale)) < float(em.log_likelihood(x, mle)) - 1.0
    again = em.m_step(x, em.e_step(x, mle))
    np.testing.assert_allclose(np.asarray(again.means), np.asarray(mle.means), atol=1e-8)


def test_entropy_handles_zeros(x64):
    q = jnp.asarray([[1.0, 0.0], [0.5, 0.5]])
    assert float(em.entropy(q)) == pytest.approx(np.log(2.0), abs=1e-15)


def test_quick_config_end_to_end(quick):
    path = quick("em_mixture")
    m = json.loads((path / "metrics.json").read_text())
    assert all(c["ok"] for c in m["checks"]), [c for c in m["checks"] if not c["ok"]]
    assert m["max_abs_f_after_e_minus_loglik"] < 1e-9
    e = m["ecll_vs_elbo"]
    assert e["log_likelihood_of_ecll_maximiser_with_q_at_init"] < e["log_likelihood_at_em_solution"]
    assert (path / "em_mixture.png").exists()


def test_figure_labels_every_panel_and_its_inset_is_readable():
    from vlab.experiments.em_mixture import draw

    x = np.random.default_rng(0).normal(size=200)
    p = mixture_1d([0.5, 0.5], [-1.0, 1.0], [1.0, 1.0])
    f_e = np.linspace(-300.0, -280.0, 30)
    fig = draw(x, p, p, f_e, f_e + 0.1, f_e - 5.0, f_e + 0.05, -320.0, np.geomspace(1.0, 1e-12, 30),
               np.array([-280.0, -281.0, -295.0, -280.0]))
    assert all(ax.get_xlabel() and ax.get_ylabel() and "..." not in ax.get_ylabel() for ax in fig.axes)
    (inset,) = fig.axes[0].child_axes
    texts = [inset.title, inset.yaxis.label, *inset.get_xticklabels(), *inset.get_yticklabels()]
    assert min(t.get_fontsize() for t in texts) >= 8


def test_figure_when_every_init_reaches_the_same_optimum():
    # final log-likelihoods equal up to rounding (1e-13 apart at -1346) still make a one-bar inset histogram
    from vlab.experiments.em_mixture import draw

    x = np.random.default_rng(1).normal(size=100)
    p = mixture_1d([0.5, 0.5], [-1.0, 1.0], [1.0, 1.0])
    f_e = np.linspace(-1400.0, -1346.9, 20)
    tied = np.array([-1346.9115663200628, -1346.9115663200625, -1346.9115663200628, -1346.9115663200628])
    fig = draw(x, p, p, f_e, f_e, f_e - 5.0, f_e, -1500.0, np.geomspace(1.0, 1e-12, 20), tied)
    (inset,) = fig.axes[0].child_axes
    assert sum(patch.get_height() for patch in inset.patches) == len(tied)


def test_every_member_is_the_em_run_of_its_own_initialisation(tmp_path, x64):
    # EM needs no gradient fit: the members are the initialisations, member i starting from the i-th key of the
    # "init" stream on data from the "data" stream, and the vmapped runs equal separate ones
    from vlab.experiments.em_mixture import Config, Experiment, init_params

    from vlab.harness.runs import Run
    from vlab.keys import stream

    cfg = Config(experiment="em_mixture", seed=3, n=120, iters=60, n_inits=3)
    with Run(tmp_path / "r", quiet=True) as run:
        m = Experiment().run(cfg, run)
    assert all(c["ok"] for c in run.checks[:3])  # the identities, which hold before convergence too
    w = np.asarray(cfg.weights) / np.sum(cfg.weights)
    x = mixture_1d(w, cfg.means, cfg.stds).sample(stream(3, "data"), cfg.n)
    separate = [float(em.em(x, init_params(k, x, cfg.n_components), cfg.iters).log_likelihood[-1])
                for k in jax.random.split(stream(3, "init"), 3)]
    np.testing.assert_allclose(m["final_log_likelihood_per_init"], separate, rtol=1e-12)
    assert m["best"]["log_likelihood"] == pytest.approx(max(separate), rel=1e-12)


BAD = ["means=[0,1]", "stds=[1,-1,1]", "n_components=0", "n_components=1000", "weights=[0,1,1]", "iters=1"]


@pytest.mark.parametrize("over", BAD)
def test_bad_config_exits_2_with_one_line(over, tmp_path, capsys):
    assert main(["run", "configs/em_mixture.yaml", over, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and over.split("=")[0] in err[0]
