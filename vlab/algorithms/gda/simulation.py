"""Trajectories of an update rule under ``jit(lax.scan)``, stopped when they leave a ball, and the spectral
radius measured from a trajectory alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from vlab.algorithms.gda.rules import UpdateRule
from vlab.models.games import Game


class Trajectory(NamedTuple):
    """A simulated run: ``dist[k] = ||z_k - z*||``, the points ``z_path`` and full states ``state_path``
    (raveled, ``steps + 1`` rows) and ``diverged_at``, the first step whose state left the ball or was not
    finite (``-1`` if none). From that step on the last valid state is repeated, never NaN."""

    dist: jax.Array
    z_path: jax.Array
    state_path: jax.Array
    diverged_at: jax.Array
    final: Any


def split_floats(state: Any) -> tuple[jax.Array, Callable[[jax.Array], Any]]:
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
    return split_floats(state)[0]


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
