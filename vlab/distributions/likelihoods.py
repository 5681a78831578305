"""Observation models p(x | z) of a decoder: Bernoulli on logits and Gaussians of fixed or learned variance.

Each log-likelihood sums over the data dimensions (the last axis) and keeps every leading axis, so it applies
unchanged to one example, a batch, or a batch of importance samples.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vlab.distributions.gaussian import normal_log_prob

LIKELIHOODS = ("bernoulli", "gaussian_fixed", "gaussian_learned", "gaussian_decoder")


def bernoulli_logits_log_prob(x: jax.Array, logits: jax.Array) -> jax.Array:
    """log p(x | l) = sum_d [x_d log sigma(l_d) + (1 - x_d) log(1 - sigma(l_d))] = sum_d [x_d l_d - softplus(l_d)].

    Written with ``softplus`` so it stays finite for any logit; ``x`` may be any intensity in [0, 1] (the
    continuous cross-entropy used for grey-level images).
    """
    return jnp.sum(x * logits - jax.nn.softplus(logits), axis=-1)


def gaussian_log_prob(x: jax.Array, mu: jax.Array, log_sigma: jax.Array) -> jax.Array:
    """log N(x; mu, diag sigma^2) = sum_d [-(x_d - mu_d)^2 / (2 sigma_d^2) - log sigma_d - log(2 pi) / 2]."""
    return jnp.sum(normal_log_prob(x, mu, jnp.exp(log_sigma)), axis=-1)


def n_outputs(likelihood: str, x_dim: int) -> int:
    """Width of the decoder's last layer: ``2 x_dim`` when the decoder also outputs log sigma, else ``x_dim``."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood '{likelihood}' is not one of {', '.join(LIKELIHOODS)}")
    return 2 * x_dim if likelihood == "gaussian_decoder" else x_dim


def log_likelihood(likelihood: str, x: jax.Array, out: jax.Array, log_sigma: jax.Array) -> jax.Array:
    """log p(x | z) for the decoder output ``out`` under the named observation model.

    - ``bernoulli``: ``out`` are logits (pixel intensities in [0, 1]);
    - ``gaussian_fixed`` / ``gaussian_learned``: ``out`` is the mean, ``log_sigma`` a per-dimension log standard
      deviation (held fixed, or a trained parameter);
    - ``gaussian_decoder``: ``out = [mu, log sigma]`` (the seeds' x | z ~ N(mu(z), sigma^2(z))).
    """
    if likelihood == "bernoulli":
        return bernoulli_logits_log_prob(x, out)
    if likelihood == "gaussian_decoder":
        mu, ls = jnp.split(out, 2, axis=-1)
        return gaussian_log_prob(x, mu, ls)
    return gaussian_log_prob(x, out, log_sigma)


def mean(likelihood: str, out: jax.Array) -> jax.Array:
    """E[x | z]: sigma(logits) for Bernoulli, the mean for Gaussians."""
    if likelihood == "bernoulli":
        return jax.nn.sigmoid(out)
    if likelihood == "gaussian_decoder":
        return jnp.split(out, 2, axis=-1)[0]
    return out
