"""Update rules for two-player games as ``(init, step)`` pairs, and the tools that analyse them.

Every rule moves ``z = (d, g)`` against the game's vector field ``F(z) = (grad_d loss_d, grad_g loss_g)``
(:func:`vlab.models.games.field`) with step size ``a``; in optax's manner a rule is a pair of pure functions with
a small NamedTuple state, composable with any :class:`vlab.models.games.Game`:

* simultaneous GDA      ``z' = z - a F(z)``  (seed 002 question 4: ``[[1, a], [-a, 1]]`` on ``V = d g``)
* alternating GDA       ``d' = d - a F_d(d, g)``, then ``g' = g - a F_g(d', g)``
* extragradient         ``z' = z - a F(z - a F(z))``                      (Korpelevich 1976)
* optimistic GDA        ``z' = z - a((alpha + beta) F(z_k) - beta F(z_{k-1}))``  (Daskalakis et al. 2018;
  the same update as ``optax.optimistic_gradient_descent``, first step included)
* consensus optimisation ``z' = z - a (F + gamma grad 1/2 ||F||^2) = z - a (F + gamma J_F^T F)``
  (Mescheder, Nowozin & Geiger 2017, "The Numerics of GANs")
* any optax transformation applied to ``F`` (:func:`from_optax`).

Analysis: :func:`simulate` runs a rule under ``jit(lax.scan)`` and stops a trajectory that leaves a ball
(reporting the step) instead of producing NaNs; :func:`update_jacobian` differentiates one step of a rule
at an equilibrium with ``jax.jacobian``; :func:`bilinear_spectral_radius` gives the closed forms for ``d^T A
g``; :func:`dmd_spectral_radius` measures the spectral radius from a simulated trajectory alone.

A :class:`RuleKind` bundles a rule's constructor with its closed forms (:data:`SIMULTANEOUS`, ...,
:data:`CONSENSUS`); :data:`RULES` names the kinds for configs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

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


# ------------------------------------------------------------------------------------------- simulation


class Trajectory(NamedTuple):
    """A simulated run: ``dist[k] = ||z_k - z*||``, the points ``z_path`` and full states ``state_path``
    (raveled, ``steps + 1`` rows) and ``diverged_at``, the first step whose state left the ball or was not
    finite (``-1`` if none). From that step on the last valid state is repeated, never NaN."""

    dist: jax.Array
    z_path: jax.Array
    state_path: jax.Array
    diverged_at: jax.Array
    final: Any


def _float_split(state: Any) -> tuple[jax.Array, Callable[[jax.Array], Any]]:
    """Ravel the floating-point leaves of ``state``; the rebuild function keeps the other leaves as
    they were."""
    leaves, treedef = jax.tree.flatten(state)
    is_float = [jnp.issubdtype(jnp.result_type(x), jnp.floating) for x in leaves]
    flat, unravel = ravel_pytree([x for x, f in zip(leaves, is_float, strict=True) if f])

    def rebuild(v: jax.Array) -> Any:
        it = iter(unravel(v))
        return treedef.unflatten([next(it) if f else x for x, f in zip(leaves, is_float, strict=True)])

    return flat, rebuild


def state_vector(state: Any) -> jax.Array:
    """The floating-point leaves of a rule's state as one vector."""
    return _float_split(state)[0]


