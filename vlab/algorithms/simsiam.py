"""Linear SimSiam gradient flow with and without the stop-gradient and the predictor (seed 002, question 5).

An encoder W (m x d) sees two views x1 = x + e1, x2 = x + e2 of x ~ (0, X) with independent augmentation noise
e ~ (0, X'); a predictor W_p (m x m) maps f1 = W x1 towards the target f2 = W x2. With F1 = F2 = W (X + X') W^T and
F12 = W X W^T the expected loss is

    J(W, W_p) = 1/2 E ||W_p f1 - SG(f2)||^2 = 1/2 [tr(W_p F1 W_p^T) - 2 tr(W_p F12) + tr(F2)],

and training is the gradient flow dW/dt = -dJ/dW, dW_p/dt = -dJ/dW_p (seed 5.2: dW_p/dt = -W_p F1 + F12).
The stop-gradient SG blocks the derivative through the target branch. The seed's closed forms:

    SG, predictor:        dW/dt = W_p^T (W X - W_p W (X + X'))
    no SG, predictor:     dW/dt = -(W_p^T W_p + I) W X' - (W_p - I)^T (W_p - I) W X,
                          i.e. d vec(W)/dt = -H vec(W), H = X' (x) (W_p^T W_p + I) + X (x) (W_p - I)^T (W_p - I)
    SG, no predictor:     dW/dt = -W X'
    no SG, no predictor:  dW/dt = -2 W X'   (the seed writes -W X'; the factor 2 comes from both branches)

H >= lambda_min(X') I, so without the stop-gradient ||W(t)|| <= exp(-lambda_min(X') t) ||W(0)||: W collapses.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from vlab.keys import stream


class SimSiamState(NamedTuple):
    """Encoder W (m, d) and predictor W_p (m, m)."""

    w: jax.Array
    wp: jax.Array


@jax.jit
def expected_loss(w: jax.Array, wp: jax.Array, x_cov: jax.Array, noise_cov: jax.Array,
                  stop_grad: jax.Array | bool, predictor: jax.Array | bool) -> jax.Array:
    """J = 1/2 E ||A x1 - B x2||^2 = 1/2 [tr(A (X+X') A^T) - 2 tr(A X B^T) + tr(B (X+X') B^T)]

    with A = W_p W (A = W without the predictor) and B = W, passed through ``lax.stop_gradient`` when
    ``stop_grad``. The flags may be traced booleans (or 0/1 floats), so the four variants vmap together.

    Args:
        w: the encoder W, (k, d).
        wp: the predictor W_p, (k, k) (unused without ``predictor``).
        x_cov: the data covariance X, (d, d).
        noise_cov: the augmentation noise covariance X', (d, d).
        stop_grad: whether the target branch B = W is held constant.
        predictor: whether A = W_p W (else A = W).

    Returns:
        The scalar expected loss J.
    """
    m = w.shape[0]
    a = jnp.where(predictor, wp, jnp.eye(m, dtype=w.dtype)) @ w
    b = jnp.where(stop_grad, jax.lax.stop_gradient(w), w)
    s = x_cov + noise_cov
    return 0.5 * (jnp.trace(a @ s @ a.T) - 2.0 * jnp.trace(a @ x_cov @ b.T) + jnp.trace(b @ s @ b.T))


@partial(jax.jit, static_argnames=("n",))
def sampled_loss(key: jax.Array, w: jax.Array, wp: jax.Array, x_cov: jax.Array, noise_cov: jax.Array,
                 n: int) -> jax.Array:
    """Monte Carlo 1/2 mean ||W_p W x1 - W x2||^2 with x ~ N(0, X), x_i = x + e_i, e_i ~ N(0, X') (key streams
    ``"x"``, ``"e1"``, ``"e2"``).

    Args:
        key: the key the three streams derive from.
        w: the encoder W, (k, d).
        wp: the predictor W_p, (k, k).
        x_cov: the data covariance X, (d, d).
        noise_cov: the augmentation noise covariance X', (d, d).
        n: the number of samples.

    Returns:
        The scalar sample mean, an unbiased estimate of :func:`expected_loss` with the predictor.
    """
    d = w.shape[1]
    x = jax.random.multivariate_normal(stream(key, "x"), jnp.zeros(d), x_cov, (n,))
    e1 = jax.random.multivariate_normal(stream(key, "e1"), jnp.zeros(d), noise_cov, (n,))
    e2 = jax.random.multivariate_normal(stream(key, "e2"), jnp.zeros(d), noise_cov, (n,))
    r = (x + e1) @ (wp @ w).T - (x + e2) @ w.T
    return 0.5 * jnp.mean(jnp.sum(r * r, -1))


@jax.jit
def velocity(state: SimSiamState, x_cov, noise_cov, stop_grad, predictor) -> SimSiamState:
    """(dW/dt, dW_p/dt) = -(dJ/dW, dJ/dW_p) by autodiff; dW_p/dt = 0 without a predictor.

    Args:
        state: the current (W, W_p).
        x_cov: the data covariance X, (d, d).
        noise_cov: the augmentation noise covariance X', (d, d).
        stop_grad: whether the target branch is held constant (as in :func:`expected_loss`).
        predictor: whether the online branch has the predictor W_p.

    Returns:
        The velocities as a :class:`SimSiamState`.
    """
    gw, gwp = jax.grad(expected_loss, argnums=(0, 1))(state.w, state.wp, x_cov, noise_cov, stop_grad, predictor)
    return SimSiamState(-gw, -gwp * jnp.asarray(predictor, gwp.dtype))


@partial(jax.jit, static_argnames=("stop_grad", "predictor"))
def seed_velocity_w(w, wp, x_cov, noise_cov, stop_grad: bool, predictor: bool) -> jax.Array:
    """dW/dt from the closed forms in the module docstring (seed 002, 5.2-5.4 with the factor 2 corrected).

    Args:
        w: the encoder W, (k, d).
        wp: the predictor W_p, (k, k).
        x_cov: the data covariance X, (d, d).
        noise_cov: the augmentation noise covariance X', (d, d).
        stop_grad: whether the target branch is held constant (static).
        predictor: whether the online branch has the predictor (static).

    Returns:
        dW/dt, (k, d).
    """
    eye = jnp.eye(w.shape[0], dtype=w.dtype)
    if not predictor:
        return -(1.0 if stop_grad else 2.0) * w @ noise_cov
    if stop_grad:
        return wp.T @ (w @ x_cov - wp @ w @ (x_cov + noise_cov))
    wt = wp - eye
    return -(wp.T @ wp + eye) @ w @ noise_cov - wt.T @ wt @ w @ x_cov


@jax.jit
def seed_velocity_wp(w, wp, x_cov, noise_cov) -> jax.Array:
    """dW_p/dt = -W_p F1 + F12 with F1 = W (X + X') W^T, F12 = W X W^T (seed 002, 5.2)."""
    return -wp @ (w @ (x_cov + noise_cov) @ w.T) + w @ x_cov @ w.T


@jax.jit
def h_matrix(wp: jax.Array, x_cov: jax.Array, noise_cov: jax.Array) -> jax.Array:
    """H = X' (x) (W_p^T W_p + I) + X (x) (W_p - I)^T (W_p - I), so that d vec(W)/dt = -H vec(W) without the
    stop-gradient (vec stacks columns: vec(A W B) = (B^T (x) A) vec(W))."""
    eye = jnp.eye(wp.shape[0], dtype=wp.dtype)
    wt = wp - eye
    return jnp.kron(noise_cov, wp.T @ wp + eye) + jnp.kron(x_cov, wt.T @ wt)


def vec(w: jax.Array) -> jax.Array:
    """Column-stacking vec(W)."""
    return w.T.reshape(-1)


@partial(jax.jit, static_argnames=("dt", "steps", "save_every"))
def integrate(state: SimSiamState, x_cov, noise_cov, stop_grad, predictor, dt: float, steps: int,
              save_every: int) -> SimSiamState:
    """Classical RK4 on the gradient flow :func:`velocity`, ``steps`` steps of size ``dt`` in one ``lax.scan``.

    Args:
        state: the initial (W, W_p).
        x_cov: the data covariance X, (d, d).
        noise_cov: the augmentation noise covariance X', (d, d).
        stop_grad: whether the target branch is held constant.
        predictor: whether the online branch has the predictor.
        dt: the step size.
        steps: the number of RK4 steps.
        save_every: steps between saved states.

    Returns:
        The states at t = 0, save_every dt, 2 save_every dt, ... (steps // save_every + 1 of them, leading axis).
    """

    def f(s):
        return velocity(s, x_cov, noise_cov, stop_grad, predictor)

    def axpy(s, k, c):
        return jax.tree.map(lambda a, b: a + c * b, s, k)

    def rk4(s, _):
        k1 = f(s)
        k2 = f(axpy(s, k1, dt / 2))
        k3 = f(axpy(s, k2, dt / 2))
        k4 = f(axpy(s, k3, dt))
        return jax.tree.map(lambda a, b, c, d, e: a + dt / 6 * (b + 2 * c + 2 * d + e), s, k1, k2, k3, k4), None

    def block(s, _):
        s, _ = jax.lax.scan(rk4, s, None, length=save_every)
        return s, s

    _, saved = jax.lax.scan(block, state, None, length=steps // save_every)
    return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), state, saved)
