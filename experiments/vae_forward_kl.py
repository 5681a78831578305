"""Forward-KL variational inference (seed 001, problem 6.4): an amortised q(z|x) trained by the inclusive objective
beside one trained by the ELBO, on a model whose true posterior is bimodal.

Model: z ~ N(0, 1), x | z ~ N(z^2, s^2). For x well above 0 the posterior p(z|x) has two modes at +-sqrt(x).
q(z|x) = N(mu(x), sigma^2(x)) is an MLP of x; the model is fixed, so only inference is compared.

- Reverse KL (the VAE's choice): maximise ELBO(x) = E_q[log p(x, z) - log q(z|x)] = log p(x) - KL(q || p(z|x)),
  reparameterised. Mode seeking: q sits on one mode.
- Forward KL (Bob's proposal): minimise KL(p(z|x) || q) = const - E_{p(z|x)}[log q(z|x)]. The expectation under the
  unknown posterior is estimated by self-normalised importance sampling with q as proposal,
  sum_i w~_i log q(z_i|x), w~_i ∝ p(x, z_i) / q(z_i|x), z_i ~ q, weights held fixed (the reweighted wake-sleep
  q update). Mass covering: q spreads over both modes. Pros: no mode dropped, a better proposal for importance
  sampling. Cons: the SNIS gradient is biased for finite k and high-variance when q is poor, and q puts mass
  between the modes where the posterior has none, so its ELBO is lower.

Everything is measured exactly by quadrature on a z grid: log p(x), both KLs, the ELBO, and the posterior mass
inside q's central 95% interval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from vlab import nn
from vlab.distributions import normal_log_prob
from vlab.harness import plots
from vlab.harness.config import BaseConfig, OptimizerConfig, TrainConfig, nested, spec
from vlab.harness.experiment import Experiment as _Experiment
from vlab.keys import stream


@dataclass
class Config(BaseConfig):
    noise: float = spec(0.5, gt=0, help="s: x | z ~ N(z^2, s^2)")
    hidden: list[int] = spec([64, 64], gt=0, help="hidden widths of the encoder MLP")
    k: int = spec(64, ge=2, help="importance samples per x for the forward-KL (SNIS) estimate and the IWAE bound")
    batch_size: int = spec(128, gt=0)
    n_test: int = spec(400, gt=0, help="test points x drawn from the model")
    grid: int = spec(4001, ge=101, help="z grid nodes of the exact quadrature on [-8, 8]")
    show_x: list[float] = spec([0.5, 2.0, 4.0], help="x values whose posteriors are drawn")
    train: TrainConfig = nested(TrainConfig, steps=4000, chunk_size=1000, log_every=20,
                                optimizer=OptimizerConfig(name="adam", lr=3e-3))


# ------------------------------------------------------------------------------------------------ model


def log_joint(z: jax.Array, x: jax.Array, s: float) -> jax.Array:
    """log p(x, z) = log N(z; 0, 1) + log N(x; z^2, s^2)."""
    return normal_log_prob(z, 0.0, 1.0) + normal_log_prob(x, z * z, s)


def encoder(params: list, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """q(z|x) = N(mu(x), sigma(x)^2), sigma = exp(output 2); ``x`` of shape (B,) gives (B,) and (B,)."""
    out = nn.mlp_apply(params, x[:, None], jnp.tanh)
    return out[:, 0], jnp.exp(out[:, 1])


def sample_x(key: jax.Array, n: int, s: float) -> jax.Array:
    """x = z^2 + s eps with z, eps ~ N(0, 1): draws from the model's marginal p(x)."""
    z = jax.random.normal(stream(key, "z"), (n,))
    return z * z + s * jax.random.normal(stream(key, "noise"), (n,))


def elbo_loss(s: float) -> Callable:
    """-mean ELBO with one reparameterised sample z = mu + sigma eps per x."""

    def loss_fn(params, x, key, hp):
        mu, sigma = encoder(params, x)
        z = mu + sigma * jax.random.normal(key, mu.shape)
        elbo = log_joint(z, x, s) - normal_log_prob(z, mu, sigma)
        return -jnp.mean(elbo), {"elbo": jnp.mean(elbo)}

    return loss_fn


