"""The Gaussian-Bernoulli latent variable model of seed 000, question 4: energies, exact conditionals, marginals.

p(x, h) = exp(-E(x, h)) / Z with x in R^d, h in {0, 1}^k and E(x, h) = -h^T W^T x - c^T x + b^T h + x^T x / 2.
Completing the square, x^T (W h + c) - x^T x / 2 = -|x - (W h + c)|^2 / 2 + |W h + c|^2 / 2, so

    p(x | h) = N(x; W h + c, I),
    p(h) = exp(|W h + c|^2 / 2 - b^T h) / sum_h' exp(|W h' + c|^2 / 2 - b^T h'),
    p(h | x) = prod_j sigmoid((W^T x - b)_j)^h_j (1 - sigmoid(...))^(1 - h_j),
    Z = (2 pi)^(d/2) sum_h exp(|W h + c|^2 / 2 - b^T h).
"""

from __future__ import annotations

import itertools
import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from vlab.keys import stream


class GBParams(NamedTuple):
    """W (d, k), c (d,), b (k,)."""

    w: jax.Array
    c: jax.Array
    b: jax.Array


@jax.jit
def energy(x: jax.Array, h: jax.Array, p: GBParams) -> jax.Array:
    """E(x, h) = -h^T W^T x - c^T x + b^T h + x^T x / 2 (seed 000, eq. 11)."""
    return -(h @ p.w.T) @ x - p.c @ x + p.b @ h + 0.5 * x @ x


def hidden_states(k: int) -> jax.Array:
    """All 2^k binary vectors h, in the order (0,..,0), (0,..,1), ... (first coordinate slowest)."""
    return jnp.asarray(list(itertools.product((0.0, 1.0), repeat=k)))


@jax.jit
def prior_logits(p: GBParams) -> jax.Array:
    """log p(h) + const = |W h + c|^2 / 2 - b^T h for every h in :func:`hidden_states`."""
    hs = hidden_states(p.w.shape[1]).astype(p.w.dtype)
    m = hs @ p.w.T + p.c
    return 0.5 * jnp.sum(m * m, -1) - hs @ p.b


@jax.jit
def prior(p: GBParams) -> jax.Array:
    """p(h) for every h in :func:`hidden_states` (seed 000, question 4(b))."""
    return jax.nn.softmax(prior_logits(p))


@jax.jit
def log_partition(p: GBParams) -> jax.Array:
    """log Z = (d/2) log(2 pi) + logsumexp_h (|W h + c|^2 / 2 - b^T h)."""
    d = p.w.shape[0]
    return 0.5 * d * math.log(2 * math.pi) + jax.scipy.special.logsumexp(prior_logits(p))


@jax.jit
def posterior_probs(x: jax.Array, p: GBParams) -> jax.Array:
    """p(h_j = 1 | x) = sigmoid((W^T x - b)_j): the hidden units are conditionally independent given x."""
    return jax.nn.sigmoid(x @ p.w - p.b)


@jax.jit
def enumerated_log_joint(x: jax.Array, p: GBParams) -> jax.Array:
    """-E(x, h) for every h in :func:`hidden_states` at the points ``x`` (n, d): shape (n, 2^k), so that
    p(h | x) = softmax_h(-E(x, h)) and log p(x) = logsumexp_h(-E(x, h)) - log Z by enumeration."""
    hs = hidden_states(p.w.shape[1]).astype(p.w.dtype)
    return -jax.vmap(lambda xi: jax.vmap(lambda h: energy(xi, h, p))(hs))(x)


@jax.jit
def factorised_posterior(x: jax.Array, p: GBParams) -> jax.Array:
    """p(h | x) = prod_j sigmoid((W^T x - b)_j)^h_j (1 - sigmoid(...))^(1 - h_j) for every h, shape (n, 2^k)."""
    hs = hidden_states(p.w.shape[1]).astype(p.w.dtype)
    probs = posterior_probs(x, p)
    return jnp.prod(jnp.where(hs[None] == 1, probs[:, None], 1 - probs[:, None]), -1)


