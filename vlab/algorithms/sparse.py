"""The elastic net and its special cases: soft-thresholding, coordinate descent, proximal gradient, KKT.

The objective (seed 000, question 1) is

    F(w) = 1/2 sum_j (y^(j) - sum_i w_i x_i^(j))^2 + alpha sum_i |w_i| + lambda/2 sum_i w_i^2,

Lasso when lambda = 0, Ridge when alpha = 0. Fixing every coordinate but w_k leaves the scalar problem
f(x) = c + g x + h x^2 / 2 + alpha |x| with g = sum_j x_k^(j) (sum_{i != k} w_i x_i^(j) - y^(j)) and
h = lambda + sum_j (x_k^(j))^2, whose minimiser is the soft-threshold update :func:`scalar_minimiser`.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax


def soft_threshold(z: jax.Array, t: jax.Array | float) -> jax.Array:
    """S(z, t) = sign(z) max(|z| - t, 0): the proximal operator of t |.|."""
    return jnp.sign(z) * jnp.maximum(jnp.abs(z) - t, 0.0)


def scalar_minimiser(g: jax.Array, h: jax.Array, alpha: jax.Array | float) -> jax.Array:
    """argmin_x c + g x + h x^2/2 + alpha |x| (h > 0, alpha >= 0), seed 000 question 1(a):

    x* = -(g + alpha)/h if g < -alpha;  0 if |g| <= alpha;  -(g - alpha)/h if g > alpha;  i.e. -S(g, alpha)/h.
    """
    return -soft_threshold(g, alpha) / h


@jax.jit
def objective(w: jax.Array, x: jax.Array, y: jax.Array, alpha: float, lam: float) -> jax.Array:
    """F(w) = ||y - X w||^2 / 2 + alpha ||w||_1 + lambda ||w||^2 / 2; the rows of ``x`` are the x^(j).

    Args:
        w: the weights, shape (d,).
        x: the inputs, shape (n, d), one x^(j) per row.
        y: the targets, shape (n,).
        alpha: the l1 weight (alpha >= 0).
        lam: the squared-l2 weight lambda (lambda >= 0).

    Returns:
        F(w), a scalar.
    """
    r = y - x @ w
    return 0.5 * r @ r + alpha * jnp.sum(jnp.abs(w)) + 0.5 * lam * w @ w


@jax.jit
def smooth_part(w: jax.Array, x: jax.Array, y: jax.Array, lam: float) -> jax.Array:
    """The differentiable part of F: ||y - X w||^2 / 2 + lambda ||w||^2 / 2."""
    r = y - x @ w
    return 0.5 * r @ r + 0.5 * lam * w @ w


def coordinate_terms(w: jax.Array, x: jax.Array, y: jax.Array, lam: float, k: int | jax.Array):
    """(g, h) of coordinate k, seed 000 question 1(b) with y^(j) in place of the seed's y_i:

    g = sum_j x_k^(j) (sum_{i != k} w_i x_i^(j) - y^(j)),   h = lambda + sum_j (x_k^(j))^2.

    Args:
        w: the weights, shape (d,); w_k itself does not enter g or h.
        x: the inputs, shape (n, d), one x^(j) per row.
        y: the targets, shape (n,).
        lam: the squared-l2 weight lambda.
        k: the coordinate, 0 <= k < d.

    Returns:
        ``(g, h)``, two scalars: F restricted to w_k is c + g w_k + h w_k^2 / 2 + alpha |w_k|.
    """
    xk = x[:, k]
    partial = x @ w - xk * w[k]
    return xk @ (partial - y), lam + xk @ xk


class CDResult(NamedTuple):
    """Coordinate-descent solution and the objective after every sweep (``objective[0]`` is at the start)."""

    w: jax.Array
    objective: jax.Array


@partial(jax.jit, static_argnames=("sweeps",))
def coordinate_descent(
    x: jax.Array, y: jax.Array, alpha: float, lam: float, sweeps: int, w0: jax.Array | None = None
) -> CDResult:
    """Cyclic coordinate descent on the elastic net: for k = 1..d, w_k <- -S(g, alpha)/h (seed 000, 1(b)).

    ``sweeps`` full passes over the coordinates, each a ``lax.fori_loop`` inside a ``lax.scan`` over sweeps.
    The residual r = y - X w is carried so one coordinate update costs O(n). Each update exactly minimises F
    along its coordinate, so F never increases.

    Args:
        x: the inputs, shape (n, d), one x^(j) per row.
        y: the targets, shape (n,).
        alpha: the l1 weight (alpha >= 0).
        lam: the squared-l2 weight lambda (lambda >= 0).
        sweeps: full passes over the d coordinates (static).
        w0: the starting weights, shape (d,); zeros by default.

    Returns:
        A :class:`CDResult`: the weights after the last sweep, shape (d,), and F at the start and after every
        sweep, shape (sweeps + 1,).
    """
    n, d = x.shape
    w0 = jnp.zeros(d, x.dtype) if w0 is None else w0
    col_sq = jnp.sum(x * x, axis=0)

    def update(k, carry):
        w, r = carry
        xk = x[:, k]
        g = -(xk @ (r + xk * w[k]))  # = sum_j x_k^(j) (sum_{i != k} w_i x_i^(j) - y^(j))
        new = scalar_minimiser(g, lam + col_sq[k], alpha)
        return w.at[k].set(new), r - xk * (new - w[k])

    def sweep(carry, _):
        carry = jax.lax.fori_loop(0, d, update, carry)
        return carry, objective(carry[0], x, y, alpha, lam)

    (w, _), f = jax.lax.scan(sweep, (w0, y - x @ w0), None, length=sweeps)
    return CDResult(w, jnp.concatenate([objective(w0, x, y, alpha, lam)[None], f]))


@jax.jit
def ridge(x: jax.Array, y: jax.Array, lam: float) -> jax.Array:
    """The alpha = 0 special case in closed form: w = (X^T X + lambda I)^-1 X^T y."""
    d = x.shape[1]
    return jnp.linalg.solve(x.T @ x + lam * jnp.eye(d, dtype=x.dtype), x.T @ y)


@jax.jit
def alpha_max(x: jax.Array, y: jax.Array) -> jax.Array:
    """||X^T y||_inf: the smallest alpha for which w = 0 is optimal (whatever lambda is)."""
    return jnp.max(jnp.abs(x.T @ y))


@jax.jit
def kkt_violation(w: jax.Array, x: jax.Array, y: jax.Array, alpha: float, lam: float) -> jax.Array:
    """Largest violation of the subgradient optimality conditions 0 in dF(w).

    With grad = -X^T (y - X w) + lambda w: |grad_i + alpha sign(w_i)| where w_i != 0, and
    max(|grad_i| - alpha, 0) where w_i = 0. It is zero exactly at the minimiser (F is convex).

    Args:
        w: the weights, shape (d,).
        x: the inputs, shape (n, d), one x^(j) per row.
        y: the targets, shape (n,).
        alpha: the l1 weight (alpha >= 0).
        lam: the squared-l2 weight lambda (lambda >= 0).

    Returns:
        The largest violation over the coordinates, a scalar >= 0.
    """
    grad = -x.T @ (y - x @ w) + lam * w
    nonzero = jnp.abs(grad + alpha * jnp.sign(w))
    zero = jnp.maximum(jnp.abs(grad) - alpha, 0.0)
    return jnp.max(jnp.where(w != 0, nonzero, zero))


class ProxState(NamedTuple):
    """The l1 proximal step keeps no state."""


def prox_l1(step_size: float, alpha: float) -> optax.GradientTransformation:
    """An optax transformation applying the l1 proximal map after a gradient step of size ``step_size``.

    Chained after ``optax.sgd(step_size)`` it turns updates u into S(w + u, step_size * alpha) - w, so one
    optax step is one ISTA step w <- S(w - eta grad, eta alpha) on the smooth part plus alpha ||w||_1.
    """

    def init(params):
        return ProxState()

    def update(updates, state, params):
        new = jax.tree.map(lambda p, u: soft_threshold(p + u, step_size * alpha) - p, params, updates)
        return new, state

    return optax.GradientTransformation(init, update)


@jax.jit
def lipschitz(x: jax.Array, lam: float) -> jax.Array:
    """Lipschitz constant of the smooth part's gradient: the largest eigenvalue of X^T X plus lambda."""
    return jnp.linalg.eigvalsh(x.T @ x)[-1] + lam


@partial(jax.jit, static_argnames=("sweeps",))
def regularisation_path(x: jax.Array, y: jax.Array, alphas: jax.Array, lam: float, sweeps: int) -> jax.Array:
    """Coordinate-descent solutions for every alpha in ``alphas`` (one vmapped program): (len(alphas), d).

    Args:
        x: the inputs, shape (n, d), one x^(j) per row.
        y: the targets, shape (n,).
        alphas: the l1 weights, shape (m,).
        lam: the squared-l2 weight lambda, shared by every alpha.
        sweeps: coordinate-descent sweeps per alpha, each from w = 0 (static).

    Returns:
        The solutions, shape (m, d), row i for ``alphas[i]``.
    """
    return jax.vmap(lambda a: coordinate_descent(x, y, a, lam, sweeps).w)(alphas)
