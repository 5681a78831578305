"""Gradient descent-ascent on the bilinear game V(d, g) = d g (seed 002 question 4), rule by rule.

Simultaneous GDA is the linear map [[1, a], [-a, 1]] with eigenvalues 1 +- i a: ||(d_k, g_k)|| grows exactly as
(1 + a^2)^{k/2} and the iterates spiral away from the stationary point (0, 0) for every a > 0. Alternating GDA
keeps determinant 1 (bounded orbits), extragradient, optimistic GDA and consensus optimisation contract for
small a. For each rule the run differentiates one update at the equilibrium with jax.jacobian, compares its
spectral radius with the closed form, measures the radius again from a simulated trajectory alone, and sweeps the
step size as one vmapped program to draw the stability diagram.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from vlab.algorithms import gda
from vlab.errors import ConfigError
from vlab.harness import plots
from vlab.harness.config import BaseConfig, nested, spec
from vlab.harness.experiment import Experiment as _Experiment
from vlab.harness.names import check_names
from vlab.models import games

# ------------------------------------------------------------------------------------------------ config


@dataclass
class StabilityConfig:
    """The grid of step sizes of the stability diagram (one vmapped program)."""

    a_min: float = spec(0.02, gt=0, help="smallest step size")
    a_max: float = spec(2.5, gt=0, help="largest step size")
    points: int = spec(100, ge=2, help="step sizes on the grid")
    steps: int = spec(150, ge=10, help="simulated steps per step size for the measured radius")

    def check(self, prefix: str) -> None:
        if not self.a_min < self.a_max:
            raise ConfigError(f"key '{prefix}a_max': value {self.a_max} is not valid: expected a number > "
                              f"{prefix}a_min = {self.a_min}")


@dataclass
class Config(BaseConfig):
    precision: Literal["float32", "float64"] = "float64"
    rules: list[str] = spec(list(gda.RULES), help="update rules to simulate and analyse")
    step_size: float = spec(0.3, gt=0, help="step size a of the trajectories and eigenvalue plots")
    consensus_weight: float = spec(1.0, gt=0, help="gamma of consensus optimisation")
    steps: int = spec(200, gt=0, help="steps of each trajectory")
    z0: list[float] = spec([1.0, 0.5], help="starting point (d_0, g_0)")
    escape: float = spec(1e12, gt=0, help="a trajectory farther than this from (0, 0) has diverged")
    matrix: list[list[float]] = field(default_factory=lambda: [[1.0, 0.5, 0.0], [0.0, 2.0, -0.3]])
    stability: StabilityConfig = nested(StabilityConfig)

    def check(self, prefix: str) -> None:
        check_names(self.rules, gda.RULES, f"{prefix}rules", what="rule")
        if len(self.z0) != 2 or not any(self.z0):
            raise ConfigError(f"key '{prefix}z0': value {self.z0} is not valid: expected [d_0, g_0], not both 0")
        if not self.matrix or len({len(r) for r in self.matrix}) != 1 or not self.matrix[0]:
            raise ConfigError(f"key '{prefix}matrix': value {self.matrix} is not valid: expected a non-empty "
                              "rectangular list of rows")


# ------------------------------------------------------------------------------------------------ analysis


def analyse_rule(name: str, a: jax.Array, cfg: Config, steps: int, key: jax.Array, record: bool = True) -> dict:
    """Jacobian spectrum, closed form, a trajectory simulated with ``key`` and the radius measured from it, for one
    rule on ``V = d g``.

    Args:
        name: the rule's name in :data:`vlab.algorithms.gda.RULES`.
        a: the step size.
        cfg: the run's configuration (``consensus_weight``, ``z0``, ``escape``).
        steps: the trajectory's steps.
        key: the trajectory's key.
        record: keep the Jacobian, its eigenvalues and the trajectory (else only the radii and the divergence step).

    Returns:
        ``rho_predicted``, ``rho_jacobian``, ``rho_measured``, ``rho_norm_growth`` and ``diverged_at``, with
        ``record`` also ``jacobian``, ``eigenvalues``, ``dist``, ``z_path`` and ``distance_final``.
    """
    game = games.bilinear()
    zero = (jnp.zeros(()), jnp.zeros(()))
    kind = gda.RULES[name]
    rule = gda.make_rule(kind, a, consensus_weight=cfg.consensus_weight)
    jac = gda.update_jacobian(rule, game, zero)
    z0 = (jnp.asarray(cfg.z0[0], float), jnp.asarray(cfg.z0[1], float))
    traj = gda.simulate(rule, game, z0, key, steps, escape=cfg.escape)
    out = {
        "rho_predicted": gda.bilinear_spectral_radius(kind, a, consensus_weight=cfg.consensus_weight),
        "rho_jacobian": gda.spectral_radius(jac),
        "rho_measured": gda.dmd_spectral_radius(traj),
        "rho_norm_growth": gda.norm_growth_rate(traj),
        "diverged_at": traj.diverged_at,
    }
    if record:
        out.update(jacobian=jac, eigenvalues=jnp.linalg.eigvals(jac), dist=traj.dist, z_path=traj.z_path,
                   distance_final=traj.dist[-1])
    return out


def analysis_program(cfg: Config, key: jax.Array):
    """One compiled program at the configured step size: every rule's analysis on ``d g`` and on ``d^T A g``."""
    a_mat = jnp.asarray(cfg.matrix, float)
    mgame = games.matrix_bilinear(a_mat)
    z_star = (jnp.zeros(a_mat.shape[0]), jnp.zeros(a_mat.shape[1]))

    def program(a):  # simultaneous GDA always: seed 002 question 4 is about it
        names = dict.fromkeys([*cfg.rules, "simultaneous"])
        rules = {name: analyse_rule(name, a, cfg, cfg.steps, key) for name in names}
        matrix = {name: gda.spectral_radius(gda.update_jacobian(
            gda.make_rule(gda.RULES[name], a, consensus_weight=cfg.consensus_weight), mgame, z_star))
            for name in cfg.rules}
        return rules, matrix

    return jax.jit(program)


