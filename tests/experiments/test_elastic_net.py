"""Elastic net: the soft-threshold update, coordinate descent, ISTA, Ridge and Lasso against closed forms."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vlab.algorithms import sparse
from vlab.cli.main import main


def _problem(seed, n=40, d=6):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = x @ rng.normal(size=d) + 0.3 * rng.normal(size=n)
    return jnp.asarray(x), jnp.asarray(y)


@pytest.mark.parametrize("g", [-3.0, -1.0, -0.2, 0.0, 0.7, 1.0, 2.5])
def test_scalar_minimiser_matches_dense_grid(g, x64):
    h, alpha = 1.7, 1.0
    grid = jnp.linspace(-5, 5, 200001)
    f = g * grid + 0.5 * h * grid**2 + alpha * jnp.abs(grid)
    assert abs(float(sparse.scalar_minimiser(g, h, alpha)) - float(grid[jnp.argmin(f)])) < 1e-4


def test_scalar_minimiser_piecewise_form_of_the_seed(x64):
    h, a = 2.0, 0.5
    for g, expect in [(-1.5, -(-1.5 + a) / h), (0.3, 0.0), (-0.5, 0.0), (0.5, 0.0), (1.5, -(1.5 - a) / h)]:
        assert float(sparse.scalar_minimiser(g, h, a)) == pytest.approx(expect, abs=1e-15)


def test_coordinate_terms_equal_the_seed_sums(x64):
    x, y = _problem(1)
    w = jnp.asarray(np.random.default_rng(2).normal(size=x.shape[1]))
    lam, k = 0.3, 2
    g, h = sparse.coordinate_terms(w, x, y, lam, k)
    xn, yn, wn = map(np.asarray, (x, y, w))
    d, n = len(wn), len(yn)
    g_loop = sum(xn[j, k] * (sum(wn[i] * xn[j, i] for i in range(d) if i != k) - yn[j]) for j in range(n))
    assert float(g) == pytest.approx(g_loop, rel=1e-12)
    assert float(h) == pytest.approx(lam + float(np.sum(xn[:, k] ** 2)), rel=1e-12)


def test_coordinate_descent_satisfies_kkt_and_matches_ista(x64):
    x, y = _problem(3)
    alpha, lam = 2.0, 0.5
    cd = sparse.coordinate_descent(x, y, alpha, lam, 200)
    assert float(sparse.kkt_violation(cd.w, x, y, alpha, lam)) < 1e-9
    assert np.all(np.diff(np.asarray(cd.objective)) <= 1e-12)
    import optax

    eta = 1.0 / float(sparse.lipschitz(x, lam))
    opt = optax.chain(optax.sgd(eta), sparse.prox_l1(eta, alpha))
    w = jnp.zeros(x.shape[1])
    state = opt.init(w)

    def step(carry, _):
        w, state = carry
        g = jax.grad(sparse.smooth_part)(w, x, y, lam)
        u, state = opt.update(g, state, w)
        return (optax.apply_updates(w, u), state), None

    (w, _), _ = jax.lax.scan(step, (w, state), None, length=3000)
    np.testing.assert_allclose(np.asarray(w), np.asarray(cd.w), atol=1e-9)


def test_kkt_violation_detects_a_wrong_solution(x64):
    x, y = _problem(4)
    w = sparse.coordinate_descent(x, y, 1.0, 0.5, 200).w
    assert float(sparse.kkt_violation(w + 1e-3, x, y, 1.0, 0.5)) > 1e-4


def test_ridge_and_lasso_special_cases(x64):
    x, y = _problem(5)
    w_ridge = sparse.coordinate_descent(x, y, 0.0, 0.7, 300).w
    np.testing.assert_allclose(np.asarray(w_ridge), np.asarray(sparse.ridge(x, y, 0.7)), atol=1e-10)
    w_lasso = sparse.coordinate_descent(x, y, 3.0, 0.0, 300).w
    assert float(sparse.kkt_violation(w_lasso, x, y, 3.0, 0.0)) < 1e-9
    a_max = sparse.alpha_max(x, y)
    assert not np.any(np.asarray(sparse.coordinate_descent(x, y, a_max, 0.3, 50).w))
    assert np.any(np.asarray(sparse.coordinate_descent(x, y, 0.98 * a_max, 0.3, 50).w))


def test_quick_config_end_to_end_passes_its_checks(quick):
    path = quick("elastic_net")
    m = json.loads((path / "metrics.json").read_text())
    assert m["checks"] and all(c["ok"] for c in m["checks"]), [c for c in m["checks"] if not c["ok"]]
    assert m["coordinate_descent"]["kkt_violation"] < 1e-8
    assert m["path"]["nonzeros_at_alpha_max"] == 0 and m["path"]["nonzeros_below_alpha_max"] >= 1
    assert (path / "elastic_net.png").exists()


BAD = ["n_nonzero=20", "alpha=-1.0", "correlation=1.0", "step_scale=2.5", "sweeps=0"]


@pytest.mark.parametrize("over", BAD)
def test_bad_config_exits_2_with_one_line(over, tmp_path, capsys):
    assert main(["run", "configs/elastic_net.yaml", over, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and over.split("=")[0] in err[0]


def test_figure_labels_both_panels(x64):
    from vlab.experiments.elastic_net import draw

    x, y = _problem(6)
    alphas = np.geomspace(2 * float(sparse.alpha_max(x, y)), 0.01, 8)
    path = np.asarray(sparse.regularisation_path(x, y, jnp.asarray(alphas), 0.5, 50))
    w_true = np.array([1.0, 0.0, -2.0, 0.0, 0.0, 0.0])
    f = np.geomspace(10.0, 1e-9, 30) + 5.0
    fig = draw(alphas, path, w_true, 1.0, float(sparse.alpha_max(x, y)), f, f[:20], np.arange(0, 200, 10), 5.0)
    assert len(fig.axes) == 2 and all(ax.get_xlabel() and ax.get_ylabel() and ax.get_title() for ax in fig.axes)
    assert fig.axes[0].get_xscale() == "log" and fig.axes[1].get_yscale() == "log"
    # the true support is drawn in colour and labelled, the zeros in grey without a legend entry
    assert sum(1 for line in fig.axes[0].get_lines() if line.get_label().startswith("$w_")) == 2
