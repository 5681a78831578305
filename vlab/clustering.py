"""k-means in JAX: k-means++ seeding, Lloyd iterations in ``lax.scan``, restarts vmapped; everything vmaps over seeds.

k-means minimises the inertia (within-cluster sum of squares) over centres c_1..c_K and assignments a_i:

    J(c, a) = sum_i ||x_i - c_{a_i}||^2.

Lloyd's algorithm alternates the two exact coordinate minimisations, a_i = argmin_k ||x_i - c_k||^2 and
c_k = mean{x_i : a_i = k}, so J never increases. k-means++ (Arthur & Vassilvitskii 2007) seeds c_1 uniformly among
the points and then each next centre at x_i with probability proportional to D(x_i)^2, the squared distance to the
nearest centre chosen so far (expected inertia within O(log K) of the optimum). Several restarts run side by side
(vmapped) and the one of lowest inertia is kept. Shapes are static, so one compiled program serves every restart and
every seed (the GM-VAE initialises its mixture prior this way, VaDE-style).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp


class KMeansResult(NamedTuple):
    """Centres (K, d), the assignment of every point (n,), the final inertia and its value after each Lloyd step."""

    centers: jax.Array
    labels: jax.Array
    inertia: jax.Array
    inertia_trace: jax.Array


def squared_distances(x: jax.Array, centers: jax.Array) -> jax.Array:
    """||x_i - c_k||^2 = ||x_i||^2 - 2 x_i . c_k + ||c_k||^2 for ``x`` (n, d) and ``centers`` (K, d) -> (n, K),
    clipped at 0 against round-off (one matrix product, no (n, K, d) intermediate)."""
    d2 = jnp.sum(x * x, -1)[:, None] - 2.0 * x @ centers.T + jnp.sum(centers * centers, -1)[None, :]
    return jnp.maximum(d2, 0.0)


@functools.partial(jax.jit, static_argnames=("k",))
def kmeans_plusplus(key: jax.Array, x: jax.Array, k: int) -> jax.Array:
    """k-means++ seeding: c_1 = x_i with i uniform; c_j = x_i with probability D(x_i)^2 / sum_l D(x_l)^2, where
    D(x) = min_{m < j} ||x - c_m||. Returns the (K, d) initial centres."""
    n = x.shape[0]
    keys = jax.random.split(key, k)
    first = x[jax.random.randint(keys[0], (), 0, n)]
    centers = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(first)
    d2 = jnp.sum((x - first) ** 2, -1)

    def body(j, carry):
        centers, d2 = carry
        # all points coincide with a centre (D = 0 everywhere): fall back to a uniform draw
        logits = jnp.where(jnp.sum(d2) > 0, jnp.log(jnp.maximum(d2, 1e-30)), jnp.zeros_like(d2))
        c = x[jax.random.categorical(keys[j], logits)]
        return centers.at[j].set(c), jnp.minimum(d2, jnp.sum((x - c) ** 2, -1))

    centers, _ = jax.lax.fori_loop(1, k, body, (centers, d2))
    return centers


@functools.partial(jax.jit, static_argnames=("n_iter",))
def lloyd(x: jax.Array, centers: jax.Array, n_iter: int) -> KMeansResult:
    """``n_iter`` Lloyd steps from ``centers``: assign each point to its nearest centre, move each centre to the
    mean of its points (a centre with no point stays where it is). ``inertia_trace[t]`` is J after step t's
    assignment with the centres it was assigned to, so the trace is non-increasing."""
    k = centers.shape[0]

    def step(c, _):
        d2 = squared_distances(x, c)
        a = jnp.argmin(d2, -1)
        inertia = jnp.sum(jnp.min(d2, -1))
        onehot = jax.nn.one_hot(a, k, dtype=x.dtype)
        counts = jnp.sum(onehot, 0)
        means = (onehot.T @ x) / jnp.maximum(counts, 1.0)[:, None]
        return jnp.where(counts[:, None] > 0, means, c), inertia

    centers, trace = jax.lax.scan(step, centers, None, length=n_iter)
    d2 = squared_distances(x, centers)
    return KMeansResult(centers, jnp.argmin(d2, -1), jnp.sum(jnp.min(d2, -1)), trace)


@functools.partial(jax.jit, static_argnames=("k", "n_init", "n_iter"))
def kmeans(key: jax.Array, x: jax.Array, k: int, *, n_init: int = 4, n_iter: int = 50) -> KMeansResult:
    """k-means with ``n_init`` k-means++ restarts (vmapped), each refined by ``n_iter`` Lloyd steps; the restart of
    lowest final inertia J = sum_i min_k ||x_i - c_k||^2 is returned. ``vmap`` it over keys for several seeds."""
    runs = jax.vmap(lambda kk: lloyd(x, kmeans_plusplus(kk, x, k), n_iter))(jax.random.split(key, n_init))
    best = jnp.argmin(runs.inertia)
    return jax.tree.map(lambda a: a[best], runs)


def assign(x: jax.Array, centers: jax.Array) -> jax.Array:
    """Nearest centre of each point, argmin_k ||x_i - c_k||^2 (to label points the centres were not fitted to)."""
    return jnp.argmin(squared_distances(x, centers), -1)


def spherical_gaussians(x: jax.Array, labels: jax.Array, centers: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-cluster isotropic spread and weight of a hard partition: sigma_k^2 = sum_{a_i = k} ||x_i - c_k||^2 /
    (d n_k) (the maximum-likelihood variance of N(c_k, sigma_k^2 I)) and pi_k = n_k / n. An empty cluster gets the
    pooled variance and a weight of 1/n."""
    n, d = x.shape
    onehot, counts, pi = _partition(labels, centers.shape[0], x.dtype)
    sq = jnp.sum(onehot * squared_distances(x, centers), 0)
    pooled = jnp.sum(sq) / (d * n)
    var = jnp.where(counts > 0, sq / (d * jnp.maximum(counts, 1.0)), pooled)
    return jnp.sqrt(jnp.maximum(var, 1e-12)), pi


def diagonal_gaussians(x: jax.Array, labels: jax.Array, centers: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-cluster, per-dimension spread and weight of a hard partition: sigma_kj^2 = sum_{a_i = k} (x_ij - c_kj)^2
    / n_k (the maximum-likelihood variances of N(c_k, diag sigma_k^2)), shape (K, d), and pi_k = n_k / n. An empty
    cluster gets the pooled variance of each dimension and a weight of 1/n."""
    onehot, counts, pi = _partition(labels, centers.shape[0], x.dtype)
    sq = onehot.T @ (x - centers[labels]) ** 2  # (K, d), each point against its own centre: no (n, K, d) array
    pooled = jnp.sum(sq, 0) / x.shape[0]
    var = jnp.where(counts[:, None] > 0, sq / jnp.maximum(counts, 1.0)[:, None], pooled)
    return jnp.sqrt(jnp.maximum(var, 1e-12)), pi


def _partition(labels: jax.Array, k: int, dtype) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One-hot memberships (n, K), cluster sizes n_k, and weights pi_k = n_k / n with an empty cluster counted as
    one point, so no log pi_k is -inf."""
    onehot = jax.nn.one_hot(labels, k, dtype=dtype)
    counts = jnp.sum(onehot, 0)
    return onehot, counts, jnp.maximum(counts, 1.0) / jnp.sum(jnp.maximum(counts, 1.0))
