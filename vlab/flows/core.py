"""Bijections for normalizing flows: small ``(init, forward, inverse)`` units and their composition.

A flow pushes a base sample ``u ~ P_U`` through an invertible map ``x = F(u)``; by the change of variables
(seed 002 question 3.1)

    log P_F(U)(x) = log P_U(F^-1(x)) + log|det J_F^-1(x)| = log P_U(u) - log|det J_F(u)|.

Each bijection here is a :class:`Bijection` of three pure functions acting on ONE example of shape
``(d,)``: ``init(key) -> params``, ``forward(params, u) -> (x, log|det J_F(u)|)`` and
``inverse(params, x) -> (u, log|det J_F^-1(x)|)``. Batches, seeds and grids are ``jax.vmap`` of these.
:func:`chain` composes bijections (``chain([f1, f2])`` applies ``f1`` first), and :func:`build` assembles
the usual stacks from a few numbers.

Units: :func:`elementwise_affine` (ActNorm-like scale and shift), :func:`permutation`, :func:`affine_coupling`
(RealNVP, Dinh et al. 2017), :func:`spline_coupling` (rational-quadratic splines, Durkan et al. 2019) and
:func:`planar` (Rezende & Mohamed 2015, with the constraint that keeps it invertible).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vlab.nn import ACTIVATIONS, mlp_apply, mlp_init

Params = Any


class Bijection(NamedTuple):
    """An invertible map ``F`` on ``R^d`` with its log-Jacobian-determinant, as three pure functions.

    ``forward(params, u) -> (F(u), log|det J_F(u)|)``;
    ``inverse(params, x) -> (F^-1(x), log|det J_F^-1(x)|)``, so ``inverse(forward(u)) = u`` and the two
    log-determinants at matching points sum to zero.
    """

    init: Callable[[jax.Array], Params]
    forward: Callable[[Params, jax.Array], tuple[jax.Array, jax.Array]]
    inverse: Callable[[Params, jax.Array], tuple[jax.Array, jax.Array]]


# ------------------------------------------------------------------------------------------------ composition


def chain(bijections: Sequence[Bijection]) -> Bijection:
    """The composition ``F = f_n o ... o f_1`` (``bijections[0]`` acts first).

    ``log|det J_F(u)| = sum_k log|det J_{f_k}(u_{k-1})|`` with ``u_0 = u``, ``u_k = f_k(u_{k-1})``.
    Parameters are a tuple holding each unit's parameters.
    """
    bs = tuple(bijections)
    if not bs:
        raise ValueError("a flow needs at least one bijection (got 0 layers)")

    def init(key):
        return tuple(b.init(k) for b, k in zip(bs, jax.random.split(key, len(bs)), strict=True))

    def forward(params, u):
        total = jnp.zeros((), u.dtype)
        for b, p in zip(bs, params, strict=True):
            u, ld = b.forward(p, u)
            total = total + ld
        return u, total

    def inverse(params, x):
        total = jnp.zeros((), x.dtype)
        for b, p in zip(reversed(bs), reversed(params), strict=True):
            x, ld = b.inverse(p, x)
            total = total + ld
        return x, total

    return Bijection(init, forward, inverse)


def invert(b: Bijection) -> Bijection:
    """The inverse bijection ``F^-1``: its forward pass is ``b``'s inverse pass and vice versa."""
    return Bijection(b.init, b.inverse, b.forward)


# ------------------------------------------------------------------------------------------------ elementwise


