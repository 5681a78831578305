"""Objectives and estimates for normalizing flows ``x = F(u)``, ``u ~ P_U = N(0, I)`` (seed 002 question 3).

* Forward KL (samples of ``P_X`` available, question 3.2b): ``KL[P_X || P_F(U)] = -E_{P_X}[log P_F(U)(x)] - H[P_X]``
  and the data entropy is a constant, so training minimises the negative log-likelihood
  ``-(1/N) sum_n [log P_U(F^-1(x_n)) + log|det J_F^-1(x_n)|]``.
* Reverse KL (``log p~ = log P_X + log Z`` evaluable, question 3.2a):
  ``KL[P_F(U) || P_X] = E_{u ~ P_U}[log P_U(u) - log|det J_F(u)| - log p~(F(u))] + log Z``, estimated with
  reparameterised samples; minus its first term is the ELBO, a lower bound on ``log Z``.
* The equivalence (question 3.1): ``KL[P_X || P_F(U)] = KL[P_F^-1(X) || P_U]`` — the same divergence measured in
  data space or after pulling the data back to the base space. :func:`kl_data_space` and
  :func:`kl_base_space` estimate the two sides along different code paths.

Losses have the training engine's signature ``loss(params, batch, key, hp) -> (loss, aux)``
(:func:`vlab.engine.fit`; ``hp["step"]`` is the global step); estimates return means with their Monte Carlo
standard errors, and :func:`forward_estimates` / :func:`reverse_estimates` evaluate one trained flow (jittable,
``jax.vmap`` them over members).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp

from vlab.distributions.divergences import mean_and_stderr
from vlab.flows import Bijection, log_prob, sample_and_log_prob, standard_normal_log_prob

LogDensity = Callable[[jax.Array], jax.Array]


def flow_log_prob(flow: Bijection, params: Any, x: jax.Array) -> jax.Array:
    """``log P_F(U)(x_n) = log P_U(F^-1(x_n)) + log|det J_F^-1(x_n)|`` for a batch ``x`` of shape ``(n, d)``."""
    return jax.vmap(log_prob, in_axes=(None, None, 0))(flow, params, x)


def forward_kl(flow: Bijection, params: Any, x: jax.Array) -> jax.Array:
    """The forward-KL training loss: the mean negative log-likelihood ``-(1/N) sum_n log P_F(U)(x_n)``.

    Equal to ``KL[P_X || P_F(U)] + H[P_X]`` in expectation (seed 002 question 3.2b, eqs. 3-4).
    """
    return -jnp.mean(flow_log_prob(flow, params, x))


def forward_kl_loss(flow: Bijection) -> Callable:
    """``loss(params, batch, key, hp) = forward_kl(flow, params, batch)`` for :func:`vlab.engine.fit`."""

    def loss(params, batch, key, hp):
        nll = forward_kl(flow, params, batch)
        return nll, {"nll": nll}

    return loss


def sample_log_weights(flow: Bijection, params: Any, key: jax.Array, log_p: LogDensity, n: int, dim: int):
    """Samples ``x = F(u)`` of the flow and their log importance weights ``log w = log p~(x) - log q(x)``.

    ``log q(x) = log P_U(u) - log|det J_F(u)|``; the weights are reparameterised (differentiable in ``params``).

    Args:
        flow: the flow ``F``.
        params: its parameters.
        key: the key of the base draws ``u ~ N(0, I)``.
        log_p: the unnormalised target log-density ``log p~`` of one point.
        n: the number of samples.
        dim: the dimension of ``u`` and ``x``.

    Returns:
        ``(x, log_w)``: the samples, shape ``(n, dim)``, and their log weights, shape ``(n,)``.
    """
    x, log_q = sample_and_log_prob(flow, params, key, n, dim)
    return x, jax.vmap(log_p)(x) - log_q


def reverse_kl(flow: Bijection, params: Any, key: jax.Array, log_p: LogDensity, n: int, dim: int) -> jax.Array:
    """``E_{u ~ P_U}[log P_U(u) - log|det J_F(u)| - log p~(F(u))]`` by ``n`` reparameterised samples: the
    reverse KL ``KL[P_F(U) || P_X]`` minus ``log Z`` (seed 002 question 3.2a, eqs. 1-2), i.e. ``-ELBO``.

    Args:
        flow, params, key, log_p, n, dim: as in :func:`sample_log_weights`.

    Returns:
        The scalar estimate ``-mean(log w)``.
    """
    return -jnp.mean(sample_log_weights(flow, params, key, log_p, n, dim)[1])


def reverse_kl_stl(flow: Bijection, params: Any, key: jax.Array, log_p: LogDensity, n: int,
                   dim: int) -> jax.Array:
    """The reverse KL (minus ``log Z``) with the sticking-the-landing gradient (Roeder et al. 2017).

    Same value as :func:`reverse_kl`; ``log q`` is re-evaluated at ``x = F(u)`` through the inverse pass with
    the parameters held fixed, ``log q_stop(theta)(x_theta(u))``, which drops the score term ``E_q[grad log q]``
    (zero in expectation) from the gradient: its variance vanishes as ``q`` approaches the target.

    Args:
        flow, params, key, log_p, n, dim: as in :func:`sample_log_weights`.

    Returns:
        The scalar estimate ``mean(log q - log p~)``.
    """
    log_q, lp = reverse_kl_terms(flow, params, key, log_p, n, dim, stick_the_landing=True)
    return jnp.mean(log_q - lp)


def reverse_kl_terms(flow: Bijection, params: Any, key: jax.Array, log_p: LogDensity, n: int, dim: int,
                     stick_the_landing: bool = False) -> tuple[jax.Array, jax.Array]:
    """``(log q(x), log p~(x))`` at ``n`` reparameterised samples ``x = F(u)``, ``u ~ P_U``: the two terms of every
    reverse-KL objective. ``log q = log P_U(u) - log|det J_F(u)|``, or with ``stick_the_landing`` ``log q`` re-evaluated
    at ``x`` through the inverse pass with the parameters held (:func:`reverse_kl_stl`).

    Args:
        flow, params, key, log_p, n, dim: as in :func:`sample_log_weights`.
        stick_the_landing: hold the parameters in ``log q`` (the sticking-the-landing gradient).

    Returns:
        ``(log_q, log_p)``, each of shape ``(n,)``.
    """
    if stick_the_landing:
        u = jax.random.normal(key, (n, dim))
        x, _ = jax.vmap(flow.forward, in_axes=(None, 0))(params, u)
        log_q = flow_log_prob(flow, jax.lax.stop_gradient(params), x)
    else:
        x, log_q = sample_and_log_prob(flow, params, key, n, dim)
    return log_q, jax.vmap(log_p)(x)


def reverse_kl_loss(flow: Bijection, log_p: LogDensity, n: int, dim: int, stick_the_landing: bool = False):
    """``loss(params, batch, key, hp) = reverse_kl(...)`` (or :func:`reverse_kl_stl`) for
    :func:`vlab.engine.fit`; ``batch`` and ``hp`` are unused.

    Args:
        flow: the flow ``F``.
        log_p: the unnormalised target log-density ``log p~`` of one point.
        n: flow samples per step.
        dim: the dimension of the flow.
        stick_the_landing: use the sticking-the-landing gradient (:func:`reverse_kl_terms`).

    Returns:
        The loss function; its ``aux`` holds ``elbo = -loss``.
    """

    def loss(params, batch, key, hp):
        log_q, lp = reverse_kl_terms(flow, params, key, log_p, n, dim, stick_the_landing)
        kl = jnp.mean(log_q - lp)
        return kl, {"elbo": -kl}

    return loss


def tempered_beta(step: jax.Array, beta0: jax.Array, anneal_steps: jax.Array) -> jax.Array:
    """The inverse temperature ``beta_t = beta0 + (1 - beta0) min(t / T, 1)`` at step ``t``: it rises linearly
    from ``beta0`` at ``t = 0`` to 1 at ``t = T = anneal_steps`` and stays there (``T = 0``: always 1). Jittable in
    all three arguments (``beta0`` and ``T`` may be per-member hyperparameters)."""
    dtype = jnp.result_type(float)
    t, big_t = jnp.asarray(step, dtype), jnp.asarray(anneal_steps, dtype)
    frac = jnp.where(big_t > 0, jnp.minimum(t / jnp.maximum(big_t, 1.0), 1.0), 1.0)
    return jnp.asarray(beta0, dtype) + (1.0 - jnp.asarray(beta0, dtype)) * frac


def tempering_schedule(beta0: float, anneal_steps: int) -> Callable[[jax.Array], jax.Array]:
    """:func:`tempered_beta` as a function of the step for fixed ``0 < beta0 <= 1`` and ``anneal_steps >= 0``
    (anything else is a ``ValueError``)."""
    if not 0.0 < beta0 <= 1.0:
        raise ValueError(f"tempering needs 0 < beta0 <= 1 (got {beta0})")
    if anneal_steps < 0:
        raise ValueError(f"tempering needs anneal_steps >= 0 (got {anneal_steps})")
    return lambda step: tempered_beta(step, beta0, anneal_steps)


def tempered_reverse_kl_loss(flow: Bijection, log_p: LogDensity, n: int, dim: int, stick_the_landing: bool = False):
    """The reverse KL to the tempered target ``p~_beta(x) = p~(x)^beta_t`` (annealing, :func:`tempered_beta`):
    ``loss(params, batch, key, hp) = E_{u ~ P_U}[log q(F(u)) - beta_t log p~(F(u))]`` for :func:`vlab.engine.fit`,
    with ``beta_t = tempered_beta(hp["step"], hp["beta0"], hp["anneal_steps"])``.

    ``KL[q || p_beta] = loss + log Z_beta``. A small ``beta0`` flattens the target (``beta`` scales every
    log-density gap between modes and the barriers between them), so a mode-seeking fit can spread over several
    modes before ``beta_t`` reaches 1 and the objective becomes the untempered :func:`reverse_kl_loss`.

    Args:
        flow, log_p, n, dim, stick_the_landing: as in :func:`reverse_kl_loss`.

    Returns:
        The loss function; its ``aux`` reports the untempered ``elbo = E[log p~ - log q]`` and ``beta``.
    """

    def loss(params, batch, key, hp):
        beta = tempered_beta(hp["step"], hp["beta0"], hp["anneal_steps"])
        log_q, lp = reverse_kl_terms(flow, params, key, log_p, n, dim, stick_the_landing)
        return jnp.mean(log_q - beta * lp), {"elbo": jnp.mean(lp - log_q), "beta": beta}

    return loss


# ------------------------------------------------------------------------------------------------ estimates


def effective_sample_size(log_w: jax.Array) -> jax.Array:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` of importance weights (``n`` when all are equal)."""
    return jnp.exp(2 * logsumexp(log_w) - logsumexp(2 * log_w))


