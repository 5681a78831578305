"""The Dirac-GAN (Mescheder, Geiger & Nowozin 2018): which losses, regularisers and update rules converge.

Data is a point mass at 0, the generator a point mass at theta, the discriminator linear, s(x) = psi x; the
equilibrium is (psi, theta) = (0, 0). Without a regulariser the field's Jacobian there, [[0, b], [-b, 0]], has
purely imaginary eigenvalues +- i b (b = 1/2 for the saturating and non-saturating losses, 1 for WGAN), so
simultaneous GDA spirals out for every step size; R1 / R2 gradient penalties (and, for the logistic losses,
instance noise) add c > 0 to the discriminator's diagonal and make it converge. For every loss x regulariser x
update rule the run compares the spectral radius of the update predicted from the closed-form Jacobian with
jax.jacobian of the real update and with the radius measured from a trajectory started near the equilibrium,
then draws the trajectories in the (theta, psi) plane.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from vlab.algorithms import gda
from vlab.errors import ConfigError
from vlab.harness import plots
from vlab.harness.config import BaseConfig, spec
from vlab.harness.experiment import Experiment as _Experiment
from vlab.harness.names import check_names
from vlab.models import games
from vlab.objectives import gan

# ------------------------------------------------------------------------------------------------ config


@dataclass
class RegulariserConfig:
    """One column of the comparison: gradient penalties on real (r1) and generated (r2) points, instance noise."""

    name: str = "none"
    r1: float = spec(0.0, ge=0, help="R1 weight: r1/2 E_real ||grad_x s||^2")
    r2: float = spec(0.0, ge=0, help="R2 weight: r2/2 E_fake ||grad_x s||^2")
    noise_std: float = spec(0.0, ge=0, help="instance noise standard deviation")


def _default_regularisers() -> list[RegulariserConfig]:
    return [RegulariserConfig("none"), RegulariserConfig("R1", r1=0.3), RegulariserConfig("R2", r2=0.6),
            RegulariserConfig("instance noise", noise_std=1.2)]


@dataclass
class Config(BaseConfig):
    precision: Literal["float32", "float64"] = "float64"
    losses: list[str] = spec(list(gan.LOSSES), help="saturating | non_saturating | wgan")
    regularisers: list[RegulariserConfig] = field(default_factory=_default_regularisers)
    rules: list[str] = spec(list(gda.RULES), help="update rules")
    step_size: float = spec(0.1, gt=0, help="step size a of every rule")
    consensus_weight: float = spec(1.0, gt=0, help="gamma of consensus optimisation")
    steps: int = spec(1000, gt=0, help="steps of the drawn trajectories")
    z0: list[float] = spec([0.5, 1.0], help="starting point (psi_0, theta_0)")
    probe_radius: float = spec(1e-4, gt=0, help="start of the short trajectory that measures the radius")
    converged_tol: float = spec(1e-3, gt=0, help="distance below which a trajectory has converged")
    escape: float = spec(1e6, gt=0, help="a trajectory farther than this has diverged")
    n_noise: int = spec(64, ge=2, help="deterministic nodes of the instance-noise expectation")

    def check(self, prefix: str) -> None:
        check_names(self.rules, gda.RULES, f"{prefix}rules", what="rule")
        check_names(self.losses, gan.LOSSES, f"{prefix}losses", what="loss", once=False)
        if not self.regularisers:
            raise ConfigError(f"key '{prefix}regularisers': value [] is not valid: expected at least one entry")
        names = [r.name for r in self.regularisers]
        if len(set(names)) != len(names):
            raise ConfigError(f"key '{prefix}regularisers': value {names} is not valid: expected distinct names")
        if len(self.z0) != 2 or not any(self.z0):
            raise ConfigError(f"key '{prefix}z0': value {self.z0} is not valid: expected [psi_0, theta_0], "
                              "not both 0")


# ------------------------------------------------------------------------------------------------ analysis


def program(cfg: Config, key: jax.Array):
    """One compiled program: for every rule, vmapped over all (loss, regulariser) pairs, the spectral radius
    predicted from the closed-form Jacobian, the one of jax.jacobian of the update, the one measured from a
    trajectory near the equilibrium, and the drawn trajectory from z0 (both simulated with ``key``)."""
    a = cfg.step_size
    z_star = (jnp.zeros(()), jnp.zeros(()))
    z0 = (jnp.asarray(cfg.z0[0], float), jnp.asarray(cfg.z0[1], float))
    scale = cfg.probe_radius / float(np.hypot(*cfg.z0))
    probe = (z0[0] * scale, z0[1] * scale)
    # below this distance rounding in the field (e.g. the noise nodes' mean, 0 only to rounding) drives the run
    floor = cfg.probe_radius * (1e-6 if jax.config.jax_enable_x64 else 1e-2)

    def one(loss: str, name: str, r1, r2, noise_std):
        gan_loss, kind = gan.LOSSES[loss], gda.RULES[name]
        game = gan.dirac_gan(gan_loss, r1=r1, r2=r2, noise_std=noise_std, n_noise=cfg.n_noise)
        rule = gda.make_rule(kind, a, consensus_weight=cfg.consensus_weight)
        closed = gda.linear_update_matrix(kind, a, gan.dirac_jacobian(gan_loss, r1=r1, r2=r2, noise_std=noise_std),
                                          1, consensus_weight=cfg.consensus_weight)
        # the drawn trajectory from z0 and a measuring one from probe_radius, vmapped together: the measuring one
        # stops at 10 probe radii, so the radius it sees is the linearisation's
        starts = jax.tree.map(lambda u, v: jnp.stack([u, v]), z0, probe)
        escapes = jnp.array([cfg.escape, 10 * cfg.probe_radius])
        both = jax.vmap(lambda z, e: gda.simulate(rule, game, z, key, cfg.steps, z_star=z_star, escape=e))(
            starts, escapes)
        traj, near = (jax.tree.map(lambda x, i=i: x[i], both) for i in (0, 1))
        return {
            "rho_predicted": gda.spectral_radius(closed),
            "rho_jacobian": gda.spectral_radius(gda.update_jacobian(rule, game, z_star)),
            "rho_measured": gda.dmd_spectral_radius(near, skip=1 if name == "optimistic" else 0,
                                                    floor=floor),
            "dist": traj.dist, "z_path": traj.z_path, "diverged_at": traj.diverged_at,
        }

    def run_all(r1, r2, noise_std):
        return {loss: {name: jax.vmap(lambda *r, loss=loss, name=name: one(loss, name, *r))(r1, r2, noise_std)
                       for name in cfg.rules} for loss in cfg.losses}

    return jax.jit(run_all)


def combinations(cfg: Config) -> tuple[list[tuple[int, str, RegulariserConfig]], list[jax.Array]]:
    """Every (loss, regulariser) pair with its index on the vmapped axis, and the program's inputs."""
    pairs = [(j, loss, reg) for loss in cfg.losses for j, reg in enumerate(cfg.regularisers)]
    values = [jnp.asarray([getattr(reg, k) for reg in cfg.regularisers], float) for k in ("r1", "r2", "noise_std")]
    return pairs, values


