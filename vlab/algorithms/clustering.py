"""k-means in JAX: k-means++ seeding, Lloyd iterations in ``lax.scan``, restarts vmapped; everything vmaps over seeds.

k-means minimises the inertia (within-cluster sum of squares) over centres c_1..c_K and assignments a_i:

    J(c, a) = sum_i ||x_i - c_{a_i}||^2.

Lloyd's algorithm alternates the two exact coordinate minimisations, a_i = argmin_k ||x_i - c_k||^2 and
c_k = mean{x_i : a_i = k}, so J never increases. k-means++ (Arthur & Vassilvitskii 2007) seeds c_1 uniformly among
the points and then each next centre at x_i with probability proportional to D(x_i)^2, the squared distance to the
nearest centre chosen so far (expected inertia within O(log K) of the optimum); the greedy variant used here (as in
scikit-learn) draws 2 + floor(log K) such candidates per centre and keeps the one leaving the smallest potential
sum_i D(x_i)^2, which puts two seeds in one cluster less often. Several restarts run side by side
(vmapped) and the one of lowest inertia is kept. Shapes are static, so one compiled program serves every restart and
every seed (the GM-VAE initialises its mixture prior this way, VaDE-style).

A hard partition gives each cluster a Gaussian (spherical, diagonal or full covariance: :func:`spherical_gaussians`,
:func:`diagonal_gaussians`, :func:`full_gaussians`; the three :class:`CovarianceForm` s :data:`SPHERICAL`,
:data:`DIAGONAL` and :data:`FULL` carry them), and :func:`gmm_em` refines such a mixture by expectation-
maximisation on the soft memberships (:func:`component_log_probs` evaluates every component at every point);
:func:`gmm` does both from several k-means starts and keeps the most likely mixture, and :func:`mixture_start` gives
the mixture a model's Gaussian-mixture prior starts from (k-means' partition, or EM refining it).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from vlab.distributions import LOG_2PI


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


def n_local_trials(k: int) -> int:
    """Candidates drawn per centre by greedy k-means++: 2 + floor(log K), scikit-learn's choice."""
    return 2 + int(math.log(k))


@functools.partial(jax.jit, static_argnames=("k", "n_trials"))
def kmeans_plusplus(key: jax.Array, x: jax.Array, k: int, n_trials: int | None = None) -> jax.Array:
    """Greedy k-means++ seeding: c_1 = x_i with i uniform; for each next centre, T candidates are drawn i.i.d. with
    probability D(x_i)^2 / sum_l D(x_l)^2, where D(x) = min_{m < j} ||x - c_m||, and the candidate c minimising the
    potential sum_i min(D(x_i)^2, ||x_i - c||^2) becomes c_j. T = ``n_trials`` defaults to :func:`n_local_trials`;
    T = 1 is the vanilla k-means++ of Arthur & Vassilvitskii. Returns the (K, d) initial centres."""
    n = x.shape[0]
    t = n_local_trials(k) if n_trials is None else n_trials
    keys = jax.random.split(key, k)
    first = x[jax.random.randint(keys[0], (), 0, n)]
    centers = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(first)
    d2 = jnp.sum((x - first) ** 2, -1)

    def body(j, carry):
        centers, d2 = carry
        # all points coincide with a centre (D = 0 everywhere): fall back to uniform draws
        logits = jnp.where(jnp.sum(d2) > 0, jnp.where(d2 > 0, jnp.log(d2), -jnp.inf), 0.0)
        cand = x[jax.random.categorical(keys[j], logits, shape=(t,))]  # (T, d)
        # each candidate's D^2 after adding it, the direct sum (exactly 0 at a chosen point)
        new_d2 = jnp.minimum(d2[:, None], jnp.sum((x[:, None, :] - cand[None]) ** 2, -1))  # (n, T)
        best = jnp.argmin(jnp.sum(new_d2, 0))
        return centers.at[j].set(cand[best]), new_d2[:, best]

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


@functools.partial(jax.jit, static_argnames=("k", "n_init", "n_iter", "n_trials"))
def kmeans(key: jax.Array, x: jax.Array, k: int, *, n_init: int = 4, n_iter: int = 50,
           n_trials: int | None = None) -> KMeansResult:
    """k-means with ``n_init`` greedy k-means++ restarts (vmapped), each refined by ``n_iter`` Lloyd steps; the
    restart of lowest final inertia J = sum_i min_k ||x_i - c_k||^2 is returned. ``vmap`` it over keys for several
    seeds.

    Args:
        key: the randomness of the seedings.
        x: the points ``(n, d)``.
        k: number of centres K.
        n_init: restarts.
        n_iter: Lloyd steps of each restart.
        n_trials: candidates per centre of the greedy seeding (see :func:`kmeans_plusplus`; None: its default).

    Returns:
        The :class:`KMeansResult` of the restart of lowest inertia.
    """
    runs = _kmeans_runs(key, x, k, n_init, n_iter, n_trials)
    return _pick(runs, jnp.argmin(runs.inertia))


