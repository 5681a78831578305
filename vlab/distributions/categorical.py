"""Discrete distributions on {1, ..., n}: KL divergence, entropy and the joint convexity of KL (seed 001, 6.2).

Joint convexity: for lambda in [0, 1] and distributions p1, p2, q1, q2 with nonzero probabilities,

    KL(lambda p1 + (1 - lambda) p2 || lambda q1 + (1 - lambda) q2) <= lambda KL(p1 || q1) + (1 - lambda) KL(p2 || q2).

It holds outcome by outcome through the log-sum inequality
a1 log(a1 / b1) + a2 log(a2 / b2) >= (a1 + a2) log((a1 + a2) / (b1 + b2))
with a1 = lambda p1(y), a2 = (1 - lambda) p2(y), b1 = lambda q1(y), b2 = (1 - lambda) q2(y).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from vlab.keys import stream


def _xlogy(x: jax.Array, y: jax.Array) -> jax.Array:
    """x log y with 0 log 0 = 0."""
    return jnp.where(x > 0, x * jnp.log(jnp.where(x > 0, y, 1.0)), 0.0)


@jax.jit
def kl_categorical(p: jax.Array, q: jax.Array) -> jax.Array:
    """KL(p || q) = sum_y p(y) log(p(y) / q(y)) over the last axis (0 log 0 = 0)."""
    return jnp.sum(_xlogy(p, p) - _xlogy(p, q), axis=-1)


@jax.jit
def entropy_categorical(p: jax.Array) -> jax.Array:
    """H(p) = -sum_y p(y) log p(y) over the last axis."""
    return -jnp.sum(_xlogy(p, p), axis=-1)


@jax.jit
def convexity_sides(p1: jax.Array, p2: jax.Array, q1: jax.Array, q2: jax.Array, lam: jax.Array):
    """(LHS, RHS) of the convexity inequality: KL(mixed p || mixed q) and the mixture of the two KLs.

    Args:
        p1: a distribution on {1, ..., n}, (..., n), every entry > 0.
        p2: a second distribution, (..., n).
        q1: the distribution p1 is compared with, (..., n).
        q2: the distribution p2 is compared with, (..., n).
        lam: the mixing weight lambda in [0, 1], (...).

    Returns:
        ``(KL(lambda p1 + (1 - lambda) p2 || lambda q1 + (1 - lambda) q2), lambda KL(p1 || q1) + (1 - lambda)
        KL(p2 || q2))``, each (...).
    """
    lam_ = jnp.asarray(lam)[..., None]
    lhs = kl_categorical(lam_ * p1 + (1 - lam_) * p2, lam_ * q1 + (1 - lam_) * q2)
    rhs = lam * kl_categorical(p1, q1) + (1 - lam) * kl_categorical(p2, q2)
    return lhs, rhs


@jax.jit
def log_sum_terms(p1: jax.Array, p2: jax.Array, q1: jax.Array, q2: jax.Array, lam: jax.Array) -> jax.Array:
    """Per-outcome slack of the log-sum inequality; each entry is >= 0 and they sum to RHS - LHS.

    Args:
        p1: a distribution on {1, ..., n}, (..., n), every entry > 0.
        p2: a second distribution, (..., n).
        q1: the distribution p1 is compared with, (..., n).
        q2: the distribution p2 is compared with, (..., n).
        lam: the mixing weight lambda in [0, 1], (...).

    Returns:
        The slack of every outcome y, (..., n).
    """
    lam_ = jnp.asarray(lam)[..., None]
    a1, a2 = lam_ * p1, (1 - lam_) * p2
    b1, b2 = lam_ * q1, (1 - lam_) * q2
    return (_xlogy(a1, a1) - _xlogy(a1, b1) + _xlogy(a2, a2) - _xlogy(a2, b2)
            - _xlogy(a1 + a2, a1 + a2) + _xlogy(a1 + a2, b1 + b2))


@partial(jax.jit, static_argnums=(1, 2))
def random_cases(key: jax.Array, n: int, k: int, scale: float | jax.Array):
    """``n`` random cases ``(p1, p2, q1, q2, lambda)`` of the convexity inequality on ``k`` outcomes.

    Each distribution is softmax(scale * N(0, I_k)), floored at sqrt(tiny) and renormalised so every probability
    is nonzero; lambda ~ U(0, 1). A small ``scale`` gives near-uniform distributions, a large one near-degenerate
    ones. Each of the five draws has its own named stream of ``key`` (``"p1"``, ..., ``"lambda"``).
    """
    eps = jnp.finfo(jnp.zeros(()).dtype).tiny ** 0.5

    def simplex(name: str) -> jax.Array:
        p = jnp.maximum(jax.nn.softmax(scale * jax.random.normal(stream(key, name), (n, k)), axis=-1), eps)
        return p / jnp.sum(p, -1, keepdims=True)

    return (*(simplex(name) for name in ("p1", "p2", "q1", "q2")), jax.random.uniform(stream(key, "lambda"), (n,)))
