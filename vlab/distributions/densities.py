"""Targets for flows: 2-D energies with their log-normalisers, and the densities of the embedded data sets.

A :class:`Target` is either an *energy* (an unnormalised ``log p~(x) = -U(x)`` to fit by reverse KL; its
``log_z`` is exact where a closed form exists, otherwise computed on a grid by :func:`grid_log_z`), or a *data*
set (a sampler from :mod:`vlab.data.toy` to fit by forward KL; its ``log_prob`` is the exact normalised density
where one is computable, which makes KL values absolute rather than up to a constant).

Energies: Rezende & Mohamed's (2015, table 1) U1-U4, a two-mode Gaussian mixture, a banana (a Gaussian bent by
``x2 -> x2 - b (x1^2 - s^2)``) and Neal's funnel. U2-U4 depend on ``z1`` only through periodic terms and are not
normalisable on R^2; here they carry a soft wall ``(max(|z1| - 4, 0) / 0.25)^2 / 2`` that leaves them exactly as
published on the box ``|z1| <= 4`` where they are always drawn, and gives them a finite ``log Z``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import i0e, logsumexp

from vlab.data import toy as toy_data


class Target(NamedTuple):
    """A density to fit.

    ``log_prob(x)`` acts on one point of shape ``(dim,)``: the exact normalised log-density for data sets
    (``None`` where it has no closed form), ``-U(x)`` for energies. ``log_z`` is ``log int exp(log_prob)``: an
    exact value, 0.0 for normalised densities, or ``None`` (use :func:`grid_log_z` on ``box``). ``sample(key, n)``
    draws ``(n, dim)`` points (data sets only). ``modes`` are centres with their target masses, for coverage.
    """

    name: str
    kind: str  # "energy" | "data"
    dim: int
    log_prob: Callable[[jax.Array], jax.Array] | None
    log_z: float | None
    box: tuple[tuple[float, float], ...]
    sample: Callable[[jax.Array, int], jax.Array] | None = None
    modes: np.ndarray | None = None
    mode_weights: np.ndarray | None = None


# ------------------------------------------------------------------------------------------ Rezende & Mohamed


def _w1(z):
    return jnp.sin(2 * math.pi * z[0] / 4)


def _wall(z):
    return 0.5 * (jnp.maximum(jnp.abs(z[0]) - 4.0, 0.0) / 0.25) ** 2


def u1(z: jax.Array) -> jax.Array:
    """``U1(z) = ((||z|| - 2) / 0.4)^2 / 2 - log(exp(-((z1 - 2)/0.6)^2 / 2) + exp(-((z1 + 2)/0.6)^2 / 2))``."""
    r = jnp.sqrt(jnp.sum(z**2) + 1e-12)
    lobes = jnp.logaddexp(-0.5 * ((z[0] - 2) / 0.6) ** 2, -0.5 * ((z[0] + 2) / 0.6) ** 2)
    return 0.5 * ((r - 2) / 0.4) ** 2 - lobes


def u2(z: jax.Array) -> jax.Array:
    """``U2(z) = ((z2 - w1(z)) / 0.4)^2 / 2`` with ``w1 = sin(2 pi z1 / 4)`` (plus the soft wall at |z1| = 4)."""
    return 0.5 * ((z[1] - _w1(z)) / 0.4) ** 2 + _wall(z)


def u3(z: jax.Array) -> jax.Array:
    """``U3 = -log(exp(-((z2 - w1)/0.35)^2/2) + exp(-((z2 - w1 + w2)/0.35)^2/2))``,
    ``w2 = 3 exp(-((z1 - 1)/0.6)^2 / 2)`` (plus the soft wall)."""
    w2 = 3 * jnp.exp(-0.5 * ((z[0] - 1) / 0.6) ** 2)
    a = -0.5 * ((z[1] - _w1(z)) / 0.35) ** 2
    b = -0.5 * ((z[1] - _w1(z) + w2) / 0.35) ** 2
    return -jnp.logaddexp(a, b) + _wall(z)


def u4(z: jax.Array) -> jax.Array:
    """``U4 = -log(exp(-((z2 - w1)/0.4)^2/2) + exp(-((z2 - w1 + w3)/0.35)^2/2))``,
    ``w3 = 3 sigmoid((z1 - 1) / 0.3)`` (plus the soft wall)."""
    w3 = 3 * jax.nn.sigmoid((z[0] - 1) / 0.3)
    a = -0.5 * ((z[1] - _w1(z)) / 0.4) ** 2
    b = -0.5 * ((z[1] - _w1(z) + w3) / 0.35) ** 2
    return -jnp.logaddexp(a, b) + _wall(z)


# ------------------------------------------------------------------------------------------ closed-form energies

TWO_MODE_CENTRES = np.array([[-2.0, 0.0], [2.0, 0.0]])
TWO_MODE_STD = 0.5


def two_mode_log_prob(z: jax.Array) -> jax.Array:
    """``log p~(z) = log(exp(-||z - m1||^2 / 2s^2) + exp(-||z - m2||^2 / 2s^2))``, ``m = (+-2, 0)``, ``s = 0.5``;
    ``Z = 2 * 2 pi s^2`` exactly."""
    d = jnp.sum((z[None, :] - jnp.asarray(TWO_MODE_CENTRES, z.dtype)) ** 2, axis=-1)
    return logsumexp(-0.5 * d / TWO_MODE_STD**2)


BANANA_S, BANANA_B = 1.0, 0.5


def banana_log_prob(z: jax.Array) -> jax.Array:
    """``log p~(z) = -z1^2 / 2s^2 - (z2 - b (z1^2 - s^2))^2 / 2`` with ``s = 1``, ``b = 0.5``: a Gaussian bent by
    a volume-preserving shear, so ``Z = 2 pi s`` exactly."""
    return -0.5 * (z[0] / BANANA_S) ** 2 - 0.5 * (z[1] - BANANA_B * (z[0] ** 2 - BANANA_S**2)) ** 2


FUNNEL_S = 1.5


def funnel_log_prob(z: jax.Array) -> jax.Array:
    """Neal's funnel ``z1 ~ N(0, s^2)``, ``z2 | z1 ~ N(0, exp(z1))`` without constants:
    ``log p~ = -z1^2 / 2s^2 - z2^2 exp(-z1) / 2 - z1 / 2``, ``s = 1.5``, so ``Z = 2 pi s`` exactly."""
    return -0.5 * (z[0] / FUNNEL_S) ** 2 - 0.5 * z[1] ** 2 * jnp.exp(-z[0]) - 0.5 * z[0]


# ------------------------------------------------------------------------------------------ data densities

_GL_T, _GL_W = np.polynomial.legendre.leggauss(256)


def two_moons_log_prob(x: jax.Array, noise: float = 0.05) -> jax.Array:
    """Exact density of :func:`vlab.data.toy.two_moons`:
    ``p(x) = 1/2 sum_moon (1/pi) int_0^pi N(x; c_moon(t), noise^2 I) dt``, by 256-point Gauss-Legendre in ``t``."""
    t = jnp.asarray(0.5 * math.pi * (_GL_T + 1), x.dtype)
    logw = jnp.asarray(np.log(0.5 * _GL_W), x.dtype)  # (pi/2) w / pi
    up = jnp.stack([jnp.cos(t), jnp.sin(t)], axis=-1)
    low = jnp.stack([1 - jnp.cos(t), 0.5 - jnp.sin(t)], axis=-1)
    c = jnp.concatenate([up, low])
    lw = jnp.concatenate([logw, logw]) + math.log(0.5)
    d = jnp.sum((x[None, :] - c) ** 2, axis=-1)
    return logsumexp(lw - 0.5 * d / noise**2) - math.log(2 * math.pi * noise**2)


def rings_log_prob(x: jax.Array, radii=(1.0, 2.0, 3.0), noise: float = 0.08) -> jax.Array:
    """Exact density of :func:`vlab.data.toy.concentric_rings`: a ring of radius ``r`` blurred by
    ``N(0, s^2 I)`` has ``p(x) = exp(-(|x|^2 + r^2) / 2s^2) I0(|x| r / s^2) / (2 pi s^2)``; rings weighted
    by ``r / sum r``."""
    r = jnp.asarray(radii, x.dtype)
    rho = jnp.sqrt(jnp.sum(x**2))
    z = rho * r / noise**2
    log_ring = -0.5 * (rho - r) ** 2 / noise**2 + jnp.log(i0e(z)) - math.log(2 * math.pi * noise**2)
    return logsumexp(jnp.log(r / r.sum()) + log_ring)


def circle_mixture_log_prob(x: jax.Array, k: int = 8, radius: float = 2.0, std: float = 0.1) -> jax.Array:
    """Exact density of :func:`vlab.data.toy.eight_gaussians`: ``(1/k) sum_j N(x; m_j, std^2 I)``."""
    m = toy_data.circle_mixture_centres(k, radius).astype(x.dtype)
    d = jnp.sum((x[None, :] - m) ** 2, axis=-1)
    return logsumexp(-0.5 * d / std**2) - math.log(k) - math.log(2 * math.pi * std**2)


def checkerboard_log_prob(x: jax.Array) -> jax.Array:
    """Exact density of :func:`vlab.data.toy.checkerboard`: ``1/8`` on the eight dark unit squares, else 0."""
    i, j = jnp.floor(x[0] + 2), jnp.floor(x[1] + 2)
    inside = (i >= 0) & (i < 4) & (j >= 0) & (j < 4) & (jnp.mod(i + j, 2) == 0)
    return jnp.where(inside, -math.log(8.0), -jnp.inf)


MIX1D_W, MIX1D_M, MIX1D_S = (1 / 3, 2 / 3), (-3.0, 3.0), (1.0, 1.0)


def mixture_1d_log_prob(x: jax.Array) -> jax.Array:
    """The seed's mixture (001 problem 6.3) ``1/3 N(-3, 1) + 2/3 N(3, 1)`` at ``x`` of shape ``(1,)``."""
    w, m, s = (jnp.asarray(v, x.dtype) for v in (MIX1D_W, MIX1D_M, MIX1D_S))
    return logsumexp(jnp.log(w) - 0.5 * ((x[0] - m) / s) ** 2 - jnp.log(s) - 0.5 * math.log(2 * math.pi))


