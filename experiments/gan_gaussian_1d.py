"""The seed's 1-D GAN (seed 000 question 2; gradients of seed 003 questions 11-17).

Real data is N(1, 1); the generator maps z ~ Uniform(0, 1) to x = mu_g + Phi^{-1}(z) ~ N(mu_g, 1); the
discriminator is logistic, D(x) = sigmoid(w x + b). Because both distributions have unit variance the optimal
discriminator D*(x) = p(x) / (p(x) + p_g(x)) = sigmoid((1 - mu_g) x - (1 - mu_g^2) / 2) is in that family, so the
game's equilibrium is mu_g = 1, w = b = 0 (D = 1/2). The run trains the game (simultaneous stochastic gradient
play through the stop-gradient surrogate; many seeds as one vmapped program), trains a discriminator alone against
a frozen generator and compares it with D*, checks jax.grad against the hand-derived gradients, and reproduces
question 2(b)-(c): a real point is declared fake by the threshold rule with probability Phi(-gamma) (checked by
sampling), and the best threshold is gamma = (1 - mu_g) / 2 (found numerically).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

from vlab.engine import FitResult, LossFn
from vlab.errors import ConfigError
from vlab.harness import plots
from vlab.harness.config import BaseConfig, OptimizerConfig, TrainConfig, nested, spec
from vlab.harness.experiment import Experiment as _Experiment
from vlab.keys import stream
from vlab.models import games
from vlab.objectives import gan

# ------------------------------------------------------------------------------------------------ config


@dataclass
class ThresholdConfig:
    """Seed 000 question 2(b)-(c): the threshold discriminator "real iff x >= 1 - gamma"."""

    gammas: list[float] = spec([0.25, 0.5, 1.0, 1.5], help="thresholds whose Phi(-gamma) is checked by sampling")
    mc_samples: int = spec(200_000, ge=1000, help="real samples per Monte Carlo check")
    mu_g: list[float] = spec([-3.0, -2.0, -1.0, 0.0, 0.5], help="generator means for the best threshold")


@dataclass
class OptimalDConfig:
    """A discriminator trained alone against a frozen N(mu_g, 1), compared with D*."""

    mu_g: float = spec(-1.0, help="the frozen generator's mean")
    nodes: int = spec(64, ge=8, help="Gauss-Hermite nodes of the (deterministic) expectations")
    train: TrainConfig = nested(TrainConfig, steps=3000, chunk_size=1000, log_every=50,
                                optimizer=OptimizerConfig(name="adam", lr=0.05, schedule="cosine"))


@dataclass
class Config(BaseConfig):
    mu_real: float = spec(1.0, help="mean of the real data N(mu_real, 1) (the seed: 1)")
    mu_g_init: float = spec(-2.0, help="initial generator mean")
    loss: Literal["saturating", "non_saturating"] = "non_saturating"
    r1: float = spec(0.0, ge=0, help="R1 penalty weight")
    r2: float = spec(0.0, ge=0, help="R2 penalty weight")
    noise_std: float = spec(0.0, ge=0, help="instance noise standard deviation")
    batch: int = spec(256, gt=0, help="real and generated samples per step")
    n_seeds: int = spec(8, gt=0, help="independent runs (minibatch streams), one vmapped program")
    train: TrainConfig = nested(TrainConfig, steps=4000, chunk_size=1000, log_every=5,
                                optimizer=OptimizerConfig(name="sgd", lr=0.1, schedule="cosine"))
    average_last: float = spec(0.2, gt=0, le=1, help="fraction of the logged steps averaged for mu_g")
    snapshots: int = spec(5, ge=2, le=8, help="panels of the densities-over-training figure")
    tolerance: float = spec(0.05, gt=0, help="the learned mu_g must be within this of mu_real")
    threshold: ThresholdConfig = nested(ThresholdConfig)
    optimal_d: OptimalDConfig = nested(OptimalDConfig)

    def check(self, prefix: str) -> None:
        for g in self.threshold.mu_g:
            if not g < self.mu_real:
                raise ConfigError(f"key '{prefix}threshold.mu_g': value {self.threshold.mu_g} is not valid: "
                                  f"expected every mean < mu_real = {self.mu_real} (so that gamma > 0)")
        if self.optimal_d.mu_g == self.mu_real:
            raise ConfigError(f"key '{prefix}optimal_d.mu_g': value {self.optimal_d.mu_g} is not valid: expected "
                              f"a mean different from mu_real = {self.mu_real}")


# ------------------------------------------------------------------------------------------------ figures


def density(x: np.ndarray, mu: float) -> np.ndarray:
    """N(x; mu, 1)."""
    return np.exp(-0.5 * (x - mu) ** 2) / np.sqrt(2 * np.pi)


def draw_densities(cfg: Config, hist: dict, note: str = "") -> Figure:
    """The first member's p_g, D and D* against p at a few steps; ``note`` (in the title) names that member."""
    steps = np.asarray(hist["step"])
    # the game moves fast early and slowly late: snapshots at geometrically spaced logged steps
    picks = np.unique(np.r_[0, np.geomspace(1, len(steps) - 1, cfg.snapshots - 1).round().astype(int)])
    fig, axes = plots.figure(1, len(picks), size=(3.6 * len(picks), 3.3), sharey=True)
    x = np.linspace(cfg.mu_g_init - 3.5, cfg.mu_real + 3.5, 400)
    for ax, i in zip(np.atleast_1d(axes), picks, strict=True):
        mu, w, b = (float(np.asarray(hist[k])[i, 0]) for k in ("mu_g", "w", "b"))
        ax.fill_between(x, density(x, cfg.mu_real), color=plots.PALETTE[0], alpha=0.25, label="p(x) = N(1, 1)")
        ax.plot(x, density(x, mu), color=plots.PALETTE[1], lw=1.8, label="p_g(x)")
        ax.plot(x, np.asarray(gan.optimal_discriminator(jnp.asarray(x), cfg.mu_real, mu)), "--", color="black",
                lw=1.3, label="D*(x) = p / (p + p_g)")
        ax.plot(x, 1 / (1 + np.exp(-(w * x + b))), color=plots.PALETTE[2], lw=1.8, label="trained D(x)")
        ax.set(title=f"step {int(steps[i])}: mu_g = {mu:.3f}", xlabel="x", ylim=(0, 1.02))
    np.atleast_1d(axes)[0].set_ylabel("density / probability")
    np.atleast_1d(axes)[-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(f"1-D GAN (seed 000 q2), {cfg.loss} loss" + (f", {note}" if note else ""))
    return fig


def draw_parameters(cfg: Config, hist: dict, who: str = "seeds") -> Figure:
    """mu_g, w and b of every member over training (``who``: what the members are) against the equilibrium."""
    steps = np.asarray(hist["step"])
    fig, axes = plots.figure(1, 3, size=(12, 3.3))
    for ax, k, target in zip(axes, ("mu_g", "w", "b"), (cfg.mu_real, 0.0, 0.0), strict=True):
        v = np.asarray(hist[k])
        ax.plot(steps, v, color=plots.PALETTE[0], lw=0.7, alpha=0.5)
        ax.plot(steps, v.mean(axis=1), color=plots.PALETTE[1], lw=1.8, label=f"mean of {v.shape[1]} {who}")
        ax.axhline(target, color="black", ls="--", lw=1, label=f"equilibrium {target:g}")
        ax.set(xlabel="step", title=k, xscale="symlog", xlim=(0, steps[-1]))
        ax.xaxis.set_major_formatter(ScalarFormatter())
    axes[0].legend(fontsize=8)
    return fig


def draw_threshold(cfg: Config, metrics: dict) -> Figure:
    """Seed 000 q2(b)-(c): the accuracy of the threshold rule with its best gamma, and Phi(-gamma) sampled."""
    fig, axes = plots.figure(1, 2, size=(11, 3.8))
    span = cfg.mu_real - min(cfg.threshold.mu_g) + 1.0
    g = np.linspace(-1.0, span, 400)
    for i, mu in enumerate(cfg.threshold.mu_g):
        acc = np.asarray(gan.threshold_accuracy(jnp.asarray(g), mu, cfg.mu_real))
        axes[0].plot(g, acc, color=plots.color(i), lw=1.5, label=f"mu_g = {mu:g}")
        found = metrics["best_threshold"][f"{mu:g}"]["gamma_numeric"]
        axes[0].plot(found, float(gan.threshold_accuracy(found, mu, cfg.mu_real)), "o", color=plots.color(i))
        axes[0].axvline((cfg.mu_real - mu) / 2, color=plots.color(i), ls=":", lw=1)
    axes[0].set(xlabel="gamma (rule: real iff x >= 1 - gamma)", ylabel="P(correct decision)",
                title="Best threshold: dots found numerically, lines (1 - mu_g) / 2")
    axes[0].legend(fontsize=8)
    gg = np.linspace(0, max(cfg.threshold.gammas) + 0.5, 300)
    axes[1].plot(gg, np.asarray(ndtr(-jnp.asarray(gg))), color="black", lw=1.5, label="Phi(-gamma)")
    pts = metrics["prob_real_declared_fake"]
    axes[1].errorbar([p["gamma"] for p in pts], [p["monte_carlo"] for p in pts],
                     yerr=[3 * p["standard_error"] for p in pts], fmt="o", color=plots.PALETTE[1],
                     label=f"sampled ({cfg.threshold.mc_samples} real points, 3 s.e.)")
    axes[1].set(xlabel="gamma", ylabel="P(real point declared fake)", title="Seed 000 q2(b)")
    axes[1].legend(fontsize=8)
    return fig


# ------------------------------------------------------------------------------------------------ experiment


class Experiment(_Experiment):
    description = "Seed 000 q2 GAN: N(1,1) vs mu_g + Phi^-1(z), logistic D, D*, threshold rule, seed 003 gradients"
    Config = Config
    headline = ("mu_g", "mu_g_error", "optimal_discriminator.w_error", "best_threshold_max_error")
    member_keys = ("seed", "train.optimizer.lr", "mu_g_init")

    def objective(self, cfg: Config) -> LossFn:
        """The stop-gradient surrogate of the game (its gradient is the game's field), with the players'
        parameters as metrics."""
        game = gan.gaussian_gan(cfg.batch, mu_real=cfg.mu_real, loss=gan.LOSSES[cfg.loss], r1=cfg.r1, r2=cfg.r2,
                                noise_std=cfg.noise_std)
        surrogate = games.surrogate_loss(game)

        def loss(params, batch, key, hp):
            value, aux = surrogate(params, batch, key, hp)
            return value, {**aux, "mu_g": params["g"]["mu"], "w": params["d"]["w"], "b": params["d"]["b"]}

        return loss

    def train(self, cfg: Config) -> dict[str, FitResult]:
        """The game, every member from D = 1/2 and its own mu_g_init; then D alone against N(optimal_d.mu_g, 1)."""
        n = len(self.members)
        mu0 = jnp.asarray(self.members.values("mu_g_init"), jnp.zeros(()).dtype)
        params = {"d": {"w": jnp.zeros(n), "b": jnp.zeros(n)}, "g": {"mu": mu0}}
        od = cfg.optimal_d
        means = {"mu_real": jnp.asarray(cfg.mu_real, mu0.dtype), "mu_g": jnp.asarray(od.mu_g, mu0.dtype)}
        return {
            "gan": self.fit("gan", self.objective(cfg), params),
            "optimal_d": self.fit("optimal_d", gan.discriminator_objective(od.nodes),
                                  {"w": jnp.zeros(()), "b": jnp.zeros(())}, data=means,
                                  keys=self.key("train/optimal_d"), train=od.train),
        }

    def summarise(self, cfg: Config, fits: dict[str, FitResult], evals: dict) -> dict:
        """mu_g per member against mu_real, the trained D against D*, seed 003's gradients, and seed 000 q2(b)-(c)."""
        res = fits["gan"]
        mu_hist = np.asarray(res.history["mu_g"])
        tail = max(1, int(round(cfg.average_last * mu_hist.shape[0])))
        mu_avg = mu_hist[-tail:].mean(axis=0)
        mu_final = np.asarray(res.params["g"]["mu"])
        metrics: dict = {
            "mu_g": float(mu_avg.mean()),
            "mu_g_error": float(np.abs(mu_avg - cfg.mu_real).max()),
            "mu_g_final_per_seed": mu_final.tolist(),
            "mu_g_averaged_per_seed": mu_avg.tolist(),
            "mu_g_std_across_seeds": float(mu_avg.std()),
            "w_final": float(np.asarray(res.params["d"]["w"]).mean()),
            "b_final": float(np.asarray(res.params["d"]["b"]).mean()),
            "compile_s": res.compile_s, "train_s": res.train_s,
        }
        for i, m in enumerate(mu_avg):
            self.check(f"mu_g ({self.members.label(i)})", float(m), cfg.mu_real, cfg.tolerance)
        metrics["members"] = self.member_rows({"mu_g": mu_avg, "mu_g_error": np.abs(mu_avg - cfg.mu_real),
                                               "mu_g_final": mu_final})

        # ---- D* against the discriminator trained alone on the exact (quadrature) value, generator frozen
        od, opt = cfg.optimal_d, fits["optimal_d"].params
        w_star, b_star = cfg.mu_real - od.mu_g, -(cfg.mu_real**2 - od.mu_g**2) / 2
        w_fit, b_fit = float(opt["w"]), float(opt["b"])
        metrics["optimal_discriminator"] = {
            "mu_g": od.mu_g, "w_trained": w_fit, "b_trained": b_fit, "w_closed_form": w_star,
            "b_closed_form": b_star, "w_error": abs(w_fit - w_star), "b_error": abs(b_fit - b_star),
        }
        self.check("optimal_discriminator.w", w_fit, w_star, 1e-3)
        self.check("optimal_discriminator.b", b_fit, b_star, 1e-3)

        # ---- seed 003 q11-17: the hand-derived gradients against jax.grad at a random point and batch
        key = self.key("gradients")
        d = {"w": jnp.asarray(0.7), "b": jnp.asarray(-0.3)}
        x_real = cfg.mu_real + jax.random.normal(stream(key, "real"), (cfg.batch,))
        u = jax.random.uniform(stream(key, "latent"), (cfg.batch,), minval=1e-6, maxval=1.0)
        mu, loss = jnp.asarray(-0.5), gan.LOSSES[cfg.loss]
        hand, auto = gan.seed_gradients(d, mu, x_real, u, loss), gan.jax_gradients(d, mu, x_real, u, loss)
        grad_err = max(abs(float(hand[k]) - float(auto[k])) for k in hand)
        metrics["seed003_gradients"] = {"hand": {k: float(v) for k, v in hand.items()},
                                        "jax_grad": {k: float(v) for k, v in auto.items()},
                                        "max_abs_error": grad_err}
        self.check("seed003_gradients", grad_err, 0.0, 1e-5)

        # ---- seed 000 q2(b): P(real declared fake) = Phi(-gamma), by sampling
        x = cfg.mu_real + jax.random.normal(self.key("threshold"), (cfg.threshold.mc_samples,))
        pts = []
        for gamma in cfg.threshold.gammas:
            p_mc = float(jnp.mean(x < cfg.mu_real - gamma))
            p = float(gan.prob_real_declared_fake(jnp.asarray(gamma)))
            se = float(np.sqrt(p * (1 - p) / cfg.threshold.mc_samples))
            pts.append({"gamma": gamma, "closed_form": p, "monte_carlo": p_mc, "standard_error": se})
            self.check(f"prob_real_declared_fake.gamma{gamma:g}", p_mc, p, 4 * se)
        metrics["prob_real_declared_fake"] = pts

        # ---- seed 000 q2(c): the best threshold, numerically, against gamma = (1 - mu_g) / 2
        found = np.asarray(jax.jit(jax.vmap(lambda m: gan.best_threshold(m, cfg.mu_real)))(
            jnp.asarray(cfg.threshold.mu_g, float)))
        metrics["best_threshold"] = {}
        worst = 0.0
        for mu_g, gam in zip(cfg.threshold.mu_g, found, strict=True):
            closed = (cfg.mu_real - mu_g) / 2
            metrics["best_threshold"][f"{mu_g:g}"] = {"gamma_numeric": float(gam), "gamma_closed_form": closed}
            worst = max(worst, abs(float(gam) - closed))
            self.check(f"best_threshold.mu_g{mu_g:g}", float(gam), closed, 1e-6)
        metrics["best_threshold_max_error"] = worst
        return metrics

    def figures(self, cfg: Config, fits: dict[str, FitResult], evals: dict, metrics: dict) -> None:
        """The densities over training, every member's parameters, and the threshold rule."""
        hist = fits["gan"].history
        self.save_figure(draw_densities(cfg, hist, self.member_title(0)), "densities")
        self.save_figure(draw_parameters(cfg, hist, "members" if self.members.swept else "seeds"), "parameters")
        self.save_figure(draw_threshold(cfg, metrics), "threshold")
