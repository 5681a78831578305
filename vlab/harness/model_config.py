"""The VAE's networks from their configuration: the schema :class:`ModelConfig` and :func:`spec_of`.

The config names the hidden activation and the observation model; :func:`spec_of` resolves both names, once, to the
function and the :class:`vlab.distributions.likelihoods.Likelihood` a :class:`vlab.models.vae.VAESpec` holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from vlab import nn
from vlab.distributions import likelihoods
from vlab.harness.config import spec
from vlab.models.vae import VAESpec

LIKELIHOODS: dict[str, likelihoods.Likelihood] = {
    "bernoulli": likelihoods.BERNOULLI,
    "gaussian_fixed": likelihoods.GAUSSIAN_FIXED,
    "gaussian_learned": likelihoods.GAUSSIAN_LEARNED,
    "gaussian_decoder": likelihoods.GAUSSIAN_DECODER,
}
"""The observation models by the names configs use."""


@dataclass
class ModelConfig:
    """Encoder x -> hidden -> (mu, log sigma^2), decoder z -> reversed hidden -> likelihood parameters."""

    z_dim: int = spec(2, gt=0, help="latent dimension")
    hidden: list[int] = spec([128, 64], gt=0, help="hidden widths of the encoder (the decoder mirrors them)")
    activation: Literal["relu", "tanh", "elu", "gelu", "silu", "softplus", "leaky_relu"] = "relu"
    likelihood: Literal["bernoulli", "gaussian_fixed", "gaussian_learned", "gaussian_decoder"] = "bernoulli"
    sigma_x: float = spec(0.1, gt=0, help="Gaussian likelihood std (fixed) or its initial value (learned)")


def spec_of(model: ModelConfig, x_dim: int) -> VAESpec:
    """The static network shape a :class:`ModelConfig` describes, for data of dimension ``x_dim``, with the
    activation and the observation model its names stand for."""
    return VAESpec(x_dim=x_dim, z_dim=model.z_dim, hidden=tuple(model.hidden),
                   activation=nn.ACTIVATIONS[model.activation], likelihood=LIKELIHOODS[model.likelihood],
                   sigma_x=model.sigma_x)
