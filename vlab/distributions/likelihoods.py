"""Observation models p(x | z) of a decoder: Bernoulli on logits and Gaussians of fixed or learned variance.

Each observation model is a :class:`Likelihood`, one constant per kind (:data:`BERNOULLI`, :data:`GAUSSIAN_FIXED`,
:data:`GAUSSIAN_LEARNED`, :data:`GAUSSIAN_DECODER`). Each log-likelihood sums over the data dimensions (the last
axis) and keeps every leading axis, so it applies unchanged to one example, a batch, or a batch of importance
samples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from vlab.distributions.gaussian import normal_log_prob


class Likelihood(NamedTuple):
    """An observation model p(x | z) in terms of the decoder's output ``out``.

    ``log_prob(x, out, log_sigma)`` is log p(x | z) summed over the last axis (``log_sigma`` the per-dimension log
    standard deviation sigma_x, used by the Gaussians whose decoder does not output it); ``mean(out)`` is E[x | z];
    ``n_outputs(x_dim)`` is the width of the decoder's last layer; ``learned_sigma`` says whether log sigma_x is a
    trained parameter of the model.
    """

    log_prob: Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
    mean: Callable[[jax.Array], jax.Array]
    n_outputs: Callable[[int], int]
    learned_sigma: bool = False


def bernoulli_logits_log_prob(x: jax.Array, logits: jax.Array) -> jax.Array:
    """log p(x | l) = sum_d [x_d log sigma(l_d) + (1 - x_d) log(1 - sigma(l_d))] = sum_d [x_d l_d - softplus(l_d)].

    Written with ``softplus`` so it stays finite for any logit; ``x`` may be any intensity in [0, 1] (the
    continuous cross-entropy used for grey-level images).
    """
    return jnp.sum(x * logits - jax.nn.softplus(logits), axis=-1)


def diag_normal_log_prob(x: jax.Array, mu: jax.Array, log_sigma: jax.Array) -> jax.Array:
    """log N(x; mu, diag sigma^2) = sum_d [-(x_d - mu_d)^2 / (2 sigma_d^2) - log sigma_d - log(2 pi) / 2]."""
    return jnp.sum(normal_log_prob(x, mu, jnp.exp(log_sigma)), axis=-1)


def _bernoulli(x: jax.Array, out: jax.Array, log_sigma: jax.Array) -> jax.Array:
    """``out`` are logits (pixel intensities in [0, 1]); ``log_sigma`` is not used."""
    return bernoulli_logits_log_prob(x, out)


def _normal_at_mean(x: jax.Array, out: jax.Array, log_sigma: jax.Array) -> jax.Array:
    """``out`` is the mean, ``log_sigma`` the per-dimension log standard deviation."""
    return diag_normal_log_prob(x, out, log_sigma)


def _normal_at_mean_and_scale(x: jax.Array, out: jax.Array, log_sigma: jax.Array) -> jax.Array:
    """``out = [mu, log sigma]`` (the seeds' x | z ~ N(mu(z), sigma^2(z))); ``log_sigma`` is not used."""
    mu, ls = jnp.split(out, 2, axis=-1)
    return diag_normal_log_prob(x, mu, ls)


def _identity(out: jax.Array) -> jax.Array:
    return out


def _first_half(out: jax.Array) -> jax.Array:
    return jnp.split(out, 2, axis=-1)[0]


def _same_width(x_dim: int) -> int:
    return x_dim


def _double_width(x_dim: int) -> int:
    return 2 * x_dim


BERNOULLI = Likelihood(_bernoulli, jax.nn.sigmoid, _same_width)
"""Bernoulli on the decoder's logits, E[x | z] = sigma(logits)."""

GAUSSIAN_FIXED = Likelihood(_normal_at_mean, _identity, _same_width)
"""N(x; mu(z), diag sigma_x^2) with sigma_x held fixed."""

GAUSSIAN_LEARNED = Likelihood(_normal_at_mean, _identity, _same_width, learned_sigma=True)
"""N(x; mu(z), diag sigma_x^2) with a trained per-dimension log sigma_x."""

GAUSSIAN_DECODER = Likelihood(_normal_at_mean_and_scale, _first_half, _double_width)
"""N(x; mu(z), diag sigma^2(z)): the decoder outputs both mu and log sigma."""