# ------------------------------------------------------------------------------------------ registry


def _energy(name, u, box, log_z=None, modes=None, weights=None, sample=None):
    return Target(name, "energy", 2, lambda z: -u(z), log_z, box, sample, modes, weights)


def two_mode_sample(key: jax.Array, n: int) -> jax.Array:
    """Exact samples of the two-mode mixture: a fair choice of centre plus ``N(0, s^2 I)`` noise."""
    k_lab, k_noise = jax.random.split(key)
    lab = jax.random.bernoulli(k_lab, 0.5, (n,)).astype(jnp.int32)
    return jnp.asarray(TWO_MODE_CENTRES)[lab] + TWO_MODE_STD * jax.random.normal(k_noise, (n, 2))


def _data(name, sampler, log_prob, box, dim=2, modes=None, weights=None):
    def sample(key, n):
        x = sampler(key, n)[0]
        return x[:, None] if x.ndim == 1 else x

    return Target(name, "data", dim, log_prob, 0.0 if log_prob is not None else None, box, sample, modes, weights)


_LOBES = np.array([[-2.0, 0.0], [2.0, 0.0]])

TARGETS: dict[str, Target] = {
    t.name: t
    for t in [
        _energy("u1", u1, ((-4.0, 4.0), (-4.0, 4.0)), modes=_LOBES, weights=np.array([0.5, 0.5])),
        _energy("u2", u2, ((-5.5, 5.5), (-4.0, 4.0))),
        _energy("u3", u3, ((-5.5, 5.5), (-7.0, 5.0))),
        _energy("u4", u4, ((-5.5, 5.5), (-5.0, 7.0))),
        _energy("two_mode", lambda z: -two_mode_log_prob(z), ((-4.5, 4.5), (-3.0, 3.0)),
                log_z=math.log(2 * 2 * math.pi * TWO_MODE_STD**2), modes=TWO_MODE_CENTRES,
                weights=np.array([0.5, 0.5]), sample=two_mode_sample),
        _energy("banana", lambda z: -banana_log_prob(z), ((-5.0, 5.0), (-4.0, 13.0)),
                log_z=math.log(2 * math.pi * BANANA_S)),
        _energy("funnel", lambda z: -funnel_log_prob(z), ((-6.0, 6.0), (-12.0, 12.0)),
                log_z=math.log(2 * math.pi * FUNNEL_S)),
        _data("two_moons", toy_data.two_moons, two_moons_log_prob, ((-1.5, 2.5), (-1.0, 1.5))),
        _data("eight_gaussians", toy_data.eight_gaussians, circle_mixture_log_prob, ((-3.0, 3.0), (-3.0, 3.0)),
              modes=np.asarray(toy_data.circle_mixture_centres(8, 2.0)), weights=np.full(8, 1 / 8)),
        _data("rings", toy_data.concentric_rings, rings_log_prob, ((-3.8, 3.8), (-3.8, 3.8))),
        _data("checkerboard", toy_data.checkerboard, checkerboard_log_prob, ((-2.5, 2.5), (-2.5, 2.5))),
        _data("pinwheel", toy_data.pinwheel, None, ((-4.5, 4.5), (-4.5, 4.5))),
        _data("mixture_1d", lambda k, n: toy_data.mixture_1d(k, n, MIX1D_W, MIX1D_M, MIX1D_S),
              mixture_1d_log_prob, ((-8.0, 8.0),), dim=1, modes=np.array([[-3.0], [3.0]]),
              weights=np.array(MIX1D_W)),
    ]
}


