"""Embedded synthetic data sets, generated in code: nothing to download.

Each sampler is a pure function ``(key, n, ...) -> (x, labels)`` returning ``x`` of shape ``(n, 2)`` (``(n,)`` for
the 1-D mixture) and an integer label per point (mixture component, arm or ring; 0 where there is none).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp


def two_moons(key: jax.Array, n: int, noise: float = 0.05) -> tuple[jax.Array, jax.Array]:
    """Two interleaved half circles (the usual construction: radius 1, second moon shifted by (1, -0.5))."""
    k_lab, k_t, k_noise = jax.random.split(key, 3)
    labels = jax.random.bernoulli(k_lab, 0.5, (n,)).astype(jnp.int32)
    t = jax.random.uniform(k_t, (n,)) * math.pi
    upper = jnp.stack([jnp.cos(t), jnp.sin(t)], axis=-1)
    lower = jnp.stack([1.0 - jnp.cos(t), 0.5 - jnp.sin(t)], axis=-1)
    x = jnp.where(labels[:, None] == 0, upper, lower)
    return x + noise * jax.random.normal(k_noise, (n, 2)), labels


def eight_gaussians(key: jax.Array, n: int, radius: float = 2.0, std: float = 0.1):
    """Eight isotropic Gaussians of standard deviation ``std`` evenly spaced on a circle of ``radius``."""
    return circle_mixture(key, n, 8, radius, std)


def circle_mixture(key: jax.Array, n: int, k: int, radius: float, std: float):
    """``k`` equally weighted isotropic Gaussians with centres evenly spaced on a circle.

    Args:
        key: the randomness of the components and the noise.
        n: the number of points.
        k: the number of components; component i is centred at angle 2 pi i / k (:func:`circle_mixture_centres`).
        radius: the circle's radius.
        std: each component's standard deviation, per coordinate.

    Returns:
        ``(x, labels)``: the points, shape (n, 2), and each point's component, shape (n,), in 0..k-1.
    """
    k_lab, k_noise = jax.random.split(key)
    labels = jax.random.randint(k_lab, (n,), 0, k)
    angle = 2 * math.pi * labels / k
    centres = radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=-1)
    return centres + std * jax.random.normal(k_noise, (n, 2)), labels


def circle_mixture_centres(k: int, radius: float) -> jax.Array:
    """The centres used by :func:`circle_mixture`, shape ``(k, 2)``."""
    angle = 2 * math.pi * jnp.arange(k) / k
    return radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=-1)


def gaussian_mixture_2d(key: jax.Array, n: int, means: jax.Array, stds: jax.Array, weights: jax.Array):
    """A 2-D mixture ``sum_k w_k N(m_k, s_k^2 I)``; ``means`` is ``(K, 2)``, ``stds`` and ``weights`` ``(K,)``.

    Args:
        key: the randomness of the components and the noise.
        n: the number of points.
        means: the components' means m_k, shape (K, 2).
        stds: the components' standard deviations s_k, shape (K,).
        weights: the mixture weights w_k, shape (K,), positive (normalised here, so they need not sum to 1).

    Returns:
        ``(x, labels)``: the points, shape (n, 2), and each point's component, shape (n,), in 0..K-1.
    """
    k_lab, k_noise = jax.random.split(key)
    labels = jax.random.categorical(k_lab, jnp.log(jnp.asarray(weights)), shape=(n,))
    x = jnp.asarray(means)[labels] + jnp.asarray(stds)[labels, None] * jax.random.normal(k_noise, (n, 2))
    return x, labels


def concentric_rings(key: jax.Array, n: int, radii: tuple[float, ...] = (1.0, 2.0, 3.0), noise: float = 0.08):
    """Points on concentric circles, ring chosen with probability proportional to its radius."""
    k_lab, k_t, k_noise = jax.random.split(key, 3)
    r = jnp.asarray(radii)
    labels = jax.random.categorical(k_lab, jnp.log(r / r.sum()), shape=(n,))
    t = jax.random.uniform(k_t, (n,)) * 2 * math.pi
    x = r[labels, None] * jnp.stack([jnp.cos(t), jnp.sin(t)], axis=-1)
    return x + noise * jax.random.normal(k_noise, (n, 2)), labels


def checkerboard(key: jax.Array, n: int):
    """Uniform on the dark squares of a 4x4 checkerboard on [-2, 2]^2 (label: which square, 0..7)."""
    k_sq, k_u = jax.random.split(key)
    squares = jnp.array([(i, j) for i in range(4) for j in range(4) if (i + j) % 2 == 0], dtype=jnp.float32)
    labels = jax.random.randint(k_sq, (n,), 0, squares.shape[0])
    x = squares[labels] - 2.0 + jax.random.uniform(k_u, (n, 2))
    return x, labels


def pinwheel(key: jax.Array, n: int, arms: int = 5, radial_std: float = 0.3, tangential_std: float = 0.05,
             rate: float = 0.25):
    """The pinwheel of Johnson et al. (2016): ``arms`` Gaussian blobs at radius 1 bent into spiral arms.

    Point ``(r, t)`` with ``r ~ N(1, radial_std^2)``, ``t ~ N(0, tangential_std^2)`` in arm ``k`` is rotated by
    ``2 pi k / arms + rate * exp(r)``. Labels are arms.

    Args:
        key: the randomness of the arms and the noise.
        n: the number of points.
        arms: the number of arms (default 5).
        radial_std: the standard deviation of r along an arm (default 0.3).
        tangential_std: the standard deviation of t across an arm (default 0.05).
        rate: how strongly the arms bend, the rotation per unit of exp(r) (default 0.25).

    Returns:
        ``(x, labels)``: the rotated points scaled by 2, shape (n, 2), and each point's arm, shape (n,), in
        0..arms-1.
    """
    k_lab, k_noise = jax.random.split(key)
    labels = jax.random.randint(k_lab, (n,), 0, arms)
    eps = jax.random.normal(k_noise, (n, 2)) * jnp.array([radial_std, tangential_std])
    feats = eps + jnp.array([1.0, 0.0])
    angle = 2 * math.pi * labels / arms + rate * jnp.exp(feats[:, 0])
    c, s = jnp.cos(angle), jnp.sin(angle)
    x = jnp.stack([c * feats[:, 0] - s * feats[:, 1], s * feats[:, 0] + c * feats[:, 1]], axis=-1)
    return 2.0 * x, labels


def mixture_1d(key: jax.Array, n: int, weights, means, stds):
    """Samples of the 1-D mixture ``sum_k w_k N(m_k, s_k^2)`` (seed 001 problem 6.3: 1/3 N(-3,1) + 2/3 N(3,1)).

    Args:
        key: the randomness of the components and the noise.
        n: the number of samples.
        weights: the mixture weights w_k, shape (K,), positive (normalised here, so they need not sum to 1).
        means: the components' means m_k, shape (K,).
        stds: the components' standard deviations s_k, shape (K,).

    Returns:
        ``(x, labels)``: the samples, shape (n,), and each sample's component, shape (n,), in 0..K-1.
    """
    k_lab, k_noise = jax.random.split(key)
    labels = jax.random.categorical(k_lab, jnp.log(jnp.asarray(weights)), shape=(n,))
    return jnp.asarray(means)[labels] + jnp.asarray(stds)[labels] * jax.random.normal(k_noise, (n,)), labels


class ToySet(NamedTuple):
    """A 2-D toy set: its sampler ``(key, n) -> (x, labels)`` and the centre and scale that map it to roughly
    [-1, 1]^2 (``(x - centre) / scale``)."""

    sample: Callable[[jax.Array, int], tuple[jax.Array, jax.Array]]
    centre: tuple[float, float]
    scale: float


# The one registry of the 2-D toy sets, by the names configs use.
TOY_SETS: dict[str, ToySet] = {
    "pinwheel": ToySet(pinwheel, (0.0, 0.0), 3.0),
    "gaussians": ToySet(eight_gaussians, (0.0, 0.0), 2.5),
    "two_moons": ToySet(two_moons, (0.5, 0.25), 1.5),
    "rings": ToySet(concentric_rings, (0.0, 0.0), 3.3),
    "checkerboard": ToySet(checkerboard, (0.0, 0.0), 2.0),
}


def unit_points(key: jax.Array, name: str, n: int) -> tuple[jax.Array, jax.Array]:
    """``n`` points of the toy set ``name``, mapped to roughly [-1, 1]^2, and their labels."""
    if name not in TOY_SETS:
        raise ValueError(f"unknown toy set '{name}': expected one of {', '.join(TOY_SETS)}")
    toy = TOY_SETS[name]
    x, y = toy.sample(key, n)
    if toy.centre != (0.0, 0.0):
        x = x - jnp.asarray(toy.centre)
    return x / toy.scale, y
