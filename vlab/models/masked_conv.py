"""PixelCNN masked convolutions and their receptive fields (seed 002, question 2).

A k x k kernel is multiplied elementwise by a binary mask. Mask A keeps the taps strictly before the centre in
raster order (the rows above, and the left part of the centre row); mask B keeps the centre too. For k = 3:

    M^A = [[1, 1, 1],      M^B = [[1, 1, 1],
           [1, 0, 0],             [1, 1, 0],
           [0, 0, 0]]             [0, 0, 0]]

The layers convolve without kernel flipping (cross-correlation, as deep-learning libraries do):
y[i, j] = sum_{a, b} K[a, b] x[i + a - c, j + b - c] with c = k // 2 and zero padding c, so a 5 x 5 map stays 5 x 5.
The receptive field of an output pixel is the set of input pixels its value depends on: the support of the
gradient of that output with respect to the input (all kernel taps positive, so nothing cancels).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def pixelcnn_mask(kind: str, size: int = 3) -> jax.Array:
    """The PixelCNN mask of type ``"A"`` (centre excluded) or ``"B"`` (centre included), shape (size, size)."""
    if kind not in ("A", "B"):
        raise ValueError(f"mask kind must be 'A' or 'B', got {kind!r}")
    c = size // 2
    idx = np.arange(size * size).reshape(size, size)
    centre = c * size + c
    keep = idx < centre if kind == "A" else idx <= centre
    return jnp.asarray(keep, dtype=jnp.float32)


def conv2d(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Single-channel 2-D cross-correlation (no kernel flip) with zero padding k // 2 and stride 1: same size."""
    pad = kernel.shape[0] // 2
    out = jax.lax.conv_general_dilated(x[None, None], kernel[None, None].astype(x.dtype), (1, 1),
                                       [(pad, pad), (pad, pad)])
    return out[0, 0]


def masked_network(x: jax.Array, kernels: Sequence[jax.Array], masks: Sequence[jax.Array]) -> jax.Array:
    """Layers y <- conv2d(y, K_l * M_l), applied in order (linear: a receptive field needs no nonlinearity)."""
    for k, m in zip(kernels, masks, strict=True):
        x = conv2d(x, k * m)
    return x


def receptive_field(masks: Sequence[jax.Array], shape: tuple[int, int], pixel: tuple[int, int]) -> np.ndarray:
    """Boolean map of the input pixels that output ``pixel`` (0-indexed) depends on, via jax.grad.

    Kernels are all ones times the masks and the input is ones, so every path contributes positively.
    """
    kernels = [jnp.ones_like(m) for m in masks]

    def out(x):
        return masked_network(x, kernels, masks)[pixel]

    g = jax.grad(out)(jnp.ones(shape))
    return np.asarray(g != 0)


def receptive_field_by_propagation(masks: Sequence[np.ndarray], shape: tuple[int, int],
                                   pixel: tuple[int, int]) -> np.ndarray:
    """The same set computed without autodiff: walk back from ``pixel`` through the layers, last layer first;
    layer l's output (i, j) reads input (i + a - c, j + b - c) wherever M_l[a, b] = 1 (inside the map)."""
    h, w = shape
    current = {tuple(pixel)}
    for m in reversed([np.asarray(m) for m in masks]):
        c = m.shape[0] // 2
        taps = [(a - c, b - c) for a in range(m.shape[0]) for b in range(m.shape[1]) if m[a, b]]
        current = {(i + da, j + db) for (i, j) in current for da, db in taps
                   if 0 <= i + da < h and 0 <= j + db < w}
    field = np.zeros(shape, dtype=bool)
    for i, j in current:
        field[i, j] = True
    return field


def raster_before(shape: tuple[int, int], pixel: tuple[int, int]) -> np.ndarray:
    """Pixels strictly before ``pixel`` in raster order: the ones an autoregressive model may condition on."""
    idx = np.arange(shape[0] * shape[1]).reshape(shape)
    return idx < pixel[0] * shape[1] + pixel[1]
