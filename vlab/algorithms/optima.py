"""Local minima of a function of two variables: Newton refinement, and the distinct optima a set of fits reached."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


def newton_polish(f: Callable[[jax.Array, jax.Array], jax.Array], z0: jax.Array,
                  steps: int = 10) -> tuple[jax.Array, jax.Array]:
    """Refine a local minimum of ``f(a, b)`` from ``z0 = (a, b)`` by ``steps`` Newton steps
    z <- z - H(z)^-1 grad f(z).

    Returns the refined point and whether it is a strict local minimum: finite, gradient norm below 1e-5 (float32)
    or 1e-9 (float64), Hessian positive definite (Sylvester's criterion). Jittable and vmappable.
    """
    g = jax.grad(lambda z: f(z[0], z[1]))
    h = jax.hessian(lambda z: f(z[0], z[1]))

    def newton_step(_, z):  # the 2 x 2 system by Cramer's rule (no LAPACK call for a 2 x 2 matrix)
        (a, b), (c, d) = h(z)
        r = g(z)
        det = a * d - b * c
        return z - jnp.stack([d * r[0] - b * r[1], a * r[1] - c * r[0]]) / det

    z = jax.lax.fori_loop(0, steps, newton_step, z0)
    tol = 1e-5 if z.dtype == jnp.float32 else 1e-9
    (a, b), (c, d) = h(z)
    positive_definite = (a > 0) & (a * d - b * c > 0)
    ok = jnp.all(jnp.isfinite(z)) & (jnp.linalg.norm(g(z)) < tol) & positive_definite
    return z, ok


class Optimum(NamedTuple):
    """A distinct local minimum reached by some of a set of fits: its refined ``point`` and ``value``, and the
    indices of the fits (``members``) that reached it."""

    point: np.ndarray
    value: float
    members: np.ndarray


def distinct_optima(f: Callable[[jax.Array, jax.Array], jax.Array], points: jax.Array,
                    tol: float) -> tuple[list[Optimum], np.ndarray, np.ndarray]:
    """The distinct local minima of ``f(a, b)`` that fits ending at ``points`` (shape (n, 2)) reached.

    Each point is refined by :func:`newton_polish`; it reached an optimum when the refinement lands on a strict
    local minimum within ``tol`` of it. Reached points are grouped greedily, lowest refined value first, points
    within ``tol`` of a group's first sharing it. Returns the optima (lowest value first), the mask of points that
    reached one, and f at every point.
    """

    def one(z):
        zr, ok = newton_polish(f, z)
        return zr, f(z[0], z[1]), f(zr[0], zr[1]), ok

    refined, value, refined_value, ok = (np.asarray(a) for a in jax.jit(jax.vmap(one))(jnp.asarray(points)))
    reached = ok & (np.linalg.norm(refined - np.asarray(points), axis=1) < tol)
    idx = np.flatnonzero(reached)
    groups: list[list[int]] = []
    for i in idx[np.argsort(refined_value[idx], kind="stable")]:
        for g in groups:
            if np.linalg.norm(refined[i] - refined[g[0]]) < tol:
                g.append(int(i))
                break
        else:
            groups.append([int(i)])
    optima = []
    for g in groups:
        members = np.asarray(g)
        best = members[np.argmin(refined_value[members])]
        optima.append(Optimum(refined[best], float(refined_value[best]), members))
    return optima, reached, value
