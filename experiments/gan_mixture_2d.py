"""A GAN on a ring of 2-D Gaussians: mode collapse, and what regularisers and optimism change.

Real data is k equally weighted Gaussians on a circle (eight by default, the protocol of Metz et al. 2017); the
generator and the discriminator are MLPs (vlab.nn). Each variant (loss, R1 / R2 penalty, instance noise,
optimistic Adam) is one fit of the stop-gradient surrogate of the game (simultaneous updates) from the same
initialisations, several seeds as one vmapped program. A mode is covered when at least 1% of the samples fall within
3 standard deviations of its centre; a sample is of high quality when it falls within 3 standard deviations of any.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import jax
import numpy as np
import optax
from matplotlib.figure import Figure

from vlab.data.toy import circle_mixture, circle_mixture_centres
from vlab.engine import FitResult, LossFn
from vlab.errors import ConfigError
from vlab.harness import plots
from vlab.harness.config import BaseConfig, OptimizerConfig, TrainConfig, build_optimizer, nested, spec
from vlab.harness.experiment import Experiment as _Experiment
from vlab.keys import stream
from vlab.models import games
from vlab.nn import ACTIVATIONS, mlp_apply, mlp_init
from vlab.objectives import gan

# ------------------------------------------------------------------------------------------------ config


@dataclass
class RingConfig:
    """The real data: k Gaussians of standard deviation std, centres evenly spaced on a circle of the given radius."""

    modes: int = spec(8, ge=2, help="number of mixture components")
    radius: float = spec(2.0, gt=0)
    std: float = spec(0.05, gt=0)


@dataclass
class VariantConfig:
    """One training variant: the loss, its regularisers and whether updates are optimistic."""

    name: str = "non-saturating"
    loss: Literal["saturating", "non_saturating", "wgan"] = "non_saturating"
    r1: float = spec(0.0, ge=0, help="R1 penalty weight (real points)")
    r2: float = spec(0.0, ge=0, help="R2 penalty weight (generated points)")
    noise_std: float = spec(0.0, ge=0, help="instance noise standard deviation")
    optimistic: bool = False


def _default_variants() -> list[VariantConfig]:
    return [VariantConfig("non-saturating"), VariantConfig("non-saturating + R1", r1=0.1),
            VariantConfig("non-saturating + R1, optimistic", r1=0.1, optimistic=True)]


@dataclass
class Config(BaseConfig):
    data: RingConfig = nested(RingConfig)
    latent_dim: int = spec(8, gt=0)
    hidden: list[int] = spec([128, 128], gt=0, help="hidden widths of both MLPs")
    activation: str = "relu"
    batch: int = spec(256, gt=0)
    n_seeds: int = spec(2, gt=0, help="seeds per variant, one vmapped program")
    variants: list[VariantConfig] = field(default_factory=_default_variants)
    train: TrainConfig = nested(TrainConfig, steps=5000, chunk_size=1000, log_every=100,
                                optimizer=OptimizerConfig(name="adam", lr=1e-3, b1=0.5, b2=0.999))
    eval_samples: int = spec(10_000, ge=100, help="generated samples for the final mode count")
    snapshot_samples: int = spec(500, ge=10, help="generated samples kept at every logged step")
    snapshots: int = spec(5, ge=2, le=8, help="columns of the samples-over-training figure")

    def check(self, prefix: str) -> None:
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"key '{prefix}activation': value '{self.activation}' is not valid: expected one "
                              f"of {', '.join(ACTIVATIONS)}")
        if not self.variants:
            raise ConfigError(f"key '{prefix}variants': value [] is not valid: expected at least one variant")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ConfigError(f"key '{prefix}variants': value {names} is not valid: expected distinct names")


# ------------------------------------------------------------------------------------------------ model


class Networks(NamedTuple):
    """The players' MLPs with the configured activation: the discriminator's ``logit(d, x) -> (n,)`` and the
    generator's ``generate(g, z) -> (n, 2)``."""

    logit: Callable[[list, jax.Array], jax.Array]
    generate: Callable[[list, jax.Array], jax.Array]


