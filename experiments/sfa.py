"""Slow feature analysis of x1 = cos t + cos 22t, x2 = cos 11t on a quadratic expansion (seed 000, q. 3).

SFA with the usual constraints (zero mean, unit variance) is the generalised eigenproblem A v = Delta B v over
one period; its slowest feature is cos t = 1 + x1 - 2 x2^2, i.e. theta = [1, 1, 0, 0, 0, -2] up to scale and
sign, with slowness Delta = E[fdot^2] / Var f = 1. The seed's literal four-point loss has no variance
constraint, so it is minimised by theta = 0 (and by a whole subspace of theta), which is measured too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from vlab.algorithms import sfa
from vlab.harness.config import BaseConfig, spec
from vlab.harness.experiment import Experiment as _Experiment
from vlab.harness.plots import PALETTE, figure

SEED_THETA = (1.0, 1.0, 0.0, 0.0, 0.0, -2.0)


@dataclass
class Config(BaseConfig):
    precision: Literal["float32", "float64"] = "float64"
    n_samples: int = spec(1024, ge=128, help="samples of one period [0, 2 pi) (>= 128: exact averages)")
    derivative: Literal["exact", "finite_difference"] = "exact"


def slowness_of_cos(derivative: str, dt: float) -> float:
    """Delta of cos t: 1 with the exact derivative, 2 (1 - cos dt) / dt^2 with the forward difference."""
    return 1.0 if derivative == "exact" else 2.0 * (1.0 - math.cos(dt)) / dt**2


class Experiment(_Experiment):
    description = "slow feature analysis recovers cos t = 1 + x1 - 2 x2^2 from a quadratic expansion"
    source = "seed 000, question 3"
    Config = Config
    headline = ("theta_max_abs_error", "slowness", "seed_loss.at_seed_answer", "seed_loss.null_space_dim")

    def setup(self, cfg: Config) -> None:
        self.dt = 2 * math.pi / cfg.n_samples
        self.t = self.dt * jnp.arange(cfg.n_samples)

    def train(self, cfg: Config) -> dict:
        """Nothing is trained: SFA is a generalised eigenproblem, solved in :meth:`summarise`."""
        return {}

    def summarise(self, cfg: Config, fits: dict, evals: dict) -> dict:
        """The slowest feature of A v = Delta B v over one period against cos t, and the seed's literal loss
        L(theta) = theta^T M theta: its value at the seed's answer and at theta = 0, and its null space."""
        t, dt = self.t, self.dt

        @jax.jit
        def solve(t):
            z, zdot = sfa.expanded_with_derivative(sfa.seed_signal, t)
            if cfg.derivative == "finite_difference":
                zdot = (jnp.roll(z, -1, axis=0) - z) / dt  # periodic forward difference
            return z, sfa.sfa(z[:, 1:], zdot[:, 1:])  # drop the constant feature: E[f] = 0 fixes A

        z, res = solve(t)
        theta = sfa.theta_of(res.weights[:, 0], res.mean)
        self.feature = f = z @ theta
        theta_norm = theta / theta[1]
        err = float(jnp.max(jnp.abs(theta_norm - jnp.asarray(SEED_THETA))))
        delta = float(res.delta[0])
        delta_ref = slowness_of_cos(cfg.derivative, dt)
        corr = float(jnp.corrcoef(f, jnp.cos(t))[0, 1])

        m = sfa.four_point_loss_matrix(sfa.seed_signal)
        at_seed = float(sfa.four_point_loss(jnp.asarray(SEED_THETA), sfa.seed_signal))
        at_zero = float(sfa.four_point_loss(jnp.zeros(6), sfa.seed_signal))
        eig_m, vec_m = jnp.linalg.eigh(m)
        rank = int(jnp.sum(eig_m > 1e3 * jnp.finfo(eig_m.dtype).eps * eig_m[-1]))
        # A non-constant theta with zero literal loss: a null vector of M off the constant direction.
        null = vec_m[:, : 6 - rank]
        u = jnp.linalg.svd(null[1:, :], full_matrices=False)[2][0] if 6 - rank > 1 else jnp.ones(1)
        example = null @ u
        example = example / jnp.max(jnp.abs(example[1:]))

        tol = 1e-9 if z.dtype == jnp.float64 else 1e-3
        self.check("theta / B - [1, 1, 0, 0, 0, -2] (max abs)", err, 0.0, tol)
        self.check("slowness of the slowest feature", delta, delta_ref, tol)
        self.check("|corr(f, cos t)|", abs(corr), 1.0, tol)
        self.check("unit variance of the SFA feature", float(jnp.var(f)), 1.0, tol)
        self.check("seed four-point loss at [1,1,0,0,0,-2]", at_seed, 1.0 - 1.0 / math.sqrt(2.0), tol)
        self.check("seed four-point loss at theta = 0", at_zero, 0.0, 0.0)
        self.check("seed four-point loss at a non-constant null vector", float(example @ m @ example), 0.0, tol)
        return {
            "theta": theta,
            "theta_normalised": theta_norm,
            "theta_max_abs_error": err,
            "slowness": delta,
            "slowness_reference": delta_ref,
            "slowness_all": res.delta,
            "corr_with_cos_t": corr,
            "seed_loss": {
                "at_seed_answer": at_seed,
                "at_seed_answer_closed_form": 1.0 - 1.0 / math.sqrt(2.0),
                "at_zero": at_zero,
                "rank": rank,
                "null_space_dim": 6 - rank,
                "nonconstant_null_vector": example,
                "eigenvalues": eig_m,
            },
        }

    def figures(self, cfg: Config, fits: dict, evals: dict, metrics: dict) -> None:
        """The inputs, the slowest feature against sqrt(2) cos t, and the slowness spectrum."""
        self.save_figure(_figure(np.asarray(self.t), np.asarray(sfa.seed_signal(self.t)), np.asarray(self.feature),
                                 np.asarray(metrics["slowness_all"])), "sfa")