def _kmeans_runs(key: jax.Array, x: jax.Array, k: int, n_init: int, n_iter: int,
                 n_trials: int | None = None) -> KMeansResult:
    """The ``n_init`` restarts of :func:`kmeans` side by side (vmapped), every field stacked over restarts."""
    seed = lambda kk: kmeans_plusplus(kk, x, k, n_trials)  # noqa: E731
    return jax.vmap(lambda kk: lloyd(x, seed(kk), n_iter))(jax.random.split(key, n_init))


def _pick(runs, i: jax.Array):
    """Restart ``i`` of stacked results."""
    return jax.tree.map(lambda a: a[i], runs)


def nearest_center(x: jax.Array, centers: jax.Array) -> jax.Array:
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


def full_gaussians(x: jax.Array, labels: jax.Array, centers: jax.Array, *, ridge: float = 1e-6
                   ) -> tuple[jax.Array, jax.Array]:
    """Per-cluster full covariance of a hard partition as its lower Cholesky factor L_k, Sigma_k = L_k L_k^T =
    sum_{a_i = k} (x_i - c_k)(x_i - c_k)^T / n_k + ridge * tr(S)/d I (the maximum-likelihood covariance of
    N(c_k, Sigma_k), S the pooled covariance, the ridge keeping a flat cluster positive definite), shape (K, d, d),
    and pi_k = n_k / n. An empty cluster gets the pooled covariance and a weight of 1/n."""
    onehot, counts, pi = _partition(labels, centers.shape[0], x.dtype)
    diff = x - centers[labels]
    scatter = jnp.einsum("nk,ni,nj->kij", onehot, diff, diff)
    pooled = jnp.sum(scatter, 0) / x.shape[0]
    cov = jnp.where(counts[:, None, None] > 0, scatter / jnp.maximum(counts, 1.0)[:, None, None], pooled)
    return _cholesky_with_ridge(cov, pooled, ridge), pi


def _ridge(pooled: jax.Array, ridge: float) -> jax.Array:
    """The variance added to every covariance: ``ridge`` times the mean variance tr(S)/d of the pooled covariance S
    (plus the smallest normal float, so a zero ridge still leaves a flat cluster invertible)."""
    return ridge * jnp.trace(pooled) / pooled.shape[-1] + jnp.finfo(pooled.dtype).tiny


def _cholesky_with_ridge(cov: jax.Array, pooled: jax.Array, ridge: float) -> jax.Array:
    d = cov.shape[-1]
    return jnp.linalg.cholesky(cov + _ridge(pooled, ridge) * jnp.eye(d, dtype=cov.dtype))


def component_log_probs(x: jax.Array, mu: jax.Array, scale: jax.Array) -> jax.Array:
    """log N(x; mu_k, Sigma_k) of every point (..., d) under every component -> (..., K), for ``scale`` of shape (K,)
    (Sigma_k = s_k^2 I), (K, d) (Sigma_k = diag s_k^2) or (K, d, d) (lower Cholesky factor L_k, Sigma_k = L_k L_k^T):

        log N(x; mu, L L^T) = -||L^{-1} (x - mu)||^2 / 2 - sum_j log L_jj - d log(2 pi) / 2."""
    diff = x[..., None, :] - mu  # (..., K, d)
    d = mu.shape[-1]
    if scale.ndim == 3:
        eye = jnp.broadcast_to(jnp.eye(d, dtype=scale.dtype), scale.shape)
        inv = jax.scipy.linalg.solve_triangular(scale, eye, lower=True)  # L_k^{-1}, (K, d, d)
        y = jnp.einsum("kij,...kj->...ki", inv, diff)
        log_det = jnp.sum(jnp.log(jnp.diagonal(scale, axis1=-2, axis2=-1)), -1)
    else:
        s = scale if scale.ndim == 2 else jnp.broadcast_to(scale[:, None], mu.shape)
        y = diff / s
        log_det = jnp.sum(jnp.log(s), -1)
    return -0.5 * jnp.sum(y * y, -1) - log_det - 0.5 * d * LOG_2PI


class GMMResult(NamedTuple):
    """A Gaussian mixture after EM: means (K, d), scales as in :func:`component_log_probs`, weights (K,), the hard
    assignment argmax_k r_ik of every point, the final mean log-likelihood and its value before each EM step."""

    means: jax.Array
    scales: jax.Array
    weights: jax.Array
    labels: jax.Array
    log_likelihood: jax.Array
    log_likelihood_trace: jax.Array


