"""The networks of a Gaussian VAE: an amortised encoder q(z|x) = N(mu(x), diag sigma^2(x)) and a decoder p(x|z).

Parameters are a plain dict ``{"enc": mlp, "dec": mlp[, "log_sigma_x": (x_dim,)]}``; the static shape choices live
in a frozen :class:`VAESpec`, so the functions below are pure and jit/vmap like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp

from vlab import nn
from vlab.distributions import likelihoods
from vlab.harness.config import spec


@dataclass(frozen=True)
class VAESpec:
    """Static shape of a VAE: data and latent sizes, hidden widths, activation and observation model.

    ``sigma_x`` is the Gaussian likelihood's standard deviation (fixed) or its starting value (learned).
    """

    x_dim: int
    z_dim: int
    hidden: tuple[int, ...] = (256, 128)
    activation: str = "relu"
    likelihood: str = "bernoulli"
    sigma_x: float = 1.0


def init_vae(key: jax.Array, spec: VAESpec) -> dict:
    """Encoder MLP x -> (mu, log sigma^2) of width ``2 z_dim``, the mirrored decoder MLP z -> likelihood parameters,
    and for ``gaussian_learned`` a per-dimension log sigma_x."""
    k_enc, k_dec = jax.random.split(key)
    hidden = list(spec.hidden)
    params = {
        "enc": nn.mlp_init(k_enc, [spec.x_dim, *hidden, 2 * spec.z_dim]),
        "dec": nn.mlp_init(k_dec, [spec.z_dim, *hidden[::-1], likelihoods.n_outputs(spec.likelihood, spec.x_dim)]),
    }
    if spec.likelihood == "gaussian_learned":
        params["log_sigma_x"] = jnp.full((spec.x_dim,), jnp.log(spec.sigma_x))
    return params


def encode(params: dict, spec: VAESpec, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """q(z|x) = N(mu(x), diag sigma^2(x)): the encoder outputs mu and log sigma^2, sigma = exp(log sigma^2 / 2)."""
    out = nn.mlp_apply(params["enc"], x, nn.ACTIVATIONS[spec.activation])
    mu, log_var = jnp.split(out, 2, axis=-1)
    return mu, jnp.exp(0.5 * log_var)


def decode(params: dict, spec: VAESpec, z: jax.Array) -> jax.Array:
    """The decoder's output for latent ``z``: logits (Bernoulli), the mean, or [mean, log sigma] (per-z Gaussian)."""
    return nn.mlp_apply(params["dec"], z, nn.ACTIVATIONS[spec.activation])


def log_sigma_x(params: dict, spec: VAESpec) -> jax.Array:
    """log sigma_x of a Gaussian likelihood: the trained parameter, or the fixed ``spec.sigma_x``."""
    if "log_sigma_x" in params:
        return params["log_sigma_x"]
    return jnp.full((spec.x_dim,), jnp.log(spec.sigma_x))


def log_likelihood(params: dict, spec: VAESpec, x: jax.Array, z: jax.Array) -> jax.Array:
    """log p_theta(x | z) under the spec's observation model (summed over data dimensions)."""
    return likelihoods.log_likelihood(spec.likelihood, x, decode(params, spec, z), log_sigma_x(params, spec))


def decoder_mean(params: dict, spec: VAESpec, z: jax.Array) -> jax.Array:
    """E[x | z], for reconstructions, samples and traversals."""
    return likelihoods.mean(spec.likelihood, decode(params, spec, z))


@dataclass
class ModelConfig:
    """Encoder x -> hidden -> (mu, log sigma^2), decoder z -> reversed hidden -> likelihood parameters."""

    z_dim: int = spec(2, gt=0, help="latent dimension")
    hidden: list[int] = spec([128, 64], gt=0, help="hidden widths of the encoder (the decoder mirrors them)")
    activation: Literal["relu", "tanh", "elu", "gelu", "silu", "softplus", "leaky_relu"] = "relu"
    likelihood: Literal["bernoulli", "gaussian_fixed", "gaussian_learned", "gaussian_decoder"] = "bernoulli"
    sigma_x: float = spec(0.1, gt=0, help="Gaussian likelihood std (fixed) or its initial value (learned)")


def spec_of(model: ModelConfig, x_dim: int) -> VAESpec:
    """The static network shape a :class:`ModelConfig` describes, for data of dimension ``x_dim``."""
    return VAESpec(x_dim=x_dim, z_dim=model.z_dim, hidden=tuple(model.hidden), activation=model.activation,
                   likelihood=model.likelihood, sigma_x=model.sigma_x)