def get(name: str) -> Target:
    """The target called ``name``; an unknown name is a ``ValueError`` listing the known ones."""
    if name not in TARGETS:
        raise ValueError(f"unknown target '{name}': expected one of {', '.join(sorted(TARGETS))}")
    return TARGETS[name]


# ------------------------------------------------------------------------------------------ grids


def grid(box: tuple[tuple[float, float], ...], n: int) -> tuple[jax.Array, float]:
    """Midpoints of an ``n^d`` grid over ``box`` as ``(n^d, d)`` points, and the cell volume."""
    axes = [lo + (hi - lo) * (jnp.arange(n) + 0.5) / n for lo, hi in box]
    mesh = jnp.stack(jnp.meshgrid(*axes, indexing="xy"), axis=-1).reshape(-1, len(box))
    return mesh, float(np.prod([(hi - lo) / n for lo, hi in box]))


def grid_log_prob(log_prob: Callable[[jax.Array], jax.Array], box: tuple[tuple[float, float], ...],
                  n: int) -> tuple[jax.Array, float]:
    """``log_prob`` at the midpoints of an ``n^d`` grid over ``box`` (one compiled pass, a row at a time), shape
    ``(n^d,)`` in :func:`grid`'s order, and the cell volume."""
    pts, cell = grid(box, n)
    rows = pts.reshape(n ** (len(box) - 1), n, len(box))
    return jax.jit(lambda r: jax.lax.map(jax.vmap(log_prob), r))(rows).reshape(-1), cell


