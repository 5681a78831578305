"""Linear analysis of update rules at an equilibrium: the Jacobian of one step, its spectral radius, the closed
forms on bilinear games, and the kinds of rule that carry them (:data:`RULES`)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from vlab.algorithms.gda.rules import (
    Hyperparameters,
    RuleKind,
    UpdateRule,
    alternating,
    consensus,
    extragradient,
    optimistic,
    simultaneous,
)
from vlab.algorithms.gda.simulation import split_floats, state_vector
from vlab.models.games import Game


def update_jacobian(rule: UpdateRule, game: Game, z_star: Any, key: jax.Array | None = None) -> jax.Array:
    """``d step / d state`` at the equilibrium ``z_star`` by ``jax.jacobian`` (over the float leaves of the
    state). The state is first advanced one step from ``rule.init(z_star)`` so that memory (optimistic GDA's
    previous field) is in its steady regime; at an equilibrium ``F = 0`` and the point does not move."""
    key = jax.random.key(0) if key is None else key
    s1 = rule.step(game, rule.init(z_star), key)
    flat, rebuild = split_floats(s1)
    return jax.jacobian(lambda v: state_vector(rule.step(game, rebuild(v), key)))(flat)


def spectral_radius(m: jax.Array) -> jax.Array:
    """``max_i |lambda_i(M)|``: the asymptotic per-step growth factor of ``z_{k+1} = M z_k``."""
    return jnp.max(jnp.abs(jnp.linalg.eigvals(m)))


def bilinear_spectral_radius(kind: RuleKind, a: float | jax.Array, s: float | jax.Array = 1.0, *,
                             consensus_weight: float = 1.0, alpha: float = 1.0,
                             beta: float = 1.0) -> jax.Array:
    """Closed-form spectral radius of a rule of ``kind`` with step ``a`` on ``min_g max_d d^T A g``, for one
    singular value ``s`` of ``A`` (the radius of the game is the maximum over them). With ``b = a s``:

    * simultaneous   ``sqrt(1 + b^2)``                                    (seed 002 question 4)
    * alternating    ``1`` for ``b <= 2``, else ``(b^2 - 2 + sqrt((b^2 - 2)^2 - 4)) / 2``
      (determinant 1, trace ``2 - b^2``)
    * extragradient  ``sqrt((1 - b^2)^2 + b^2)``
    * optimistic     the larger root modulus of
      ``lambda^2 - (1 - a (alpha + beta) mu) lambda - a beta mu``, ``mu = i s``
    * consensus      ``sqrt((1 - a gamma s^2)^2 + b^2)``

    Args:
        kind: the kind of rule, e.g. :data:`SIMULTANEOUS`.
        a: the step size.
        s: a singular value of ``A`` (1 for ``V = d g``).
        consensus_weight: ``gamma`` of consensus optimisation.
        alpha: optimistic GDA's ``alpha``.
        beta: optimistic GDA's ``beta``.

    Returns:
        The spectral radius of the update along ``s``.
    """
    return kind.bilinear_radius(a, s, Hyperparameters(consensus_weight, alpha, beta))


def linear_update_matrix(kind: RuleKind, a: float | jax.Array, jac: jax.Array, n_d: int, *,
                         consensus_weight: float = 1.0, alpha: float = 1.0, beta: float = 1.0) -> jax.Array:
    """The update matrix of a rule of ``kind`` on a linear field ``F(z) = J z`` with ``z = (d, g)``, ``d`` the
    first ``n_d`` coordinates, written out by hand (the linearisation of every rule at an equilibrium):

    * simultaneous   ``I - a J``
    * alternating    ``[[I - a J_dd, -a J_dg], [-a J_gd (I - a J_dd), I - a J_gg + a^2 J_gd J_dg]]``
    * extragradient  ``I - a J + a^2 J^2``
    * optimistic     ``[[I - a (alpha + beta) J, a beta I], [J, 0]]`` on the state ``(z_k, F(z_{k-1}))``
    * consensus      ``I - a (J + gamma J^T J)``

    Args:
        kind: the kind of rule, e.g. :data:`SIMULTANEOUS`.
        a: the step size.
        jac: the field's Jacobian ``J``.
        n_d: the discriminator's number of coordinates.
        consensus_weight: ``gamma`` of consensus optimisation.
        alpha: optimistic GDA's ``alpha``.
        beta: optimistic GDA's ``beta``.

    Returns:
        The matrix of the update on the rule's state.
    """
    return kind.update_matrix(a, jnp.asarray(jac), n_d, Hyperparameters(consensus_weight, alpha, beta))


# ------------------------------------------------------------------------------------------- the kinds


def _eye(jac: jax.Array) -> jax.Array:
    return jnp.eye(jac.shape[0], dtype=jac.dtype)


def _alternating_radius(a: Any, s: Any, h: Hyperparameters) -> jax.Array:
    b = a * s
    t = 2 - b**2
    return jnp.where(jnp.abs(t) <= 2, 1.0, (jnp.abs(t) + jnp.sqrt(jnp.maximum(t**2 - 4, 0.0))) / 2)


def _alternating_matrix(a: Any, jac: jax.Array, n_d: int, h: Hyperparameters) -> jax.Array:
    n = jac.shape[0]
    jdd, jdg, jgd, jgg = jac[:n_d, :n_d], jac[:n_d, n_d:], jac[n_d:, :n_d], jac[n_d:, n_d:]
    i_d, i_g = jnp.eye(n_d, dtype=jac.dtype), jnp.eye(n - n_d, dtype=jac.dtype)
    top = jnp.concatenate([i_d - a * jdd, -a * jdg], axis=1)
    bottom = jnp.concatenate([-a * jgd @ (i_d - a * jdd), i_g - a * jgg + a**2 * jgd @ jdg], axis=1)
    return jnp.concatenate([top, bottom], axis=0)


def _optimistic_radius(a: Any, s: Any, h: Hyperparameters) -> jax.Array:
    mu = 1j * s
    p = 1 - a * (h.alpha + h.beta) * mu
    root = jnp.sqrt(p**2 + 4 * a * h.beta * mu)
    return jnp.maximum(jnp.abs((p + root) / 2), jnp.abs((p - root) / 2))


def _optimistic_matrix(a: Any, jac: jax.Array, n_d: int, h: Hyperparameters) -> jax.Array:
    eye = _eye(jac)
    top = jnp.concatenate([eye - a * (h.alpha + h.beta) * jac, a * h.beta * eye], axis=1)
    return jnp.concatenate([top, jnp.concatenate([jac, jnp.zeros_like(jac)], axis=1)], axis=0)


SIMULTANEOUS = RuleKind(
    make=lambda a, h: simultaneous(a),
    bilinear_radius=lambda a, s, h: jnp.sqrt(1 + (a * s) ** 2),
    update_matrix=lambda a, jac, n_d, h: _eye(jac) - a * jac,
)
ALTERNATING = RuleKind(
    make=lambda a, h: alternating(a),
    bilinear_radius=_alternating_radius,
    update_matrix=_alternating_matrix,
)
EXTRAGRADIENT = RuleKind(
    make=lambda a, h: extragradient(a),
    bilinear_radius=lambda a, s, h: jnp.sqrt((1 - (a * s) ** 2) ** 2 + (a * s) ** 2),
    update_matrix=lambda a, jac, n_d, h: _eye(jac) - a * jac + a**2 * jac @ jac,
)
OPTIMISTIC = RuleKind(
    make=lambda a, h: optimistic(a, h.alpha, h.beta),
    bilinear_radius=_optimistic_radius,
    update_matrix=_optimistic_matrix,
)
CONSENSUS = RuleKind(
    make=lambda a, h: consensus(a, h.consensus_weight),
    bilinear_radius=lambda a, s, h: jnp.sqrt((1 - a * h.consensus_weight * s**2) ** 2 + (a * s) ** 2),
    update_matrix=lambda a, jac, n_d, h: _eye(jac) - a * (jac + h.consensus_weight * jac.T @ jac),
)

# The kinds by the names configs use; only the config layer looks names up here.
RULES: dict[str, RuleKind] = {"simultaneous": SIMULTANEOUS, "alternating": ALTERNATING,
                              "extragradient": EXTRAGRADIENT, "optimistic": OPTIMISTIC, "consensus": CONSENSUS}