def _figure(t: np.ndarray, x: np.ndarray, f: np.ndarray, delta: np.ndarray) -> Any:
    """The panels of :meth:`Experiment.figures`."""
    fig, axes = figure(1, 3, size=(14, 3.6))
    ax = axes[0]
    ax.plot(t, x[:, 0], color=PALETTE[0], lw=0.8, label=r"$x_1 = \cos t + \cos 22t$")
    ax.plot(t, x[:, 1] - 3.5, color=PALETTE[1], lw=0.8, label=r"$x_2 = \cos 11t$ (shifted by -3.5)")
    ts = np.pi / 4 * np.arange(5)
    xs = np.stack([np.cos(ts) + np.cos(22 * ts), np.cos(11 * ts)], -1)
    ax.plot(ts, xs[:, 0], "o", color="k", ms=4, label="the seed's 5 sample points")
    ax.plot(ts, xs[:, 1] - 3.5, "o", color="k", ms=4)
    ax.set_xlabel("t")
    ax.set_title("input signals")
    ax.set_ylim(-6.6, 2.4)
    ax.legend(fontsize=7, loc="lower center", ncol=2)
    ax = axes[1]
    ax.plot(t, f, color=PALETTE[2], lw=3, alpha=0.6, label="slowest SFA feature")
    ax.plot(t, np.sqrt(2) * np.cos(t), "--", color="k", lw=1, label=r"$\sqrt{2}\,\cos t$")
    ax.set_xlabel("t")
    ax.set_title(r"extracted: $f \propto 1 + x_1 - 2x_2^2 = \cos t$")
    ax.legend(fontsize=8)
    ax = axes[2]
    ax.bar(np.arange(1, len(delta) + 1), delta, color=PALETTE[0])
    ax.set_yscale("log")
    ax.set_xlabel("SFA component")
    ax.set_ylabel(r"slowness $\Delta = E[\dot f^2]$")
    ax.set_title(rf"slowness spectrum ($\Delta_1$ = {delta[0]:.6f})")
    return fig