def conditional_mean(h: jax.Array, p: GBParams) -> jax.Array:
    """The mean W h + c of p(x | h) = N(W h + c, I)."""
    return h @ p.w.T + p.c


@jax.jit
def log_marginal(x: jax.Array, p: GBParams) -> jax.Array:
    """log p(x) = -|x|^2/2 + c^T x + sum_j softplus((W^T x - b)_j) - log Z.

    For the seed's W, c = 0, b = 0 this is exp(-|x|^2/2) (1 + e^(x1+x3) + e^(x2+x3) + e^(x1+x2+2x3)) / Z.
    """
    return -0.5 * jnp.sum(x * x, -1) + x @ p.c + jnp.sum(jax.nn.softplus(x @ p.w - p.b), -1) - log_partition(p)


@partial(jax.jit, static_argnames=("i",))
def marginal_1d(xs: jax.Array, i: int, p: GBParams) -> jax.Array:
    """p(x_i) = sum_h p(h) N(x_i; (W h + c)_i, 1) on the points ``xs``."""
    means = conditional_mean(hidden_states(p.w.shape[1]).astype(p.w.dtype), p)[:, i]
    dens = jnp.exp(-0.5 * (xs[:, None] - means) ** 2) / math.sqrt(2 * math.pi)
    return dens @ prior(p)


@partial(jax.jit, static_argnames=("lo", "hi", "n"))
def prior_by_quadrature(p: GBParams, lo: float, hi: float, n: int) -> tuple[jax.Array, jax.Array]:
    """Z_h = int exp(-E(x, h)) dx for every h by a Riemann sum on an n^d grid over [lo, hi]^d (spectrally
    accurate for these Gaussian integrands); returns (p(h) = Z_h / sum Z_h, Z = sum_h Z_h)."""
    d, k = p.w.shape
    axis = jnp.linspace(lo, hi, n, dtype=p.w.dtype)
    dx = axis[1] - axis[0]
    grid = jnp.stack(jnp.meshgrid(*([axis] * d), indexing="ij"), -1).reshape(-1, d)
    hs = hidden_states(k).astype(p.w.dtype)
    e = jax.vmap(lambda h: jax.vmap(lambda x: energy(x, h, p))(grid))(hs)
    z_h = jnp.sum(jnp.exp(-e), axis=1) * dx**d
    return z_h / jnp.sum(z_h), jnp.sum(z_h)


@partial(jax.jit, static_argnames=("n_chains", "n_steps"))
def gibbs(key: jax.Array, p: GBParams, n_chains: int, n_steps: int) -> tuple[jax.Array, jax.Array]:
    """Block Gibbs sampling: h ~ p(h | x) = prod Bernoulli(sigmoid(W^T x - b)), then x ~ N(W h + c, I).

    ``n_chains`` chains start from x ~ N(c, I) (key stream ``"start"``); one ``lax.scan`` over steps, vmapped over
    chains, sweep t drawing h and x from streams ``"h"`` and ``"x"`` of ``fold_in(stream(key, "sweep"), t)``.
    Returns the states after every step: h of shape (n_steps, n_chains, k) and x of shape (n_steps, n_chains, d).
    """
    d, k = p.w.shape
    x0 = p.c + jax.random.normal(stream(key, "start"), (n_chains, d), p.w.dtype)
    sweeps = stream(key, "sweep")

    def step(x, t):
        kt = jax.random.fold_in(sweeps, t)
        h = jax.random.bernoulli(stream(kt, "h"), posterior_probs(x, p)).astype(p.w.dtype)
        x = conditional_mean(h, p) + jax.random.normal(stream(kt, "x"), x.shape, p.w.dtype)
        return x, (h, x)

    _, (hs, xs) = jax.lax.scan(step, x0, jnp.arange(n_steps))
    return hs, xs


def state_index(h: jax.Array) -> jax.Array:
    """The index of binary vectors ``h`` (..., k) in :func:`hidden_states` (first coordinate most significant)."""
    k = h.shape[-1]
    return jnp.sum(h.astype(jnp.int32) * (2 ** jnp.arange(k - 1, -1, -1)), -1)