def forward_kl_loss(s: float, k: int) -> Callable:
    """-mean sum_i w~_i log q(z_i|x) with z_i ~ q (no gradient through the samples or the weights)."""

    def loss_fn(params, x, key, hp):
        mu, sigma = encoder(params, x)
        z = jax.lax.stop_gradient(mu + sigma * jax.random.normal(key, (k, *mu.shape)))
        log_q = normal_log_prob(z, mu, sigma)
        log_w = jax.lax.stop_gradient(log_joint(z, x, s) - log_q)
        w = jax.nn.softmax(log_w, axis=0)
        iwae = jax.scipy.special.logsumexp(log_w, axis=0) - jnp.log(k)
        return -jnp.mean(jnp.sum(w * log_q, axis=0)), {"iwae": jnp.mean(iwae), "ess": jnp.mean(1 / jnp.sum(w * w, 0))}

    return loss_fn


# ------------------------------------------------------------------------------------------------ exact measures


def exact_measures(mu: jax.Array, sigma: jax.Array, x: jax.Array, s: float, grid: int) -> dict[str, jax.Array]:
    """Per-x quadrature on z in [-8, 8]: log p(x), ELBO, KL(q || post), KL(post || q), and the posterior mass
    inside [mu - 1.96 sigma, mu + 1.96 sigma].

    Args:
        mu: q(z|x)'s mean per x.
        sigma: q(z|x)'s standard deviation per x.
        x: the data points.
        s: the model's noise, x | z ~ N(z^2, s^2).
        grid: quadrature nodes.

    Returns:
        ``{"log_px", "elbo", "kl_reverse", "kl_forward", "posterior_mass_covered"}``, each per x.
    """
    z = jnp.linspace(-8.0, 8.0, grid)
    dz = z[1] - z[0]

    def one(m, sd, xx):
        lj = log_joint(z, xx, s)
        log_px = jax.scipy.special.logsumexp(lj) + jnp.log(dz)
        lpost = lj - log_px
        post = jnp.exp(lpost) * dz
        lq = normal_log_prob(z, m, sd)
        q = jnp.exp(lq) * dz
        kl_rev = jnp.sum(q * (lq - lpost))
        kl_fwd = jnp.sum(post * (lpost - lq))
        mass = jnp.sum(jnp.where(jnp.abs(z - m) <= 1.96 * sd, post, 0.0))
        return {"log_px": log_px, "elbo": log_px - kl_rev, "kl_reverse": kl_rev, "kl_forward": kl_fwd,
                "posterior_mass_covered": mass}

    return jax.vmap(one)(mu, sigma, x)


def iwae(mu: jax.Array, sigma: jax.Array, x: jax.Array, s: float, k: int, key: jax.Array) -> jax.Array:
    """IWAE_k(x) = log (1/k) sum_i p(x, z_i) / q(z_i|x), z_i ~ q(z|x) = N(mu, sigma^2), per x.

    Args:
        mu: q(z|x)'s mean per x.
        sigma: q(z|x)'s standard deviation per x.
        x: the data points.
        s: the model's noise, x | z ~ N(z^2, s^2).
        k: importance samples per x.
        key: the randomness of the samples.

    Returns:
        IWAE_k per x.
    """
    z = mu + sigma * jax.random.normal(key, (k, *mu.shape))
    lw = log_joint(z, x, s) - normal_log_prob(z, mu, sigma)
    return jax.scipy.special.logsumexp(lw, axis=0) - jnp.log(k)