def sweep_program(cfg: Config, key: jax.Array):
    """One compiled, vmapped program: step size -> every rule's predicted and measured radius."""

    def one(a):
        return {r: analyse_rule(r, a, cfg, cfg.stability.steps, key, record=False) for r in cfg.rules}

    return jax.jit(jax.vmap(one))


# ------------------------------------------------------------------------------------------------ figures


def draw_fields(cfg: Config, per_rule: dict) -> Figure:
    """Every rule's trajectory from z0 over the field of ``d g``."""
    n = len(cfg.rules)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plots.figure(rows, cols, size=(4.0 * cols, 3.8 * rows), squeeze=False)
    lim = 2.6 * max(abs(v) for v in cfg.z0)
    d, g, u, v = (np.asarray(x) for x in games.field_on_grid(games.bilinear(), (-lim, lim, -lim, lim), 25))
    for ax, (i, name) in zip(axes.flat, enumerate(cfg.rules), strict=False):
        ax.streamplot(d, g, u, v, color="0.75", density=0.9, linewidth=0.8, arrowsize=0.8)
        res = per_rule[name]
        path = np.asarray(res["z_path"])
        k = int(res["diverged_at"]) if int(res["diverged_at"]) >= 0 else path.shape[0]
        ax.plot(path[:k, 0], path[:k, 1], "-", color=plots.color(i), lw=1.2, marker=".", ms=2.5)
        ax.plot(*cfg.z0, "o", color="black", ms=4, label="start")
        ax.plot(0, 0, "*", color=plots.PALETTE[4], ms=11, mec="black", mew=0.5, label="equilibrium")
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="discriminator d", ylabel="generator g", aspect="equal",
               title=f"{name}: rho = {float(res['rho_predicted']):.4f}")
        if i == 0:
            ax.legend(loc="lower left", fontsize=8)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle(f"V(d, g) = d g, step size a = {cfg.step_size}, {cfg.steps} steps")
    return fig


def draw_eigenvalues(cfg: Config, per_rule: dict) -> Figure:
    """The eigenvalues of every update's Jacobian at (0, 0) against the unit circle, and a zoom."""
    fig, axes = plots.figure(1, 2, size=(10.5, 4.8))
    t = np.linspace(0, 2 * np.pi, 600)
    markers = "osD^vP"
    every = np.concatenate([np.asarray(per_rule[n]["eigenvalues"]) for n in cfg.rules])
    pad = 0.08
    zoom = (every.real.min() - pad, max(every.real.max(), 1.0) + pad,
            every.imag.min() - pad, every.imag.max() + pad)
    for ax, title in zip(axes, ("complex plane", "zoom"), strict=True):
        ax.plot(np.cos(t), np.sin(t), color="0.5", lw=1, label="unit circle")
        for i, name in enumerate(cfg.rules):
            e = np.asarray(per_rule[name]["eigenvalues"])
            ax.scatter(e.real, e.imag, s=55, marker=markers[i % len(markers)], facecolors="none",
                       edgecolors=plots.color(i), linewidths=1.5, label=name, zorder=3)
        ax.set(xlabel="Re lambda", ylabel="Im lambda", title=title)
        ax.set_aspect("equal")
    axes[1].set(xlim=zoom[:2], ylim=zoom[2:])
    axes[0].add_patch(Rectangle((zoom[0], zoom[2]), zoom[1] - zoom[0], zoom[3] - zoom[2], fill=False, ls=":",
                                color="0.3"))
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(f"Eigenvalues of each update's Jacobian at (0, 0), a = {cfg.step_size}")
    return fig


