"""Bijections that act linearly: an elementwise scale and shift, a fixed permutation, a fixed rotation."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vlab.flows.base import Bijection


def elementwise_affine(dim: int, loc: jax.Array | None = None, scale: jax.Array | None = None) -> Bijection:
    """``x = u * exp(s) + b`` elementwise (ActNorm-like), ``log|det J| = sum_i s_i``.

    Starts at ``b = loc``, ``exp(s) = scale`` (default: the identity); giving the data's mean and standard
    deviation makes the flow's last layer standardise the data from the first step (Kingma & Dhariwal 2018).
    """
    b0 = jnp.zeros(dim) if loc is None else jnp.asarray(loc, dtype=float)
    s0 = jnp.zeros(dim) if scale is None else jnp.log(jnp.asarray(scale, dtype=float))

    def init(key):
        return {"log_scale": s0, "shift": b0}

    def forward(p, u):
        return u * jnp.exp(p["log_scale"]) + p["shift"], jnp.sum(p["log_scale"])

    def inverse(p, x):
        return (x - p["shift"]) * jnp.exp(-p["log_scale"]), -jnp.sum(p["log_scale"])

    return Bijection(init, forward, inverse)


def permutation(perm: Sequence[int]) -> Bijection:
    """``x_i = u_{perm[i]}``: a fixed reordering of the coordinates, ``log|det J| = 0``."""
    perm = np.asarray(perm, dtype=np.int32)
    if sorted(perm.tolist()) != list(range(len(perm))):
        raise ValueError(f"permutation {perm.tolist()} is not a permutation of 0..{len(perm) - 1}")
    inv = np.argsort(perm)

    def init(key):
        return {}

    def forward(p, u):
        return u[perm], jnp.zeros((), u.dtype)

    def inverse(p, x):
        return x[inv], jnp.zeros((), x.dtype)

    return Bijection(init, forward, inverse)


def rotation(dim: int, key: jax.Array) -> Bijection:
    """``x = Q u`` with a fixed random orthogonal ``Q`` (QR of a Gaussian matrix): ``log|det J| = 0``.

    Between couplings it mixes coordinates in every direction, not only along the axes a permutation swaps.
    """
    q, r = np.linalg.qr(np.asarray(jax.random.normal(key, (dim, dim)), dtype=np.float64))
    q = q * np.sign(np.diag(r))[None, :]

    def init(key):
        return {}

    def forward(p, u):
        return jnp.asarray(q, u.dtype) @ u, jnp.zeros((), u.dtype)

    def inverse(p, x):
        return jnp.asarray(q.T, x.dtype) @ x, jnp.zeros((), x.dtype)

    return Bijection(init, forward, inverse)
