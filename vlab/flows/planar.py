"""Planar flows (Rezende & Mohamed 2015), with the constraint that keeps them invertible."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vlab.flows.base import Bijection


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
