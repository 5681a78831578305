"""Newton refinement of a local minimum of a function of two variables."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


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
