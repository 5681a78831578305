"""Targets: exact log-normalisers, data densities that integrate to one and match their samplers."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vlab import densities


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
