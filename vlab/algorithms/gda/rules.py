"""Update rules for two-player games as ``(init, step)`` pairs in optax's manner (see :mod:`vlab.algorithms.gda`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from vlab.keys import stream
from vlab.models.games import Game, field, grad_d, grad_g


class UpdateRule(NamedTuple):
    """``init(z) -> state`` and ``step(game, state, key) -> state``; ``state.z`` is the current ``(d, g)``. A rule
    that evaluates the game more than once a step gives each evaluation its own named stream of ``key``."""

    init: Callable[[Any], Any]
    step: Callable[[Game, Any, jax.Array], Any]


class PointState(NamedTuple):
    """The state of a memoryless rule: the point ``z = (d, g)``."""

    z: Any


class OptimisticState(NamedTuple):
    """Optimistic GDA remembers the previous field value; ``initial`` marks the first step (no
    previous one)."""

    z: Any
    prev: Any
    initial: jax.Array


class OptaxState(NamedTuple):
    """A point and the state of the optax transformation applied to the field."""

    z: Any
    opt_state: Any


def _move(z: Any, direction: Any, a: jax.Array | float) -> Any:
    return jax.tree.map(lambda x, v: x - a * v, z, direction)


def simultaneous(a: float | jax.Array) -> UpdateRule:
    """Simultaneous gradient descent-ascent ``z_{k+1} = z_k - a F(z_k)``.

    On ``V = d g`` this is ``(d, g) -> (d + a g, g - a d)``, the matrix ``[[1, a], [-a, 1]]`` with eigenvalues
    ``1 +- i a`` and modulus ``sqrt(1 + a^2) > 1``: it diverges for every ``a > 0`` (seed 002 question 4).
    """
    return UpdateRule(PointState, lambda game, s, key: PointState(_move(s.z, field(game, s.z, key), a)))


def alternating(a: float | jax.Array) -> UpdateRule:
    """Alternating GDA: the discriminator moves first, the generator answers the new discriminator.

    On ``V = d g`` the map is ``[[1, a], [-a, 1 - a^2]]``: determinant 1 and trace ``2 - a^2``, so the
    eigenvalues stay on the unit circle for ``a <= 2`` (bounded orbits, neither converging nor diverging;
    Gidel et al. 2019, "Negative momentum for improved game dynamics").
    """

    def step(game: Game, s: PointState, key: jax.Array) -> PointState:
        d, g = s.z
        d = _move(d, grad_d(game, d, g, stream(key, "d")), a)
        g = _move(g, grad_g(game, d, g, stream(key, "g")), a)
        return PointState((d, g))

    return UpdateRule(PointState, step)


def extragradient(a: float | jax.Array) -> UpdateRule:
    """Extragradient: look ahead ``z_h = z - a F(z)``, then step ``z' = z - a F(z_h)`` (Korpelevich 1976).

    Linear field ``F = J z``: ``z' = (I - a J + a^2 J^2) z``; on ``V = d g`` (``J`` eigenvalues ``+- i``) the
    eigenvalues are ``1 - a^2 -+ i a`` with modulus ``sqrt(1 - a^2 + a^4) < 1`` for ``0 < a < 1``.
    """

    def step(game: Game, s: PointState, key: jax.Array) -> PointState:
        half = _move(s.z, field(game, s.z, stream(key, "look-ahead")), a)
        return PointState(_move(s.z, field(game, half, stream(key, "step")), a))

    return UpdateRule(PointState, step)


def optimistic(a: float | jax.Array, alpha: float = 1.0, beta: float = 1.0) -> UpdateRule:
    """Optimistic GDA ``z_{k+1} = z_k - a((alpha + beta) F(z_k) - beta F(z_{k-1}))``, ``F(z_{-1}) = F(z_0)``.

    This is ``optax.optimistic_gradient_descent(a, alpha, beta)`` applied to the field, step for step
    (Mokhtari, Ozdaglar & Pattathil 2019). On a linear field with eigenvalue ``mu`` the iterates follow
    ``lambda^2 - (1 - a (alpha + beta) mu) lambda - a beta mu = 0``; on ``V = d g`` (``mu = +- i``) both roots
    lie inside the unit circle for small ``a`` (Daskalakis et al. 2018, "Training GANs with optimism").
    """

    def init(z: Any) -> OptimisticState:
        return OptimisticState(z, jax.tree.map(jnp.zeros_like, z), jnp.array(True))

    def step(game: Game, s: OptimisticState, key: jax.Array) -> OptimisticState:
        f = field(game, s.z, key)
        prev = jax.tree.map(lambda p, c: jnp.where(s.initial, c, p), s.prev, f)
        u = jax.tree.map(lambda c, p: (alpha + beta) * c - beta * p, f, prev)
        return OptimisticState(_move(s.z, u, a), f, jnp.array(False))

    return UpdateRule(init, step)


def consensus(a: float | jax.Array, gamma: float = 1.0) -> UpdateRule:
    """Consensus optimisation ``z' = z - a (F + gamma grad_z 1/2 ||F(z)||^2) = z - a (F + gamma J_F^T F)``.

    The extra term (by ``jax.vjp``) pulls toward points where the field vanishes (Mescheder et al. 2017). On
    ``V = d g``: ``J_F^T J_F = I``, eigenvalues ``1 - a gamma -+ i a``, modulus
    ``sqrt((1 - a gamma)^2 + a^2)``, below 1 for ``0 < a < 2 gamma / (1 + gamma^2)``.
    """

    def step(game: Game, s: PointState, key: jax.Array) -> PointState:
        f, vjp = jax.vjp(lambda z: field(game, z, key), s.z)
        (jtf,) = vjp(f)
        return PointState(_move(s.z, jax.tree.map(lambda u, v: u + gamma * v, f, jtf), a))

    return UpdateRule(PointState, step)


def from_optax(tx: optax.GradientTransformation) -> UpdateRule:
    """Apply an optax transformation to the game's field: ``u, s = tx.update(F(z), s, z)``, ``z' = z + u``."""

    def step(game: Game, s: OptaxState, key: jax.Array) -> OptaxState:
        updates, opt_state = tx.update(field(game, s.z, key), s.opt_state, s.z)
        return OptaxState(optax.apply_updates(s.z, updates), opt_state)

    return UpdateRule(lambda z: OptaxState(z, tx.init(z)), step)


class Hyperparameters(NamedTuple):
    """The rules' own hyperparameters; each rule reads its own: consensus optimisation's ``gamma``
    (``consensus_weight``), optimistic GDA's ``alpha`` and ``beta``."""

    consensus_weight: float | jax.Array = 1.0
    alpha: float | jax.Array = 1.0
    beta: float | jax.Array = 1.0


