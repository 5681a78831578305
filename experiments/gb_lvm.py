"""The Gaussian-Bernoulli latent variable model of seed 000, question 4, in closed form and checked three ways.

With the printed W = [[1, 0], [0, 1], [1, 1]], c = 0, b = 0: p(x | h) = N(W h, I), p(h | x) a product of
sigmoids, and p(h) proportional to exp(|W h|^2 / 2), i.e. (1, e, e, e^3) / (1 + 2e + e^3) for
h = 00, 01, 10, 11. The closed forms are checked against numerical integration of exp(-E(x, h)) over x, exact
enumeration over h, and a block Gibbs sampler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from vlab.errors import ConfigError
from vlab.harness.config import BaseConfig, spec
from vlab.harness.experiment import Experiment as _Experiment
from vlab.harness.plots import PALETTE, figure
from vlab.models import gaussian_bernoulli as gb


@dataclass
class Config(BaseConfig):
    precision: Literal["float32", "float64"] = "float64"
    w: list[list[float]] = spec([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], help="W, d rows of k entries")
    c: list[float] = spec([0.0, 0.0, 0.0], help="visible bias c (d entries)")
    b: list[float] = spec([0.0, 0.0], help="hidden bias b (k entries)")
    grid_points: int = spec(61, ge=8, help="quadrature points per axis of x")
    grid_margin: float = spec(8.0, gt=0, help="the grid spans [min mean - margin, max mean + margin] per axis")
    n_chains: int = spec(4000, gt=0, help="independent Gibbs chains")
    n_steps: int = spec(200, gt=1, help="Gibbs sweeps per chain")
    burn_in: int = spec(50, ge=0, help="sweeps discarded before the x histograms")

    def check(self, prefix: str) -> None:
        d = len(self.w)
        k = len(self.w[0]) if d else 0
        if d == 0 or k == 0 or any(len(row) != k for row in self.w):
            raise ConfigError(f"key '{prefix}w': value {self.w} is not valid: expected d rows of k > 0 entries")
        if k > 10:
            raise ConfigError(f"key '{prefix}w': value has {k} columns: expected at most 10 hidden units")
        if d > 4:
            raise ConfigError(f"key '{prefix}w': value has {d} rows: expected at most 4 (quadrature grid)")
        if len(self.c) != d:
            raise ConfigError(f"key '{prefix}c': value {self.c} is not valid: expected {d} entries (rows of w)")
        if len(self.b) != k:
            raise ConfigError(f"key '{prefix}b': value {self.b} is not valid: expected {k} entries (columns of w)")
        if self.burn_in >= self.n_steps:
            raise ConfigError(
                f"key '{prefix}burn_in': value {self.burn_in} is not valid: expected less than n_steps "
                f"= {self.n_steps}"
            )


def seed_prior() -> np.ndarray:
    """The seed's p(h) for h = 00, 01, 10, 11: (1, e, e, e^3) / (1 + 2e + e^3)."""
    v = np.array([1.0, math.e, math.e, math.e**3])
    return v / v.sum()