def grid_log_z(log_prob: Callable[[jax.Array], jax.Array], box: tuple[tuple[float, float], ...],
               n: int = 1000) -> jax.Array:
    """``log Z = log int exp(log p~(x)) dx`` by the midpoint rule on an ``n^d`` grid over ``box``:
    ``log Z ~ logsumexp_i log p~(x_i) + log(cell volume)``; the error is ``O(h^2)`` plus the mass outside."""
    lp, cell = grid_log_prob(log_prob, box, n)
    return logsumexp(lp) + math.log(cell)


def target_log_z(target: Target, n: int = 1000) -> float:
    """The target's exact ``log Z`` where known, otherwise its grid value."""
    if target.log_z is not None:
        return float(target.log_z)
    if target.log_prob is None:
        raise ValueError(f"target '{target.name}' has no density to integrate")
    return float(grid_log_z(target.log_prob, target.box, n))


def normalised_log_prob(target: Target) -> Callable[[jax.Array], jax.Array]:
    """``log P_X(x) = log p~(x) - log Z``: an energy's ``log p~`` less its exact (or grid) ``log Z``
    (:func:`target_log_z`, computed once here); a data set's density is already normalised."""
    if target.log_prob is None:
        raise ValueError(f"target '{target.name}' has no density to normalise")
    log_z = target_log_z(target) if target.kind == "energy" else 0.0
    return lambda x: target.log_prob(x) - log_z


# ------------------------------------------------------------------------------------------ samples from a file


def load_samples(path: str) -> np.ndarray:
    """Samples ``(n, d)`` (``n >= 10``, finite) from a ``.npy`` or ``.csv`` file; a 1-D array is ``(n, 1)``. Anything
    else is a ``ValueError`` whose message says what was expected (the config layer names the key that held
    ``path``)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError("expected an existing .npy or .csv file")
    try:
        x = np.load(p) if p.suffix == ".npy" else np.loadtxt(p, delimiter=",", ndmin=2)
    except (ValueError, OSError) as e:
        raise ValueError(f"cannot read it ({e})") from None
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 10 or not np.all(np.isfinite(x)):
        raise ValueError(f"expected a finite (n, d) array with n >= 10 (got shape {x.shape})")
    return x


def samples_target(x: np.ndarray, name: str = "file", train_fraction: float = 0.9) -> tuple[Target, np.ndarray]:
    """A data target with no density that draws uniformly with replacement from the first ``train_fraction`` of
    the rows of ``x``, and the remaining rows as its test set. The box pads the data's range by 10% per axis."""
    n_train = int(train_fraction * len(x))
    train, test = jnp.asarray(x[:n_train]), x[n_train:]
    lo, hi = x.min(0), x.max(0)
    pad = 0.1 * (hi - lo + 1e-9)
    box = tuple((float(a - b), float(c + b)) for a, b, c in zip(lo, pad, hi, strict=True))

    def sample(key: jax.Array, n: int) -> jax.Array:
        return train[jax.random.randint(key, (n,), 0, n_train)]

    return Target(name, "data", x.shape[1], None, None, box, sample), test
