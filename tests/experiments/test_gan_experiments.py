"""The four GAN experiments end to end through the command line, small, and their bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import numpy as np
import pytest
from helpers import CONFIGS
from matplotlib.backends.backend_agg import FigureCanvasAgg
from vlab.experiments import gan_dirac, gan_gaussian_1d, gan_mixture_2d

from vlab.cli.main import main
from vlab.engine import FitResult
from vlab.engine.members import Members
from vlab.harness.launch import run_experiment


def run(tmp_path: Path, name: str, *overrides: str) -> dict:
    out = tmp_path / name
    assert main(["run", str(CONFIGS / f"{name}.yaml"), *overrides, "-q", "--out", str(out)]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_dynamics_matches_seed_and_closed_forms(tmp_path):
    m = run(tmp_path, "gan_dynamics", "steps=60", "stability.points=9", "stability.steps=40", "step_size=0.4")
    assert m["simultaneous"]["rho_measured"] == pytest.approx(math.sqrt(1 + 0.4**2), rel=1e-6)
    assert m["alternating"]["rho_measured"] == pytest.approx(1.0, rel=1e-6)
    assert m["seed002_q4"]["update_matrix_max_abs_error"] < 1e-12
    assert m["seed002_q4"]["norm_max_rel_error"] < 1e-10
    assert m["stability"]["max_rel_error"] < 1e-6
    assert m["extragradient"]["distance_final"] < m["extragradient"]["distance_initial"]
    for fig in ("vector_field", "eigenvalues", "distance", "stability"):
        assert (tmp_path / "gan_dynamics" / f"{fig}.png").is_file()


def test_dynamics_reports_divergence_with_its_step(tmp_path):
    m = run(
        tmp_path,
        "gan_dynamics",
        "steps=80",
        "stability.points=4",
        "stability.steps=30",
        "step_size=1.0",
        "escape=100",
        "rules=[simultaneous,extragradient]",
    )
    # simultaneous grows by sqrt(2) a step from |z0| = sqrt(1.25): it passes radius 100 at step 13
    assert m["simultaneous"]["diverged_at"] == 13
    assert m["extragradient"]["diverged_at"] == -1
    assert all(math.isfinite(v) for v in (m["simultaneous"]["distance_final"], m["simultaneous"]["rho_measured"]))


def test_dirac_regularisers_converge_simultaneous_diverges(tmp_path):
    m = run(tmp_path, "gan_dirac", "losses=[non_saturating]", "rules=[simultaneous,optimistic]", "steps=300")
    assert m["max_rel_error_measured"] < 1e-6
    plain, r1 = m["non_saturating"]["none"], m["non_saturating"]["R1"]
    assert plain["simultaneous"]["rho_predicted"] == pytest.approx(math.sqrt(1 + 0.05**2), rel=1e-12)
    assert plain["optimistic"]["rho_predicted"] < 1 and r1["simultaneous"]["rho_predicted"] < 1


def test_gaussian_gan_recovers_the_real_mean(tmp_path):
    m = run(
        tmp_path,
        "gan_gaussian_1d",
        "n_seeds=2",
        "train.steps=1500",
        "train.chunk_size=500",
        "threshold.mc_samples=20000",
        "optimal_d.train.steps=800",
    )
    assert m["mu_g_error"] < 0.05
    assert m["optimal_discriminator"]["w_error"] < 1e-3
    assert m["best_threshold_max_error"] < 1e-5
    assert m["seed003_gradients"]["max_abs_error"] < 1e-5


def test_mixture_gan_runs(tmp_path):
    m = run(tmp_path, "gan_mixture_2d", "hidden=[8]", "n_seeds=2", "train.steps=20", "train.chunk_size=20",
            "train.log_every=10", "eval_samples=200", "snapshot_samples=20", "snapshots=2",
            "variants=[{name: r1 optimistic, r1: 0.1, optimistic: true}]")
    assert 0 <= m["modes_covered"]["r1 optimistic"] <= 8
    assert len(m["variants"]["r1 optimistic"]["modes_covered_per_seed"]) == 2
    assert (tmp_path / "gan_mixture_2d" / "samples.png").is_file()


@pytest.mark.parametrize(
    ("name", "override", "needle"),
    [
        ("gan_dynamics", "step_size=0", "step_size"),
        ("gan_dynamics", "step_size=-0.1", "step_size"),
        ("gan_dynamics", "rules=[simultaneous,adagrad]", "adagrad"),
        ("gan_dynamics", "stability.a_min=3.0", "stability.a_max"),
        ("gan_dynamics", "z0=[0,0]", "z0"),
        ("gan_dirac", "losses=[hinge]", "hinge"),
        ("gan_dirac", "regularisers=[{name: bad, r1: -1.0}]", "r1"),
        ("gan_gaussian_1d", "loss=hinge", "loss"),
        ("gan_gaussian_1d", "r2=-0.5", "r2"),
        ("gan_gaussian_1d", "optimal_d.mu_g=1.0", "optimal_d.mu_g"),
        ("gan_mixture_2d", "variants=[{name: a, noise_std: -1.0}]", "noise_std"),
        ("gan_mixture_2d", "train.optimizer.lr=0", "lr"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, name, override, needle):
    code = main(["run", str(CONFIGS / f"{name}.yaml"), override, "--out", str(tmp_path / "bad")])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and needle in lines[0], err
    assert not (tmp_path / "bad" / "metrics.json").exists()


RULE_NAMES = "simultaneous, alternating, extragradient, optimistic, consensus"


@pytest.mark.parametrize(
    ("name", "override", "message"),
    [
        ("gan_dynamics", "rules=[simultaneous,adagrad]",
         f"key 'rules': value 'adagrad' is not valid: expected one of {RULE_NAMES}"),
        ("gan_dynamics", "rules=[]", f"key 'rules': value [] is not valid: expected at least one of {RULE_NAMES}"),
        ("gan_dirac", "rules=[optimistic,optimistic]",
         "key 'rules': value ['optimistic', 'optimistic'] is not valid: expected each rule once"),
        ("gan_dirac", "losses=[wgan,hinge]",
         "key 'losses': value 'hinge' is not valid: expected one of saturating, non_saturating, wgan"),
        ("gan_mixture_2d", "activation=swish", "key 'activation': value 'swish' is not valid: expected one of relu,"),
    ],
)
def test_names_are_checked_where_the_config_is_read(tmp_path, capsys, name, override, message):
    """Rule, loss and activation names are looked up by the experiments; a bad one is the usual one-line error."""
    code = main(["run", str(CONFIGS / f"{name}.yaml"), override, "--out", str(tmp_path / "bad")])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and message in lines[0], lines


# ------------------------------------------------------------------------------------------------ sweeps

GAUSS_FAST = ["n_seeds=2", "train.steps=300", "train.chunk_size=300", "threshold.mc_samples=2000",
              "optimal_d.train.steps=50", "optimal_d.train.chunk_size=50"]
MIXTURE_FAST = ["hidden=[8]", "n_seeds=2", "train.steps=30", "train.chunk_size=30", "train.log_every=10",
                "eval_samples=200", "snapshot_samples=20", "snapshots=2",
                "variants=[{name: plain}, {name: optimistic, r1: 0.1, optimistic: true}]"]


def _members(tmp_path, name, overrides, points):
    cfg = str(CONFIGS / f"{name}.yaml")
    path = run_experiment(cfg, overrides, out=str(tmp_path / "sweep"), quiet=True, members=points)
    return json.loads((path / "metrics.json").read_text())["members"]


@pytest.mark.parametrize(("key", "other", "value"), [("train.optimizer.lr", 0.2, 0.05), ("mu_g_init", -2.5, -1.0),
                                                    ("seed", 1, 3)])
def test_gaussian_gan_sweep_member_equals_its_separate_run(tmp_path, key, other, value):
    """A member of a vmapped sweep (learning rate, initial mean, seed) gets exactly its separate run's numbers."""
    rows = _members(tmp_path, "gan_gaussian_1d", GAUSS_FAST, [{key: other}, {key: value}])
    alone = run(tmp_path, "gan_gaussian_1d", *GAUSS_FAST, f"{key}={value}")
    mine = [r for r in rows if r[key] == value]
    assert len(rows) == 4 and len(mine) == 2
    np.testing.assert_allclose([r["mu_g_final"] for r in mine], alone["mu_g_final_per_seed"], rtol=1e-5)
    np.testing.assert_allclose([r["mu_g"] for r in mine], alone["mu_g_averaged_per_seed"], rtol=1e-5)


