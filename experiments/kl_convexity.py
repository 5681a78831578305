"""Joint convexity of the KL divergence, checked on many random and adversarial cases (seed 001, problem 6.2).

KL(lambda p1 + (1 - lambda) p2 || lambda q1 + (1 - lambda) q2) <= lambda KL(p1 || q1) + (1 - lambda) KL(p2 || q2)
is evaluated on vmapped batches of random (p1, p2, q1, q2, lambda), from near-uniform to near-degenerate
distributions; then an adversary (gradient descent on the slack, many members at once: the run's one fit) tries
to make it fail. The worst case found is reported; the slack also splits into per-outcome log-sum terms,
each of which must be non-negative.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure

from vlab.distributions import categorical as cat
from vlab.engine import FitResult, LossFn
from vlab.harness.config import BaseConfig, TrainConfig, nested, spec
from vlab.harness.experiment import Experiment as _Experiment
from vlab.harness.plots import PALETTE, figure
from vlab.keys import stream


@dataclass
class Adversary:
    """Gradient descent on the slack RHS - LHS over softmax-parameterised p1, p2, q1, q2 and sigmoid lambda."""

    members: int = spec(64, gt=0, help="independent adversarial searches, vmapped")
    train: TrainConfig = nested(TrainConfig, steps=1500, chunk_size=500, log_every=25)


@dataclass
class Config(BaseConfig):
    precision: Literal["float32", "float64"] = "float64"
    n_outcomes: int = spec(4, ge=2, help="alphabet size n")
    n_draws: int = spec(200_000, gt=0, help="random cases per logit scale")
    logit_scales: list[float] = spec([0.3, 1.0, 3.0, 10.0], gt=0, help="p = softmax(scale * N(0, I)) per batch")
    adversary: Adversary = nested(Adversary)


def adversary_init(key: jax.Array, k: int) -> dict:
    """One adversary's start: logits 2 N(0, I_k) for each of p1, p2, q1, q2 and a N(0, 1) logit for lambda."""
    out = {name: 2.0 * jax.random.normal(stream(key, name), (k,)) for name in ("p1", "p2", "q1", "q2")}
    out["lam"] = jax.random.normal(stream(key, "lambda"), ())
    return out


def slack_loss(params: dict, batch: Any, key: jax.Array, hp: dict) -> tuple[jax.Array, dict]:
    """RHS - LHS of the convexity inequality at p = softmax(logits) and lambda = sigmoid(lambda logit)."""
    dist = {n: jax.nn.softmax(params[n]) for n in ("p1", "p2", "q1", "q2")}
    lam = jax.nn.sigmoid(params["lam"])
    lhs, rhs = cat.convexity_sides(dist["p1"], dist["p2"], dist["q1"], dist["q2"], lam)
    return rhs - lhs, {"lhs": lhs, "rhs": rhs}


@partial(jax.jit, static_argnums=(1, 2, 4))
def case_statistics(key: jax.Array, n: int, k: int, scale: float, n_show: int) -> dict:
    """Over ``n`` random cases at one logit scale: the smallest slack RHS - LHS (absolute and relative to RHS),
    its mean, how many cases fall below -100 eps max(1, RHS) (rounding allowance), the smallest per-outcome
    log-sum term, how far those terms' sum is from the slack, and the first ``n_show`` cases' (LHS, RHS).

    Args:
        key: draws the cases.
        n: the number of cases.
        k: outcomes of each distribution.
        scale: the logit scale of the random distributions.
        n_show: cases whose sides are returned for the figure.

    Returns:
        A dict of those statistics (jax scalars) and ``lhs``, ``rhs`` of the first ``n_show`` cases.
    """
    eps = jnp.finfo(jnp.zeros(()).dtype).eps
    cases = cat.random_cases(key, n, k, scale)
    lhs, rhs = cat.convexity_sides(*cases)
    terms = cat.log_sum_terms(*cases)
    gap = rhs - lhs
    return {"min_gap": jnp.min(gap), "min_relative_gap": jnp.min(gap / rhs), "mean_gap": jnp.mean(gap),
            "violations": jnp.sum(gap < -100 * eps * jnp.maximum(1.0, rhs)), "min_log_sum_term": jnp.min(terms),
            "split_error": jnp.max(jnp.abs(jnp.sum(terms, -1) - gap)), "lhs": lhs[:n_show], "rhs": rhs[:n_show]}