def networks(cfg: Config) -> Networks:
    """The players' MLPs, ``cfg.activation`` resolved to its function."""
    activation = ACTIVATIONS[cfg.activation]
    return Networks(logit=lambda p, x: mlp_apply(p, x, activation)[:, 0],
                    generate=lambda p, z: mlp_apply(p, z, activation))


def make_game(cfg: Config, v: VariantConfig, nets: Networks) -> games.Game:
    """The GAN between the MLP discriminator (a logit) and the MLP generator with Gaussian latents."""
    d = cfg.data
    return gan.gan_game(
        logit=nets.logit,
        generate=nets.generate,
        sample_real=lambda key: circle_mixture(key, cfg.batch, d.modes, d.radius, d.std)[0],
        sample_latent=lambda key: jax.random.normal(key, (cfg.batch, cfg.latent_dim)),
        loss=gan.LOSSES[v.loss], r1=v.r1, r2=v.r2, noise_std=v.noise_std,
    )


def init_params(cfg: Config, key: jax.Array) -> dict:
    """Both players' MLPs: the discriminator R^2 -> R (a logit), the generator R^latent_dim -> R^2."""
    return {"d": mlp_init(stream(key, "discriminator"), [2, *cfg.hidden, 1]),
            "g": mlp_init(stream(key, "generator"), [cfg.latent_dim, *cfg.hidden, 2])}


def variant_loss(cfg: Config, v: VariantConfig, nets: Networks) -> LossFn:
    """The surrogate of variant ``v``'s game, with the mode coverage of a fixed batch of generated samples as
    metrics: ``batch = {"z": latents, "centres": the modes}``."""
    surrogate = games.surrogate_loss(make_game(cfg, v, nets))

    def loss(p, batch, key, hp):
        value, aux = surrogate(p, batch, key, hp)
        x = nets.generate(jax.lax.stop_gradient(p["g"]), batch["z"])
        covered, good = gan.mode_coverage(x, batch["centres"], cfg.data.std)
        return value, {**aux, "modes_covered": covered.astype(x.dtype), "high_quality": good, "samples": x}

    return loss


def optimizer(cfg: Config, v: VariantConfig) -> optax.GradientTransformation:
    """The configured optimiser; optimistic variants apply ``2 u_t - u_{t-1}`` to its steps (optimistic Adam,
    Daskalakis et al. 2018)."""
    base = build_optimizer(cfg.train.optimizer, cfg.train.steps)
    return optax.chain(base, optax.scale_by_optimistic_gradient()) if v.optimistic else base


# ------------------------------------------------------------------------------------------------ figures


def draw_samples(cfg: Config, results: dict, centres: np.ndarray, note: str = "") -> Figure:
    """The first member's generated samples at a few steps, one row per variant; ``note`` (in the title) names
    that member."""
    rows = len(cfg.variants)
    any_hist = next(iter(results.values()))["history"]
    steps = np.asarray(any_hist["step"])
    picks = np.unique(np.linspace(0, len(steps) - 1, cfg.snapshots).round().astype(int))
    fig, axes = plots.figure(rows, len(picks), size=(2.7 * len(picks), 2.8 * rows), squeeze=False)
    lim = cfg.data.radius * 1.6
    for i, v in enumerate(cfg.variants):
        hist = results[v.name]["history"]
        for j, k in enumerate(picks):
            ax = axes[i, j]
            x = np.asarray(hist["samples"])[k, 0]
            ax.scatter(centres[:, 0], centres[:, 1], s=60, facecolors="none", edgecolors="0.5", lw=1)
            ax.scatter(x[:, 0], x[:, 1], s=2, color=plots.color(i), alpha=0.6)
            covered = float(np.asarray(hist["modes_covered"])[k, 0])
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xticks=[], yticks=[])
            ax.set_title(f"step {int(steps[k])}: {covered:.0f} modes", fontsize=9)
            if j == 0:
                ax.set_ylabel(v.name, fontsize=9)
    fig.suptitle(f"Generated samples over training ({note + '; ' if note else ''}circles: the {cfg.data.modes} "
                 "modes)")
    return fig


