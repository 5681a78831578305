"""EM for a Gaussian mixture as coordinate ascent on F(theta, q) (seed 001, problem 5; seed 002, question 1.1).

EM runs from many initialisations at once (vmap over a ``lax.scan``). The experiment shows that F after each
E-step equals log p(x), that neither step decreases F, that each step is the argmax of F in its block (the gradient
of F vanishes there), that log p(x) - F(theta, q) = KL(q || p(z | x)), and that the maximiser of the ECLL for a
fixed q is the maximum-likelihood estimate only when q is the posterior at that estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from vlab.algorithms import em
from vlab.distributions import Mixture1D, mixture_1d
from vlab.engine import FitResult
from vlab.errors import ConfigError
from vlab.harness.config import BaseConfig, spec
from vlab.harness.experiment import Experiment as _Experiment
from vlab.harness.plots import PALETTE, figure


@dataclass
class Config(BaseConfig):
    precision: Literal["float32", "float64"] = "float64"
    weights: list[float] = spec([0.3, 0.5, 0.2], gt=0, help="true mixture weights (normalised)")
    means: list[float] = spec([-3.0, 0.5, 4.0], help="true component means")
    stds: list[float] = spec([1.0, 0.7, 1.2], gt=0, help="true component standard deviations")
    n: int = spec(600, ge=10, help="data points")
    n_components: int = spec(3, ge=1, le=20, help="components of the fitted mixture")
    iters: int = spec(300, gt=1, help="EM iterations")
    n_inits: int = spec(16, gt=0, help="random initialisations, vmapped")

    def check(self, prefix: str) -> None:
        k = len(self.weights)
        for key in ("means", "stds"):
            if len(getattr(self, key)) != k:
                raise ConfigError(
                    f"key '{prefix}{key}': value {getattr(self, key)} is not valid: expected {k} entries "
                    f"(one per weight)"
                )
        if self.n_components > self.n:
            raise ConfigError(
                f"key '{prefix}n_components': value {self.n_components} is not valid: expected at most n = {self.n}"
            )


def init_params(key: jax.Array, x: jax.Array, k: int) -> Mixture1D:
    """Means at k distinct random data points, every std the data's std, equal weights."""
    idx = jax.random.choice(key, x.shape[0], (k,), replace=False)
    return Mixture1D(jnp.full((k,), 1.0 / k, x.dtype), x[idx], jnp.full((k,), jnp.std(x), x.dtype))


@jax.jit
def _diagnostics(x: jax.Array, p0: Mixture1D, trace: em.EMTrace) -> dict:
    """Block-argmax gradients, the KL identity and the ECLL-vs-likelihood comparison along one EM run."""
    prev = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b[:-1]]), p0, trace.params)
    q_prev = jax.vmap(lambda p: em.e_step(x, p))(prev)
    kl = jax.vmap(lambda p, q: em.posterior_kl(x, p, q))(trace.params, q_prev)
    m_grad = jax.vmap(lambda p, q: em.m_step_gradient(x, p, q))(trace.params, q_prev)
    e_grad = jax.vmap(lambda p: em.e_step_gradient(x, p))(prev)
    final = jax.tree.map(lambda a: a[-1], trace.params)
    q_star = em.e_step(x, final)
    refit = em.m_step(x, q_star)
    q0 = em.e_step(x, p0)
    theta_q0 = em.m_step(x, q0)
    return {
        "kl": kl,
        "m_grad": jnp.max(m_grad),
        "e_grad": jnp.max(e_grad),
        "lik_grad": em.likelihood_gradient(x, final),
        "fixed_point": jnp.max(jnp.abs(jnp.stack(jax.tree.leaves(refit)) - jnp.stack(jax.tree.leaves(final)))),
        "loglik_ecll_q0": em.log_likelihood(x, theta_q0),
        "loglik_init": em.log_likelihood(x, p0),
        "entropy_final": em.entropy(q_star),
        "ecll_final": em.ecll(x, final, q_star),
    }