@partial(jax.jit, static_argnums=(1,))
def equality_gap(key: jax.Array, k: int) -> jax.Array:
    """max |RHS - LHS| over 1000 random cases at lambda in {0, 1} and at p1 = p2, q1 = q2: all should be 0."""
    p1, p2, q1, q2, lam = cat.random_cases(key, 1000, k, 1.0)
    gaps = [jnp.subtract(*cat.convexity_sides(p1, p2, q1, q2, jnp.full(1000, v))) for v in (0.0, 1.0)]
    gaps.append(jnp.subtract(*cat.convexity_sides(p1, p1, q1, q1, lam)))
    return jnp.max(jnp.abs(jnp.stack(gaps)))


class Experiment(_Experiment):
    description = "joint convexity of KL on random and adversarial (p1, p2, q1, q2, lambda); worst case reported"
    source = "seed 001, problem 6.2"
    Config = Config
    headline = ("worst_gap", "violations", "adversary.min_gap")

    def n_seeds(self, cfg: Config) -> int:
        return cfg.adversary.members  # every adversarial search is a member

    def init(self, cfg: Config, key: jax.Array) -> dict:
        return adversary_init(key, cfg.n_outcomes)

    def objective(self, cfg: Config) -> LossFn:
        return slack_loss

    def train(self, cfg: Config) -> dict[str, FitResult]:
        """The adversary: gradient descent on the slack from every member's random start."""
        params = self.init_members(cfg)
        return {"adversary": self.fit("adversary", self.objective(cfg), params, train=cfg.adversary.train)}

    def summarise(self, cfg: Config, fits: dict[str, FitResult], evals: dict) -> dict:
        """The random cases at every logit scale, the equality cases and the adversary's smallest slack."""
        eps = float(jnp.finfo(jnp.zeros(()).dtype).eps)
        n_show = min(cfg.n_draws, 4000)
        per_scale, shown = {}, []
        scale_keys = jax.random.split(self.key("cases"), len(cfg.logit_scales))
        for scale, key in zip(cfg.logit_scales, scale_keys, strict=True):
            out = jax.device_get(case_statistics(key, cfg.n_draws, cfg.n_outcomes, scale, n_show))
            shown.append((out.pop("lhs"), out.pop("rhs"), np.full(n_show, scale)))
            per_scale[str(scale)] = {name: float(v) for name, v in out.items()}
        self.shown = tuple(np.concatenate(z) for z in zip(*shown, strict=True))
        worst_gap = min(v["min_gap"] for v in per_scale.values())
        worst_term = min(v["min_log_sum_term"] for v in per_scale.values())
        worst_split = max(v["split_error"] for v in per_scale.values())
        violations = int(sum(v["violations"] for v in per_scale.values()))
        eq = float(equality_gap(self.key("equality"), cfg.n_outcomes))
        adv_gap = fits["adversary"].history["loss"]  # (logged steps, members)
        adv_min = float(np.min(adv_gap))

        self.check("violations of convexity among random cases", float(violations), 0.0, 0.0)
        self.check("smallest per-outcome log-sum slack (>= 0)", min(worst_term, 0.0), 0.0, 1e3 * eps)
        self.check("per-outcome slacks sum to RHS - LHS (max abs)", worst_split, 0.0, 1e3 * eps)
        self.check("equality at lambda in {0, 1} and at p1 = p2, q1 = q2 (max abs)", eq, 0.0, 1e3 * eps)
        self.check("adversary's smallest slack (>= 0)", min(adv_min, 0.0), 0.0, 1e3 * eps)
        return {
            "worst_gap": worst_gap,
            "violations": violations,
            "n_cases": cfg.n_draws * len(cfg.logit_scales),
            "min_log_sum_term": worst_term,
            "max_abs_log_sum_split_error": worst_split,
            "equality_cases_max_abs_gap": eq,
            "per_logit_scale": per_scale,
            "adversary": {"min_gap": adv_min, "final_gap_per_member": adv_gap[-1]},
        }

    def figures(self, cfg: Config, fits: dict[str, FitResult], evals: dict, metrics: dict) -> None:
        """Every shown case against the diagonal, three cases along lambda, and the adversary's slack."""
        h = fits["adversary"].history
        fig = draw(*self.shown, cfg.n_outcomes, self.key("figures"), np.asarray(h["step"]), np.asarray(h["loss"]))
        self.save_figure(fig, "kl_convexity")