def test_mixture_gan_sweep_member_equals_its_separate_run(tmp_path):
    rows = _members(tmp_path, "gan_mixture_2d", MIXTURE_FAST, [{"train.optimizer.lr": 1e-3},
                                                               {"train.optimizer.lr": 3e-3}])
    alone = run(tmp_path, "gan_mixture_2d", *MIXTURE_FAST, "train.optimizer.lr=0.003")
    mine = [r for r in rows if r["train.optimizer.lr"] == 3e-3]
    for v in ("plain", "optimistic"):
        np.testing.assert_allclose([r[f"high_quality.{v}"] for r in mine],
                                   alone["variants"][v]["high_quality_per_seed"], rtol=1e-5)
        assert [r[f"modes_covered.{v}"] for r in mine] == alone["variants"][v]["modes_covered_per_seed"]


# ------------------------------------------------------------------------------------------------ figures

SWEEP = [{"train.optimizer.lr": 1e-3}, {"train.optimizer.lr": 3e-3}]


class _Figures:
    """A run folder that keeps the figures it is given."""

    def __init__(self):
        self.saved = {}

    def save_figure(self, fig, name):
        self.saved[name] = fig


def _experiment(module, cfg, points, n_seeds):
    exp = module.Experiment()
    exp.cfg, exp.out, exp.members = cfg, _Figures(), Members(cfg, points, n_seeds)
    return exp


