"""Two-player differentiable games: each player minimises its own loss, gradients come from ``jax.grad``.

A :class:`Game` is a pair of pure losses ``loss_d(d, g, key)`` and ``loss_g(d, g, key)`` over the parameter
pytrees of a discriminator ``d`` and a generator ``g``. A zero-sum game with value ``V(d, g)`` (the
discriminator ascends, the generator descends) is ``zero_sum(V)``: ``loss_d = -V``, ``loss_g = V``. The game's
vector field is

    F(d, g) = (grad_d loss_d(d, g), grad_g loss_g(d, g)),

so every update rule in :mod:`vlab.algorithms.gda` moves against ``F``. The bilinear game ``V(d, g) = d g`` of seed 002
question 4 and its matrix form ``V = d^T A g`` live here; GAN games are built in :mod:`vlab.objectives.gan`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

# A scalar function of both players' parameters and a key: a player's loss, or a zero-sum game's value.
Payoff = Callable[[Any, Any, jax.Array], jax.Array]


class Game(NamedTuple):
    """Two players minimising ``loss_d(d, g, key)`` and ``loss_g(d, g, key)`` over ``d`` and
    ``g`` respectively."""

    loss_d: Payoff
    loss_g: Payoff


def zero_sum(value: Payoff) -> Game:
    """The minimax game ``min_g max_d V(d, g)``: ``loss_d = -V`` and ``loss_g = V``."""
    return Game(lambda d, g, key: -value(d, g, key), value)


def grad_d(game: Game, d: Any, g: Any, key: jax.Array) -> Any:
    """``grad_d loss_d(d, g)``: the discriminator's own gradient (jax.grad, never a hand-derived formula)."""
    return jax.grad(game.loss_d, argnums=0)(d, g, key)


def grad_g(game: Game, d: Any, g: Any, key: jax.Array) -> Any:
    """``grad_g loss_g(d, g)``: the generator's own gradient."""
    return jax.grad(game.loss_g, argnums=1)(d, g, key)


def field(game: Game, z: tuple[Any, Any], key: jax.Array) -> tuple[Any, Any]:
    """The simultaneous gradient ``F(z) = (grad_d loss_d, grad_g loss_g)`` at ``z = (d, g)``.

    For a zero-sum game this is ``(-grad_d V, grad_g V)``; a descent step ``z - a F(z)`` is
    simultaneous gradient descent-ascent.
    """
    d, g = z
    return grad_d(game, d, g, key), grad_g(game, d, g, key)


def surrogate_loss(game: Game) -> Callable[[Any, Any, jax.Array, Any], tuple[jax.Array, dict]]:
    """One scalar whose gradient is the game's vector field, for a single optimiser over ``{"d": d, "g": g}``.

    ``L(d, g) = loss_d(d, sg(g)) + loss_g(sg(d), g)`` with ``sg`` the stop-gradient, so
    ``grad_d L = grad_d loss_d`` and ``grad_g L = grad_g loss_g``: an optax optimiser minimising ``L`` plays
    simultaneous gradient play, and :func:`vlab.engine.fit` trains the game unchanged. The signature is the
    engine's objective ``(params, batch, key, hp) -> (loss, aux)``; the batch and ``hp`` are unused (games draw
    their own samples from ``key``), and ``aux`` holds each player's loss.
    """
    sg = jax.lax.stop_gradient

    def loss(params: dict, batch: Any, key: jax.Array, hp: Any) -> tuple[jax.Array, dict]:
        del batch, hp
        d, g = params["d"], params["g"]
        ld = game.loss_d(d, sg(g), key)
        lg = game.loss_g(sg(d), g, key)
        return ld + lg, {"loss_d": ld, "loss_g": lg}

    return loss


# ------------------------------------------------------------------------------------------- bilinear games


def bilinear_value(d: jax.Array, g: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """``V(d, g) = d g`` (seed 002 question 4); ``grad_d V = g`` and ``grad_g V = d``, stationary point (0,
    0)."""
    del key
    return jnp.sum(d * g)


def bilinear() -> Game:
    """The scalar bilinear game ``min_g max_d d g`` of seed 002 question 4."""
    return zero_sum(bilinear_value)


def matrix_bilinear(a: jax.Array) -> Game:
    """``min_g max_d d^T A g``. Its field ``F = (-A g, A^T d)`` has Jacobian ``[[0, -A], [A^T, 0]]`` whose
    eigenvalues are ``+- i s_j`` for the singular values ``s_j`` of ``A``: every rule acts on ``A``
    through them.
    """
    a = jnp.asarray(a)
    return zero_sum(lambda d, g, key: d @ a @ g)


def field_on_grid(game: Game, lims: tuple[float, float, float, float], n: int = 25,
                  key: jax.Array | None = None) -> tuple[jax.Array, ...]:
    """``(D, G, -F_d, -F_g)`` on an ``n x n`` grid of a game with scalar players over
    ``lims = (d_min, d_max, g_min, g_max)``: the direction the players move, ready for a stream plot."""
    key = jax.random.key(0) if key is None else key
    d, g = jnp.meshgrid(jnp.linspace(lims[0], lims[1], n), jnp.linspace(lims[2], lims[3], n))
    fd, fg = jax.vmap(lambda d, g: field(game, (d, g), key))(d.ravel(), g.ravel())
    return d, g, -fd.reshape(d.shape), -fg.reshape(d.shape)