def log_z_estimates(log_w: jax.Array) -> dict[str, jax.Array]:
    """Estimates of ``log Z`` from log importance weights ``log w_i = log p~(x_i) - log q(x_i)``, ``x_i ~ q``.

    * ``elbo = mean(log w)`` <= ``log Z`` (Jensen), with its standard error;
    * ``iw = log((1/n) sum w_i)``, consistent (biased low by about ``var(w) / 2n E[w]^2``), with the delta-method
      standard error ``std(w) / (sqrt(n) mean(w))``;
    * ``ess`` = Kish's effective sample size and ``ess_fraction = ess / n``.
    """
    n = log_w.shape[0]
    elbo, elbo_se = mean_and_stderr(log_w)
    iw = logsumexp(log_w) - math.log(n)
    w_rel = jnp.exp(log_w - logsumexp(log_w)) * n  # w_i / mean(w)
    ess = effective_sample_size(log_w)
    return {"elbo": elbo, "elbo_se": elbo_se, "iw": iw, "iw_se": jnp.std(w_rel, ddof=1) / math.sqrt(n),
            "ess": ess, "ess_fraction": ess / n}


def kl_data_space(flow: Bijection, params: Any, x: jax.Array, log_px: LogDensity) -> tuple[jax.Array, jax.Array]:
    """``KL[P_X || P_F(U)] = E_{x ~ P_X}[log P_X(x) - log P_F(U)(x)]`` by Monte Carlo over ``x`` (mean, SE).

    ``log P_F(U)(x) = log P_U(F^-1(x)) + log|det J_F^-1(x)|`` uses the flow's inverse pass only.
    """
    return mean_and_stderr(jax.vmap(log_px)(x) - flow_log_prob(flow, params, x))