def test_dirac_legend_sits_below_every_axis_label():
    cfg = gan_dirac.Config(losses=["non_saturating", "wgan"], rules=["simultaneous", "alternating"], steps=40)
    _, inputs = gan_dirac.combinations(cfg)
    sim = jax.device_get(gan_dirac.program(cfg, jax.random.key(0))(*inputs))
    fig = gan_dirac.draw_trajectories(cfg, sim)
    FigureCanvasAgg(fig).draw()  # as laid out for saving
    renderer = fig.canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    for ax in fig.axes:
        for label in (ax.xaxis.label, ax.yaxis.label):
            assert not legend.overlaps(label.get_window_extent(renderer)), label.get_text()
    assert legend.y0 >= 0


@pytest.mark.parametrize(("points", "n_seeds", "note"), [
    (SWEEP, 1, "member: lr=0.001, seed 0"), (None, 2, "seed 0 of 2"), (None, 1, None),
])
def test_one_member_gan_figures_say_which_member_they_show(points, n_seeds, note):
    steps, n = np.arange(0, 40, 5), n_seeds * (len(points) if points else 1)
    cfg = gan_gaussian_1d.Config(n_seeds=n_seeds, snapshots=3)
    hist = {"step": steps, **{k: np.zeros((len(steps), n)) for k in ("mu_g", "w", "b")}}
    metrics = {"best_threshold": {f"{m:g}": {"gamma_numeric": (1 - m) / 2} for m in cfg.threshold.mu_g},
               "prob_real_declared_fake": [{"gamma": g, "monte_carlo": 0.1, "standard_error": 0.01}
                                           for g in cfg.threshold.gammas]}
    exp = _experiment(gan_gaussian_1d, cfg, points, n_seeds)
    exp.figures(cfg, {"gan": FitResult(None, None, hist, 0.0, 0.0, 1)}, {}, metrics)
    title = exp.out.saved["densities"].get_suptitle()
    assert (note in title) if note else ("seed 0 of" not in title and "member:" not in title)

    cfg = gan_mixture_2d.Config(n_seeds=n_seeds, snapshots=3)
    hist = {"step": steps, "samples": np.zeros((len(steps), n, 10, 2)),
            "modes_covered": np.zeros((len(steps), n)), "high_quality": np.zeros((len(steps), n))}
    exp = _experiment(gan_mixture_2d, cfg, points, n_seeds)
    exp.centres = np.zeros((8, 2))
    exp.figures(cfg, {v.name: FitResult(None, None, hist, 0.0, 0.0, 1) for v in cfg.variants}, {}, {})
    title = exp.out.saved["samples"].get_suptitle()
    assert (note in title) if note else ("seed 0 of" not in title and "member:" not in title)
