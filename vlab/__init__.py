"""vlab: differentiable experiments on deep generative models in JAX."""

__version__ = "0.1.0"