def kl_base_space(flow: Bijection, params: Any, x: jax.Array, log_px: LogDensity) -> tuple[jax.Array, jax.Array]:
    """``KL[P_F^-1(X) || P_U] = E_{u ~ P_F^-1(X)}[log P_F^-1(X)(u) - log P_U(u)]`` (mean, SE), ``u = F^-1(x)``.

    The pulled-back density is evaluated through the forward pass: ``log P_F^-1(X)(u) = log P_X(F(u)) +
    log|det J_F(u)|`` (seed 002 question 3.1); by the seed's derivation the two KLs are equal.
    """
    u = jax.vmap(lambda v: flow.inverse(params, v)[0])(x)
    xf, ld = jax.vmap(flow.forward, in_axes=(None, 0))(params, u)
    return mean_and_stderr(jax.vmap(log_px)(xf) + ld - jax.vmap(standard_normal_log_prob)(u))


def mode_shares(x: jax.Array, modes: np.ndarray, weights: np.ndarray, share: float = 0.5) -> dict[str, Any]:
    """Which of a mixture's modes a sample covers: each point goes to its nearest mode centre, and mode ``k`` is
    covered when it holds at least ``share * weights[k]`` of the points. Returns the covered fraction of modes
    and each mode's share of the sample."""
    return coverage_of_counts(np.asarray(mode_counts(x, modes)), weights, share)