def draw_modes(cfg: Config, results: dict) -> Figure:
    """Modes covered and the high-quality fraction over training, every variant (mean and range over members)."""
    fig, axes = plots.figure(1, 2, size=(11, 3.6))
    for i, v in enumerate(cfg.variants):
        hist = results[v.name]["history"]
        steps = np.asarray(hist["step"])
        for ax, key in zip(axes, ("modes_covered", "high_quality"), strict=True):
            vals = np.asarray(hist[key])
            ax.plot(steps, vals.mean(axis=1), color=plots.color(i), lw=1.6, label=v.name)
            if vals.shape[1] > 1:
                ax.fill_between(steps, vals.min(axis=1), vals.max(axis=1), color=plots.color(i), alpha=0.15)
    axes[0].axhline(cfg.data.modes, color="black", ls="--", lw=1)
    axes[0].set(xlabel="step", ylabel="modes covered", title=f"Modes covered (of {cfg.data.modes})")
    axes[1].set(xlabel="step", ylabel="fraction", title="High-quality samples (within 3 std of a mode)",
                ylim=(0, 1.02))
    axes[0].legend(fontsize=8)
    return fig


# ------------------------------------------------------------------------------------------------ experiment


class Experiment(_Experiment):
    description = "MLP GAN on a ring of 2-D Gaussians: mode collapse vs R1/R2, instance noise, optimistic Adam"
    Config = Config
    headline = ("modes_covered",)
    member_keys = ("seed", "train.optimizer.lr")

    def setup(self, cfg: Config) -> None:
        """The modes' centres and the players' networks."""
        self.centres = circle_mixture_centres(cfg.data.modes, cfg.data.radius)
        self.nets = networks(cfg)

    def init(self, cfg: Config, key: jax.Array) -> dict:
        return init_params(cfg, key)

    def train(self, cfg: Config) -> dict[str, FitResult]:
        """One fit per variant, all from the same initialisations; each variant's keys are named by it."""
        params = self.init_members(cfg)
        snapshot = {"z": jax.random.normal(self.key("snapshots"), (cfg.snapshot_samples, cfg.latent_dim)),
                    "centres": self.centres}
        return {v.name: self.fit(f"variant{i}", variant_loss(cfg, v, self.nets), params, data=snapshot,
                                 keys=self.keys(f"train/{v.name}"), optimizer=optimizer(cfg, v))
                for i, v in enumerate(cfg.variants)}

    def summarise(self, cfg: Config, fits: dict[str, FitResult], evals: dict) -> dict:
        """Modes covered and the high-quality fraction of ``eval_samples`` fresh samples, per variant and member."""
        per_member: dict[str, list] = {}
        metrics: dict = {"modes_covered": {}, "variants": {}}
        for v in cfg.variants:
            res = fits[v.name]
            z = jax.random.normal(self.key(f"evaluate/{v.name}"), (cfg.eval_samples, cfg.latent_dim))
            x = jax.vmap(lambda g, z=z: self.nets.generate(g, z))(res.params["g"])
            covered, good = jax.vmap(lambda x: gan.mode_coverage(x, self.centres, cfg.data.std))(x)
            metrics["variants"][v.name] = {
                "modes_covered_per_seed": np.asarray(covered).tolist(),
                "high_quality_per_seed": np.asarray(good).tolist(),
                "modes_covered": float(np.mean(covered)),
                "high_quality": float(np.mean(good)),
                "compile_s": res.compile_s, "train_s": res.train_s,
            }
            metrics["modes_covered"][v.name] = float(np.mean(covered))
            per_member[f"modes_covered.{v.name}"] = np.asarray(covered).tolist()
            per_member[f"high_quality.{v.name}"] = np.asarray(good).tolist()
            self.log(f"[{v.name}] modes covered {np.asarray(covered).tolist()} of {cfg.data.modes}, high-quality "
                     f"fraction {float(np.mean(good)):.3f}")
        metrics["members"] = self.member_rows(per_member)
        return metrics

    def figures(self, cfg: Config, fits: dict[str, FitResult], evals: dict, metrics: dict) -> None:
        """Samples over training (first member) and the mode counts of every member."""
        results = {v.name: {"history": fits[v.name].history} for v in cfg.variants}
        self.save_figure(draw_samples(cfg, results, np.asarray(self.centres), self.member_title(0)), "samples")
        self.save_figure(draw_modes(cfg, results), "modes")
