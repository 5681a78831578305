"""EM for a 1-D Gaussian mixture, written as coordinate ascent on F(theta, q) (seed 001, problem 5).

F(theta, q) = E_q[log p_theta(x, z)] + H(q) = log p_theta(x) - KL(q || p_theta(z | x)).

The E-step maximises F over q (q = p_theta(z | x), which makes F equal log p_theta(x)); the M-step maximises F
over theta, i.e. the expected complete-data log-likelihood (ECLL) E_q[log p_theta(x, z)], because H(q) does not
depend on theta (seed 002, question 1.1). Neither step can decrease F, so log p_theta(x) never decreases.
Parameters are a :class:`vlab.distributions.Mixture1D` (weights, means, stds); responsibilities q are (N, K).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from vlab.distributions import Mixture1D, normal_log_prob


@jax.jit
def log_joint(x: jax.Array, p: Mixture1D) -> jax.Array:
    """log p_theta(x_n, z_n = k) = log pi_k + log N(x_n; mu_k, sigma_k^2), shape (N, K)."""
    return jnp.log(p.weights) + normal_log_prob(x[:, None], p.means, p.stds)


@jax.jit
def log_likelihood(x: jax.Array, p: Mixture1D) -> jax.Array:
    """log p_theta(x) = sum_n logsumexp_k log p_theta(x_n, z_n = k)."""
    return jnp.sum(jax.scipy.special.logsumexp(log_joint(x, p), axis=1))


@jax.jit
def e_step(x: jax.Array, p: Mixture1D) -> jax.Array:
    """argmax_q F(theta, q) = the posterior p_theta(z_n = k | x_n) (responsibilities), shape (N, K)."""
    return jax.nn.softmax(log_joint(x, p), axis=1)


@jax.jit
def m_step(x: jax.Array, q: jax.Array) -> Mixture1D:
    """argmax_theta ECLL(theta; q): pi_k = N_k / N, mu_k = sum_n q_nk x_n / N_k,
    sigma_k^2 = sum_n q_nk (x_n - mu_k)^2 / N_k, with N_k = sum_n q_nk."""
    nk = jnp.sum(q, axis=0)
    mu = q.T @ x / nk
    var = jnp.sum(q * (x[:, None] - mu) ** 2, axis=0) / nk
    return Mixture1D(nk / x.shape[0], mu, jnp.sqrt(var))


@jax.jit
def ecll(x: jax.Array, p: Mixture1D, q: jax.Array) -> jax.Array:
    """The expected complete-data log-likelihood E_q[log p_theta(x, z)] = sum_nk q_nk log p_theta(x_n, k)."""
    return jnp.sum(q * log_joint(x, p))


@jax.jit
def entropy(q: jax.Array) -> jax.Array:
    """H(q) = -sum_nk q_nk log q_nk (0 log 0 = 0)."""
    return -jnp.sum(jnp.where(q > 0, q * jnp.log(jnp.where(q > 0, q, 1.0)), 0.0))


@jax.jit
def free_energy(x: jax.Array, p: Mixture1D, q: jax.Array) -> jax.Array:
    """F(theta, q) = E_q[log p_theta(x, z)] + H(q): the ELBO."""
    return ecll(x, p, q) + entropy(q)


@jax.jit
def posterior_kl(x: jax.Array, p: Mixture1D, q: jax.Array) -> jax.Array:
    """KL(q || p_theta(z | x)) = sum_nk q_nk (log q_nk - log p_theta(k | x_n)), computed directly."""
    log_post = jax.nn.log_softmax(log_joint(x, p), axis=1)
    return jnp.sum(jnp.where(q > 0, q * (jnp.log(jnp.where(q > 0, q, 1.0)) - log_post), 0.0))


class EMTrace(NamedTuple):
    """Per iteration t: F(theta_t, q_t) after the E-step, F(theta_{t+1}, q_t) after the M-step, the ECLL after
    the M-step, log p(x) at theta_{t+1}, and the parameters theta_{t+1}."""

    f_after_e: jax.Array
    f_after_m: jax.Array
    ecll_after_m: jax.Array
    log_likelihood: jax.Array
    params: Mixture1D


@partial(jax.jit, static_argnames=("iters",))
def em(x: jax.Array, p0: Mixture1D, iters: int) -> EMTrace:
    """``iters`` EM iterations from ``p0`` in one ``lax.scan``; see :class:`EMTrace`."""

    def step(p, _):
        q = e_step(x, p)
        f_e = free_energy(x, p, q)
        new = m_step(x, q)
        return new, EMTrace(f_e, free_energy(x, new, q), ecll(x, new, q), log_likelihood(x, new), new)

    _, trace = jax.lax.scan(step, p0, None, length=iters)
    return trace


def unconstrained(p: Mixture1D) -> dict:
    """(logits, means, log stds): coordinates in which the gradient of F vanishes at an interior maximum."""
    return {"logits": jnp.log(p.weights), "means": p.means, "log_stds": jnp.log(p.stds)}


def constrained(u: dict) -> Mixture1D:
    """Inverse of :func:`unconstrained` (weights = softmax(logits))."""
    return Mixture1D(jax.nn.softmax(u["logits"]), u["means"], jnp.exp(u["log_stds"]))


@jax.jit
def m_step_gradient(x: jax.Array, p_new: Mixture1D, q: jax.Array) -> jax.Array:
    """max |d F(theta, q) / d theta| at theta = m_step(x, q): zero when the M-step is the argmax."""
    g = jax.grad(lambda u: free_energy(x, constrained(u), q))(unconstrained(p_new))
    return jnp.max(jnp.stack([jnp.max(jnp.abs(v)) for v in jax.tree.leaves(g)]))


@jax.jit
def e_step_gradient(x: jax.Array, p: Mixture1D) -> jax.Array:
    """max |d F(theta, softmax(a)) / d a| at q = e_step(x, p): zero when the E-step is the argmax over q."""
    a0 = log_joint(x, p)
    g = jax.grad(lambda a: free_energy(x, p, jax.nn.softmax(a, axis=1)))(a0)
    return jnp.max(jnp.abs(g))


@jax.jit
def likelihood_gradient(x: jax.Array, p: Mixture1D) -> jax.Array:
    """max |d log p_theta(x) / d theta| in unconstrained coordinates: zero at an EM fixed point."""
    g = jax.grad(lambda u: log_likelihood(x, constrained(u)))(unconstrained(p))
    return jnp.max(jnp.stack([jnp.max(jnp.abs(v)) for v in jax.tree.leaves(g)]))
