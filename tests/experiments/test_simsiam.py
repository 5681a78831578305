"""Linear SimSiam: the expected loss, autodiff flows against the seed's closed forms, H, and the trajectories."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from vlab.experiments.simsiam import KEYS, Config, analyse, random_state

from vlab.algorithms import simsiam as ss
from vlab.cli.main import main


def _setup(d=5, m=3):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    x_cov = a @ a.T / d + 0.5 * np.eye(d)
    noise_cov = 0.2 * b @ b.T / d + 0.1 * np.eye(d)
    return tuple(jnp.asarray(v) for v in (x_cov, noise_cov, rng.normal(size=(m, d)), rng.normal(size=(m, m))))


def test_expected_loss_matches_monte_carlo(x64):
    x_cov, noise_cov, w, wp = _setup()
    j = float(ss.expected_loss(w, wp, x_cov, noise_cov, True, True))
    mc = float(ss.sampled_loss(jax.random.key(5), w, wp, x_cov, noise_cov, 200_000))
    assert mc == pytest.approx(j, rel=0.03)


def test_expected_loss_equals_the_seed_trace_form(x64):
    x_cov, noise_cov, w, wp = _setup()
    f1 = w @ (x_cov + noise_cov) @ w.T
    f12 = w @ x_cov @ w.T
    seed = 0.5 * (jnp.trace(wp.T @ wp @ f1) - jnp.trace(wp @ f12) - jnp.trace(f12 @ wp.T) + jnp.trace(f1))
    assert float(ss.expected_loss(w, wp, x_cov, noise_cov, True, True)) == pytest.approx(float(seed), rel=1e-12)


@pytest.mark.parametrize("sg,pred", [(True, True), (True, False), (False, True), (False, False)])
def test_autodiff_flow_equals_closed_form(sg, pred, x64):
    x_cov, noise_cov, w, wp = _setup()
    v = ss.velocity(ss.SimSiamState(w, wp), x_cov, noise_cov, sg, pred)
    np.testing.assert_allclose(np.asarray(v.w), np.asarray(ss.seed_velocity_w(w, wp, x_cov, noise_cov, sg, pred)),
                               atol=1e-12)
    if pred:
        np.testing.assert_allclose(np.asarray(v.wp), np.asarray(ss.seed_velocity_wp(w, wp, x_cov, noise_cov)),
                                   atol=1e-12)
    else:
        assert float(jnp.max(jnp.abs(v.wp))) == 0.0


def test_seed_5_4_factor_two(x64):
    # without stop-grad and predictor both branches carry W: dW/dt = -2 W X', not the seed's -W X'
    x_cov, noise_cov, w, wp = _setup()
    v = ss.velocity(ss.SimSiamState(w, wp), x_cov, noise_cov, False, False)
    np.testing.assert_allclose(np.asarray(v.w), np.asarray(-2 * w @ noise_cov), atol=1e-12)
    assert float(jnp.max(jnp.abs(v.w + w @ noise_cov))) > 1e-2


def test_h_matrix_vec_identity_and_lower_bound(x64):
    x_cov, noise_cov, w, wp = _setup()
    h = ss.h_matrix(wp, x_cov, noise_cov)
    v = ss.velocity(ss.SimSiamState(w, wp), x_cov, noise_cov, False, True)
    np.testing.assert_allclose(np.asarray(h @ ss.vec(w)), -np.asarray(ss.vec(v.w)), atol=1e-12)
    assert float(jnp.min(jnp.linalg.eigvalsh(h))) >= float(jnp.min(jnp.linalg.eigvalsh(noise_cov))) - 1e-12


def test_integration_without_predictor_matches_expm(x64):
    x_cov, noise_cov, w, wp = _setup()
    traj = ss.integrate(ss.SimSiamState(w, wp), x_cov, noise_cov, True, False, 0.01, 300, 100)
    assert traj.w.shape == (4, 3, 5)
    ref = w @ jax.scipy.linalg.expm(-noise_cov * 3.0)
    np.testing.assert_allclose(np.asarray(traj.w[-1]), np.asarray(ref), atol=1e-10)


def test_random_state_draws_w_and_wp_from_their_own_streams(x64):
    a, b = random_state(jax.random.key(7), 3, 5, 0.5), random_state(jax.random.key(7), 3, 4, 0.5)
    assert a.w.shape == (3, 5) and a.wp.shape == (3, 3)
    np.testing.assert_array_equal(np.asarray(a.wp), np.asarray(b.wp))  # W's shape does not move W_p
    unit = random_state(jax.random.key(7), 3, 5)
    np.testing.assert_allclose(np.asarray(a.w), 0.5 * np.asarray(unit.w), rtol=1e-15)


def test_analyse_reproduces_the_closed_forms_on_a_short_flow(x64):
    cfg = Config(t_max=1.0, dt=0.05, save_every=5)
    x_cov, noise_cov, w, wp = _setup(d=5, m=3)
    res = analyse(cfg, ss.SimSiamState(w, wp), ss.SimSiamState(wp @ w, wp.T), x_cov, noise_cov)
    assert res["norms"].shape == (4, 5)
    assert all(float(res[f"flow_err/{k}"]) < 1e-12 for k in KEYS)
    assert float(res["h_err"]) < 1e-12
    assert float(res["expm_err/sg_nopred"]) < 1e-7 and float(res["expm_err/nosg_nopred"]) < 1e-7
    assert float(res["lam0"]) == pytest.approx(float(jnp.min(jnp.linalg.eigvalsh(noise_cov))), rel=1e-14)
    np.testing.assert_allclose(np.asarray(res["traj"].w[:, 0]), np.broadcast_to(np.asarray(w), (4, 3, 5)))


def test_quick_config_end_to_end(quick):
    path = quick("simsiam")
    m = json.loads((path / "metrics.json").read_text())
    assert all(c["ok"] for c in m["checks"]), [c for c in m["checks"] if not c["ok"]]
    assert m["collapsed"] == {"sg_pred": False, "sg_nopred": True, "nosg_pred": True, "nosg_nopred": True}
    assert (path / "simsiam.png").exists()


BAD = ["m=7", "noise=0", "dt=0.5", "save_every=100000", "x_eigenvalues=[1,-1]"]


@pytest.mark.parametrize("over", BAD)
def test_bad_config_exits_2_with_one_line(over, tmp_path, capsys):
    assert main(["run", "configs/simsiam.yaml", over, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and over.split("=")[0] in err[0]