class RuleKind(NamedTuple):
    """A kind of update rule: ``make(a, h)`` builds it with step size ``a`` and :class:`Hyperparameters` ``h``;
    ``bilinear_radius(a, s, h)`` and ``update_matrix(a, jac, n_d, h)`` are its closed forms
    (:func:`bilinear_spectral_radius`, :func:`linear_update_matrix`)."""

    make: Callable[[Any, Hyperparameters], UpdateRule]
    bilinear_radius: Callable[[Any, Any, Hyperparameters], jax.Array]
    update_matrix: Callable[[Any, jax.Array, int, Hyperparameters], jax.Array]


def make_rule(kind: RuleKind, a: float | jax.Array, *, consensus_weight: float = 1.0, alpha: float = 1.0,
              beta: float = 1.0) -> UpdateRule:
    """The update rule of ``kind`` (e.g. :data:`SIMULTANEOUS`) with step size ``a``.

    Args:
        kind: the kind of rule.
        a: the step size (``> 0``).
        consensus_weight: ``gamma`` of consensus optimisation.
        alpha: optimistic GDA's weight of the current field.
        beta: optimistic GDA's weight of the change of the field.

    Returns:
        The rule's ``(init, step)`` pair.
    """
    if not isinstance(kind, RuleKind):
        raise TypeError(f"rule {kind!r} is not a RuleKind: expected e.g. vlab.algorithms.gda.SIMULTANEOUS")
    if isinstance(a, int | float) and not a > 0:
        raise ValueError(f"step size {a} is not valid: expected a number > 0")
    return kind.make(a, Hyperparameters(consensus_weight, alpha, beta))
