"""Inclusive vs exclusive KL: fit N(mu, sigma^2) to a 1-D Gaussian mixture (seed 001, problems 1 and 6.3).

The target is p(x) = sum_k w_k N(m_k, s_k^2), by default 1/3 N(-3, 1) + 2/3 N(3, 1). Minimising the inclusive
KL(p || q) matches moments (mu = E_p[x], sigma^2 = Var_p[x]: mu = 1, sigma = 3 for the default) and covers both
modes; minimising the exclusive KL(q || p) seeks one mode, and which one depends on the initialisation. Many
initialisations train at once as one vmapped program; the exclusive direction's distinct local optima are
reported with how many initialisations reached each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from vlab.algorithms.optima import distinct_optima
from vlab.distributions import Mixture1D, mixture_1d, normal_log_prob
from vlab.distributions.divergences import (
    exclusive_kl_mc,
    exclusive_kl_quadrature,
    inclusive_kl_mc,
    inclusive_kl_quadrature,
    standard_normal_rule,
)
from vlab.errors import ConfigError
from vlab.harness import plots
from vlab.harness.config import BaseConfig, OptimizerConfig, TrainConfig, nested, spec
from vlab.harness.experiment import Experiment as _Experiment
from vlab.keys import stream

# ------------------------------------------------------------------------------------------------ config


@dataclass
class TargetConfig:
    """The mixture p(x) = sum_k weights[k] N(means[k], stds[k]^2)."""

    weights: list[float] = spec([1 / 3, 2 / 3], ge=0, help="mixture weights, summing to 1")
    means: list[float] = spec([-3.0, 3.0], help="component means")
    stds: list[float] = spec([1.0, 1.0], gt=0, help="component standard deviations")

    def check(self, prefix: str) -> None:
        k = len(self.weights)
        if k == 0:
            raise ConfigError(f"key '{prefix}weights': value [] is not valid: expected at least one component")
        for name in ("means", "stds"):
            v = getattr(self, name)
            if len(v) != k:
                raise ConfigError(f"key '{prefix}{name}': value {v} is not valid: expected {k} values, one per "
                                  f"weight in {prefix}weights")
        if abs(sum(self.weights) - 1.0) > 1e-6:
            raise ConfigError(f"key '{prefix}weights': value {self.weights} is not valid: expected weights "
                              f"summing to 1 (they sum to {sum(self.weights):.6g})")


@dataclass
class EstimatorConfig:
    """How each KL is estimated during training."""

    kind: Literal["quadrature", "mc"] = "quadrature"
    rule: Literal["grid", "gauss_hermite"] = "grid"
    nodes: int = spec(801, ge=8, help="quadrature nodes")
    samples: int = spec(256, ge=2, help="Monte Carlo samples per step")


@dataclass
class InitConfig:
    """Initialisations are drawn uniformly from these [low, high] ranges."""

    mu: list[float] = spec([-8.0, 8.0])
    log_sigma: list[float] = spec([-1.0, 2.0])

    def check(self, prefix: str) -> None:
        for name in ("mu", "log_sigma"):
            v = getattr(self, name)
            if len(v) != 2 or not v[0] < v[1]:
                raise ConfigError(f"key '{prefix}{name}': value {v} is not valid: expected [low, high] with "
                                  "low < high")


@dataclass
class Config(BaseConfig):
    target: TargetConfig = nested(TargetConfig)
    estimator: EstimatorConfig = nested(EstimatorConfig)
    init: InitConfig = nested(InitConfig)
    n_inits: int = spec(64, gt=0, help="random initialisations, trained as one vmapped program")
    sigma_param: Literal["exp", "softplus"] = "exp"
    train: TrainConfig = nested(
        TrainConfig, steps=2000, chunk_size=500, log_every=10,
        optimizer=OptimizerConfig(name="adam", lr=0.3, schedule="cosine"),
    )
    optimum_tol: float = spec(0.05, gt=0, help="fits closer than this in (mu, log sigma) share an optimum")
    eval_nodes: int = spec(2001, ge=101, help="trapezoid nodes of the exact KL reported in metrics")


# ------------------------------------------------------------------------------------------------ model


def sigma_of(raw: jax.Array, param: str) -> jax.Array:
    """sigma = exp(raw) or softplus(raw): always positive."""
    return jnp.exp(raw) if param == "exp" else jax.nn.softplus(raw)


def raw_of(log_sigma: jax.Array, param: str) -> jax.Array:
    """The inverse of :func:`sigma_of` applied to sigma = exp(log_sigma)."""
    if param == "exp":
        return log_sigma
    s = jnp.exp(log_sigma)
    return s + jnp.log(-jnp.expm1(-s))  # softplus^-1(s) = log(e^s - 1)


def initial_params(cfg: Config, key: jax.Array) -> dict:
    """One initialisation: mu and log sigma uniform on the configured ranges."""
    mu = jax.random.uniform(stream(key, "mu"), (), minval=cfg.init.mu[0], maxval=cfg.init.mu[1])
    ls = jax.random.uniform(stream(key, "log_sigma"), (), minval=cfg.init.log_sigma[0], maxval=cfg.init.log_sigma[1])
    return {"mu": mu, "raw_sigma": raw_of(ls, cfg.sigma_param)}


def make_losses(cfg: Config):
    """The two objectives as ``(params, target, key, hp) -> (loss, aux)`` functions for :func:`vlab.engine.fit`."""
    est = cfg.estimator
    rule = standard_normal_rule(est.nodes, est.rule)

    def unpack(params):
        return params["mu"], sigma_of(params["raw_sigma"], cfg.sigma_param)

    def exclusive(params, target: Mixture1D, key, hp):
        mu, sigma = unpack(params)
        if est.kind == "quadrature":
            kl, se = exclusive_kl_quadrature(mu, sigma, target.log_prob, rule), jnp.zeros(())
        else:
            kl, se = exclusive_kl_mc(key, mu, sigma, target.log_prob, est.samples)
        return kl, {"mu": mu, "sigma": sigma, "kl_stderr": se}

    def inclusive(params, target: Mixture1D, key, hp):
        mu, sigma = unpack(params)
        if est.kind == "quadrature":
            kl, se = inclusive_kl_quadrature(mu, sigma, target, rule), jnp.zeros(())
        else:
            kl, se = inclusive_kl_mc(key, mu, sigma, target, est.samples)
        return kl, {"mu": mu, "sigma": sigma, "kl_stderr": se}

    return inclusive, exclusive


def exact_kls(target: Mixture1D, nodes: int):
    """Quadrature KLs as functions of (mu, log sigma), for metrics, landscapes and Newton polishing."""
    rule = standard_normal_rule(nodes, "grid")
    incl = lambda mu, ls: inclusive_kl_quadrature(mu, jnp.exp(ls), target, rule)
    excl = lambda mu, ls: exclusive_kl_quadrature(mu, jnp.exp(ls), target.log_prob, rule)
    return incl, excl


# ------------------------------------------------------------------------------------------------ experiment


class Experiment(_Experiment):
    description = "Inclusive vs exclusive KL fit of a Gaussian to a 1-D mixture"
    source = "seed 001, problems 1 and 6.3"
    Config = Config
    headline = ("inclusive.mu", "inclusive.sigma", "inclusive.kl", "exclusive.mu", "exclusive.sigma",
                "exclusive.kl", "exclusive.n_optima", "inclusive.unconverged", "exclusive.unconverged")

    def n_seeds(self, cfg: Config) -> int:
        return cfg.n_inits  # every initialisation is a member

    def setup(self, cfg: Config) -> None:
        t = cfg.target
        self.target = mixture_1d(t.weights, t.means, t.stds)

    def init(self, cfg: Config, key: jax.Array) -> dict:
        return initial_params(cfg, key)

    def train(self, cfg: Config) -> dict:
        """Both directions from the same initialisations."""
        params = self.init_members(cfg)
        inclusive, exclusive = make_losses(cfg)
        return {direction: self.fit(direction, loss, params, data=self.target)
                for direction, loss in (("inclusive", inclusive), ("exclusive", exclusive))}

    def summarise(self, cfg: Config, fits: dict, evals: dict) -> dict:
        """Exact KLs of every fit, the distinct optima they reached (Newton-refined) and the closed-form checks."""
        incl_f, excl_f = exact_kls(self.target, cfg.eval_nodes)
        w, m, sd = (np.asarray(v, dtype=np.float64) for v in (cfg.target.weights, cfg.target.means, cfg.target.stds))
        mean = float(w @ m)
        out: dict = {"target": {"mean": mean, "std": float(np.sqrt(w @ (sd**2 + m**2) - mean**2))}}
        for direction, f in (("inclusive", incl_f), ("exclusive", excl_f)):
            p = fits[direction].params
            mu, ls = np.asarray(p["mu"]), np.log(np.asarray(sigma_of(p["raw_sigma"], cfg.sigma_param)))
            found, reached, kl = distinct_optima(f, np.stack([mu, ls], 1), cfg.optimum_tol)
            optima = [{"mu": float(o.point[0]), "sigma": float(np.exp(o.point[1])), "kl": o.value,
                       "count": len(o.members), "fit_mu": float(mu[o.members].mean()),
                       "fit_sigma": float(np.exp(ls[o.members]).mean()), "fit_kl": float(kl[o.members].mean())}
                      for o in found]
            i = int(np.argmin(kl))
            best = optima[0] if optima else {"mu": float(mu[i]), "sigma": float(np.exp(ls[i])), "kl": float(kl[i])}
            n_unconv = int((~reached).sum())
            out[direction] = {
                "mu": best["mu"], "sigma": best["sigma"], "kl": best["kl"],
                "fit_mu": best.get("fit_mu", best["mu"]), "fit_sigma": best.get("fit_sigma", best["sigma"]),
                "kl_estimate": float(np.mean(fits[direction].history["loss"][-1])),
                "optima": optima, "n_optima": len(optima), "unconverged": n_unconv,
            }
            if n_unconv:
                self.warn(f"{n_unconv} of {len(mu)} {direction} fits did not reach a local optimum within "
                          f"optimum_tol={cfg.optimum_tol} (train longer or raise the learning rate)")
        mc = cfg.estimator.kind == "mc"
        tol = 0.1 if mc else (1e-3 if jnp.asarray(0.0).dtype == jnp.float32 else 1e-6)
        self.check("inclusive fit mu = E_p[x] (moment matching)", out["inclusive"]["fit_mu"],
                   out["target"]["mean"], tol)
        self.check("inclusive fit sigma = sd_p[x] (moment matching)", out["inclusive"]["fit_sigma"],
                   out["target"]["std"], tol)
        self.check("inclusive optimum mu = E_p[x]", out["inclusive"]["mu"], out["target"]["mean"], tol)
        self.check("inclusive optimum sigma = sd_p[x]", out["inclusive"]["sigma"], out["target"]["std"], tol)
        return out

    # -------------------------------------------------------------------------------------------- figures
    def figures(self, cfg: Config, fits: dict, evals: dict, metrics: dict) -> None:
        """(1) the target with both fits, (2) both KL landscapes with every path, (3) loss curves."""
        target = self.target
        means, stds = np.asarray(cfg.target.means), np.asarray(cfg.target.stds)
        inc, exc = metrics["inclusive"], metrics["exclusive"]
        lo = min(means.min() - 4 * stds.max(), inc["mu"] - 3 * inc["sigma"])
        hi = max(means.max() + 4 * stds.max(), inc["mu"] + 3 * inc["sigma"])
        shown = exc["optima"][:4]
        x = np.linspace(lo, hi, 800)
        mus = np.array([inc["mu"]] + [o["mu"] for o in shown])
        sigmas = np.array([inc["sigma"]] + [o["sigma"] for o in shown])
        # the heat-maps need no more than a figure's resolution: 121 x 91 points, 401 quadrature nodes each
        mu_g = np.linspace(min(cfg.init.mu[0], lo), max(cfg.init.mu[1], hi), 121)
        ls_g = np.linspace(min(cfg.init.log_sigma[0], -1.5), max(cfg.init.log_sigma[1], 2.5), 91)
        incl_f, excl_f = exact_kls(target, 401)

        @jax.jit
        def compute(x, mus, sigmas, mu_g, ls_g):
            p = jnp.exp(target.log_prob(x))
            q = jnp.exp(normal_log_prob(x[None, :], mus[:, None], sigmas[:, None]))
            M, L = jnp.meshgrid(mu_g, ls_g)
            grid = lambda f: jax.vmap(jax.vmap(f))(M, L)
            return p, q, M, L, grid(incl_f), grid(excl_f)

        p, q, M, L, z_incl, z_excl = (np.asarray(a) for a in compute(x, mus, sigmas, mu_g, ls_g))

        # (1) the target and the two fits: the figure seed 001 problem 6.3 asks for
        fig, ax = plots.figure(size=(7.5, 4.2))
        ax.fill_between(x, p, color="0.85", label="target p(x)")
        ax.plot(x, p, color="0.4", lw=1)
        ax.plot(x, q[0], color=plots.color(0), lw=2,
                label=f"inclusive KL(p||q): mu={inc['mu']:.3f}, sigma={inc['sigma']:.3f}")
        for i, o in enumerate(shown):
            ax.plot(x, q[1 + i], color=plots.color(1 + i), lw=2, ls="-" if i == 0 else "--",
                    label=f"exclusive KL(q||p){' best' if i == 0 else ' local'}: mu={o['mu']:.3f}, "
                    f"sigma={o['sigma']:.3f} ({o['count']}/{cfg.n_inits} inits)")
        ax.set_xlabel("x")
        ax.set_ylabel("density")
        ax.set_title("Gaussian fits to a mixture: mass-covering (inclusive) vs mode-seeking (exclusive)")
        ax.set_ylim(0, max(p.max(), q.max()) * 1.35)
        ax.legend(loc="upper left", fontsize=8)
        self.save_figure(fig, "fits")

        # (2) both KL landscapes over (mu, log sigma) with every initialisation's path
        fig, axes = plots.figure(1, 2, size=(12, 4.6))
        for ax, direction, z in ((axes[0], "inclusive", z_incl), (axes[1], "exclusive", z_excl)):
            levels = np.unique(np.quantile(z, np.linspace(0, 0.97, 25)))
            cs = ax.contourf(M, L, z, levels=levels, cmap="viridis_r", extend="max")
            fig.colorbar(cs, ax=ax, label=f"{direction} KL")
            h = fits[direction].history
            paths_mu, paths_ls = np.asarray(h["mu"]), np.log(np.asarray(h["sigma"]))
            ax.plot(paths_mu[:, :64], paths_ls[:, :64], color="white", lw=0.6, alpha=0.7)
            ax.scatter(paths_mu[0], paths_ls[0], s=8, color="white", edgecolor="k", lw=0.3, zorder=3,
                       label="initialisations")
            for o in metrics[direction]["optima"]:
                ax.scatter(o["mu"], np.log(o["sigma"]), marker="*", s=180, color=plots.color(1), edgecolor="k",
                           zorder=4, label="local optimum" if o is metrics[direction]["optima"][0] else None)
            ax.set_xlim(mu_g[0], mu_g[-1])
            ax.set_ylim(ls_g[0], ls_g[-1])
            ax.set_xlabel("mu")
            ax.set_ylabel("log sigma")
            ax.set_title(f"{direction} KL landscape, {paths_mu.shape[1]} optimisation paths")
        axes[1].legend(loc="upper right", fontsize=8)
        self.save_figure(fig, "landscape")

        # (3) loss curves of every initialisation
        fig, axes = plots.figure(1, 2, size=(11, 3.8))
        for ax, direction in zip(axes, ("inclusive", "exclusive"), strict=True):
            h = fits[direction].history
            ax.plot(h["step"], h["loss"], color=plots.color(0 if direction == "inclusive" else 1), lw=0.6,
                    alpha=0.35)
            ax.set_yscale("symlog", linthresh=1e-2)
            ax.set_xlabel("step")
            ax.set_ylabel(f"{direction} KL ({cfg.estimator.kind} estimate)")
            ax.set_title(f"{direction}: {h['loss'].shape[1]} initialisations")
        self.save_figure(fig, "loss")
