"""The flow_kl experiment end to end through the command line, and the bad input a user would try."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import config
from scipy import stats
from vlab.experiments import flow_kl

from vlab.cli.main import main
from vlab.distributions import densities
from vlab.engine.members import Members
from vlab.harness import flow_figures
from vlab.harness.flow_config import FlowConfig, make_flow

CFG = config("flow_kl")
TINY = ["n_seeds=1", "n_eval=500", "grid=24", "flow.layers=2", "flow.hidden=8", "train.steps=40",
        "train.chunk_size=20", "batch_size=64"]


def run(tmp_path, *overrides) -> dict:
    out = tmp_path / "run"
    assert main(["run", CFG, "-q", "--out", str(out), *TINY, *overrides]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert sorted(p.name for p in out.glob("*.png"))
    return m


def test_forward_run_reports_absolute_kl_and_the_equivalence(tmp_path):
    m = run(tmp_path, "n_seeds=2")
    f = m["forward"]
    assert len(f["test_nll_seeds"]) == 2
    # the KL is the NLL less the data entropy, and the pulled-back KL agrees with it (seed 002 q3.1)
    np.testing.assert_allclose(f["kl"], f["test_nll"] - f["entropy"], atol=1e-4)
    assert all(c["ok"] for c in m["checks"])
    assert abs(f["entropy"] - 0.289) < 0.05
    assert {"density.png", "pullback.png", "training.png"} <= {p.name for p in (tmp_path / "run").glob("*.png")}


def test_both_directions_on_the_seed_mixture_in_one_dimension_with_a_tempered_reverse_fit(tmp_path):
    m = run(tmp_path, "target=mixture_1d", "objective=both", "tempering.beta0=0.1", "tempering.steps=20")
    assert m["reverse"]["tempering"] == {"beta0": 0.1, "steps": 20} and m["reverse"]["kl"] > -0.05
    assert m["reverse"]["log_z_exact"] and m["reverse"]["log_z"] == 0.0
    assert 0.0 <= m["reverse"]["ess_fraction"] <= 1.0
    assert m["forward"]["mode_coverage"]["fraction"] in (0.0, 0.5, 1.0)


def test_samples_from_a_file(tmp_path):
    x = np.random.default_rng(0).normal(size=(400, 2)) * [1.0, 0.5]
    np.save(tmp_path / "x.npy", x)
    m = run(tmp_path, "target=file", f"data_path={tmp_path / 'x.npy'}")
    assert m["forward"]["n_test"] == 40 and np.isfinite(m["forward"]["test_nll"])


@pytest.mark.parametrize(("overrides", "key"), [
    (["flow.layers=0"], "flow.layers"),
    (["flow.kind=spline", "flow.bins=1"], "flow.bins"),
    (["dim=3"], "dim"),
    (["target=nope"], "target"),
    (["target=u1", "objective=forward"], "objective"),
    (["flow.kind=planar"], "flow.kind"),
    (["flow.kind=glow"], "flow.kind"),
    (["flow.mixing=shuffle"], "flow.mixing"),
    (["flow.activation=swish"], "flow.activation"),
    (["target=file"], "data_path"),
    (["target=file", "data_path=/nonexistent.npy"], "data_path"),
    (["objective=reverse", "tempering.beta0=0", "tempering.steps=10"], "tempering.beta0"),
    (["objective=reverse", "tempering.beta0=0.1", "tempering.steps=5000"], "tempering.steps"),
    (["tempering.beta0=0.1", "tempering.steps=10"], "tempering.steps"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, overrides, key):
    assert main(["run", CFG, "-q", "--out", str(tmp_path / "bad"), *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"'{key}'" in err
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())


@pytest.mark.parametrize(("data", "says"), [
    (np.zeros((5, 2)), "n >= 10 (got shape (5, 2))"),
    (np.full((20, 2), np.nan), "expected a finite (n, d) array"),
    (None, "cannot read it"),
])
def test_unusable_data_file_is_one_line_naming_data_path(tmp_path, capsys, data, says):
    path = tmp_path / "x.npy"
    if data is None:
        path.write_text("not an array")
    else:
        np.save(path, data)
    assert main(["run", CFG, "-q", "--out", str(tmp_path / "bad"), "target=file", f"data_path={path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"key 'data_path': value '{path}' is not valid: " in err and says in err


def test_file_data_of_the_wrong_dimension(tmp_path, capsys):
    np.save(tmp_path / "x3.npy", np.zeros((50, 3)))
    assert main(["run", CFG, "-q", "target=file", f"data_path={tmp_path / 'x3.npy'}", "dim=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "'dim'" in err and "expected 3" in err


def test_energy_returning_nan_on_part_of_the_space_stops_the_run(tmp_path, capsys, monkeypatch):
    from vlab.distributions import densities

    u1 = densities.get("u1")
    nan_u1 = u1._replace(name="nan_u1", log_z=1.0, log_prob=lambda z: jnp.where(z[0] > 1.0, jnp.nan, u1.log_prob(z)))
    monkeypatch.setitem(densities.TARGETS, "nan_u1", nan_u1)
    out = tmp_path / "nan"
    assert main(["run", CFG, "-q", "--out", str(out), *TINY, "target=nan_u1", "objective=reverse"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "non-finite" in err and "step 0" in err
    assert json.loads((out / "run.json").read_text())["status"] == "failed"


def test_flow_kl_yaml_the_defaults_and_the_library_agree_on_the_recipe(x64):
    """configs/flow_kl.yaml, flow_kl's defaults and the library's defaults (vlab.flows.affine_flow, spline_flow and
    Conditioner) describe one recipe: the benchmark builds vlab's flow from the defaults, and make_flow of the
    default config is affine_flow called with nothing but the dimension, the layers and the standardising layer."""
    import inspect

    import yaml
    from vlab.experiments.flow_kl import Config

    from vlab import flows
    from vlab.harness.flow_config import AFFINE_SCALES, conditioner

    raw = yaml.safe_load(Path(CFG).read_text())
    cfg = Config()
    for k, v in raw["flow"].items():
        assert getattr(cfg.flow, k) == v, k
    for k, v in raw["train"]["optimizer"].items():
        assert getattr(cfg.train.optimizer, k) == v, k
    assert raw["train"]["steps"] == cfg.train.steps and raw["batch_size"] == cfg.batch_size
    f = cfg.flow
    assert conditioner(f) == flows.Conditioner()  # hidden, depth, activation (the callable), bias_init
    affine = inspect.signature(flows.affine_flow).parameters
    spline = inspect.signature(flows.spline_flow).parameters
    assert affine["log_scale"].default is AFFINE_SCALES[f.affine_scale]
    assert (spline["bins"].default, spline["bound"].default) == (f.bins, f.bound)
    for lib in (affine, spline):
        assert lib["conditioner"].default is None  # None: Conditioner()
        assert lib["invert_couplings"].default == (f.direction == "data_to_base")
        assert lib["rotations"].default == (f.mixing == "rotation")
    loc, scale = jnp.array([0.5, -1.0]), jnp.array([0.3, 2.0])
    built, lib_flow = make_flow(f, 2, loc, scale), flows.affine_flow(2, f.layers, loc=loc, scale=scale)
    p = built.init(jax.random.key(0))
    jax.tree.map(np.testing.assert_array_equal, p, lib_flow.init(jax.random.key(0)))
    p = jax.tree.map(lambda a: a + 0.1 * jnp.cos(jnp.arange(a.size).reshape(a.shape)), p)  # off the identity start
    x = jax.random.normal(jax.random.key(1), (5, 2))
    for fn in ("forward", "inverse"):
        jax.tree.map(np.testing.assert_array_equal, jax.vmap(getattr(built, fn), in_axes=(None, 0))(p, x),
                     jax.vmap(getattr(lib_flow, fn), in_axes=(None, 0))(p, x))


# ------------------------------------------------------------------------------------------------ sweeps


SWEEP_FAST = ["target=two_mode", "objective=both", "n_seeds=2", "n_eval=400", "grid=16", "flow.layers=2",
              "flow.hidden=8", "train.steps=30", "train.chunk_size=30", "batch_size=32", "tempering.beta0=0.2",
              "tempering.steps=20"]
ROW_METRICS = ("forward.test_nll", "forward.kl", "reverse.kl", "reverse.ess_fraction")


def test_a_seed_and_learning_rate_sweep_row_equals_its_separate_run(tmp_path):
    """seed and train.optimizer.lr are member keys: both fits of every member of the vmapped sweep (the tempered
    reverse fit included) equal those of its point's separate run."""
    from vlab.harness.launch import run_experiment

    points = [{"seed": 0, "train.optimizer.lr": 1e-3}, {"seed": 3, "train.optimizer.lr": 4e-3}]
    path = run_experiment(CFG, SWEEP_FAST, out=str(tmp_path / "sweep"), quiet=True, members=points)
    rows = json.loads((path / "metrics.json").read_text())["members"]
    assert len(rows) == 4
    for j, point in enumerate(points):
        one = run_experiment(CFG, [*SWEEP_FAST, f"seed={point['seed']}",
                                   f"train.optimizer.lr={point['train.optimizer.lr']}"],
                             out=str(tmp_path / f"one{j}"), quiet=True)
        m = json.loads((one / "metrics.json").read_text())
        separate = {"forward.test_nll": m["forward"]["test_nll_seeds"],
                    "forward.kl": m["equivalence"]["kl_data_space"], "reverse.kl": m["reverse"]["kl_seeds"],
                    "reverse.ess_fraction": m["reverse"]["ess_fraction_seeds"]}
        for k in ROW_METRICS:
            np.testing.assert_allclose([r[k] for r in rows[2 * j:2 * j + 2]], separate[k], rtol=1e-4, err_msg=k)
    assert rows[0]["forward.test_nll"] != rows[2]["forward.test_nll"]


