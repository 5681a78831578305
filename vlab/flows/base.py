"""The bijection contract, composition and the densities of a flow with a standard-normal base.

A flow pushes a base sample ``u ~ P_U`` through an invertible map ``x = F(u)``; by the change of variables
(seed 002 question 3.1)

    log P_F(U)(x) = log P_U(F^-1(x)) + log|det J_F^-1(x)| = log P_U(u) - log|det J_F(u)|.

Each bijection is a :class:`Bijection` of three pure functions acting on ONE example of shape ``(d,)``:
``init(key) -> params``, ``forward(params, u) -> (x, log|det J_F(u)|)`` and
``inverse(params, x) -> (u, log|det J_F^-1(x)|)``. Batches, seeds and grids are ``jax.vmap`` of these.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Params = Any


class Bijection(NamedTuple):
    """An invertible map ``F`` on ``R^d`` with its log-Jacobian-determinant, as three pure functions.

    ``forward(params, u) -> (F(u), log|det J_F(u)|)``;
    ``inverse(params, x) -> (F^-1(x), log|det J_F^-1(x)|)``, so ``inverse(forward(u)) = u`` and the two
    log-determinants at matching points sum to zero.
    """

    init: Callable[[jax.Array], Params]
    forward: Callable[[Params, jax.Array], tuple[jax.Array, jax.Array]]
    inverse: Callable[[Params, jax.Array], tuple[jax.Array, jax.Array]]


def chain(bijections: Sequence[Bijection]) -> Bijection:
    """The composition ``F = f_n o ... o f_1`` (``bijections[0]`` acts first).

    ``log|det J_F(u)| = sum_k log|det J_{f_k}(u_{k-1})|`` with ``u_0 = u``, ``u_k = f_k(u_{k-1})``.
    Parameters are a tuple holding each unit's parameters.
    """
    bs = tuple(bijections)
    if not bs:
        raise ValueError("a flow needs at least one bijection (got 0 layers)")

    def init(key):
        return tuple(b.init(k) for b, k in zip(bs, jax.random.split(key, len(bs)), strict=True))

    def forward(params, u):
        total = jnp.zeros((), u.dtype)
        for b, p in zip(bs, params, strict=True):
            u, ld = b.forward(p, u)
            total = total + ld
        return u, total

    def inverse(params, x):
        total = jnp.zeros((), x.dtype)
        for b, p in zip(reversed(bs), reversed(params), strict=True):
            x, ld = b.inverse(p, x)
            total = total + ld
        return x, total

    return Bijection(init, forward, inverse)


def invert(b: Bijection) -> Bijection:
    """The inverse bijection ``F^-1``: its forward pass is ``b``'s inverse pass and vice versa."""
    return Bijection(b.init, b.inverse, b.forward)


def shifted_softplus(raw: jax.Array, floor: float = 1e-3) -> jax.Array:
    """``floor + softplus(raw + c)`` with ``c = softplus^-1(1 - floor)``: positive, at least ``floor``, and 1 at
    ``raw = 0`` (so an all-zero network output gives the identity)."""
    return floor + jax.nn.softplus(raw + math.log(math.expm1(1.0 - floor)))


def standard_normal_log_prob(u: jax.Array) -> jax.Array:
    """``log N(u; 0, I) = -||u||^2 / 2 - (d/2) log(2 pi)`` for one example."""
    return -0.5 * jnp.sum(u**2) - 0.5 * u.shape[-1] * math.log(2 * math.pi)


def log_prob(flow: Bijection, params: Params, x: jax.Array) -> jax.Array:
    """``log P_F(U)(x) = log P_U(F^-1(x)) + log|det J_F^-1(x)|`` with a standard-normal base, one example."""
    u, ld = flow.inverse(params, x)
    return standard_normal_log_prob(u) + ld


def sample_and_log_prob(flow: Bijection, params: Params, key: jax.Array, n: int, dim: int):
    """``n`` samples ``x = F(u)``, ``u ~ N(0, I)``, with ``log q(x) = log P_U(u) - log|det J_F(u)|``.

    Args:
        flow: the flow ``F``.
        params: its parameters.
        key: the key of the base draws ``u``.
        n: the number of samples.
        dim: the dimension of ``u``.

    Returns:
        ``(x, log_q)`` of shapes ``(n, dim)`` and ``(n,)``.
    """
    u = jax.random.normal(key, (n, dim))
    x, ld = jax.vmap(flow.forward, in_axes=(None, 0))(params, u)
    return x, jax.vmap(standard_normal_log_prob)(u) - ld