def coverage_of_counts(counts: np.ndarray, weights: np.ndarray, share: float = 0.5) -> dict[str, Any]:
    """:func:`mode_shares` from the number of points nearest to each mode (:func:`mode_counts`)."""
    shares = np.asarray(counts) / max(int(np.sum(counts)), 1)
    covered = shares >= share * np.asarray(weights)
    return {"fraction": float(covered.mean()), "shares": shares.tolist(), "covered": covered.tolist()}


def mode_counts(x: jax.Array, modes: np.ndarray) -> jax.Array:
    """How many of the points ``x`` (shape ``(n, d)``) lie nearest to each mode centre (shape ``(k, d)``);
    jittable."""
    d = jnp.sum((x[:, None, :] - jnp.asarray(modes, x.dtype)[None]) ** 2, axis=-1)
    return jnp.bincount(jnp.argmin(d, axis=1), length=len(modes))


# ------------------------------------------------------------------------------------------------ evaluation


def forward_estimates(flow: Bijection, params: Any, x: jax.Array, x_base: jax.Array | None = None,
                      log_px: LogDensity | None = None) -> dict[str, jax.Array]:
    """A forward-KL fit measured on test points ``x ~ P_X`` (one member; jittable).

    Args:
        flow: the trained flow.
        params: its parameters.
        x: test points ``(n, d)``.
        x_base: an independent sample for :func:`kl_base_space` (default: ``x``).
        log_px: the normalised data density, when known.

    Returns:
        ``nll`` / ``nll_se``: the test negative log-likelihood ``-mean log P_F(U)(x)`` and its standard error. With
        ``log_px`` also: ``entropy`` / ``entropy_se``, the test points' ``-mean log P_X(x)``; ``kl_data`` /
        ``kl_data_se``, :func:`kl_data_space` on ``x``; and ``kl_base`` / ``kl_base_se``, :func:`kl_base_space` on
        ``x_base`` (the two sides of question 3.1).
    """
    log_q = flow_log_prob(flow, params, x)
    nll, nll_se = mean_and_stderr(-log_q)
    out = {"nll": nll, "nll_se": nll_se}
    if log_px is not None:
        lp = jax.vmap(log_px)(x)
        out["entropy"], out["entropy_se"] = mean_and_stderr(-lp)
        out["kl_data"], out["kl_data_se"] = mean_and_stderr(lp - log_q)
        out["kl_base"], out["kl_base_se"] = kl_base_space(flow, params, x if x_base is None else x_base, log_px)
    return out


def reverse_estimates(flow: Bijection, params: Any, key: jax.Array, log_p: LogDensity, n: int,
                      dim: int) -> dict[str, jax.Array]:
    """A reverse-KL fit measured by ``n`` fresh flow samples (one member; jittable).

    Args:
        flow, params, key, log_p, n, dim: as in :func:`sample_log_weights`.

    Returns:
        :func:`log_z_estimates` of the samples' log importance weights (ELBO, importance-weighted ``log Z``, ESS,
        with standard errors).
    """
    return log_z_estimates(sample_log_weights(flow, params, key, log_p, n, dim)[1])