def simulate(rule: UpdateRule, game: Game, z0: Any, key: jax.Array, steps: int, *, z_star: Any = None,
             escape: float = 1e12, record: bool = True) -> Trajectory:
    """Run ``steps`` updates of ``rule`` from ``z0`` inside one ``lax.scan``.

    The step-``k`` key is ``fold_in(key, k)``. A state that is not finite or lies farther than ``escape`` from
    ``z_star`` (default: the origin) ends the trajectory: ``diverged_at`` records the step, and the last valid
    state is kept so that nothing downstream sees NaN or inf.

    Args:
        rule: the update rule.
        game: the game it plays.
        z0: the starting point ``(d, g)``.
        key: the trajectory's key.
        steps: the number of updates.
        z_star: the point distances are measured from (default: the origin).
        escape: the radius around ``z_star`` whose exit ends the trajectory.
        record: keep the points and states (else only the distances).

    Returns:
        The :class:`Trajectory`.
    """
    z_star = jax.tree.map(jnp.zeros_like, z0) if z_star is None else z_star
    star = ravel_pytree(z_star)[0]
    s0 = rule.init(z0)

    def dist(s: Any) -> jax.Array:
        return jnp.linalg.norm(ravel_pytree(s.z)[0] - star)

    def rows(s: Any) -> tuple[jax.Array, jax.Array]:
        if not record:
            return jnp.zeros((0,)), jnp.zeros((0,))
        return ravel_pytree(s.z)[0], state_vector(s)

    def body(carry, k):
        s, dead = carry
        new = rule.step(game, s, jax.random.fold_in(key, k))
        r = dist(new)
        ok = jnp.isfinite(r) & (r <= escape) & jnp.all(jnp.isfinite(state_vector(new)))
        bad = dead < 0
        keep = bad & ok
        s = jax.tree.map(lambda n, o: jnp.where(keep, n, o), new, s)
        dead = jnp.where(bad & ~ok, k + 1, dead)
        return (s, dead), (dist(s), *rows(s))

    (final, dead), (d, zp, sp) = jax.lax.scan(body, (s0, jnp.asarray(-1)), jnp.arange(steps))
    z_row, s_row = rows(s0)
    return Trajectory(jnp.concatenate([dist(s0)[None], d]), jnp.concatenate([z_row[None], zp]),
                      jnp.concatenate([s_row[None], sp]), dead, final)


def valid_mask(traj: Trajectory) -> jax.Array:
    """``True`` for the rows of a trajectory that precede its divergence."""
    n = traj.dist.shape[0]
    return jnp.where(traj.diverged_at < 0, True, jnp.arange(n) < traj.diverged_at)


def norm_growth_rate(traj: Trajectory) -> jax.Array:
    """Measured per-step growth ``(||z_m - z*|| / ||z_0 - z*||)^(1/m)`` over the ``m`` valid steps.

    For a normal update matrix (simultaneous, extragradient, consensus on ``d^T A g``) this equals the
    spectral radius exactly when ``z_0`` lies in the dominant eigenspace; in general it tends to it
    as ``m`` grows.
    """
    m = jnp.sum(valid_mask(traj)) - 1
    return jnp.exp((jnp.log(traj.dist[m]) - jnp.log(traj.dist[0])) / m)


def dmd_spectral_radius(traj: Trajectory, skip: int = 1, floor: float = 0.0) -> jax.Array:
    """Spectral radius of the linear map fitted to the trajectory's own consecutive states (dynamic mode
    decomposition): ``s_{k+1} = M s_k`` by least squares over the valid pairs, each pair scaled by
    ``1 / ||s_k||`` so that growing and shrinking runs are equally well conditioned. Exact (to rounding) for a
    linear rule; near an equilibrium it measures the linearisation. ``skip`` drops the first pairs (optimistic
    GDA's first step uses ``F(z_0)`` in place of the missing previous field); ``floor`` drops states whose norm
    is below it (where rounding in the field, not the linear map, drives a converged run)."""
    s = traj.state_path
    x, y = s[:-1], s[1:]
    n = x.shape[0]
    norm = jnp.linalg.norm(x, axis=1)
    w = valid_mask(traj)[1:] & (jnp.arange(n) >= skip) & (norm > floor)
    scale = jnp.where(w, 1.0 / jnp.maximum(norm, jnp.finfo(x.dtype).tiny), 0.0)
    m = jnp.linalg.lstsq(x * scale[:, None], y * scale[:, None])[0]
    return jnp.max(jnp.abs(jnp.linalg.eigvals(m)))


# ------------------------------------------------------------------------------------------- linear analysis


def update_jacobian(rule: UpdateRule, game: Game, z_star: Any, key: jax.Array | None = None) -> jax.Array:
    """``d step / d state`` at the equilibrium ``z_star`` by ``jax.jacobian`` (over the float leaves of the
    state). The state is first advanced one step from ``rule.init(z_star)`` so that memory (optimistic GDA's
    previous field) is in its steady regime; at an equilibrium ``F = 0`` and the point does not move."""
    key = jax.random.key(0) if key is None else key
    s1 = rule.step(game, rule.init(z_star), key)
    flat, rebuild = _float_split(s1)
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