# ------------------------------------------------------------------------------------------------ figures

SWEEP = [{"train.optimizer.lr": 1e-3}, {"train.optimizer.lr": 3e-3}]


def _experiment(cfg, points=None) -> flow_kl.Experiment:
    """An experiment whose members are ``points`` times ``cfg.n_seeds`` (as a run sets them)."""
    exp = flow_kl.Experiment()
    exp.members = Members(cfg, points, cfg.n_seeds)
    return exp


def _curve(fig) -> tuple[np.ndarray, np.ndarray]:
    """The target's filled curve in a density_1d figure: its polygon's vertices above the zero baseline."""
    v = fig.axes[0].collections[0].get_paths()[0].vertices
    top = v[v[:, 1] > 0]
    return top[:, 0], top[:, 1]


def test_density_1d_draws_an_energy_target_normalised_by_its_grid_log_z(x64):
    # p~(x) = e^2 N(x; 1, 0.5^2) sqrt(2 pi) 0.5: log Z = 2 + log(0.5 sqrt(2 pi)), found on the grid (log_z None)
    target = densities.Target("shifted_normal", "energy", 1, lambda x: 2.0 - 0.5 * ((x[0] - 1.0) / 0.5) ** 2,
                              None, ((-4.0, 6.0),))
    np.testing.assert_allclose(densities.target_log_z(target), 2.0 + math.log(0.5 * math.sqrt(2 * math.pi)),
                               atol=1e-6)
    fig = flow_figures.density_1d(target, {})
    x, p = _curve(fig)
    assert len(x) > 100
    np.testing.assert_allclose(np.trapezoid(p, x), 1.0, atol=1e-4)
    np.testing.assert_allclose(p, stats.norm.pdf(x, 1.0, 0.5), rtol=1e-5, atol=1e-12)