class Experiment(_Experiment):
    description = "Gaussian-Bernoulli LVM: p(h), p(h|x), p(x|h) in closed form vs quadrature and Gibbs sampling"
    source = "seed 000, question 4"
    Config = Config
    headline = ("p_h.closed_form", "p_h.max_abs_diff_quadrature", "p_h.max_abs_diff_gibbs")

    def setup(self, cfg: Config) -> None:
        self.p = gb.GBParams(jnp.asarray(cfg.w), jnp.asarray(cfg.c), jnp.asarray(cfg.b))
        self.hs = gb.hidden_states(self.p.w.shape[1])

    def train(self, cfg: Config) -> dict:
        """Nothing is trained: :meth:`summarise` integrates, enumerates and samples."""
        return {}

    def summarise(self, cfg: Config, fits: dict, evals: dict) -> dict:
        """The closed forms against grid quadrature over x, enumeration over h (at x ~ N(0, 4 I)) and the final
        states of ``n_chains`` block Gibbs chains (z-scores against sqrt(p (1 - p) / n_chains))."""
        p, hs = self.p, self.hs
        d, k = p.w.shape
        p_h = gb.prior(p)
        log_z = float(gb.log_partition(p))
        means = gb.conditional_mean(hs, p)
        lo, hi = float(jnp.min(means)) - cfg.grid_margin, float(jnp.max(means)) + cfg.grid_margin
        p_h_quad, z_quad = gb.prior_by_quadrature(p, lo, hi, cfg.grid_points)
        diff_quad = float(jnp.max(jnp.abs(p_h - p_h_quad)))

        xs = 2.0 * jax.random.normal(self.key("x"), (256, d), p.w.dtype)
        neg_e = gb.enumerated_log_joint(xs, p)
        diff_post = float(jnp.max(jnp.abs(gb.factorised_posterior(xs, p) - jax.nn.softmax(neg_e, axis=-1))))
        log_px = jax.scipy.special.logsumexp(neg_e, -1) - log_z
        diff_marg = float(jnp.max(jnp.abs(gb.log_marginal(xs, p) - log_px)))

        h_chain, x_chain = gb.gibbs(self.key("gibbs"), p, cfg.n_chains, cfg.n_steps)
        freq = jnp.bincount(gb.state_index(h_chain[-1]), length=2**k) / cfg.n_chains
        se = jnp.sqrt(p_h * (1 - p_h) / cfg.n_chains)
        z_score = float(jnp.max(jnp.abs(freq - p_h) / se))
        diff_gibbs = float(jnp.max(jnp.abs(freq - p_h)))

        tol = 1e-9 if p.w.dtype == jnp.float64 else 1e-4
        self.check("p(h): closed form vs quadrature (max abs)", diff_quad, 0.0, tol)
        self.check("Z: closed form vs quadrature (relative)", float(z_quad) / math.exp(log_z), 1.0, tol)
        self.check("p(h|x): product of sigmoids vs enumeration (max abs)", diff_post, 0.0, tol)
        self.check("log p(x): closed form vs enumeration (max abs)", diff_marg, 0.0, tol)
        self.check("p(h): Gibbs vs closed form (max |z-score|, 4 = tolerance)", z_score, 0.0, 4.0)
        seed_case = d == 3 and k == 2 and np.allclose(cfg.w, [[1, 0], [0, 1], [1, 1]]) and not any(cfg.c + cfg.b)
        if seed_case:
            self.check("p(h) equals the seed's (1, e, e, e^3) / (1 + 2e + e^3)",
                       float(np.max(np.abs(np.asarray(p_h) - seed_prior()))), 0.0, tol)
        self.x_kept = np.asarray(x_chain[cfg.burn_in:]).reshape(-1, d)
        return {
            "states": [("".join(str(int(v)) for v in h)) for h in np.asarray(hs)],
            "p_h": {"closed_form": p_h, "quadrature": p_h_quad, "gibbs": freq, "gibbs_standard_error": se,
                    "max_abs_diff_quadrature": diff_quad, "max_abs_diff_gibbs": diff_gibbs,
                    "max_abs_z_gibbs": z_score, "seed_closed_form": seed_prior() if seed_case else None},
            "log_partition": log_z,
            "log_partition_quadrature": float(jnp.log(z_quad)),
            "p_x_given_h_means": means,
            "posterior_max_abs_diff_enumeration": diff_post,
            "log_marginal_max_abs_diff_enumeration": diff_marg,
        }

    def figures(self, cfg: Config, fits: dict, evals: dict, metrics: dict) -> None:
        """p(h) three ways, and a histogram of the Gibbs x of every coordinate against the exact p(x_i)."""
        ph = metrics["p_h"]
        self.save_figure(_figure(self.p, np.asarray(self.hs), *(np.asarray(ph[k]) for k in (
            "closed_form", "quadrature", "gibbs", "gibbs_standard_error")), self.x_kept), "gb_lvm")


def _figure(p: gb.GBParams, hs: np.ndarray, p_h: np.ndarray, p_quad: np.ndarray, freq: np.ndarray,
            se: np.ndarray, x_kept: np.ndarray) -> Any:
    """The panels of :meth:`Experiment.figures`."""
    d = p.w.shape[0]
    ncols = math.ceil((1 + d) / 2)
    fig, axes = figure(2, ncols, size=(4.6 * ncols, 7.0))
    axes = axes.ravel()
    for ax in axes[1 + d:]:
        ax.set_visible(False)
    ax = axes[0]
    idx = np.arange(len(p_h))
    width = 0.27
    ax.bar(idx - width, p_h, width, color=PALETTE[0], label="closed form")
    ax.bar(idx, p_quad, width, color=PALETTE[2], label="quadrature over x")
    ax.bar(idx + width, freq, width, yerr=2 * se, color=PALETTE[1], capsize=2, label="Gibbs (±2 s.e.)")
    ax.set_xticks(idx, ["h=" + "".join(str(int(v)) for v in h) for h in hs])
    ax.set_ylabel("p(h)")
    ax.set_title("marginal of the hidden units")
    ax.legend(fontsize=8)
    grid = np.linspace(*np.percentile(x_kept, [0.01, 99.99]), 300)
    for i in range(d):
        ax = axes[1 + i]
        ax.hist(x_kept[:, i], bins=np.linspace(grid[0], grid[-1], 80), density=True, color=PALETTE[5],
                alpha=0.6, label="Gibbs samples")
        ax.plot(grid, np.asarray(gb.marginal_1d(jnp.asarray(grid), i, p)), color="k", lw=1.5,
                label=r"$\sum_h p(h)\,N(x_i; (Wh+c)_i, 1)$")
        ax.set_xlabel(f"$x_{i + 1}$")
        ax.set_title(f"marginal p($x_{i + 1}$)")
        ax.legend(fontsize=7, loc="upper left")
    return fig