# ------------------------------------------------------------------------------------------------ figures


def draw_trajectories(cfg: Config, out: dict) -> Figure:
    """Each (loss, regulariser) panel: the game's field in the (theta, psi) plane and every rule's path from z0;
    the rules' legend below the panels."""
    rows, cols = len(cfg.losses), len(cfg.regularisers)
    fig, axes = plots.figure(rows, cols, size=(3.6 * cols, 3.3 * rows + 0.4), squeeze=False, layout="constrained")
    lim = 1.5 * max(abs(v) for v in cfg.z0)
    for i, loss in enumerate(cfg.losses):
        for j, reg in enumerate(cfg.regularisers):
            ax = axes[i, j]
            game = gan.dirac_gan(gan.LOSSES[loss], r1=reg.r1, r2=reg.r2, noise_std=reg.noise_std,
                                 n_noise=cfg.n_noise)
            psi, theta, u, v = (np.asarray(x) for x in games.field_on_grid(game, (-lim, lim, -lim, lim), 21))
            ax.streamplot(theta.T, psi.T, v.T, u.T, color="0.78", density=0.7, linewidth=0.7, arrowsize=0.7)
            for k, name in enumerate(cfg.rules):
                path = np.asarray(out[loss][name]["z_path"][j])
                stop = int(out[loss][name]["diverged_at"][j])
                path = path if stop < 0 else path[:stop]
                ax.plot(path[:, 1], path[:, 0], color=plots.color(k), lw=1.1, label=name,
                        ls="--" if k % 2 else "-")
            ax.plot(cfg.z0[1], cfg.z0[0], "o", color="black", ms=3.5)
            ax.plot(0, 0, "*", color=plots.PALETTE[4], ms=10, mec="black", mew=0.5)
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")
            if i == 0:
                ax.set_title(reg.name)
            if j == 0:
                ax.set_ylabel(f"{loss}\npsi (discriminator)")
            if i == rows - 1:
                ax.set_xlabel("theta (generator)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(cfg.rules), frameon=False)
    fig.suptitle(f"Dirac-GAN trajectories, step size {cfg.step_size}, {cfg.steps} steps (star: equilibrium)")
    return fig


def draw_radius_table(cfg: Config, metrics: dict) -> Figure:
    """The predicted spectral radius of every (loss, regulariser) x rule, coloured by log10 (red: diverges)."""
    rows = [(loss, reg.name) for loss in cfg.losses for reg in cfg.regularisers]
    rho = np.array([[metrics[loss][reg][name]["rho_predicted"] for name in cfg.rules] for loss, reg in rows])
    fig, ax = plots.figure(1, 1, size=(1.6 * len(cfg.rules) + 3.0, 0.42 * len(rows) + 1.4))
    logs = np.log10(rho)
    # each sign gets the full colour range, so a barely diverging rule is as visible as a fast-converging one
    norm = TwoSlopeNorm(0.0, vmin=min(logs.min(), -1e-4), vmax=max(logs.max(), 1e-4))
    im = ax.imshow(logs, cmap="RdBu_r", norm=norm, aspect="auto")
    for (i, j), r in np.ndenumerate(rho):
        dark = abs(norm(logs[i, j]) - 0.5) > 0.35
        ax.text(j, i, f"{r:.4f}", ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_xticks(range(len(cfg.rules)), cfg.rules, rotation=20)
    ax.set_yticks(range(len(rows)), [f"{loss}, {reg}" for loss, reg in rows])
    ax.grid(False)
    fig.colorbar(im, ax=ax, label="log10 spectral radius (red: diverges)")
    ax.set_title(f"Spectral radius of each update at the equilibrium, a = {cfg.step_size}")
    return fig


# ------------------------------------------------------------------------------------------------ experiment


class Experiment(_Experiment):
    description = "Dirac-GAN: losses x R1/R2/instance noise x update rules, spectra vs closed forms, trajectories"
    Config = Config
    headline = ("max_rel_error_measured", "converged_fraction")

    def setup(self, cfg: Config) -> None:
        """Simulate every loss x regulariser x rule in one compiled program."""
        self.pairs, inputs = combinations(cfg)
        with self.out.timed("simulate"):
            self.sim = jax.device_get(program(cfg, self.key("simulate"))(*inputs))

    def train(self, cfg: Config) -> dict:
        """Nothing is trained: the dynamics are integrated in :meth:`setup`."""
        return {}

    def summarise(self, cfg: Config, fits: dict, evals: dict) -> dict:
        """Every radius against the closed form, and which trajectories converged."""
        # measured radii to 1e-6 and exact identities to 1e-9 in float64; float32 rounding allows far less
        tol, exact = (1e-6, 1e-9) if jax.config.jax_enable_x64 else (1e-3, 1e-5)
        metrics: dict = {}
        worst, converged, total = 0.0, 0, 0
        for c, loss, reg in self.pairs:
            metrics.setdefault(loss, {})[reg.name] = {}
            for name in cfg.rules:
                r = {k: np.asarray(v)[c] for k, v in self.sim[loss][name].items()}
                pred = float(r["rho_predicted"])
                final = float(r["dist"][-1])
                ok = int(r["diverged_at"]) < 0 and final < cfg.converged_tol
                metrics[loss][reg.name][name] = {
                    "rho_predicted": pred,
                    "rho_jacobian": float(r["rho_jacobian"]),
                    "rho_measured": float(r["rho_measured"]),
                    "distance_final": final,
                    "diverged_at": int(r["diverged_at"]),
                    "converged": ok,
                }
                where = f"{loss}.{reg.name}.{name}"
                self.check(f"{where}.rho_jacobian", float(r["rho_jacobian"]), pred, exact * pred)
                self.check(f"{where}.rho_measured", float(r["rho_measured"]), pred, tol * pred)
                worst = max(worst, abs(float(r["rho_measured"]) - pred) / pred)
                converged += ok
                total += 1
                if (pred < 1 - 1e-9 and not ok and final > float(r["dist"][0])) or (pred > 1 + 1e-9 and ok):
                    self.log(f"[{where}] spectral radius {pred:.5f} but the trajectory from z0 "
                             f"{'converged' if ok else 'moved away'} (outside the linear regime)")
        metrics["max_rel_error_measured"] = worst
        metrics["converged_fraction"] = converged / total
        return metrics

    def figures(self, cfg: Config, fits: dict, evals: dict, metrics: dict) -> None:
        """The trajectories in every panel and the table of spectral radii."""
        self.save_figure(draw_trajectories(cfg, self.sim), "dirac_trajectories")
        self.save_figure(draw_radius_table(cfg, metrics), "dirac_spectral_radius")