def elementwise_affine(dim: int, loc: jax.Array | None = None, scale: jax.Array | None = None) -> Bijection:
    """``x = u * exp(s) + b`` elementwise (ActNorm-like), ``log|det J| = sum_i s_i``.

    Starts at ``b = loc``, ``exp(s) = scale`` (default: the identity); giving the data's mean and standard
    deviation makes the flow's last layer standardise the data from the first step (Kingma & Dhariwal 2018).
    """
    b0 = jnp.zeros(dim) if loc is None else jnp.asarray(loc, dtype=float)
    s0 = jnp.zeros(dim) if scale is None else jnp.log(jnp.asarray(scale, dtype=float))

    def init(key):
        return {"log_scale": s0, "shift": b0}

    def forward(p, u):
        return u * jnp.exp(p["log_scale"]) + p["shift"], jnp.sum(p["log_scale"])

    def inverse(p, x):
        return (x - p["shift"]) * jnp.exp(-p["log_scale"]), -jnp.sum(p["log_scale"])

    return Bijection(init, forward, inverse)


def permutation(perm: Sequence[int]) -> Bijection:
    """``x_i = u_{perm[i]}``: a fixed reordering of the coordinates, ``log|det J| = 0``."""
    perm = np.asarray(perm, dtype=np.int32)
    if sorted(perm.tolist()) != list(range(len(perm))):
        raise ValueError(f"permutation {perm.tolist()} is not a permutation of 0..{len(perm) - 1}")
    inv = np.argsort(perm)

    def init(key):
        return {}

    def forward(p, u):
        return u[perm], jnp.zeros((), u.dtype)

    def inverse(p, x):
        return x[inv], jnp.zeros((), x.dtype)

    return Bijection(init, forward, inverse)


def rotation(dim: int, key: jax.Array) -> Bijection:
    """``x = Q u`` with a fixed random orthogonal ``Q`` (QR of a Gaussian matrix): ``log|det J| = 0``.

    Between couplings it mixes coordinates in every direction, not only along the axes a permutation swaps.
    """
    q, r = np.linalg.qr(np.asarray(jax.random.normal(key, (dim, dim)), dtype=np.float64))
    q = q * np.sign(np.diag(r))[None, :]

    def init(key):
        return {}

    def forward(p, u):
        return jnp.asarray(q, u.dtype) @ u, jnp.zeros((), u.dtype)

    def inverse(p, x):
        return jnp.asarray(q.T, x.dtype) @ x, jnp.zeros((), x.dtype)

    return Bijection(init, forward, inverse)


# ------------------------------------------------------------------------------------------------ couplings


def _take(x: jax.Array, idx: np.ndarray) -> jax.Array:
    """``x[idx]`` for static indices, as a slice when they are contiguous (cheaper than a gather)."""
    if np.all(np.diff(idx) == 1):
        return x[int(idx[0]):int(idx[-1]) + 1]
    return x[idx]


def _put(x: jax.Array, idx: np.ndarray, v: jax.Array) -> jax.Array:
    """``x.at[idx].set(v)`` for static indices, by concatenation when they are contiguous."""
    if np.all(np.diff(idx) == 1):
        return jnp.concatenate([x[:int(idx[0])], v, x[int(idx[-1]) + 1:]])
    return x.at[idx].set(v)


