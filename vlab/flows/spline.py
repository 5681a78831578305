"""Monotone rational-quadratic splines (Durkan et al. 2019) and the spline coupling of a neural spline flow."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from vlab.flows.base import Bijection, shifted_softplus
from vlab.flows.coupling import Conditioner, mask_indices, put, take

_MIN_BIN = 1e-3
_MIN_DERIV = 1e-3


def _knots(raw: jax.Array, bound: float) -> tuple[jax.Array, jax.Array]:
    k = raw.shape[-1]
    sizes = _MIN_BIN + (1 - _MIN_BIN * k) * jax.nn.softmax(raw)
    pos = jnp.concatenate([jnp.zeros(1, raw.dtype), jnp.cumsum(sizes)])
    pos = (2 * bound * pos - bound).at[-1].set(bound)
    return pos, pos[1:] - pos[:-1]


def rq_spline_params(raw: jax.Array, bound: float) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Knots ``(x_k, y_k)`` and derivatives ``delta_k`` of a monotone rational-quadratic spline on [-B, B].

    ``raw`` holds ``K`` width, ``K`` height and ``K - 1`` interior derivative logits; widths and heights are a
    softmax scaled to ``2B`` (each at least ``1e-3 * 2B``), derivatives ``softplus + 1e-3`` with ``delta_0 =
    delta_K = 1`` so the spline meets its identity tails smoothly. All-zero ``raw`` gives the identity.
    """
    k = (raw.shape[-1] + 1) // 3
    xk, _ = _knots(raw[:k], bound)
    yk, _ = _knots(raw[k:2 * k], bound)
    inner = shifted_softplus(raw[2 * k:], _MIN_DERIV)
    one = jnp.ones(1, raw.dtype)
    return xk, yk, jnp.concatenate([one, inner, one])


def _rq_bin(xk, yk, dk, idx):
    x0, x1, y0, y1 = xk[idx], xk[idx + 1], yk[idx], yk[idx + 1]
    d0, d1 = dk[idx], dk[idx + 1]
    w, h = x1 - x0, y1 - y0
    return x0, y0, w, h, h / w, d0, d1


def rq_spline_forward(x: jax.Array, xk: jax.Array, yk: jax.Array, dk: jax.Array) -> tuple[jax.Array, ...]:
    """The rational-quadratic spline ``y(x)`` and ``log dy/dx`` for a scalar ``x`` (identity outside knots).

    In bin ``k`` with ``xi = (x - x_k) / w_k`` and slope ``s_k = h_k / w_k`` (Durkan et al. 2019, eqs. 4-5):
    ``y = y_k + h_k [s_k xi^2 + delta_k xi(1-xi)] / [s_k + (delta_{k+1} + delta_k - 2 s_k) xi(1-xi)]`` and
    ``dy/dx = s_k^2 [delta_{k+1} xi^2 + 2 s_k xi(1-xi) + delta_k (1-xi)^2] / [denominator]^2``.
    """
    inside = (x > xk[0]) & (x < xk[-1])
    xc = jnp.clip(x, xk[0], xk[-1])
    idx = jnp.clip(jnp.sum(xc >= xk[1:-1]), 0, xk.shape[0] - 2)
    x0, y0, w, h, s, d0, d1 = _rq_bin(xk, yk, dk, idx)
    xi = (xc - x0) / w
    t = xi * (1 - xi)
    den = s + (d1 + d0 - 2 * s) * t
    y = y0 + h * (s * xi**2 + d0 * t) / den
    logd = 2 * jnp.log(s) + jnp.log(d1 * xi**2 + 2 * s * t + d0 * (1 - xi) ** 2) - 2 * jnp.log(den)
    return jnp.where(inside, y, x), jnp.where(inside, logd, 0.0)


def rq_spline_inverse(y: jax.Array, xk: jax.Array, yk: jax.Array, dk: jax.Array) -> tuple[jax.Array, ...]:
    """The inverse spline ``x(y)`` and ``log dx/dy``: in bin ``k`` ``xi`` is the stable root
    ``xi = 2c / (-b - sqrt(b^2 - 4ac))`` of the quadratic ``a xi^2 + b xi + c = 0`` with
    ``a = h_k (s_k - delta_k) + (y - y_k) D``, ``b = h_k delta_k - (y - y_k) D``, ``c = -s_k (y - y_k)`` and
    ``D = delta_{k+1} + delta_k - 2 s_k``.
    """
    inside = (y > yk[0]) & (y < yk[-1])
    yc = jnp.clip(y, yk[0], yk[-1])
    idx = jnp.clip(jnp.sum(yc >= yk[1:-1]), 0, yk.shape[0] - 2)
    x0, y0, w, h, s, d0, d1 = _rq_bin(xk, yk, dk, idx)
    dd = d1 + d0 - 2 * s
    dy = yc - y0
    qa = h * (s - d0) + dy * dd
    qb = h * d0 - dy * dd
    qc = -s * dy
    disc = jnp.maximum(qb**2 - 4 * qa * qc, 0.0)
    xi = 2 * qc / (-qb - jnp.sqrt(disc))
    x = x0 + xi * w
    t = xi * (1 - xi)
    den = s + dd * t
    logd = 2 * jnp.log(s) + jnp.log(d1 * xi**2 + 2 * s * t + d0 * (1 - xi) ** 2) - 2 * jnp.log(den)
    return jnp.where(inside, x, y), jnp.where(inside, -logd, 0.0)


def spline_coupling(dim: int, mask: Sequence[bool], bins: int = 8, bound: float = 4.0,
                    conditioner: Conditioner | None = None) -> Bijection:
    """Rational-quadratic spline coupling (neural spline flow): ``x_A = u_A``, ``x_i = g_i(u_i; theta(u_A))``.

    Each ``g_i`` is a monotone rational-quadratic spline with identity tails (:func:`rq_spline_forward`);
    ``log|det J| = sum_i log g_i'(u_i)``.

    Args:
        dim: the dimension of the coupling.
        mask: True where a coordinate passes through (and conditions the others).
        bins: the number of spline bins (at least 2).
        bound: the splines act on ``[-bound, bound]``.
        conditioner: the MLP settings (default ``Conditioner()``); its last layer starts at zero, so the layer
            starts as the identity.

    Returns:
        The coupling as a :class:`Bijection`.
    """
    if bins < 2:
        raise ValueError(f"a spline needs at least 2 bins (got {bins})")
    a, b = mask_indices(dim, mask)
    conditioner = Conditioner() if conditioner is None else conditioner
    nb, n_raw = len(b), 3 * bins - 1

    def init(key):
        return conditioner.init(key, len(a), nb * n_raw)

    def knots(p, cond):
        raw = conditioner.apply(p, cond).reshape(nb, n_raw)
        return jax.vmap(lambda r: rq_spline_params(r, bound))(raw)

    def forward(p, u):
        xk, yk, dk = knots(p, take(u, a))
        yb, ld = jax.vmap(rq_spline_forward)(take(u, b), xk, yk, dk)
        return put(u, b, yb), jnp.sum(ld)

    def inverse(p, x):
        xk, yk, dk = knots(p, take(x, a))
        ub, ld = jax.vmap(rq_spline_inverse)(take(x, b), xk, yk, dk)
        return put(x, b, ub), jnp.sum(ld)

    return Bijection(init, forward, inverse)
