"""Property tests of every bijection family over random dimensions (1..5), parameters and inputs (float64).

For each family: ``inverse(forward(u)) = u``, the inverse's log-determinant is minus the forward one at matching
points, and the forward log-determinant equals ``log|det|`` of the Jacobian ``jax.jacfwd`` computes. Parameters
come from ``init`` with a random key and are then perturbed off the identity start. A family's structure (its
dimension, mask, activation, ...) is drawn from a small set, so each compiled check is reused across examples.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vlab import flows

SETTINGS = settings(max_examples=10, deadline=None, derandomize=True)
N_POINTS = 6


@pytest.fixture(autouse=True, scope="module")
def _float64():
    """float64 for the whole module (tight tolerances on Jacobians), restored afterwards."""
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", before)


def _mask(dim: int, parity: int) -> np.ndarray:
    return flows.alternating_masks(dim, 2)[parity]


_ACTIVATIONS = (jax.nn.relu, jnp.tanh, jax.nn.gelu)
_LOG_SCALES = (flows.softplus_log_scale, flows.tanh_log_scale)


@functools.cache
def _bijection(family: str, dim: int, option: int) -> flows.Bijection:
    """One bijection of ``family`` on ``R^dim``. Its structure follows ``dim`` (a compiled check per dimension):
    over the dimensions the couplings see both mask parities, both log-scale maps and three activations;
    ``option`` picks the permutation and the rotation. Couplings need two coordinates: in 1-D they are the padded
    one-layer flows of the stacks."""
    cond = flows.Conditioner(hidden=6, depth=2, activation=_ACTIVATIONS[dim % 3], bias_init=1.0)
    log_scale, parity = _LOG_SCALES[dim // 2 % 2], dim % 2
    if family == "elementwise_affine":
        return flows.elementwise_affine(dim)
    if family == "permutation":
        return flows.permutation(np.random.default_rng(option).permutation(dim))
    if family == "rotation":
        return flows.rotation(dim, jax.random.key(option))
    if family == "affine_coupling":
        if dim == 1:
            return flows.affine_flow(1, 1, conditioner=cond, log_scale=log_scale)
        return flows.affine_coupling(dim, _mask(dim, parity), cond, log_scale)
    if family == "inverted_affine_coupling":
        return flows.invert(_bijection("affine_coupling", dim, option))
    if family == "spline_coupling":
        if dim == 1:
            return flows.spline_flow(1, 1, bins=3, bound=2.0, conditioner=cond)
        return flows.spline_coupling(dim, _mask(dim, parity), bins=3 + parity, bound=2.0, conditioner=cond)
    if family == "planar":
        return flows.planar(dim, init_scale=1.0)
    if family == "rotation_mixed_stack":
        return flows.affine_flow(dim, 2, conditioner=cond, rotations=True, loc=jnp.zeros(dim),
                                 scale=jnp.full(dim, 2.0))
    raise AssertionError(family)


@functools.cache
def _checker(family: str, dim: int, option: int):
    b = _bijection(family, dim, option)

    @jax.jit
    def passes(params, u):
        x, ld = jax.vmap(b.forward, in_axes=(None, 0))(params, u)
        u_back, ld_inv = jax.vmap(b.inverse, in_axes=(None, 0))(params, x)
        return u_back, ld, ld_inv, jax.vmap(jax.jacfwd(lambda v: b.forward(params, v)[0]))(u)

    def check(params, u):
        u_back, ld, ld_inv, jac = passes(params, u)
        return u_back, ld, ld_inv, np.linalg.slogdet(np.asarray(jac))[1]  # on the host: one compile less

    return b, check


def _perturbed(params, rng: np.random.Generator, scale: float):
    """``params`` moved off the identity start by ``N(0, scale^2)`` noise (drawn on the host)."""
    return jax.tree.map(lambda x: x + scale * rng.standard_normal(x.shape), params)


FAMILIES = ["elementwise_affine", "permutation", "rotation", "affine_coupling", "inverted_affine_coupling",
            "spline_coupling", "planar", "rotation_mixed_stack"]


@pytest.mark.parametrize("family", FAMILIES)
@SETTINGS
@given(dim=st.integers(1, 5), option=st.integers(0, 1), seed=st.integers(0, 2**31 - 1),
       perturbation=st.floats(0.0, 0.5), spread=st.floats(0.1, 2.5))
def test_round_trip_and_log_det(family, dim, option, seed, perturbation, spread):
    """inverse(forward(u)) = u, log|det J_F^-1(F(u))| = -log|det J_F(u)| = -log|det jacfwd(F)(u)|."""
    b, check = _checker(family, dim, option if family in ("permutation", "rotation") else 0)
    rng = np.random.default_rng(seed)
    params = _perturbed(b.init(jax.random.key(seed)), rng, perturbation)
    u = spread * rng.standard_normal((N_POINTS, dim))  # wide spreads reach the splines' identity tails
    u_back, ld, ld_inv, ld_jac = check(params, u)
    np.testing.assert_allclose(u_back, u, atol=1e-8, rtol=1e-8)
    np.testing.assert_allclose(ld_inv, -ld, atol=1e-8)
    np.testing.assert_allclose(ld, ld_jac, atol=1e-7)