@functools.partial(jax.jit, static_argnames=("n_iter",))
def gmm_em(x: jax.Array, means: jax.Array, scales: jax.Array, weights: jax.Array, n_iter: int, *,
           ridge: float = 1e-6) -> GMMResult:
    """``n_iter`` steps of expectation-maximisation for a Gaussian mixture sum_k pi_k N(x; mu_k, Sigma_k), the
    covariance form fixed by the shape of ``scales`` (see :func:`component_log_probs`).

    E step: responsibilities r_ik = pi_k N(x_i; mu_k, Sigma_k) / sum_l pi_l N(x_i; mu_l, Sigma_l).
    M step, with n_k = sum_i r_ik: pi_k = n_k / n, mu_k = sum_i r_ik x_i / n_k and Sigma_k the responsibility-
    weighted scatter S_k = sum_i r_ik (x_i - mu_k)(x_i - mu_k)^T / n_k itself (full), its diagonal (diagonal) or
    tr(S_k)/d (spherical); a small ridge keeps every Sigma_k positive definite. The mean log-likelihood
    (1/n) sum_i log sum_k pi_k N(x_i; mu_k, Sigma_k) never decreases (up to the ridge).

    Args:
        x: the points ``(n, d)``.
        means: the starting mu_k ``(K, d)``.
        scales: the starting scales, (K,), (K, d) or (K, d, d) as in :func:`component_log_probs`.
        weights: the starting pi_k ``(K,)``.
        n_iter: EM steps.
        ridge: the ridge, a fraction of the data's mean variance.

    Returns:
        The :class:`GMMResult` after the last step.
    """
    n, d = x.shape
    eps = _ridge(jnp.cov(x, rowvar=False).reshape(d, d), ridge)

    def e_step(mu, scale, pi):
        logp = jnp.log(pi) + component_log_probs(x, mu, scale)
        norm = jax.scipy.special.logsumexp(logp, -1)
        return jnp.exp(logp - norm[:, None]), jnp.mean(norm)

    def step(carry, _):
        mu, scale, pi = carry
        r, ll = e_step(mu, scale, pi)
        nk = jnp.sum(r, 0) + 10 * jnp.finfo(x.dtype).tiny
        mu = (r.T @ x) / nk[:, None]
        diff = x[:, None, :] - mu  # (n, K, d)
        if scale.ndim == 3:
            cov = jnp.einsum("nki,nkj->kij", r[:, :, None] * diff, diff) / nk[:, None, None]  # batched over k
            scale = jnp.linalg.cholesky(cov + eps * jnp.eye(d, dtype=x.dtype))
        else:
            var = jnp.einsum("nk,nkj->kj", r, diff * diff) / nk[:, None]
            scale = jnp.sqrt((var if scale.ndim == 2 else jnp.mean(var, -1)) + eps)
        return (mu, scale, nk / jnp.sum(nk)), ll

    (mu, scale, pi), trace = jax.lax.scan(step, (means, scales, weights), None, length=n_iter)
    r, ll = e_step(mu, scale, pi)
    return GMMResult(mu, scale, pi, jnp.argmax(r, -1), ll, trace)


def _spherical_scales(sigma: jax.Array, d: int) -> jax.Array:
    return sigma


def _diagonal_scales(sigma: jax.Array, d: int) -> jax.Array:
    return jnp.broadcast_to(sigma[:, None], (sigma.shape[0], d))


def _full_scales(sigma: jax.Array, d: int) -> jax.Array:
    return sigma[:, None, None] * jnp.eye(d, dtype=sigma.dtype)


