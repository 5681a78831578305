"""Networks as ``(init, apply)`` pairs of pure functions over plain pytrees.

An MLP's parameters are a list of ``{"w": (d_in, d_out), "b": (d_out,)}`` dicts; nothing is hidden in a module
object, so parameters vmap, checkpoint and sweep like any other pytree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

Activation = Callable[[jax.Array], jax.Array]


def identity(x: jax.Array) -> jax.Array:
    """``a(x) = x``."""
    return x


# Activations by the names configs use; only the config layer looks names up here, the functions take callables.
ACTIVATIONS: dict[str, Activation] = {
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "elu": jax.nn.elu,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
    "softplus": jax.nn.softplus,
    "leaky_relu": jax.nn.leaky_relu,
    "sigmoid": jax.nn.sigmoid,
    "identity": identity,
}


def dense_init(key: jax.Array, d_in: int, d_out: int, *, scale: float = 1.0, zero: bool = False) -> dict:
    """A dense layer ``x @ w + b`` with LeCun-normal weights (``w ~ N(0, scale / d_in)``) and zero bias.

    Args:
        key: the randomness of the weights (unused when ``zero``).
        d_in: the input width.
        d_out: the output width.
        scale: the weights' variance times ``d_in`` (default 1.0, LeCun normal).
        zero: start the weights at zero instead (default False), so the layer first outputs its bias, 0.

    Returns:
        ``{"w": (d_in, d_out), "b": (d_out,)}``.
    """
    w = jnp.zeros((d_in, d_out)) if zero else jax.random.normal(key, (d_in, d_out)) * jnp.sqrt(scale / d_in)
    return {"w": w, "b": jnp.zeros((d_out,))}


def dense_apply(params: dict, x: jax.Array) -> jax.Array:
    """``x @ w + b``."""
    return x @ params["w"] + params["b"]


def mlp_init(key: jax.Array, sizes: Sequence[int], *, zero_last: bool = False) -> list[dict]:
    """Parameters of an MLP with layer widths ``sizes = [d_in, h_1, ..., d_out]``.

    ``zero_last`` starts the output layer at zero (a coupling layer that begins as the identity).
    """
    keys = jax.random.split(key, len(sizes) - 1)
    n = len(sizes) - 1
    return [
        dense_init(k, a, b, zero=zero_last and i == n - 1)
        for i, (k, a, b) in enumerate(zip(keys, sizes[:-1], sizes[1:], strict=True))
    ]


def mlp_apply(params: list[dict], x: jax.Array, activation: Activation = jax.nn.relu,
              final_activation: Activation = identity) -> jax.Array:
    """``f(x) = W_L a(... a(W_1 x + b_1) ...) + b_L`` with hidden activation ``a`` and an optional final one."""
    for layer in params[:-1]:
        x = activation(dense_apply(layer, x))
    return final_activation(dense_apply(params[-1], x))
