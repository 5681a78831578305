"""Targets: exact log-normalisers, data densities that integrate to one and match their samplers."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vlab.distributions import densities


@pytest.mark.parametrize("name", ["two_mode", "banana", "funnel"])
def test_grid_log_z_matches_the_closed_form(name, x64):
    t = densities.get(name)
    box, n = t.box, 800
    if name == "funnel":  # its mouth spreads far past the plotting box and its neck needs a fine grid
        box, n = ((-7.0, 7.0), (-60.0, 60.0)), 3000
    np.testing.assert_allclose(densities.grid_log_z(t.log_prob, box, n), t.log_z, atol=3e-4)


def test_u1_grid_log_z_matches_polar_quadrature(x64):
    t = densities.get("u1")
    grid = float(densities.grid_log_z(t.log_prob, t.box, 800))
    # an independent rule: Gauss-Legendre in the radius, the (spectrally exact) periodic rule in the angle
    r, wr = np.polynomial.legendre.leggauss(200)
    r, wr = 2.25 * (r + 1), 2.25 * wr
    a = np.linspace(0, 2 * math.pi, 400, endpoint=False)
    rr, aa = np.meshgrid(r, a)
    pts = jnp.asarray(np.stack([rr * np.cos(aa), rr * np.sin(aa)], -1).reshape(-1, 2))
    lp = np.asarray(jax.jit(jax.vmap(t.log_prob))(pts)).reshape(rr.shape)
    val = np.sum(np.exp(lp) * rr * wr[None, :]) * (2 * math.pi / 400)
    np.testing.assert_allclose(grid, math.log(val), atol=1e-4)


@pytest.mark.parametrize("name", ["u2", "u3", "u4"])
def test_walled_energies_have_a_converged_log_z(name, x64):
    t = densities.get(name)
    a = float(densities.grid_log_z(t.log_prob, t.box, 500))
    wider = tuple((lo - 1.0, hi + 1.0) for lo, hi in t.box)
    b = float(densities.grid_log_z(t.log_prob, wider, 700))
    assert abs(a - b) < 1e-3


@pytest.mark.parametrize("name", ["two_moons", "eight_gaussians", "rings", "checkerboard", "mixture_1d"])
def test_data_densities_integrate_to_one_and_match_their_samplers(name, x64):
    t = densities.get(name)
    wide = tuple((lo - 0.5, hi + 0.5) for lo, hi in t.box)
    lp, cell = densities.grid_log_prob(t.log_prob, wide, 2000 if t.dim == 1 else 300)
    p = jnp.exp(lp)
    np.testing.assert_allclose(jnp.sum(p) * cell, 1.0, atol=3e-3)
    # samples land where the density is: E_samples[log p] = -H, which the grid also computes
    neg_h_grid = float(jnp.sum(jnp.where(p > 0, p * lp, 0.0)) * cell)
    lps = jax.jit(jax.vmap(t.log_prob))(t.sample(jax.random.key(0), 20_000))
    assert bool(jnp.all(jnp.isfinite(lps)))
    assert abs(float(lps.mean()) - neg_h_grid) < 4 * float(lps.std()) / math.sqrt(20_000) + 3e-3


def test_two_moons_entropy_is_the_issue_value(x64):
    t = densities.get("two_moons")
    lps = jax.jit(jax.vmap(t.log_prob))(t.sample(jax.random.key(1), 40_000))
    assert abs(-float(lps.mean()) - 0.289) < 0.01


def test_unknown_target_is_a_value_error():
    with pytest.raises(ValueError, match="unknown target 'nope'"):
        densities.get("nope")


def test_normalised_log_prob_subtracts_the_energys_log_z(x64):
    t = densities.get("two_mode")
    lp, cell = densities.grid_log_prob(densities.normalised_log_prob(t), t.box, 400)
    np.testing.assert_allclose(jnp.sum(jnp.exp(lp)) * cell, 1.0, atol=1e-4)
    x = jnp.array([0.3, -0.2])
    np.testing.assert_allclose(densities.normalised_log_prob(t)(x), t.log_prob(x) - t.log_z, rtol=1e-12)
    moons = densities.get("two_moons")  # a data set's density is already normalised
    np.testing.assert_allclose(densities.normalised_log_prob(moons)(x), moons.log_prob(x), rtol=1e-12)
    with pytest.raises(ValueError, match="no density"):
        densities.normalised_log_prob(densities.get("pinwheel"))


def test_samples_from_a_file_make_a_target_with_a_held_out_tenth(tmp_path):
    x = np.random.default_rng(0).normal(size=(200, 2)) * [1.0, 3.0]
    np.savetxt(tmp_path / "x.csv", x, delimiter=",")
    np.save(tmp_path / "x1.npy", x[:, 0])
    loaded = densities.load_samples(str(tmp_path / "x.csv"))
    np.testing.assert_allclose(loaded, x, rtol=1e-12)
    assert densities.load_samples(str(tmp_path / "x1.npy")).shape == (200, 1)
    t, test = densities.samples_target(loaded)
    np.testing.assert_array_equal(test, x[180:])
    draws = np.asarray(t.sample(jax.random.key(0), 5000))
    # every draw is a training row (the first 180), and the box pads the data's range
    assert np.isin(draws[:, 0], x[:180, 0].astype(draws.dtype)).all() and t.log_prob is None and t.dim == 2
    assert all(lo < a and b < hi for (lo, hi), a, b in zip(t.box, x.min(0), x.max(0), strict=True))
    np.save(tmp_path / "short.npy", x[:5])
    # plain ValueErrors saying what was expected (the config layer names the key: tests/test_flow_kl.py)
    for bad, says in (("short.npy", r"n >= 10 \(got shape \(5, 2\)\)"), ("missing.npy", "an existing .npy or .csv")):
        with pytest.raises(ValueError, match=says):
            densities.load_samples(str(tmp_path / bad))