class Experiment(_Experiment):
    description = "EM for a Gaussian mixture as coordinate ascent on F(theta, q) = ECLL + H(q); F = log p(x) after E"
    source = "seed 001, problem 5; seed 002, question 1.1"
    Config = Config
    headline = ("best.log_likelihood", "max_abs_f_after_e_minus_loglik", "min_step_increase", "best.kl_gap_after_m")

    def n_seeds(self, cfg: Config) -> int:
        return cfg.n_inits  # every initialisation is a member

    def setup(self, cfg: Config) -> None:
        self.truth = mixture_1d(np.asarray(cfg.weights) / np.sum(cfg.weights), cfg.means, cfg.stds)
        self.x = self.truth.sample(self.key("data"), cfg.n)

    def init(self, cfg: Config, key: jax.Array) -> Mixture1D:
        return init_params(key, self.x, cfg.n_components)

    def train(self, cfg: Config) -> dict[str, FitResult]:
        """Nothing is trained by gradient: both EM steps are closed-form block maximisers (:meth:`evaluate`)."""
        return {}

    def evaluate(self, cfg: Config, params: Mixture1D, key: jax.Array, hp: dict) -> dict:
        """``iters`` EM iterations of one member from its initialisation ``params``, and log p(x | theta_0)."""
        return {"init": params, "log_likelihood_init": em.log_likelihood(self.x, params),
                "trace": em.em(self.x, params, cfg.iters)}

    def evaluate_fits(self, cfg: Config, fits: dict[str, FitResult]) -> dict:
        """EM from every member's initialisation as one vmapped, jitted program."""
        return self.evaluate_members(cfg, self.init_members(cfg))

    def summarise(self, cfg: Config, fits: dict[str, FitResult], evals: dict) -> dict:
        """The coordinate-ascent identities over every iteration and initialisation, and the diagnostics of the
        best initialisation's run."""
        x, trace, loglik0 = self.x, evals["trace"], evals["log_likelihood_init"]
        # log p(x | theta_t) for t = 0 .. iters-1: theta_0 is the initialisation, then the M-step results.
        loglik_before = np.concatenate([loglik0[:, None], trace.log_likelihood[:, :-1]], axis=1)
        e_gap = float(np.max(np.abs(trace.f_after_e - loglik_before)))
        inc_m = trace.f_after_m - trace.f_after_e                     # M-step: F(theta_t+1, q_t) - F(theta_t, q_t)
        inc_e = trace.f_after_e[:, 1:] - trace.f_after_m[:, :-1]      # E-step: F(theta_t+1, q_t+1) - F(theta_t+1, q_t)
        min_inc = float(min(np.min(inc_m), np.min(inc_e)))
        final_ll = trace.log_likelihood[:, -1]
        best = int(np.argmax(final_ll))
        tb = jax.tree.map(lambda a: a[best], trace)
        diag = jax.device_get(_diagnostics(x, jax.tree.map(lambda a: a[best], evals["init"]), tb))
        kl_identity = float(np.max(np.abs(tb.log_likelihood - tb.f_after_m - diag["kl"])))
        order = np.argsort(tb.params.means[-1])
        fitted = Mixture1D(*(a[-1][order] for a in tb.params))
        self.shown = {"trace": tb, "fitted": fitted, "log_likelihood_init": float(loglik0[best]), "kl": diag["kl"],
                      "final_log_likelihood": final_ll}

        scale = max(1.0, abs(float(final_ll[best])))
        last_gain = float(tb.log_likelihood[-1] - tb.log_likelihood[-2])
        if last_gain > 1e-9 * scale:
            self.warn(f"EM is still climbing after {cfg.iters} iterations (last gain {last_gain:.3g} nats): the "
                      "fixed-point checks need more iterations (iters=...)")
        tol = (1e-10 if x.dtype == jnp.float64 else 1e-4) * scale
        self.check("F after E-step = log p(x) (max abs over iterations and inits)", e_gap, 0.0, tol)
        self.check("smallest change of F over a step (>= 0)", min(min_inc, 0.0), 0.0, tol)
        self.check("log p(x) - F(theta, q) = KL(q || p(z|x)) (max abs)", kl_identity, 0.0, tol)
        self.check("dF/dtheta at the M-step result (max abs)", float(diag["m_grad"]), 0.0, 1e-3 * tol)
        self.check("dF/dq-logits at the E-step result (max abs)", float(diag["e_grad"]), 0.0, 1e-3 * tol)
        self.check("d log p(x)/dtheta at the EM fixed point (max abs)", float(diag["lik_grad"]), 0.0, 1e-4)
        self.check("ECLL maximiser under the fixed-point posterior = EM solution", float(diag["fixed_point"]), 0.0,
                   1e-6)
        return {
            "best": {"log_likelihood": float(final_ll[best]), "weights": fitted.weights, "means": fitted.means,
                     "stds": fitted.stds, "kl_gap_after_m": float(diag["kl"][-1]),
                     "f_after_e": tb.f_after_e, "f_after_m": tb.f_after_m},
            "final_log_likelihood_per_init": final_ll,
            "max_abs_f_after_e_minus_loglik": e_gap,
            "min_step_increase": min_inc,
            "last_iteration_gain": last_gain,
            "max_abs_kl_identity": kl_identity,
            "block_gradients": {"m_step": float(diag["m_grad"]), "e_step": float(diag["e_grad"]),
                                "log_likelihood_at_fixed_point": float(diag["lik_grad"])},
            "ecll_vs_elbo": {
                "ecll_at_solution": float(diag["ecll_final"]),
                "entropy_at_solution": float(diag["entropy_final"]),
                "elbo_at_solution": float(diag["ecll_final"] + diag["entropy_final"]),
                "log_likelihood_at_init": float(diag["loglik_init"]),
                "log_likelihood_of_ecll_maximiser_with_q_at_init": float(diag["loglik_ecll_q0"]),
                "log_likelihood_at_em_solution": float(final_ll[best]),
                "ecll_maximiser_with_posterior_at_solution_moves_by": float(diag["fixed_point"]),
            },
        }

    def figures(self, cfg: Config, fits: dict[str, FitResult], evals: dict, metrics: dict) -> None:
        """The best initialisation's run (:func:`draw`)."""
        s = self.shown
        tb = s["trace"]
        fig = draw(np.asarray(self.x), self.truth, s["fitted"], tb.f_after_e, tb.f_after_m, tb.ecll_after_m,
                   tb.log_likelihood, s["log_likelihood_init"], s["kl"], s["final_log_likelihood"])
        self.save_figure(fig, "em_mixture")


