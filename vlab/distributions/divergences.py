"""Inclusive KL(p || q) and exclusive KL(q || p) between a target p and a Gaussian q = N(mu, sigma^2).

Two kinds of estimator:

* deterministic quadrature in each Gaussian's standardised coordinate u = (x - m) / s, so the nodes follow q
  (exclusive) or each mixture component of p (inclusive): a dense trapezoid grid on [-width, width], spectrally
  accurate for smooth integrands, or Gauss-Hermite nodes, exact for polynomial integrands but slow to converge
  when q is wide and log p bends sharply between modes, where too few nodes can create a spurious stationary point
  (both accuracies, measured against scipy quadrature, are in docs/experiments/kl_fit.md);
* Monte Carlo: reparameterised samples x = mu + sigma * eps of q for the exclusive direction (seed 001 problem 2),
  samples of p for the inclusive one. Each returns the estimate and its standard error.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from vlab.distributions.gaussian import LOG_2PI, Mixture1D, normal_entropy, normal_log_prob

LogDensity = Callable[[jax.Array], jax.Array]


def standard_normal_rule(n: int, rule: str = "grid", width: float = 12.0) -> tuple[jax.Array, jax.Array]:
    """Nodes u_i and weights v_i with sum_i v_i f(u_i) ~= E_{u ~ N(0,1)}[f(u)].

    ``gauss_hermite``: u_i = sqrt(2) t_i, v_i = w_i / sqrt(pi) for the physicists' Hermite nodes t_i, weights w_i
    (exact for polynomials of degree < 2n). ``grid``: the trapezoid rule on [-width, width] with weights
    phi(u_i) du, spectrally accurate for smooth integrands.
    """
    if rule == "gauss_hermite":
        t, w = np.polynomial.hermite.hermgauss(n)
        u, v = np.sqrt(2.0) * t, w / np.sqrt(np.pi)
    elif rule == "grid":
        u = np.linspace(-width, width, n)
        v = np.exp(-0.5 * u**2) / np.sqrt(2 * np.pi) * (u[1] - u[0])
        v[[0, -1]] *= 0.5
    else:
        raise ValueError(f"unknown quadrature rule '{rule}': expected gauss_hermite or grid")
    return jnp.asarray(u), jnp.asarray(v)


def normal_expectation(f: Callable[[jax.Array], jax.Array], mu, sigma, rule: tuple[jax.Array, jax.Array]):
    """E_{x ~ N(mu, sigma^2)}[f(x)] ~= sum_i v_i f(mu + sigma u_i) for a rule from :func:`standard_normal_rule`."""
    u, v = rule
    return jnp.sum(v * f(mu + sigma * u))


def exclusive_kl_quadrature(mu, sigma, log_p: LogDensity, rule: tuple[jax.Array, jax.Array]) -> jax.Array:
    """KL(q || p) = E_q[log q(x) - log p(x)] = -H[q] - E_q[log p(x)], with H[q] in closed form."""
    return -normal_entropy(sigma) - normal_expectation(log_p, mu, sigma, rule)


def inclusive_kl_quadrature(mu, sigma, target: Mixture1D, rule: tuple[jax.Array, jax.Array]) -> jax.Array:
    """KL(p || q) = E_p[log p(x)] - E_p[log q(x)] for a Gaussian-mixture target p.

    E_p[log p] = sum_k w_k E_{N(m_k, s_k^2)}[log p] by quadrature; the cross term is exact:
    -E_p[log q] = log sigma + log(2 pi) / 2 + (Var_p + (E_p[x] - mu)^2) / (2 sigma^2).
    """
    e_log_p = jnp.sum(target.weights * jax.vmap(
        lambda m, s: normal_expectation(target.log_prob, m, s, rule))(target.means, target.stds))
    cross = jnp.log(sigma) + 0.5 * jnp.log(2 * jnp.pi) + (target.variance() + (target.mean() - mu) ** 2) / (
        2 * sigma**2)
    return e_log_p + cross


def mean_and_stderr(values: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The mean of ``n`` values (shape ``(n,)``) and its standard error ``std(values, ddof=1) / sqrt(n)``: a
    Monte Carlo estimate and its uncertainty."""
    n = values.shape[0]
    return jnp.mean(values), jnp.std(values, ddof=1) / math.sqrt(n)


def exclusive_kl_mc(key: jax.Array, mu, sigma, log_p: LogDensity, n: int) -> tuple[jax.Array, jax.Array]:
    """Reparameterised estimate of KL(q || p) = E_eps[log q(mu + sigma eps) - log p(mu + sigma eps)], eps ~ N(0,1).

    Its gradient in (mu, sigma) is unbiased (the reparameterisation trick).

    Args:
        key: the key of the draws eps.
        mu, sigma: q's mean and standard deviation.
        log_p: the target's log-density (vectorised over points).
        n: the number of samples.

    Returns:
        (estimate, standard error), by :func:`mean_and_stderr`.
    """
    eps = jax.random.normal(key, (n,))
    log_q = -0.5 * eps * eps - jnp.log(sigma) - 0.5 * LOG_2PI  # log N(mu + sigma eps; mu, sigma^2)
    return mean_and_stderr(log_q - log_p(mu + sigma * eps))


def inclusive_kl_mc(key: jax.Array, mu, sigma, target: Mixture1D, n: int) -> tuple[jax.Array, jax.Array]:
    """Estimate of KL(p || q) = E_{x ~ p}[log p(x) - log q(x)] from ``n`` samples of p.

    Only log q depends on (mu, sigma), so the gradient is the maximum-likelihood gradient of q on p's samples.

    Args:
        key: the key of the samples of p.
        mu, sigma: q's mean and standard deviation.
        target: the Gaussian-mixture target p.
        n: the number of samples.

    Returns:
        (estimate, standard error), by :func:`mean_and_stderr`.
    """
    x = target.sample(key, n)
    return mean_and_stderr(target.log_prob(x) - normal_log_prob(x, mu, sigma))