def _split_mask(dim: int, mask: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (dim,) or mask.all() or not mask.any():
        raise ValueError(f"coupling mask {mask.tolist()} must have {dim} entries, some True and some False")
    return np.flatnonzero(mask), np.flatnonzero(~mask)


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


def affine_coupling(
    dim: int,
    mask: Sequence[bool],
    hidden: int = 64,
    depth: int = 2,
    activation: str = "relu",
    max_log_scale: float = 3.0,
    scale_fn: str = "exp",
    bias_init: float = 0.0,
) -> Bijection:
    """RealNVP affine coupling: the coordinates where ``mask`` is True pass through and condition the rest.

    ``x_A = u_A``, ``x_B = u_B * exp(s(u_A)) + t(u_A)``, ``log|det J| = sum s(u_A)`` (Dinh et al. 2017), with
    ``s = c tanh(raw / c)`` softly clamped to ``|s| < c = max_log_scale`` for stable training, or with
    ``scale_fn="softplus"`` ``exp(s) = softplus(raw + softplus^-1(1 - 1e-3)) + 1e-3`` (FlowJAX's choice: the scale
    grows linearly, not exponentially, in the network output). ``s`` and ``t``
    come from one MLP of ``depth`` hidden layers of width ``hidden`` (:func:`conditioner_init`, hidden biases
    ``U(-bias_init, bias_init)``); its last layer starts at zero, so the layer starts as the identity.
    """
    a, b = _split_mask(dim, mask)
    nb = len(b)

    def init(key):
        return conditioner_init(key, [len(a), *([hidden] * depth), 2 * nb], bias_init)

    def scale_shift(p, cond):
        out = mlp_apply(p, cond, ACTIVATIONS[activation])
        if scale_fn == "softplus":
            s = jnp.log(jax.nn.softplus(out[:nb] + _SOFTPLUS_ONE) + 1e-3)
        else:
            s = max_log_scale * jnp.tanh(out[:nb] / max_log_scale)
        return s, out[nb:]

    def forward(p, u):
        s, t = scale_shift(p, _take(u, a))
        return _put(u, b, _take(u, b) * jnp.exp(s) + t), jnp.sum(s)

    def inverse(p, x):
        s, t = scale_shift(p, _take(x, a))
        return _put(x, b, (_take(x, b) - t) * jnp.exp(-s)), -jnp.sum(s)

    return Bijection(init, forward, inverse)


# ------------------------------------------------------------------------------------------------ splines

_MIN_BIN = 1e-3
_MIN_DERIV = 1e-3
_SOFTPLUS_ONE = math.log(math.expm1(1.0 - _MIN_DERIV))  # _MIN_DERIV + softplus(_SOFTPLUS_ONE) = 1


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
    inner = _MIN_DERIV + jax.nn.softplus(raw[2 * k:] + _SOFTPLUS_ONE)
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


def spline_coupling(
    dim: int,
    mask: Sequence[bool],
    bins: int = 8,
    bound: float = 4.0,
    hidden: int = 64,
    depth: int = 2,
    activation: str = "relu",
    bias_init: float = 0.0,
) -> Bijection:
    """Rational-quadratic spline coupling (neural spline flow): ``x_A = u_A``, ``x_i = g_i(u_i; theta(u_A))``.

    Each ``g_i`` is a monotone rational-quadratic spline with ``bins`` bins on ``[-bound, bound]`` and
    identity tails (:func:`rq_spline_forward`); ``log|det J| = sum_i log g_i'(u_i)``. The conditioner is an
    MLP (:func:`conditioner_init`) whose last layer starts at zero, so the layer starts as the identity.
    """
    if bins < 2:
        raise ValueError(f"a spline needs at least 2 bins (got {bins})")
    a, b = _split_mask(dim, mask)
    nb, n_raw = len(b), 3 * bins - 1

    def init(key):
        return conditioner_init(key, [len(a), *([hidden] * depth), nb * n_raw], bias_init)

    def knots(p, cond):
        raw = mlp_apply(p, cond, ACTIVATIONS[activation]).reshape(nb, n_raw)
        return jax.vmap(lambda r: rq_spline_params(r, bound))(raw)

    def forward(p, u):
        xk, yk, dk = knots(p, _take(u, a))
        yb, ld = jax.vmap(rq_spline_forward)(_take(u, b), xk, yk, dk)
        return _put(u, b, yb), jnp.sum(ld)

    def inverse(p, x):
        xk, yk, dk = knots(p, _take(x, a))
        ub, ld = jax.vmap(rq_spline_inverse)(_take(x, b), xk, yk, dk)
        return _put(x, b, ub), jnp.sum(ld)

    return Bijection(init, forward, inverse)


# ------------------------------------------------------------------------------------------------ planar


def planar_u_hat(w: jax.Array, u: jax.Array) -> jax.Array:
    """Rezende & Mohamed's (2015, appendix A.1) constraint ``w^T u_hat >= -1`` that keeps a tanh planar flow
    invertible: ``u_hat = u + (m(w^T u) - w^T u) w / ||w||^2`` with ``m(a) = -1 + softplus(a)``."""
    wu = jnp.dot(w, u)
    return u + (-1.0 + jax.nn.softplus(wu) - wu) * w / (jnp.dot(w, w) + 1e-12)


def planar(dim: int, init_scale: float = 0.1, bisection_steps: int = 60) -> Bijection:
    """Planar flow ``x = u + u_hat tanh(w^T u + b)``,
    ``log|det J| = log|1 + (1 - tanh^2(w^T u + b)) w^T u_hat|``.

    Invertible because ``w^T u_hat > -1`` (:func:`planar_u_hat`). The inverse has no closed form:
    ``alpha = w^T u`` is the unique root of the increasing ``alpha + w^T u_hat tanh(alpha + b) = w^T x``,
    found by bisection on ``[w^T x - |w^T u_hat|, w^T x + |w^T u_hat|]`` followed by one Newton step through
    which gradients flow (the implicit-function derivative), then ``u = x - u_hat tanh(alpha + b)``.
    """

    def init(key):
        kw, ku = jax.random.split(key)
        return {"w": init_scale * jax.random.normal(kw, (dim,)),
                "u": init_scale * jax.random.normal(ku, (dim,)), "b": jnp.zeros(())}

    def forward(p, u):
        uh = planar_u_hat(p["w"], p["u"])
        a = jnp.dot(p["w"], u) + p["b"]
        h = jnp.tanh(a)
        return u + uh * h, jnp.log(jnp.abs(1 + (1 - h**2) * jnp.dot(p["w"], uh)))

    def inverse(p, x):
        uh = planar_u_hat(p["w"], p["u"])
        wu, wx = jnp.dot(p["w"], uh), jnp.dot(p["w"], x)
        g = lambda al: al + wu * jnp.tanh(al + p["b"]) - wx
        lo, hi = wx - jnp.abs(wu) - 1e-6, wx + jnp.abs(wu) + 1e-6

        def bisect(_, bounds):
            lo, hi = bounds
            mid = 0.5 * (lo + hi)
            up = g(mid) > 0
            return jnp.where(up, lo, mid), jnp.where(up, mid, hi)

        lo, hi = jax.lax.fori_loop(0, bisection_steps, bisect, jax.lax.stop_gradient((lo, hi)))
        al = jax.lax.stop_gradient(0.5 * (lo + hi))
        al = al - g(al) / (1 + wu * (1 - jnp.tanh(al + p["b"]) ** 2))
        h = jnp.tanh(al + p["b"])
        return x - uh * h, -jnp.log(jnp.abs(1 + (1 - h**2) * wu))

    return Bijection(init, forward, inverse)


# ------------------------------------------------------------------------------------------------ stacks


def alternating_masks(dim: int, layers: int) -> list[np.ndarray]:
    """Coupling masks that alternate which half passes through: ``[1,0,1,0..]``, ``[0,1,0,1..]``, ..."""
    base = np.arange(dim) % 2 == 0
    return [base if i % 2 == 0 else ~base for i in range(layers)]


def build(
    kind: str,
    dim: int,
    layers: int,
    *,
    hidden: int = 64,
    depth: int = 2,
    bins: int = 8,
    bound: float = 4.0,
    activation: str = "gelu",
    max_log_scale: float = 3.0,
    scale_fn: str = "softplus",
    invert_couplings: bool = True,
    loc: jax.Array | None = None,
    scale: jax.Array | None = None,
    mixing: str = "alternate",
    bias_init: float = 2.5,
) -> Bijection:
    """A flow of ``layers`` units of one ``kind`` (``affine``, ``spline`` or ``planar``), base side first.

    Couplings alternate their masks (in 1-D, where no coordinate can pass through, the conditioner sees a
    constant, so each layer is one learned elementwise map). With ``invert_couplings`` each coupling is written
    in the data-to-base direction (``u_B = x_B exp(s(x_A)) + t(x_A)``, affine in the data: the direction maximum
    likelihood differentiates, and the one FlowJAX defaults to); otherwise in the base-to-data direction. With
    ``mixing="rotation"`` a fixed random orthogonal :func:`rotation` (``log|det J| = 0``) sits between successive
    couplings, so they split the coordinates along different directions, not only the axes. A final
    :func:`elementwise_affine` layer maps to the data's location ``loc`` and ``scale`` when given.

    The defaults are the recipe measured on the flow benchmark's two-moons workload (benchmarks/flows.py):
    softplus-scaled couplings (``scale_fn``), GELU conditioners, first-layer biases ``U(-2.5, 2.5)``
    (:func:`conditioner_init`), masks alternating without rotations.
    """
    if layers < 1:
        raise ValueError(f"a flow needs at least one layer (got {layers})")
    if kind not in ("affine", "spline", "planar"):
        raise ValueError(f"unknown flow kind '{kind}': expected affine, spline or planar")
    if mixing not in ("alternate", "rotation"):
        raise ValueError(f"unknown mixing '{mixing}': expected alternate or rotation")
    units: list[Bijection] = []
    if kind == "planar":
        units = [planar(dim) for _ in range(layers)]
    else:
        d = dim if dim > 1 else 2
        for mask in alternating_masks(d, layers):
            if dim == 1:  # pad: a constant coordinate conditions the only real one
                mask = np.array([True, False])
            if kind == "affine":
                u = affine_coupling(d, mask, hidden, depth, activation, max_log_scale, scale_fn, bias_init)
            else:
                u = spline_coupling(d, mask, bins, bound, hidden, depth, activation, bias_init)
            u = _padded(u) if dim == 1 else u
            if mixing == "rotation" and dim > 1 and units:
                units.append(rotation(dim, jax.random.key(len(units))))
            units.append(invert(u) if invert_couplings else u)
    if loc is not None or scale is not None:
        units.append(elementwise_affine(dim, loc, scale))
    return chain(units)


def _padded(b: Bijection) -> Bijection:
    """A 2-D coupling acting on ``(0, u)`` as a 1-D bijection of ``u``."""

    def forward(p, u):
        y, ld = b.forward(p, jnp.concatenate([jnp.zeros(1, u.dtype), u]))
        return y[1:], ld

    def inverse(p, x):
        y, ld = b.inverse(p, jnp.concatenate([jnp.zeros(1, x.dtype), x]))
        return y[1:], ld

    return Bijection(b.init, forward, inverse)


# ------------------------------------------------------------------------------------------------ densities


def standard_normal_log_prob(u: jax.Array) -> jax.Array:
    """``log N(u; 0, I) = -||u||^2 / 2 - (d/2) log(2 pi)`` for one example."""
    return -0.5 * jnp.sum(u**2) - 0.5 * u.shape[-1] * math.log(2 * math.pi)


def log_prob(flow: Bijection, params: Params, x: jax.Array) -> jax.Array:
    """``log P_F(U)(x) = log P_U(F^-1(x)) + log|det J_F^-1(x)|`` with a standard-normal base, one example."""
    u, ld = flow.inverse(params, x)
    return standard_normal_log_prob(u) + ld


def sample_and_log_prob(flow: Bijection, params: Params, key: jax.Array, n: int, dim: int):
    """``n`` samples ``x = F(u)``, ``u ~ N(0, I)``, with ``log q(x) = log P_U(u) - log|det J_F(u)|``."""
    u = jax.random.normal(key, (n, dim))
    x, ld = jax.vmap(flow.forward, in_axes=(None, 0))(params, u)
    return x, jax.vmap(standard_normal_log_prob)(u) - ld