def draw(x: np.ndarray, truth: Mixture1D, fitted: Mixture1D, f_e: np.ndarray, f_m: np.ndarray, ecll_m: np.ndarray,
         ll: np.ndarray, ll0: float, kl: np.ndarray, final_ll: np.ndarray) -> Figure:
    """Four panels: the data with the true and fitted densities (inset: every init's final log p(x)); the
    distance of F and log p(x) below the final log p(x); the KL gap after each M-step; ECLL against the ELBO.

    Args:
        x: the data.
        truth: the mixture the data were drawn from.
        fitted: the best initialisation's EM solution.
        f_e: F(theta_t, q_t) after each E-step.
        f_m: F(theta_{t+1}, q_t) after each M-step.
        ecll_m: the ECLL after each M-step.
        ll: log p(x | theta_{t+1}) after each iteration.
        ll0: log p(x | theta_0) at the initialisation.
        kl: KL(q_t || p(z | x, theta_{t+1})) after each M-step.
        final_ll: every initialisation's final log p(x).

    Returns:
        The figure.
    """
    fig, axes = figure(2, 2, size=(11, 7.6))
    axes = axes.ravel()
    ax = axes[0]
    grid = np.linspace(x.min() - 1, x.max() + 1, 400)
    ax.hist(x, bins=50, density=True, color=PALETTE[5], alpha=0.5, label="data")
    ax.plot(grid, np.exp(np.asarray(truth.log_prob(jnp.asarray(grid)))), color="k", lw=1.2, ls="--",
            label="true density")
    ax.plot(grid, np.exp(np.asarray(fitted.log_prob(jnp.asarray(grid)))), color=PALETTE[1], lw=2,
            label="EM fit (best init)")
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    ax.set_title("data and fitted mixture")
    ax.legend(fontsize=8, loc="upper left")
    inset = ax.inset_axes([0.68, 0.5, 0.3, 0.36])
    final_ll = np.asarray(final_ll, dtype=np.float64)
    lo, hi = float(final_ll.min()), float(final_ll.max())
    tied = hi - lo <= 1e-9 * max(1.0, abs(hi))  # every init reached the same optimum, up to rounding
    inset.hist(final_ll, bins=min(10, len(final_ll)), range=(lo - 0.5, hi + 0.5) if tied else None,
               color=PALETTE[4])
    inset.set_title(f"final log p(x) of the {len(final_ll)} inits", fontsize=8)
    inset.set_ylabel("inits", fontsize=8)
    inset.xaxis.set_major_locator(MaxNLocator(3))
    inset.yaxis.set_major_locator(MaxNLocator(3, integer=True))
    inset.tick_params(labelsize=8)

    ax = axes[1]
    top = max(float(ll[-1]), float(f_m.max()))
    n = len(f_e)
    it = np.arange(n)
    steps_x = np.repeat(it, 2) + np.tile([0.0, 0.5], n)
    steps_f = np.stack([f_e, f_m], 1).ravel()
    floor = 1e-13 * abs(top)
    ax.semilogy(steps_x, np.maximum(top - steps_f, floor), color=PALETTE[0], lw=1.2,
                label=r"$F(\theta, q)$: E-step at t, M-step at t+½")
    ax.semilogy(np.arange(n + 1), np.maximum(top - np.concatenate([[ll0], ll]), floor), "x", color=PALETTE[1],
                ms=4, markevery=max(1, n // 40), label=r"$\log p_{\theta_t}(x)$ (every few iterations)")
    done = np.nonzero(top - f_e <= 1e-10 * abs(top))[0]
    ax.set_xlim(-1, min(n, int(done[0]) + 10) if len(done) else n)
    ax.set_xlabel("EM iteration t")
    ax.set_ylabel("below the final log p(x) (nats)")
    ax.set_title("F never decreases; after each E-step F = log p(x)")
    ax.legend(fontsize=8)

    ax = axes[2]
    ax.semilogy(np.arange(1, len(kl) + 1), np.maximum(kl, 1e-16), color=PALETTE[3],
                label=r"after M: $\log p(x) - F = KL(q\,\|\,p(z|x))$")
    ax.axhline(1e-16, color="0.5", ls=":", lw=0.8, label="after E: 0 (drawn at 1e-16)")
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("KL (nats)")
    ax.set_title("the gap each E-step closes")
    ax.legend(fontsize=8)

    ax = axes[3]
    ax.plot(it + 1, f_m, color=PALETTE[0], label=r"ELBO $F = $ ECLL + H(q)")
    ax.plot(it + 1, ecll_m, color=PALETTE[2], label=r"ECLL $E_q[\log p_\theta(x,z)]$")
    ax.fill_between(it + 1, ecll_m, f_m, color=PALETTE[2], alpha=0.15, label=r"$H(q) \geq 0$")
    ax.set_xlabel("EM iteration (after the M-step)")
    ax.set_ylabel("nats")
    ax.set_title("ECLL vs ELBO: they differ by H(q), free of theta")
    ax.legend(fontsize=8, loc="lower right")
    return fig
