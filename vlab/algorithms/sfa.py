"""Slow feature analysis on a quadratic expansion as a generalised eigenproblem (seed 000, question 3).

For an input signal x(t) and an expansion z(t) = h(x(t)), SFA looks for f(t) = v^T (z(t) - E[z]) minimising
the slowness Delta(f) = E[fdot^2] subject to E[f] = 0, E[f^2] = 1 (and decorrelation from faster features).
With A = E[zdot zdot^T] and B = Cov(z) this is A v = Delta B v: the slow features are the generalised
eigenvectors with the smallest eigenvalues, normalised so that v^T B v = 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

FEATURE_NAMES = ("1", "x1", "x2", "x1*x2", "x1^2", "x2^2")


def quadratic_features(x: jax.Array) -> jax.Array:
    """z = [1, x1, x2, x1 x2, x1^2, x2^2], so the seed's f = A + B x1 + C x2 + D x1 x2 + E x1^2 + F x2^2
    is theta . z."""
    x1, x2 = x[..., 0], x[..., 1]
    return jnp.stack([jnp.ones_like(x1), x1, x2, x1 * x2, x1 * x1, x2 * x2], axis=-1)


def seed_signal(t: jax.Array) -> jax.Array:
    """x1 = cos t + cos 22t, x2 = cos 11t (seed 000, question 3); the hidden slow signal is
    cos t = x1 - cos 22t = x1 - (2 x2^2 - 1) = 1 + x1 - 2 x2^2."""
    return jnp.stack([jnp.cos(t) + jnp.cos(22.0 * t), jnp.cos(11.0 * t)], axis=-1)


def expanded_with_derivative(signal: Callable[[jax.Array], jax.Array], t: jax.Array):
    """z(t) = quadratic_features(signal(t)) and its exact time derivative dz/dt (forward-mode autodiff)."""

    def one(ti):
        return jax.jvp(lambda s: quadratic_features(signal(s)), (ti,), (jnp.ones_like(ti),))

    return jax.vmap(one)(t)


class SFAResult(NamedTuple):
    """Slowness values Delta (ascending), weights v (columns, v^T B v = 1) and the feature means E[z]."""

    delta: jax.Array
    weights: jax.Array
    mean: jax.Array


def sfa(z: jax.Array, zdot: jax.Array) -> SFAResult:
    """Solve A v = Delta B v with A = E[zdot zdot^T], B = Cov(z) over the rows (samples) of ``z``, ``zdot``.

    Columns of ``z`` must not be constant (drop the bias feature first). With B = L L^T the problem becomes
    the symmetric eigenproblem of L^-1 A L^-T; v = L^-T u.
    """
    mean = jnp.mean(z, axis=0)
    zc = z - mean
    b = zc.T @ zc / z.shape[0]
    a = zdot.T @ zdot / z.shape[0]
    chol = jnp.linalg.cholesky(b)
    tri = jax.scipy.linalg.solve_triangular
    c = tri(chol, tri(chol, a, lower=True).T, lower=True).T
    delta, u = jnp.linalg.eigh(0.5 * (c + c.T))
    v = tri(chol.T, u, lower=False)
    return SFAResult(delta, v, mean)


def theta_of(weights: jax.Array, mean: jax.Array) -> jax.Array:
    """The seed's theta = [A, B, C, D, E, F] of f = v^T (z - mean) over features [x1, x2, x1x2, x1^2, x2^2]:
    A = -v . mean, the rest v."""
    return jnp.concatenate([-(weights @ mean)[None], weights])


def four_point_loss_matrix(signal: Callable[[jax.Array], jax.Array]) -> jax.Array:
    """M with L(theta) = theta^T M theta for the seed's literal loss
    L = 1/4 sum_{i=1}^4 [f(pi i / 4) - f(pi (i - 1) / 4)]^2, f = theta . quadratic_features(x(t))."""
    t = jnp.pi / 4 * jnp.arange(5.0)
    z = quadratic_features(signal(t))
    d = z[1:] - z[:-1]
    return d.T @ d / 4.0


def four_point_loss(theta: jax.Array, signal: Callable[[jax.Array], jax.Array]) -> jax.Array:
    """The seed's literal loss L(theta) = 1/4 sum_{i=1}^4 [f(pi i/4) - f(pi (i-1)/4)]^2.

    It has no variance constraint, so theta = 0, or any constant f, gives L = 0."""
    t = jnp.pi / 4 * jnp.arange(5.0)
    f = quadratic_features(signal(t)) @ theta
    return jnp.sum(jnp.diff(f) ** 2) / 4.0