class Experiment(_Experiment):
    description = "Forward-KL (reweighted wake-sleep) vs ELBO-trained amortised q on a bimodal posterior"
    Config = Config
    headline = ("elbo_trained.posterior_mass_covered", "forward_kl_trained.posterior_mass_covered",
                "elbo_trained.elbo", "forward_kl_trained.elbo")

    def init(self, cfg: Config, key: jax.Array) -> list:
        return nn.mlp_init(key, [1, *cfg.hidden, 2])

    def train(self, cfg: Config) -> dict:
        """Both objectives from the same initial encoder, on fresh draws x ~ p(x) every step."""
        params = self.init_members(cfg)
        batch_fn = lambda _, k: sample_x(k, cfg.batch_size, cfg.noise)  # noqa: E731
        return {name: self.fit(name, loss, params, batch_fn=batch_fn)
                for name, loss in (("elbo", elbo_loss(cfg.noise)), ("forward_kl", forward_kl_loss(cfg.noise, cfg.k)))}

    def summarise(self, cfg: Config, fits: dict, evals: dict) -> dict:
        """Exact quadrature measures of both encoders on test draws x ~ p(x), the IWAE bound, and the identities
        ELBO + KL(q || posterior) = log p(x) and IWAE_k <= log p(x)."""
        s = cfg.noise
        x_test = sample_x(self.key("test"), cfg.n_test, s)
        self.encoders = {name: jax.tree.map(lambda a: a[0], fits[fit].params)
                         for name, fit in (("elbo_trained", "elbo"), ("forward_kl_trained", "forward_kl"))}
        out = {}
        for name, params in self.encoders.items():
            mu, sigma = encoder(params, x_test)
            m = exact_measures(mu, sigma, x_test, s, cfg.grid)
            m["iwae"] = iwae(mu, sigma, x_test, s, cfg.k, self.key("iwae"))
            out[name] = {k: float(jnp.mean(v)) for k, v in m.items() if k != "log_px"}
            out["log_px"] = float(jnp.mean(m["log_px"]))
            # an identity of quadratures: its rounding error scales with the terms and the float type (the
            # accelerators' reduction orders differ from the CPU's)
            scale = abs(out[name]["elbo"]) + abs(out[name]["kl_reverse"])
            self.check(f"{name}: ELBO + KL(q || posterior) = log p(x)", out[name]["elbo"] + out[name]["kl_reverse"],
                       out["log_px"], 16 * float(jnp.finfo(mu.dtype).eps) * max(scale, 1.0))
            self.check(f"{name}: IWAE-{cfg.k} <= log p(x) (mean)", max(out[name]["iwae"] - out["log_px"], 0.0), 0.0,
                       0.05)
        r, f = out["elbo_trained"], out["forward_kl_trained"]
        out["comparison"] = {
            "elbo_gain_of_reverse": r["elbo"] - f["elbo"],
            "mass_covered_gain_of_forward": f["posterior_mass_covered"] - r["posterior_mass_covered"],
            "forward_kl_gain_of_forward": r["kl_forward"] - f["kl_forward"],
        }
        return out

    def figures(self, cfg: Config, fits: dict, evals: dict, metrics: dict) -> None:
        """The true posterior and both q(z|x) at each of ``show_x``, and the test means of ELBO, IWAE and mass."""
        s, out = cfg.noise, metrics
        z = jnp.linspace(-4.0, 4.0, 801)
        n = len(cfg.show_x)
        fig, axes = plots.figure(1, n + 1, size=(4.2 * (n + 1), 3.6))
        for ax, xv in zip(axes[:n], cfg.show_x, strict=True):
            lj = log_joint(z, xv, s)
            post = jnp.exp(lj - jax.scipy.special.logsumexp(lj)) / (z[1] - z[0])
            ax.fill_between(np.asarray(z), np.asarray(post), color=plots.color(7), alpha=0.15, label="p(z | x)")
            for i, (label, p) in enumerate((("ELBO (reverse KL)", self.encoders["elbo_trained"]),
                                            ("forward KL (SNIS)", self.encoders["forward_kl_trained"]))):
                mu, sigma = encoder(p, jnp.array([xv]))
                ax.plot(z, jnp.exp(normal_log_prob(z, mu[0], sigma[0])), color=plots.color(i), lw=2, label=label)
            ax.set_title(f"x = {xv:g}")
            ax.set_xlabel("z")
        axes[0].set_ylabel("density")
        axes[0].legend(fontsize=8)
        ax = axes[n]
        keys = ["elbo", "iwae", "posterior_mass_covered"]
        xs = np.arange(len(keys))
        for i, (label, m) in enumerate((("ELBO-trained", out["elbo_trained"]),
                                        ("forward-KL-trained", out["forward_kl_trained"]))):
            vals = [m[k] - (out["log_px"] if k in ("elbo", "iwae") else 0.0) for k in keys]
            bars = ax.bar(xs + (i - 0.5) * 0.38, vals, width=0.38, color=plots.color(i), label=label)
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.axhline(0, color="black", lw=0.8)
        ax.set_xticks(xs)
        ax.set_xticklabels(["ELBO - log p(x)", "IWAE - log p(x)", "posterior mass\nin q's 95% interval"], fontsize=8)
        ax.set_title("test means (exact quadrature)")
        ax.legend(fontsize=8)
        self.save_figure(fig, "forward_vs_reverse_kl")