class CovarianceForm(NamedTuple):
    """The form of a mixture's covariances Sigma_k, as the shape of its scales (see :func:`component_log_probs`).

    ``partition(x, labels, centers) -> (scales, weights)`` gives a hard partition's maximum-likelihood Gaussians in
    this form; ``isotropic(sigma, d)`` writes Sigma_k = sigma_k^2 I (``sigma`` of shape (K,)) in this form.
    """

    partition: Callable[[jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]
    isotropic: Callable[[jax.Array, int], jax.Array]


SPHERICAL = CovarianceForm(spherical_gaussians, _spherical_scales)
"""Sigma_k = sigma_k^2 I: scales (K,)."""

DIAGONAL = CovarianceForm(diagonal_gaussians, _diagonal_scales)
"""Sigma_k = diag sigma_k^2: scales (K, d)."""

FULL = CovarianceForm(full_gaussians, _full_scales)
"""Sigma_k = L_k L_k^T: lower Cholesky factors (K, d, d)."""


@functools.partial(jax.jit, static_argnames=("k", "covariance", "n_init", "kmeans_iters", "em_iters"))
def gmm(key: jax.Array, x: jax.Array, k: int, *, covariance: CovarianceForm = FULL, n_init: int = 4,
        kmeans_iters: int = 50, em_iters: int = 100) -> GMMResult:
    """A Gaussian mixture fitted by maximum likelihood from ``n_init`` starts: each is k-means++ seeding and
    ``kmeans_iters`` Lloyd steps (the restarts of :func:`kmeans`, vmapped), then, one start at a time, the
    partition's Gaussians and ``em_iters`` EM steps (:func:`gmm_em`); the start of highest final log-likelihood is
    returned (EM, like k-means, finds a local optimum). ``vmap`` it over keys for several seeds.

    Args:
        key: the randomness of the k-means seedings.
        x: the points ``(n, d)``.
        k: number of components K.
        covariance: :data:`SPHERICAL`, :data:`DIAGONAL` or :data:`FULL`.
        n_init: starts.
        kmeans_iters: Lloyd steps of each start.
        em_iters: EM steps from each start.

    Returns:
        The :class:`GMMResult` of the most likely start.
    """
    runs = _em_runs(x, _kmeans_runs(key, x, k, n_init, kmeans_iters), covariance, em_iters)
    return _pick(runs, jnp.argmax(runs.log_likelihood))


def _em_runs(x: jax.Array, starts: KMeansResult, covariance: CovarianceForm, em_iters: int) -> GMMResult:
    """:func:`gmm_em` from the Gaussians of each stacked k-means partition, one start at a time (``lax.map``: one
    (n, K, d) array per step, not one per start)."""

    def one(km: KMeansResult) -> GMMResult:
        return gmm_em(x, km.centers, *covariance.partition(x, km.labels, km.centers), em_iters)

    return jax.lax.map(one, starts)


class MixtureStart(NamedTuple):
    """A Gaussian mixture started from k-means: the k-means fit of lowest inertia, the mixture's means (K, d),
    scales (as in :func:`component_log_probs`) and weights (K,), and EM's mean log-likelihood before each of its steps
    (empty without EM)."""

    kmeans: KMeansResult
    means: jax.Array
    scales: jax.Array
    weights: jax.Array
    log_likelihood_trace: jax.Array


@functools.partial(jax.jit, static_argnames=("k", "covariance", "n_init", "kmeans_iters", "em_iters"))
def mixture_start(key: jax.Array, x: jax.Array, k: int, *, covariance: CovarianceForm = SPHERICAL, n_init: int = 4,
                  kmeans_iters: int = 50, em_iters: int = 0) -> MixtureStart:
    """The mixture a Gaussian-mixture prior starts from (VaDE-style): :func:`kmeans` with ``n_init`` restarts and,
    with ``em_iters = 0``, the Gaussians of its partition of lowest inertia (mu_k = c_k and the cluster's
    maximum-likelihood covariance and weight); with ``em_iters > 0``, the mixture of highest likelihood after EM
    from each of those restarts (what :func:`gmm` returns for ``key``; the k-means restarts run once for both).
    ``vmap`` it over keys for several seeds.

    Args:
        key: the randomness of the k-means seedings.
        x: the points ``(n, d)``.
        k: number of components K.
        covariance: :data:`SPHERICAL`, :data:`DIAGONAL` or :data:`FULL`.
        n_init: k-means restarts.
        kmeans_iters: Lloyd steps of each restart.
        em_iters: EM steps from each restart (0: none).

    Returns:
        The :class:`MixtureStart`.
    """
    starts = _kmeans_runs(key, x, k, n_init, kmeans_iters)
    km = _pick(starts, jnp.argmin(starts.inertia))
    if em_iters > 0:  # the same k-means restarts, each refined by EM
        runs = _em_runs(x, starts, covariance, em_iters)
        g = _pick(runs, jnp.argmax(runs.log_likelihood))
        return MixtureStart(km, g.means, g.scales, g.weights, g.log_likelihood_trace)
    scales, weights = covariance.partition(x, km.labels, km.centers)
    return MixtureStart(km, km.centers, scales, weights, jnp.zeros((0,), x.dtype))


def mixture_assign(x: jax.Array, means: jax.Array, scales: jax.Array, weights: jax.Array) -> jax.Array:
    """The most probable component of each point under the mixture, argmax_k log pi_k + log N(x; mu_k, Sigma_k)
    (``scales`` as in :func:`component_log_probs`): the hard assignment of points it was not fitted to."""
    return jnp.argmax(jnp.log(weights) + component_log_probs(x, means, scales), -1)


COVARIANCES: dict[str, CovarianceForm] = {"spherical": SPHERICAL, "diagonal": DIAGONAL, "full": FULL}
"""The covariance forms by the names configs use (``mixture.covariance``)."""
