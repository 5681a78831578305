"""Elastic net by cyclic coordinate descent with the soft-threshold update (seed 000, question 1).

A sparse linear regression problem is solved three ways: coordinate descent with the seed's update
w_k <- -S(g, alpha)/h; proximal gradient (ISTA, w <- S(w - eta grad, eta alpha) with eta = step_scale / L) as an
optax chain, the run's one fit; and, for alpha = 0, the Ridge closed form. The solution is certified by the
subgradient (KKT) conditions; the regularisation path over alpha is one vmapped program, all-zero exactly from
alpha_max = ||X^T y||_inf on.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from matplotlib.figure import Figure

from vlab.algorithms import sparse
from vlab.engine import FitResult, LossFn
from vlab.errors import ConfigError
from vlab.harness.config import BaseConfig, TrainConfig, spec
from vlab.harness.experiment import Experiment as _Experiment
from vlab.harness.plots import PALETTE, figure
from vlab.keys import stream


@dataclass
class Config(BaseConfig):
    precision: Literal["float32", "float64"] = "float64"
    n: int = spec(100, gt=0, help="training examples")
    d: int = spec(12, gt=0, help="features")
    n_nonzero: int = spec(4, ge=0, help="non-zero coefficients of the true weight vector")
    noise: float = spec(0.5, ge=0, help="standard deviation of the observation noise")
    correlation: float = spec(0.5, ge=0, lt=1, help="feature correlation rho^|i-j|")
    alpha: float = spec(10.0, ge=0, help="l1 weight alpha")
    lam: float = spec(5.0, ge=0, help="l2 weight lambda")
    sweeps: int = spec(100, gt=0, help="coordinate-descent passes over all coordinates")
    prox_steps: int = spec(2000, gt=0, help="proximal-gradient (ISTA) steps")
    step_scale: float = spec(1.0, gt=0, lt=2, help="ISTA step size as a multiple of 1/L")
    n_alphas: int = spec(60, gt=1, help="points on the regularisation path")

    def check(self, prefix: str) -> None:
        if self.n_nonzero > self.d:
            raise ConfigError(
                f"key '{prefix}n_nonzero': value {self.n_nonzero} is not valid: expected at most d = {self.d}"
            )


@partial(jax.jit, static_argnums=(1, 2, 3))
def make_data(key: jax.Array, n: int, d: int, n_nonzero: int, noise: float,
              correlation: float) -> tuple[jax.Array, jax.Array, jax.Array]:
    """X with rows x^(j) ~ N(0, S), S_ik = rho^|i-k|; a sparse w_true; y = X w_true + noise * eps.

    Args:
        key: the key of the streams "x", "signs", "support" and "noise".
        n: rows of X.
        d: columns of X.
        n_nonzero: nonzero coefficients of w_true (magnitudes 1 to 3, random signs and support).
        noise: the standard deviation of eps.
        correlation: rho.

    Returns:
        ``(X, y, w_true)``.
    """
    idx = jnp.arange(d)
    cov = correlation ** jnp.abs(idx[:, None] - idx[None, :])
    x = jax.random.normal(stream(key, "x"), (n, d)) @ jnp.linalg.cholesky(cov).T
    magnitude = jnp.linspace(1.0, 3.0, max(n_nonzero, 1))[:n_nonzero]
    signs = jnp.where(jax.random.bernoulli(stream(key, "signs"), 0.5, (n_nonzero,)), 1.0, -1.0)
    support = jax.random.permutation(stream(key, "support"), d)[:n_nonzero]
    w_true = jnp.zeros(d).at[support].set(signs * magnitude)
    y = x @ w_true + noise * jax.random.normal(stream(key, "noise"), (n,))
    return x, y, w_true


@partial(jax.jit, static_argnums=(4,))
def _solve_cases(x, y, alpha, lam, sweeps):
    """Coordinate descent at (alpha, lambda), Ridge (alpha = 0) with its closed form, Lasso (lambda = 0), and
    the solutions at alpha_max and just below it: one compiled program."""
    cd = sparse.coordinate_descent(x, y, alpha, lam, sweeps)
    a_max = sparse.alpha_max(x, y)
    return {
        "cd": cd,
        "kkt_cd": sparse.kkt_violation(cd.w, x, y, alpha, lam),
        "ridge_cd": sparse.coordinate_descent(x, y, 0.0, lam, sweeps).w,
        "ridge": sparse.ridge(x, y, lam),
        "lasso": (w_lasso := sparse.coordinate_descent(x, y, alpha, 0.0, sweeps).w),
        "kkt_lasso": sparse.kkt_violation(w_lasso, x, y, alpha, 0.0),
        "alpha_max": a_max,
        "at_max": sparse.coordinate_descent(x, y, a_max, lam, sweeps).w,
        "below_max": sparse.coordinate_descent(x, y, 0.99 * a_max, lam, sweeps).w,
    }


class Experiment(_Experiment):
    description = "elastic net by coordinate descent with the soft-threshold update, checked by KKT and ISTA"
    source = "seed 000, question 1"
    Config = Config
    headline = ("coordinate_descent.kkt_violation", "max_abs_diff_cd_vs_prox", "ridge.max_abs_diff")

    def setup(self, cfg: Config) -> None:
        self.x, self.y, self.w_true = make_data(self.key("data"), cfg.n, cfg.d, cfg.n_nonzero, cfg.noise,
                                                cfg.correlation)

    def objective(self, cfg: Config) -> LossFn:
        """The smooth part ||y - X w||^2 / 2 + lambda ||w||^2 / 2 (the l1 term is the optimiser's prox), with the
        full objective F(w) as a metric."""

        def loss(w, data, key, hp):
            x, y = data
            return (sparse.smooth_part(w, x, y, hp["lam"]),
                    {"objective": sparse.objective(w, x, y, hp["alpha"], hp["lam"])})

        return loss

    def train(self, cfg: Config) -> dict[str, FitResult]:
        """ISTA from w = 0: one optax step is a gradient step of size eta = step_scale / L on the smooth part
        followed by the l1 prox S(., eta alpha)."""
        self.eta = cfg.step_scale / float(sparse.lipschitz(self.x, cfg.lam))
        opt = optax.chain(optax.sgd(self.eta), sparse.prox_l1(self.eta, cfg.alpha))
        steps = TrainConfig(steps=cfg.prox_steps, chunk_size=min(cfg.prox_steps, 1000), log_every=10)
        dtype = self.x.dtype
        hp = {"alpha": jnp.asarray(cfg.alpha, dtype), "lam": jnp.asarray(cfg.lam, dtype)}
        return {"ista": self.fit("ista", self.objective(cfg), jnp.zeros(cfg.d, dtype), data=(self.x, self.y),
                                 keys=self.key("train/ista"), hp=hp, train=steps, optimizer=opt)}

    def summarise(self, cfg: Config, fits: dict[str, FitResult], evals: dict) -> dict:
        """Coordinate descent and its special cases against ISTA, the Ridge closed form and the KKT conditions;
        the regularisation path, vmapped over alpha, all-zero from alpha_max on."""
        x, y, alpha, lam = self.x, self.y, cfg.alpha, cfg.lam
        sol = _solve_cases(x, y, alpha, lam, cfg.sweeps)
        cd, ista = sol["cd"], fits["ista"]
        w_cd, kkt_cd, f_cd = cd.w, float(sol["kkt_cd"]), float(cd.objective[-1])
        increases = float(jnp.max(jnp.diff(cd.objective)))
        w_prox = ista.params
        f_prox = float(ista.history["objective"][-1])
        kkt_prox = float(sparse.kkt_violation(w_prox, x, y, alpha, lam))
        diff = float(jnp.max(jnp.abs(w_cd - w_prox)))
        ridge_diff = float(jnp.max(jnp.abs(sol["ridge_cd"] - sol["ridge"])))
        w_lasso, kkt_lasso = sol["lasso"], float(sol["kkt_lasso"])
        a_max = float(sol["alpha_max"])
        alphas = jnp.geomspace(a_max * 1.5, a_max * 1e-3, cfg.n_alphas)
        self.path = (alphas, sparse.regularisation_path(x, y, alphas, lam, cfg.sweeps), cd.objective)
        w_at_max, w_below = sol["at_max"], sol["below_max"]

        tol = 1e-8 if x.dtype == jnp.float64 else 1e-3
        self.check("coordinate descent KKT violation", kkt_cd, 0.0, tol)
        self.check("ISTA KKT violation", kkt_prox, 0.0, 1e3 * tol)
        self.check("max |w_cd - w_ista|", diff, 0.0, 1e3 * tol)
        self.check("objective: coordinate descent vs ISTA", f_cd, f_prox, 1e3 * tol * max(1.0, abs(f_cd)))
        self.check("Ridge: coordinate descent vs closed form", ridge_diff, 0.0, tol)
        self.check("Lasso KKT violation", kkt_lasso, 0.0, tol)
        self.check("nonzeros at alpha_max", float(jnp.sum(w_at_max != 0)), 0.0, 0.0)
        self.check("largest objective increase over a sweep", max(increases, 0.0), 0.0, tol * max(1.0, f_cd))
        return {
            "alpha": alpha,
            "lambda": lam,
            "w_true": self.w_true,
            "coordinate_descent": {"w": w_cd, "objective": f_cd, "kkt_violation": kkt_cd,
                                   "nonzeros": int(jnp.sum(w_cd != 0)), "max_objective_increase": increases},
            "ista": {"w": w_prox, "objective": f_prox, "kkt_violation": kkt_prox, "step_size": self.eta},
            "max_abs_diff_cd_vs_prox": diff,
            "ridge": {"w": sol["ridge"], "max_abs_diff": ridge_diff},
            "lasso": {"w": w_lasso, "kkt_violation": kkt_lasso, "nonzeros": int(jnp.sum(w_lasso != 0))},
            "path": {"alpha_max": a_max, "alphas": alphas, "nonzeros": jnp.sum(self.path[1] != 0, axis=1),
                     "nonzeros_at_alpha_max": int(jnp.sum(w_at_max != 0)),
                     "nonzeros_below_alpha_max": int(jnp.sum(w_below != 0))},
        }

    def figures(self, cfg: Config, fits: dict[str, FitResult], evals: dict, metrics: dict) -> None:
        """The regularisation path and the convergence of both solvers."""
        alphas, path, f_cd = (np.asarray(a) for a in self.path)
        h = fits["ista"].history
        fig = draw(alphas, path, np.asarray(self.w_true), cfg.alpha, metrics["path"]["alpha_max"], f_cd,
                   np.asarray(h["objective"]), np.asarray(h["step"]), metrics["coordinate_descent"]["objective"])
        self.save_figure(fig, "elastic_net")


def draw(alphas: np.ndarray, path: np.ndarray, w_true: np.ndarray, alpha: float, alpha_max: float,
         f_cd: np.ndarray, f_ista: np.ndarray, ista_steps: np.ndarray, f_star: float) -> Figure:
    """Two panels: the coefficients along the path (true support coloured) and F(w) - F(w*) per pass.

    Args:
        alphas: the path's regularisation strengths; ``path`` its solutions, one row per alpha.
        path: (len(alphas), d).
        w_true: the true coefficients.
        alpha: the config's alpha, and ``alpha_max = ||X^T y||_inf``, both marked.
        alpha_max: see ``alpha``.
        f_cd: F(w) after each coordinate-descent pass; ``f_ista`` ISTA's at ``ista_steps``; ``f_star`` = F(w*).
        f_ista: see ``f_cd``.
        ista_steps: see ``f_cd``.
        f_star: see ``f_cd``.

    Returns:
        The figure.
    """
    fig, (ax0, ax1) = figure(1, 2, size=(10, 3.8))
    colour = iter(PALETTE)
    for i in range(path.shape[1]):
        on = w_true[i] != 0
        ax0.plot(alphas, path[:, i], color=next(colour) if on else "0.6", lw=1.8 if on else 1.0,
                 label=f"$w_{{{i + 1}}}$ (true {w_true[i]:+.1f})" if on else None, zorder=3 if on else 2)
    ax0.axvline(alpha, color="k", ls="--", lw=1, label=rf"$\alpha$ = {alpha:g}")
    ax0.axvline(alpha_max, color="k", ls=":", lw=1, label=r"$\alpha_{max} = \|X^T y\|_\infty$")
    ax0.set_xscale("log")
    ax0.set_xlabel(r"$\alpha$ (l1 weight)")
    ax0.set_ylabel("coefficient")
    ax0.set_title("regularisation path (grey: truly zero)")
    ax0.legend(fontsize=7, loc="upper right")
    f_star = min(f_star, float(np.min(f_ista)), float(np.min(f_cd)))
    floor = 1e-13 * max(1.0, abs(f_star))  # below this the gap is rounding error
    gap_cd, gap_ista = f_cd - f_star, f_ista - f_star
    keep_cd, keep_ista = gap_cd > floor, gap_ista > floor
    ax1.semilogy(np.arange(len(f_cd))[keep_cd], gap_cd[keep_cd], color=PALETTE[0],
                 marker="o", ms=3, label="coordinate descent (per sweep)")
    ax1.semilogy((ista_steps + 1)[keep_ista], gap_ista[keep_ista], color=PALETTE[1],
                 label="ISTA (per gradient step)")
    ax1.axhline(floor, color="0.5", lw=0.8, ls=":", label="rounding level")
    ax1.set_xscale("symlog", linthresh=10)
    ax1.set_xlabel("passes over the data")
    ax1.set_ylabel(r"$F(w) - F(w^\star)$")
    ax1.set_title("convergence")
    ax1.legend(fontsize=8)
    return fig
