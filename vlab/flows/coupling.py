"""Affine coupling layers (RealNVP, Dinh et al. 2017), their masks and their conditioner networks.

A coupling splits the coordinates by a boolean ``mask``: those where it is True pass through unchanged and condition
an elementwise bijection of the rest. The conditioner is an MLP (:class:`Conditioner`) whose last layer starts at
zero, so every coupling starts as the identity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vlab.flows.base import Bijection, shifted_softplus
from vlab.nn import Activation, mlp_apply, mlp_init

LogScale = Callable[[jax.Array], jax.Array]


def alternating_masks(dim: int, layers: int) -> list[np.ndarray]:
    """Coupling masks that alternate which half passes through: ``[1,0,1,0..]``, ``[0,1,0,1..]``, ..."""
    base = np.arange(dim) % 2 == 0
    return [base if i % 2 == 0 else ~base for i in range(layers)]


def mask_indices(dim: int, mask: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    """The indices where ``mask`` is True (they pass through) and False (they are transformed); a mask of the
    wrong length, or one that is all True or all False, is a ``ValueError``."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (dim,) or mask.all() or not mask.any():
        raise ValueError(f"coupling mask {mask.tolist()} must have {dim} entries, some True and some False")
    return np.flatnonzero(mask), np.flatnonzero(~mask)


def take(x: jax.Array, idx: np.ndarray) -> jax.Array:
    """``x[idx]`` for static indices, as a slice when they are contiguous (cheaper than a gather)."""
    if np.all(np.diff(idx) == 1):
        return x[int(idx[0]):int(idx[-1]) + 1]
    return x[idx]


def put(x: jax.Array, idx: np.ndarray, v: jax.Array) -> jax.Array:
    """``x.at[idx].set(v)`` for static indices, by concatenation when they are contiguous."""
    if np.all(np.diff(idx) == 1):
        return jnp.concatenate([x[:int(idx[0])], v, x[int(idx[-1]) + 1:]])
    return x.at[idx].set(v)


def conditioner_init(key: jax.Array, sizes: Sequence[int], bias: float = 0.0) -> list[dict]:
    """A coupling's conditioner MLP (:func:`vlab.nn.mlp_init`, LeCun-normal weights) whose last layer is zero, so
    the coupling starts as the identity, and whose first-layer biases are drawn ``U(-bias, bias)``.

    With zero biases every first-layer unit ``a(w x + b)`` has its kink at ``x = -b / w = 0``: the conditioner of
    a 2-D coupling, which sees one standardised coordinate, starts as a function with a single kink and must first
    learn to spread its units over the data's range. Random biases place the kinks at ``-b / w`` across it from
    the start (PyTorch and Equinox draw a one-input layer's biases ``U(-1, 1)``)."""
    params = mlp_init(key, sizes, zero_last=True)
    if bias and len(params) > 1:
        first = params[0]
        first["b"] = jax.random.uniform(jax.random.fold_in(key, 1), first["b"].shape, minval=-bias, maxval=bias)
    return params


class Conditioner(NamedTuple):
    """A coupling's conditioner: an MLP of ``depth`` hidden layers of width ``hidden`` with the hidden
    ``activation`` (a callable, e.g. ``jax.nn.gelu``) and first-layer biases drawn ``U(-bias_init, bias_init)``
    (:func:`conditioner_init`). The defaults are the flow benchmark's recipe (benchmarks/flows.py; its results are
    in docs/performance.md)."""

    hidden: int = 64
    depth: int = 2
    activation: Activation = jax.nn.gelu
    bias_init: float = 2.5

    def init(self, key: jax.Array, d_in: int, d_out: int) -> list[dict]:
        """Parameters of the MLP ``R^d_in -> R^d_out``, its last layer at zero."""
        return conditioner_init(key, [d_in, *([self.hidden] * self.depth), d_out], self.bias_init)

    def apply(self, params: list[dict], x: jax.Array) -> jax.Array:
        """The MLP's output at ``x``."""
        return mlp_apply(params, x, self.activation)


def softplus_log_scale(raw: jax.Array) -> jax.Array:
    """``s = log(softplus(raw + softplus^-1(1 - 1e-3)) + 1e-3)`` (FlowJAX's choice): the scale ``exp(s)`` grows
    linearly, not exponentially, in the network output, stays above ``1e-3``, and is 1 at ``raw = 0``."""
    return jnp.log(shifted_softplus(raw))


def tanh_log_scale(raw: jax.Array, max_log_scale: float = 3.0) -> jax.Array:
    """``s = c tanh(raw / c)``, softly clamped to ``|s| < c = max_log_scale`` for stable training; the scale is
    ``exp(s)``. Another bound is ``functools.partial(tanh_log_scale, max_log_scale=c)``."""
    return max_log_scale * jnp.tanh(raw / max_log_scale)


def affine_coupling(dim: int, mask: Sequence[bool], conditioner: Conditioner | None = None,
                    log_scale: LogScale = softplus_log_scale) -> Bijection:
    """RealNVP affine coupling: the coordinates where ``mask`` is True pass through and condition the rest.

    ``x_A = u_A``, ``x_B = u_B * exp(s(u_A)) + t(u_A)``, ``log|det J| = sum s(u_A)`` (Dinh et al. 2017). ``s`` and
    ``t`` come from one ``conditioner`` MLP: ``s = log_scale(raw)`` of the first half of its output
    (:func:`softplus_log_scale` or :func:`tanh_log_scale`), ``t`` the second half; its last layer starts at zero,
    so the layer starts as the identity. ``conditioner`` defaults to ``Conditioner()``.
    """
    a, b = mask_indices(dim, mask)
    nb = len(b)
    conditioner = Conditioner() if conditioner is None else conditioner

    def init(key):
        return conditioner.init(key, len(a), 2 * nb)

    def scale_shift(p, cond):
        out = conditioner.apply(p, cond)
        return log_scale(out[:nb]), out[nb:]

    def forward(p, u):
        s, t = scale_shift(p, take(u, a))
        return put(u, b, take(u, b) * jnp.exp(s) + t), jnp.sum(s)

    def inverse(p, x):
        s, t = scale_shift(p, take(x, a))
        return put(x, b, (take(x, b) - t) * jnp.exp(-s)), -jnp.sum(s)

    return Bijection(init, forward, inverse)
