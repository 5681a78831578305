"""Gaussians and Gaussian mixtures: log-densities, reparameterised samples, moments and closed-form KLs."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

LOG_2PI = math.log(2.0 * math.pi)


def normal_log_prob(x: jax.Array, mu: jax.Array, sigma: jax.Array) -> jax.Array:
    """log N(x; mu, sigma^2) = -(x - mu)^2 / (2 sigma^2) - log sigma - log(2 pi) / 2, elementwise."""
    z = (x - mu) / sigma
    return -0.5 * z * z - jnp.log(sigma) - 0.5 * LOG_2PI


def normal_sample(key: jax.Array, mu: jax.Array, sigma: jax.Array, shape: tuple[int, ...] = ()) -> jax.Array:
    """Reparameterised samples x = mu + sigma * eps, eps ~ N(0, 1) (seed 001 problem 2)."""
    shape = shape + jnp.broadcast_shapes(jnp.shape(mu), jnp.shape(sigma))
    return mu + sigma * jax.random.normal(key, shape)


def normal_entropy(sigma: jax.Array) -> jax.Array:
    """H[N(mu, sigma^2)] = log(2 pi e sigma^2) / 2."""
    return 0.5 * (LOG_2PI + 1.0) + jnp.log(sigma)


def kl_normal(mu0: jax.Array, sigma0: jax.Array, mu1: jax.Array, sigma1: jax.Array) -> jax.Array:
    """KL(N(mu0, sigma0^2) || N(mu1, sigma1^2)) = log(sigma1/sigma0) + (sigma0^2 + (mu0-mu1)^2)/(2 sigma1^2) - 1/2.

    Elementwise; summing over dimensions gives the KL of diagonal Gaussians (it factorises, seed 004).
    """
    r = sigma0 / sigma1
    return -jnp.log(r) + 0.5 * (r * r + ((mu0 - mu1) / sigma1) ** 2) - 0.5


def kl_to_standard_normal(mu: jax.Array, sigma: jax.Array) -> jax.Array:
    """KL(N(mu, sigma^2) || N(0, 1)) = (sigma^2 + mu^2 - log sigma^2 - 1) / 2, elementwise (seed 004, problem 1c).

    Its gradients are dKL/dmu = mu and dKL/dsigma = sigma - 1/sigma.
    """
    return 0.5 * (sigma * sigma + mu * mu - 2.0 * jnp.log(sigma) - 1.0)


def kl_mvn(mu0: jax.Array, cov0: jax.Array, mu1: jax.Array, cov1: jax.Array) -> jax.Array:
    """KL(N(mu0, S0) || N(mu1, S1)) for full covariances (seed 001, problem 6.1):

    (tr(S1^-1 S0) + (mu1 - mu0)^T S1^-1 (mu1 - mu0) - d + log(|S1| / |S0|)) / 2.
    """
    d = mu0.shape[-1]
    l1 = jnp.linalg.cholesky(cov1)
    l0 = jnp.linalg.cholesky(cov0)
    a = jax.scipy.linalg.solve_triangular(l1, l0, lower=True)
    b = jax.scipy.linalg.solve_triangular(l1, (mu1 - mu0)[..., None], lower=True)[..., 0]
    logdet1 = 2.0 * jnp.sum(jnp.log(jnp.diagonal(l1, axis1=-2, axis2=-1)), -1)
    logdet0 = 2.0 * jnp.sum(jnp.log(jnp.diagonal(l0, axis1=-2, axis2=-1)), -1)
    return 0.5 * (jnp.sum(a * a, (-2, -1)) + jnp.sum(b * b, -1) - d + logdet1 - logdet0)


class Mixture1D(NamedTuple):
    """A 1-D Gaussian mixture sum_k w_k N(m_k, s_k^2); a pytree of three ``(K,)`` arrays."""

    weights: jax.Array
    means: jax.Array
    stds: jax.Array

    def log_prob(self, x: jax.Array) -> jax.Array:
        """log p(x) = logsumexp_k [log w_k - log s_k - log(2 pi)/2 - (x - m_k)^2 / (2 s_k^2)], any shape of ``x``.

        The per-component constants are formed once, outside the per-point work.
        """
        const = jnp.log(self.weights) - jnp.log(self.stds) - 0.5 * LOG_2PI
        z = (x[..., None] - self.means) / self.stds
        return jax.nn.logsumexp(const - 0.5 * z * z, axis=-1)

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        """``n`` samples: a component k ~ Categorical(w), then x ~ N(m_k, s_k^2)."""
        k_comp, k_noise = jax.random.split(key)
        k = jax.random.categorical(k_comp, jnp.log(self.weights), shape=(n,))
        return self.means[k] + self.stds[k] * jax.random.normal(k_noise, (n,))

    def mean(self) -> jax.Array:
        """E[x] = sum_k w_k m_k."""
        return jnp.sum(self.weights * self.means)

    def variance(self) -> jax.Array:
        """Var[x] = sum_k w_k (s_k^2 + m_k^2) - E[x]^2."""
        return jnp.sum(self.weights * (self.stds**2 + self.means**2)) - self.mean() ** 2


def mixture_1d(weights, means, stds, dtype=None) -> Mixture1D:
    """A :class:`Mixture1D` from lists or arrays (in the current default float dtype unless ``dtype``)."""
    return Mixture1D(*(jnp.asarray(v, dtype=dtype) for v in (weights, means, stds)))
