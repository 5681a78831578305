"""Data sets for the latent-variable models: a :class:`Dataset` of arrays, the embedded synthetic sets (a 2-D toy
set lifted into higher dimension) and batches drawn inside compiled code.

An embedded set is a 2-D set of :mod:`vlab.data.toy` (pinwheel, Gaussian mixture, ...) mapped into ``dim``
dimensions, either as small grey-level images of a blob whose position is the 2-D point (``images``) or through a
fixed random network (``mlp``) or matrix (``linear``). Its true latent is 2-D and its labels are the toy set's
components.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from vlab.data.toy import unit_points

EMBEDDINGS = ("images", "mlp", "linear")


class Dataset(NamedTuple):
    """Training and test arrays (``x`` flattened to ``(n, d)``, float in the default dtype) and integer labels
    (``None`` for unlabelled IDX data)."""

    x_train: jax.Array
    y_train: jax.Array | None
    x_test: jax.Array
    y_test: jax.Array | None
    image_shape: tuple[int, int] | None
    description: str


def blob_images(points: jax.Array, side: int, width: float = 0.3) -> jax.Array:
    """Grey-level ``side x side`` images in [0, 1] of a Gaussian blob centred at each 2-D point of [-1, 1]^2.

    Pixel (i, j) at position (u_j, v_i) on a regular grid of [-1.2, 1.2]^2 has intensity
    exp(-|p - (u_j, v_i)|^2 / (2 width^2)); rows run downwards, so the picture shows the point where a plot would.
    """
    grid = jnp.linspace(-1.2, 1.2, side)
    u, v = jnp.meshgrid(grid, grid[::-1])
    d2 = (points[:, 0, None, None] - u) ** 2 + (points[:, 1, None, None] - v) ** 2
    return jnp.exp(-0.5 * d2 / width**2).reshape(points.shape[0], side * side)


def embed(points: jax.Array, embedding: str, dim: int, key: jax.Array) -> jax.Array:
    """The fixed map from 2-D points to ``dim`` dimensions: blob images, a random tanh network, or a matrix.

    ``mlp``: x = W2 tanh(W1 p + b1) with W1 (2 x 32), W2 (32 x dim) Gaussian and fixed by ``key``; ``linear``:
    x = W p with orthonormal rows, so distances are kept.
    """
    if embedding == "images":
        return blob_images(points, math.isqrt(dim))
    k1, k2, k3 = jax.random.split(key, 3)
    if embedding == "linear":
        q, _ = jnp.linalg.qr(jax.random.normal(k1, (dim, 2)))
        return points @ q[:, :2].T if dim >= 2 else points[:, :dim]
    w1 = 2.0 * jax.random.normal(k1, (2, 32))
    b1 = jax.random.normal(k2, (32,))
    w2 = jax.random.normal(k3, (32, dim)) / math.sqrt(32)
    return jnp.tanh(points @ w1 + b1) @ w2


@functools.partial(jax.jit, static_argnames=("name", "embedding", "dim", "n"))
def embedded_points(key: jax.Array, embed_key: jax.Array, noise: jax.Array, *, name: str, embedding: str, dim: int,
                    n: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``n`` embedded points: the 2-D points p, their embedding x = embed(p) + noise * N(0, I), and labels.

    Args:
        key: draws the points and the noise.
        embed_key: fixes the embedding map (:func:`embed`).
        noise: the noise's standard deviation.
        name: the toy set (:data:`vlab.data.toy.TOY_SETS`).
        embedding: ``images``, ``mlp`` or ``linear``.
        dim: the data dimension (for ``images`` a square number of pixels).
        n: the number of points.

    Returns:
        ``(x, labels, p)``: the data (n, dim) (clipped to [0, 1] for images), the toy set's labels (n,) and the 2-D
        points (n, 2).
    """
    k_pts, k_noise = jax.random.split(key)
    p, y = unit_points(k_pts, name, n)
    x = embed(p, embedding, dim, embed_key)
    x = x + noise * jax.random.normal(k_noise, x.shape)
    if embedding == "images":
        x = jnp.clip(x, 0.0, 1.0)
    return x, y.astype(jnp.int32), p


def sample_batch(x: jax.Array, key: jax.Array, batch_size: int, binarize: str = "none") -> jax.Array:
    """A batch drawn uniformly with replacement, inside compiled code; ``dynamic`` binarisation redraws
    x_b ~ Bernoulli(x) for every batch (the IWAE paper's dynamically binarised MNIST)."""
    k_idx, k_bin = jax.random.split(key)
    batch = x[jax.random.randint(k_idx, (batch_size,), 0, x.shape[0])]
    if binarize == "dynamic":
        batch = jax.random.bernoulli(k_bin, batch).astype(batch.dtype)
    return batch
