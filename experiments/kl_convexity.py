"""Joint convexity of the KL divergence, checked on many random and adversarial cases (seed 001, problem 6.2).

KL(lambda p1 + (1 - lambda) p2 || lambda q1 + (1 - lambda) q2) <= lambda KL(p1 || q1) + (1 - lambda) KL(p2 || q2)
is evaluated on vmapped batches of random (p1, p2, q1, q2, lambda), from near-uniform to near-degenerate
distributions; then an adversary (gradient descent on the slack, many members at once through ``vlab.train.fit``)
tries to make it fail. The worst case found is reported; the slack also splits into per-outcome log-sum terms,
each of which must be non-negative.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from vlab import categorical as cat
from vlab.config import BaseConfig, TrainConfig, build_optimizer, nested, spec
from vlab.experiment import Experiment as _Experiment
from vlab.plots import PALETTE, figure
from vlab.train import fit


@dataclass
class Adversary:
    """Gradient descent on the slack RHS - LHS over softmax-parameterised p1, p2, q1, q2 and sigmoid lambda."""

    members: int = spec(64, gt=0, help="independent adversarial searches, vmapped")
    train: TrainConfig = nested(TrainConfig, steps=1500, chunk_size=500, log_every=25)


@dataclass
class Config(BaseConfig):
    experiment: str = "kl_convexity"
    precision: Literal["float32", "float64"] = "float64"
    n_outcomes: int = spec(4, ge=2, help="alphabet size n")
    n_draws: int = spec(200_000, gt=0, help="random cases per logit scale")
    logit_scales: list[float] = spec([0.3, 1.0, 3.0, 10.0], gt=0, help="p = softmax(scale * N(0, I)) per batch")
    adversary: Adversary = nested(Adversary)


@partial(jax.jit, static_argnums=(1, 2))
def draw_cases(key: jax.Array, n: int, k: int, scale: float):
    """n random cases: p1, p2, q1, q2 = softmax(scale * N(0, I_k)) (floored away from 0), lambda ~ U(0, 1).

    Small ``scale`` gives near-uniform distributions, large ``scale`` near-degenerate ones.
    """
    keys = jax.random.split(key, 5)
    eps = jnp.finfo(jnp.zeros(()).dtype).tiny ** 0.5

    def simplex(kk):
        p = jnp.maximum(jax.nn.softmax(scale * jax.random.normal(kk, (n, k)), axis=-1), eps)
        return p / jnp.sum(p, -1, keepdims=True)

    p1, p2, q1, q2 = (simplex(kk) for kk in keys[:4])
    return p1, p2, q1, q2, jax.random.uniform(keys[4], (n,))


def adversary_params(key: jax.Array, members: int, k: int) -> dict:
    """Random logits for p1, p2, q1, q2 and a logit for lambda, with a leading members axis."""
    ks = jax.random.split(key, 5)
    names = ("p1", "p2", "q1", "q2")
    out = {name: 2.0 * jax.random.normal(kk, (members, k)) for name, kk in zip(names, ks[:4], strict=True)}
    out["lam"] = jax.random.normal(ks[4], (members,))
    return out


def slack_loss(params: dict, batch, key):
    """RHS - LHS of the convexity inequality at softmax(logits), sigmoid(lambda logit)."""
    dist = {n: jax.nn.softmax(params[n]) for n in ("p1", "p2", "q1", "q2")}
    lam = jax.nn.sigmoid(params["lam"])
    lhs, rhs = cat.convexity_sides(dist["p1"], dist["p2"], dist["q1"], dist["q2"], lam)
    return rhs - lhs, {"lhs": lhs, "rhs": rhs}


class Experiment(_Experiment):
    name = "kl_convexity"
    description = "joint convexity of KL on random and adversarial (p1, p2, q1, q2, lambda); worst case reported"
    source = "seed 001, problem 6.2"
    Config = Config
    headline = ("worst_gap", "violations", "adversary.min_gap")

    def run(self, cfg: Config, run) -> dict:
        k_draw, k_adv, k_fit = jax.random.split(jax.random.PRNGKey(cfg.seed), 3)
        k = cfg.n_outcomes

        eps = float(jnp.finfo(jnp.zeros(()).dtype).eps)
        n_show = min(cfg.n_draws, 4000)

        @jax.jit
        def evaluate(key, scale):
            cases = draw_cases(key, cfg.n_draws, k, scale)
            lhs, rhs = cat.convexity_sides(*cases)
            terms = cat.log_sum_terms(*cases)
            gap = rhs - lhs
            tol = 100 * eps * jnp.maximum(1.0, rhs)  # rounding allowance
            return {"min_gap": jnp.min(gap), "min_relative_gap": jnp.min(gap / rhs), "mean_gap": jnp.mean(gap),
                    "violations": jnp.sum(gap < -tol), "min_log_sum_term": jnp.min(terms),
                    "split_error": jnp.max(jnp.abs(jnp.sum(terms, -1) - gap)),
                    "lhs": lhs[:n_show], "rhs": rhs[:n_show]}

        @jax.jit
        def equality_cases(key):
            """max |RHS - LHS| at lambda in {0, 1} and at p1 = p2, q1 = q2: all should be 0."""
            p1, p2, q1, q2, lam = draw_cases(key, 1000, k, 1.0)
            gaps = [jnp.subtract(*cat.convexity_sides(p1, p2, q1, q2, jnp.full(1000, v))) for v in (0.0, 1.0)]
            gaps.append(jnp.subtract(*cat.convexity_sides(p1, p1, q1, q1, lam)))
            return jnp.max(jnp.abs(jnp.stack(gaps)))

        per_scale, shown = {}, []
        for i, scale in enumerate(cfg.logit_scales):
            out = jax.device_get(evaluate(jax.random.fold_in(k_draw, i), scale))
            shown.append((out.pop("lhs"), out.pop("rhs"), np.full(n_show, scale)))
            per_scale[str(scale)] = {key: float(v) for key, v in out.items()}
        worst_gap = min(v["min_gap"] for v in per_scale.values())
        worst_term = min(v["min_log_sum_term"] for v in per_scale.values())
        worst_split = max(v["split_error"] for v in per_scale.values())
        violations = int(sum(v["violations"] for v in per_scale.values()))
        all_lhs, all_rhs, all_c = (np.concatenate(z) for z in zip(*shown, strict=True))
        eq = float(equality_cases(jax.random.fold_in(k_draw, 999)))

        adv = cfg.adversary
        opt = build_optimizer(adv.train.optimizer, adv.train.steps)
        res = fit(slack_loss, adversary_params(k_adv, adv.members, k), opt, k_fit, steps=adv.train.steps,
                  chunk_size=adv.train.chunk_size, log_every=adv.train.log_every, n_members=adv.members, run=run,
                  name="adversary", checkpoint_every=adv.train.checkpoint_every)
        adv_gap = res.history["loss"]  # (logged steps, members)
        adv_min = float(np.min(adv_gap))

        run.check("violations of convexity among random cases", float(violations), 0.0, 0.0)
        run.check("smallest per-outcome log-sum slack (>= 0)", min(worst_term, 0.0), 0.0, 1e3 * eps)
        run.check("per-outcome slacks sum to RHS - LHS (max abs)", worst_split, 0.0, 1e3 * eps)
        run.check("equality at lambda in {0, 1} and at p1 = p2, q1 = q2 (max abs)", eq, 0.0, 1e3 * eps)
        run.check("adversary's smallest slack (>= 0)", min(adv_min, 0.0), 0.0, 1e3 * eps)

        with run.timed("plots"):
            self._figure(run, all_lhs, all_rhs, all_c, k,
                         jax.random.fold_in(k_draw, 7), np.asarray(res.history["step"]), np.asarray(adv_gap))

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

    @staticmethod
    def _figure(run, lhs, rhs, conc, k, key, adv_steps, adv_gap):
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
        p1, p2, q1, q2, _ = draw_cases(key, 3, k, 1.0)
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
        run.save_figure(fig, "kl_convexity")