def test_density_heat_maps_share_one_labelled_colourbar_and_name_the_sweep_member():
    target = densities.get("two_moons")
    note = _experiment(flow_kl.Config(grid=16), SWEEP).member_title(0)
    fig = flow_figures.density_maps(target, {}, jax.random.key(0), 16, note)
    bars = [ax for ax in fig.axes if ax.get_ylabel() == "density"]
    assert len(bars) == 1 and not bars[0].get_xlabel()
    assert "member: lr=0.001, seed 0" in fig.get_suptitle()
    assert {ax.get_xlabel() for ax in fig.axes if ax not in bars} == {"$x_1$"}


@pytest.mark.parametrize(("name", "labels"), [
    ("two_moons", [("$x_1$", "$x_2$"), ("$u_1$", "$u_2$")]),
    ("mixture_1d", [("x", "density"), ("u", "density")]),
])
def test_pullback_figure_labels_data_and_base_axes(name, labels):
    target = densities.get(name)
    cfg = flow_kl.Config(n_seeds=2, flow=FlowConfig(layers=2, hidden=8))
    flow = make_flow(cfg.flow, target.dim)
    params = jax.vmap(flow.init)(jax.random.split(jax.random.key(0), 2))
    first = jax.tree.map(lambda a: a[0], params)
    fig = flow_figures.pullback(target, (flow, first), jax.random.key(1), _experiment(cfg).member_title(0))
    assert [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes] == labels
    assert fig.get_suptitle() == "forward KL fit, seed 0 of 2"