def draw_distance(cfg: Config, per_rule: dict) -> Figure:
    """||z_k|| of every rule's trajectory against rho^k ||z_0||."""
    fig, ax = plots.figure(1, 1, size=(6.5, 4.2))
    for i, name in enumerate(cfg.rules):
        res = per_rule[name]
        dist = np.asarray(res["dist"])
        k = int(res["diverged_at"]) if int(res["diverged_at"]) >= 0 else dist.shape[0]
        steps = np.arange(k)
        ax.semilogy(steps, dist[:k], color=plots.color(i), lw=3.5, alpha=0.55, label=f"{name} (simulated)")
        ax.semilogy(steps, dist[0] * float(res["rho_predicted"]) ** steps, "--", color="black", lw=0.9)
    ax.plot([], [], "--", color="black", lw=0.9, label="rho^k ||z_0|| (closed form)")
    ax.set(xlabel="step k", ylabel="||(d_k, g_k)||", title=f"Distance to the equilibrium, a = {cfg.step_size}")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def draw_stability(cfg: Config, grid: np.ndarray, sweep: dict) -> Figure:
    """Predicted (lines) and measured (circles) spectral radius of every rule over the step-size grid."""
    fig, ax = plots.figure(1, 1, size=(7.0, 4.5))
    every = max(1, len(grid) // 25)
    for i, name in enumerate(cfg.rules):
        ax.plot(grid, sweep[name]["rho_predicted"], color=plots.color(i), lw=1.6, label=name)
        ax.plot(grid[::every], sweep[name]["rho_measured"][::every], "o", color=plots.color(i), ms=4,
                mfc="none")
    ax.plot([], [], "o", color="0.3", mfc="none", label="measured from trajectories")
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_yscale("log")
    ax.set(xlabel="step size a", ylabel="spectral radius of the update",
           title="Stability diagram on V(d, g) = d g (below 1: converges)")
    ax.legend(fontsize=8, loc="upper left")
    return fig


# ------------------------------------------------------------------------------------------------ experiment


class Experiment(_Experiment):
    description = "GDA rules on the bilinear game d*g: Jacobian spectra, closed forms, measured growth, stability"
    Config = Config
    headline = ("simultaneous.rho_measured", "stability.max_rel_error", "seed002_q4.norm_max_rel_error")

    def setup(self, cfg: Config) -> None:
        """Simulate every rule at the configured step size, then the stability grid as one vmapped program."""
        key = self.key("simulate")
        a = jnp.asarray(cfg.step_size, float)
        with self.out.timed("simulate"):
            self.per_rule, self.matrix_rho = jax.device_get(analysis_program(cfg, key)(a))
        self.grid = np.linspace(cfg.stability.a_min, cfg.stability.a_max, cfg.stability.points)
        with self.out.timed("stability"):
            out = jax.device_get(sweep_program(cfg, key)(jnp.asarray(self.grid)))
        self.sweep = {n: {k: np.asarray(v) for k, v in out[n].items()} for n in cfg.rules}

    def train(self, cfg: Config) -> dict:
        """Nothing is trained: the dynamics are integrated in :meth:`setup`."""
        return {}

    def summarise(self, cfg: Config, fits: dict, evals: dict) -> dict:
        """Every rule's radii against the closed forms, seed 002 q4's matrix and growth, the matrix game and the
        stability diagram."""
        # measured radii to 1e-6 and exact identities to 1e-9 in float64; float32 rounding allows far less
        tol, exact = (1e-6, 1e-9) if jax.config.jax_enable_x64 else (1e-3, 1e-5)
        metrics: dict = {}
        for name in cfg.rules:
            res = self.per_rule[name]
            ev = np.asarray(res["eigenvalues"])
            metrics[name] = {k: float(res[k]) for k in ("rho_predicted", "rho_jacobian", "rho_measured",
                                                        "rho_norm_growth")}
            metrics[name].update(distance_initial=float(res["dist"][0]), distance_final=float(res["distance_final"]),
                                 diverged_at=int(res["diverged_at"]),
                                 eigenvalues=[[float(e.real), float(e.imag)] for e in ev])
            pred = float(res["rho_predicted"])
            self.check(f"{name}.rho_jacobian", float(res["rho_jacobian"]), pred, exact * pred)
            self.check(f"{name}.rho_measured", float(res["rho_measured"]), pred, tol * pred)
            if int(res["diverged_at"]) >= 0:
                self.log(f"[{name}] diverged at step {int(res['diverged_at'])} (left the ball of radius "
                         f"{cfg.escape:g})")

        # seed 002 question 4: the update matrix and the exact growth of simultaneous GDA
        sim = self.per_rule["simultaneous"]
        jac = np.asarray(sim["jacobian"])
        seed_matrix = np.array([[1.0, cfg.step_size], [-cfg.step_size, 1.0]])
        stop = int(sim["diverged_at"])
        dist = np.asarray(sim["dist"])[: stop if stop >= 0 else None]
        k = np.arange(dist.size)
        predicted = (1 + cfg.step_size**2) ** (k / 2) * np.hypot(*cfg.z0)
        norm_err, mat_err = float(np.max(np.abs(dist / predicted - 1))), float(np.max(np.abs(jac - seed_matrix)))
        metrics["seed002_q4"] = {"update_matrix": jac.tolist(), "update_matrix_max_abs_error": mat_err,
                                 "determinant": float(np.linalg.det(jac)), "norm_max_rel_error": norm_err,
                                 "steps_compared": int(dist.size)}
        self.check("seed002_q4.update_matrix", mat_err, 0.0, exact)
        self.check("seed002_q4.determinant", float(np.linalg.det(jac)), 1 + cfg.step_size**2, exact)
        self.check("seed002_q4.norm_growth", norm_err, 0.0, tol)

        # V = d^T A g: the radius is the worst singular value's
        a_mat = np.asarray(cfg.matrix, float)
        svals = np.linalg.svd(a_mat, compute_uv=False)
        if a_mat.shape[0] != a_mat.shape[1]:
            svals = np.append(svals, 0.0)  # the extra directions of a rectangular A do not move
        metrics["matrix_game"] = {"singular_values": svals.tolist()}
        for name in cfg.rules:
            rho = float(self.matrix_rho[name])
            pred = max(float(gda.bilinear_spectral_radius(gda.RULES[name], cfg.step_size, s,
                                                          consensus_weight=cfg.consensus_weight)) for s in svals)
            metrics["matrix_game"][name] = {"rho_jacobian": rho, "rho_predicted": pred}
            self.check(f"matrix_game.{name}", rho, pred, exact * pred)

        # the stability diagram
        grid = self.grid
        sweep = {"a": grid.tolist(), "max_rel_error": 0.0, "rules": {}}
        for name in cfg.rules:
            r = self.sweep[name]
            err = np.abs(r["rho_measured"] - r["rho_predicted"]) / r["rho_predicted"]
            err_jac = np.abs(r["rho_jacobian"] - r["rho_predicted"]) / r["rho_predicted"]
            stable = grid[r["rho_predicted"] < 1]
            sweep["rules"][name] = {
                **{k: r[k].tolist() for k in ("rho_predicted", "rho_measured", "rho_jacobian")},
                "max_rel_error": float(err.max()),
                "max_rel_error_jacobian": float(err_jac.max()),
                "stable_step_sizes": [float(stable.min()), float(stable.max())] if stable.size else [],
            }
            sweep["max_rel_error"] = max(sweep["max_rel_error"], float(err.max()))
            self.check(f"stability.{name}.rho_measured", float(err.max()), 0.0, tol)
        metrics["stability"] = sweep
        return metrics

    def figures(self, cfg: Config, fits: dict, evals: dict, metrics: dict) -> None:
        """The trajectories over the field, the eigenvalues, the distances and the stability diagram."""
        self.save_figure(draw_fields(cfg, self.per_rule), "vector_field")
        self.save_figure(draw_eigenvalues(cfg, self.per_rule), "eigenvalues")
        self.save_figure(draw_distance(cfg, self.per_rule), "distance")
        self.save_figure(draw_stability(cfg, self.grid, self.sweep), "stability")
