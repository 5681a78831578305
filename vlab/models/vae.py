"""The networks of a Gaussian VAE: an amortised encoder q(z|x) = N(mu(x), diag sigma^2(x)) and a decoder p(x|z).

Parameters are a plain dict ``{"enc": mlp, "dec": mlp[, "log_sigma_x": (x_dim,)]}``; the static shape choices live
in a frozen :class:`VAESpec`, so the functions below are pure and jit/vmap like any other.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from vlab import nn
from vlab.distributions import likelihoods


@dataclass(frozen=True)
class VAESpec:
    """Static shape of a VAE: data and latent sizes, hidden widths, the hidden activation (a function) and the
    observation model (:class:`vlab.distributions.likelihoods.Likelihood`).

    ``sigma_x`` is the Gaussian likelihood's standard deviation (fixed) or its starting value (learned). The spec is
    hashable, so it can be a static argument of a compiled function.
    """

    x_dim: int
    z_dim: int
    hidden: tuple[int, ...] = (256, 128)
    activation: nn.Activation = jax.nn.relu
    likelihood: likelihoods.Likelihood = likelihoods.BERNOULLI
    sigma_x: float = 1.0


def init_vae(key: jax.Array, spec: VAESpec) -> dict:
    """Encoder MLP x -> (mu, log sigma^2) of width ``2 z_dim``, the mirrored decoder MLP z -> likelihood parameters,
    and for a likelihood with a learned sigma_x a per-dimension log sigma_x."""
    k_enc, k_dec = jax.random.split(key)
    hidden = list(spec.hidden)
    params = {
        "enc": nn.mlp_init(k_enc, [spec.x_dim, *hidden, 2 * spec.z_dim]),
        "dec": nn.mlp_init(k_dec, [spec.z_dim, *hidden[::-1], spec.likelihood.n_outputs(spec.x_dim)]),
    }
    if spec.likelihood.learned_sigma:
        params["log_sigma_x"] = jnp.full((spec.x_dim,), jnp.log(spec.sigma_x))
    return params


def encode(params: dict, spec: VAESpec, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """q(z|x) = N(mu(x), diag sigma^2(x)): the encoder outputs mu and log sigma^2, sigma = exp(log sigma^2 / 2)."""
    out = nn.mlp_apply(params["enc"], x, spec.activation)
    mu, log_var = jnp.split(out, 2, axis=-1)
    return mu, jnp.exp(0.5 * log_var)


def decode(params: dict, spec: VAESpec, z: jax.Array) -> jax.Array:
    """The decoder's output for latent ``z``: logits (Bernoulli), the mean, or [mean, log sigma] (per-z Gaussian)."""
    return nn.mlp_apply(params["dec"], z, spec.activation)


def log_sigma_x(params: dict, spec: VAESpec) -> jax.Array:
    """log sigma_x of a Gaussian likelihood: the trained parameter, or the fixed ``spec.sigma_x``."""
    if "log_sigma_x" in params:
        return params["log_sigma_x"]
    return jnp.full((spec.x_dim,), jnp.log(spec.sigma_x))


def log_px_given_z(params: dict, spec: VAESpec, x: jax.Array, z: jax.Array) -> jax.Array:
    """log p_theta(x | z) under the spec's observation model (summed over data dimensions)."""
    return spec.likelihood.log_prob(x, decode(params, spec, z), log_sigma_x(params, spec))


def decoder_mean(params: dict, spec: VAESpec, z: jax.Array) -> jax.Array:
    """E[x | z], for reconstructions, samples and traversals."""
    return spec.likelihood.mean(decode(params, spec, z))
