"""A function over a large array in fixed-size batches, compiled once: ``lax.map`` over a padded stack."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def map_batches(fn: Callable[..., Any], x: jax.Array, batch_size: int, key: jax.Array | None = None) -> Any:
    """``fn`` applied to ``x`` (leading axis n) ``batch_size`` rows at a time, outputs concatenated to n rows.

    The last batch is padded with zeros (its outputs dropped), so every batch has one static shape and memory
    does not grow with n. With ``key``, ``fn(xb, kb)`` gets its own key per batch, ``split(key, n_batches)``.
    Every output leaf must have the batch as its leading axis. Jittable.
    """
    n = x.shape[0]
    b = min(batch_size, n)
    n_batches = -(-n // b)
    pad = n_batches * b - n
    xs = jnp.concatenate([x, jnp.zeros((pad, *x.shape[1:]), x.dtype)]).reshape(n_batches, b, *x.shape[1:])
    if key is None:
        out = jax.lax.map(fn, xs)
    else:
        out = jax.lax.map(lambda args: fn(*args), (xs, jax.random.split(key, n_batches)))
    return jax.tree.map(lambda v: v.reshape(n_batches * b, *v.shape[2:])[:n], out)
