"""Slow feature analysis: the generalised eigenproblem, the seed's slow feature cos t and its literal loss."""

from __future__ import annotations

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from vlab.experiments.sfa import SEED_THETA, slowness_of_cos

from vlab.algorithms import sfa
from vlab.cli.main import main


def _grid(n=512):
    return 2 * math.pi / n * jnp.arange(n)


def test_seed_identity_cos_t_is_quadratic_in_x(x64):
    t = jnp.linspace(0.0, 7.0, 301)
    f = sfa.quadratic_features(sfa.seed_signal(t)) @ jnp.asarray(SEED_THETA)
    np.testing.assert_allclose(np.asarray(f), np.cos(np.asarray(t)), atol=1e-12)


def test_sfa_matches_scipy_generalised_eigenproblem(x64):
    z, zdot = sfa.expanded_with_derivative(sfa.seed_signal, _grid())
    res = sfa.sfa(z[:, 1:], zdot[:, 1:])
    zc = np.asarray(z[:, 1:] - z[:, 1:].mean(0))
    a = np.asarray(zdot[:, 1:]).T @ np.asarray(zdot[:, 1:]) / len(zc)
    b = zc.T @ zc / len(zc)
    w = scipy.linalg.eigh(a, b, eigvals_only=True)
    np.testing.assert_allclose(np.asarray(res.delta), w, rtol=1e-9)
    v = np.asarray(res.weights)
    np.testing.assert_allclose(v.T @ b @ v, np.eye(5), atol=1e-9)


def test_derivative_is_exact(x64):
    t = _grid(64)
    _, zdot = sfa.expanded_with_derivative(sfa.seed_signal, t)
    # d/dt x1 = -sin t - 22 sin 22t
    np.testing.assert_allclose(np.asarray(zdot[:, 1]), -np.sin(t) - 22 * np.sin(22 * t), atol=1e-10)


def test_slowest_feature_is_cos_t(x64):
    z, zdot = sfa.expanded_with_derivative(sfa.seed_signal, _grid())
    res = sfa.sfa(z[:, 1:], zdot[:, 1:])
    theta = sfa.theta_of(res.weights[:, 0], res.mean)
    np.testing.assert_allclose(np.asarray(theta / theta[1]), SEED_THETA, atol=1e-10)
    assert abs(abs(float(theta[1])) - math.sqrt(2)) < 1e-10  # unit variance: f = sqrt(2) cos t
    assert float(res.delta[0]) == pytest.approx(1.0, abs=1e-10)
    assert float(res.delta[1]) > 100


def test_seed_literal_loss(x64):
    at_seed = float(sfa.four_point_loss(jnp.asarray(SEED_THETA), sfa.seed_signal))
    assert at_seed == pytest.approx(1 - 1 / math.sqrt(2), abs=1e-12)
    assert float(sfa.four_point_loss(jnp.zeros(6), sfa.seed_signal)) == 0.0
    m = sfa.four_point_loss_matrix(sfa.seed_signal)
    theta = jnp.asarray(np.random.default_rng(0).normal(size=6))
    direct = float(sfa.four_point_loss(theta, sfa.seed_signal))
    assert float(theta @ m @ theta) == pytest.approx(direct, rel=1e-12)
    # a non-constant feature taking the same value at the five sample points: the loss cannot pick out cos t
    null = jnp.asarray([0.0, -0.5, -0.5, -1.0, 1.0, 1.0])
    assert float(sfa.four_point_loss(null, sfa.seed_signal)) < 1e-24


def test_finite_difference_slowness(x64):
    n = 256
    dt = 2 * math.pi / n
    z, _ = sfa.expanded_with_derivative(sfa.seed_signal, _grid(n))
    res = sfa.sfa(z[:, 1:], (jnp.roll(z, -1, axis=0) - z)[:, 1:] / dt)
    assert float(res.delta[0]) == pytest.approx(slowness_of_cos("finite_difference", dt), abs=1e-10)
    theta = sfa.theta_of(res.weights[:, 0], res.mean)
    np.testing.assert_allclose(np.asarray(theta / theta[1]), SEED_THETA, atol=1e-9)


def test_quick_config_end_to_end(quick):
    derivative = "exact"
    path = quick("sfa")
    m = json.loads((path / "metrics.json").read_text())
    assert all(c["ok"] for c in m["checks"]), [c for c in m["checks"] if not c["ok"]]
    assert m["slowness"] == pytest.approx(slowness_of_cos(derivative, 2 * math.pi / 256), abs=1e-9)
    assert m["seed_loss"]["null_space_dim"] == 2
    assert (path / "sfa.png").exists()


@pytest.mark.parametrize("over", ["n_samples=16", "derivative=central", "precision=float16"])
def test_bad_config_exits_2_with_one_line(over, tmp_path, capsys):
    assert main(["run", "configs/sfa.yaml", over, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and over.split("=")[0] in err[0]