def draw(lhs: np.ndarray, rhs: np.ndarray, conc: np.ndarray, k: int, key: jax.Array, adv_steps: np.ndarray,
         adv_gap: np.ndarray) -> Figure:
    """Three panels: LHS against RHS per logit scale ``conc``; LHS and the chord RHS of three random cases (drawn
    from ``key``) as lambda varies; the adversary's slack per member along its steps.

    Args:
        lhs: the cases' LHS; ``rhs`` their RHS; ``conc`` their logit scales.
        rhs: see ``lhs``.
        conc: see ``lhs``.
        k: outcomes of each distribution.
        key: draws the three cases of the middle panel.
        adv_steps: the adversary's logged steps; ``adv_gap`` its slack at them, one column per member.
        adv_gap: see ``adv_steps``.

    Returns:
        The figure.
    """
    fig, axes = figure(1, 3, size=(14, 4.0))
    ax = axes[0]
    for i, c in enumerate(np.unique(conc)):
        m = conc == c
        ax.scatter(rhs[m], lhs[m], s=2, alpha=0.35, color=PALETTE[i], label=f"logit scale {c:g}", rasterized=True)
    lo = max(min(lhs[lhs > 0].min(), rhs.min()), 1e-8)
    hi = max(lhs.max(), rhs.max())
    ax.plot([lo, hi], [lo, hi], color="k", lw=1, label="LHS = RHS")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(r"RHS $\lambda KL(p_1\|q_1) + (1-\lambda) KL(p_2\|q_2)$")
    ax.set_ylabel(r"LHS $KL(p_\lambda \| q_\lambda)$")
    ax.set_title("every case lies on or below the diagonal")
    ax.legend(fontsize=7, markerscale=4, loc="upper left")

    ax = axes[1]
    lam = jnp.linspace(0.0, 1.0, 201)
    p1, p2, q1, q2, _ = cat.random_cases(key, 3, k, 1.0)
    sides = jax.jit(jax.vmap(jax.vmap(cat.convexity_sides, (None, None, None, None, 0)), (0, 0, 0, 0, None)))
    lhs_all, rhs_all = sides(p1, p2, q1, q2, lam)
    for i in range(3):
        lhs_l, rhs_l = lhs_all[i], rhs_all[i]
        ax.plot(lam, lhs_l, color=PALETTE[i], lw=2, label="LHS" if i == 0 else None)
        ax.plot(lam, rhs_l, color=PALETTE[i], lw=1, ls="--", label="RHS (the chord)" if i == 0 else None)
    ax.set_xlabel(r"$\lambda$")
    ax.set_ylabel("KL")
    ax.set_title(r"three random cases as $\lambda$ varies")
    ax.legend(fontsize=8)

    ax = axes[2]
    ax.semilogy(adv_steps, np.maximum(adv_gap, 1e-18), color=PALETTE[3], lw=0.6, alpha=0.5)
    ax.semilogy(adv_steps, np.maximum(adv_gap.min(axis=1), 1e-18), color="k", lw=1.5, label="smallest member")
    ax.set_xlabel("adversary step")
    ax.set_ylabel("RHS - LHS (floored at 1e-18)")
    ax.set_title("gradient descent on the slack stays >= 0")
    ax.legend(fontsize=8)
    return fig
