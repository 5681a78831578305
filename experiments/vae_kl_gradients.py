"""The Gaussian KL of the VAE and its gradients (seed 004, problem 1), checked against Monte Carlo estimators.

KL(N(mu, sigma^2) || N(0, 1)) = (sigma^2 + mu^2 - log sigma^2 - 1) / 2 with dKL/dmu = mu and dKL/dsigma =
sigma - 1/sigma (problem 1c, 1d). The reparameterised estimator of problem 1d differentiates
log q(z) - log p(z) at z = mu + sigma eps, eps ~ N(0, 1); its per-sample gradients average to the closed forms.
Problem 1b: the KL of a diagonal Gaussian is the sum of its dimensions' KLs, checked against the full-covariance
formula (seed 001 problem 6.1), and problem 1a: ELBO = log p(x) - KL(q || p(z|x)) on a conjugate model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from vlab.distributions import kl_mvn, kl_to_standard_normal, normal_log_prob
from vlab.errors import ConfigError
from vlab.harness import plots
from vlab.harness.config import BaseConfig, spec
from vlab.harness.experiment import Experiment as _Experiment


@dataclass
class Config(BaseConfig):
    precision: Literal["float32", "float64"] = "float64"
    mu: list[float] = spec([-2.0, -0.5, 0.0, 0.7, 1.5], help="means at which the gradients are checked")
    sigma: list[float] = spec([0.3, 0.8, 1.0, 1.6, 3.0], gt=0, help="standard deviations (paired with mu)")
    samples: int = spec(200_000, ge=100, help="reparameterised samples per (mu, sigma)")
    dims: int = spec(6, ge=1, help="dimensions of the diagonal Gaussian of the additivity check")

    def check(self, prefix: str) -> None:
        if len(self.mu) != len(self.sigma) or not self.mu:
            raise ConfigError(f"key '{prefix}sigma': value {self.sigma} is not valid: expected one sigma per mu "
                              f"({len(self.mu)} values)")


def kl_closed(mu: jax.Array, sigma: jax.Array) -> jax.Array:
    """(sigma^2 + mu^2 - log sigma^2 - 1) / 2."""
    return kl_to_standard_normal(mu, sigma)


def kl_single_sample(mu: jax.Array, sigma: jax.Array, eps: jax.Array) -> jax.Array:
    """log q(z) - log p(z) at z = mu + sigma eps: an unbiased one-sample estimate of the KL."""
    z = mu + sigma * eps
    return normal_log_prob(z, mu, sigma) - normal_log_prob(z, 0.0, 1.0)


def gradient_figure(dtype: Any, key: jax.Array):
    """The reparameterised one-sample gradients ``d/dmu`` and ``d/dsigma`` of ``log q(z) - log p(z)`` (their mean
    and +-1 sd over 4000 draws of eps from ``key``) against the closed forms ``mu`` and ``sigma - 1/sigma``."""
    eps = jax.random.normal(key, (4000,), dtype)
    fig, axes = plots.figure(1, 2, size=(11, 4))
    s_grid = jnp.linspace(0.2, 3.0, 40, dtype=dtype)
    m_grid = jnp.linspace(-2.5, 2.5, 40, dtype=dtype)
    g_s = jax.vmap(lambda s: jax.vmap(lambda e: jax.grad(kl_single_sample, 1)(0.5, s, e))(eps))(s_grid)
    g_m = jax.vmap(lambda m: jax.vmap(lambda e: jax.grad(kl_single_sample, 0)(m, 1.3, e))(eps))(m_grid)
    for ax, grid, g, exact, xlabel, ylabel, title in (
        (axes[0], m_grid, g_m, m_grid, "mu (sigma = 1.3)", "dKL/dmu", "dKL/dmu = mu"),
        (axes[1], s_grid, g_s, s_grid - 1 / s_grid, "sigma (mu = 0.5)", "dKL/dsigma",
         "dKL/dsigma = sigma - 1/sigma"),
    ):
        mean, sd = np.asarray(g.mean(1)), np.asarray(g.std(1))
        ax.fill_between(np.asarray(grid), mean - sd, mean + sd, color=plots.color(0), alpha=0.2,
                        label="one-sample estimates, +-1 sd")
        ax.plot(grid, mean, "o", ms=3, color=plots.color(0), label="reparameterised MC mean (4000 samples)")
        ax.plot(grid, exact, color=plots.color(1), lw=2, label="closed form")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=8)
    return fig


class Experiment(_Experiment):
    description = "KL(N(mu,sigma^2)||N(0,1)) and its gradients mu, sigma - 1/sigma vs reparameterised MC (seed 004)"
    Config = Config
    headline = ("max_abs_error.kl", "max_abs_error.dmu", "max_abs_error.dsigma")

    def setup(self, cfg: Config) -> None:
        self.dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32

    def train(self, cfg: Config) -> dict:
        """Nothing is trained: the closed forms and their estimators are compared in :meth:`summarise`."""
        return {}

    def summarise(self, cfg: Config, fits: dict, evals: dict) -> dict:
        """Closed forms against autodiff and against reparameterised Monte Carlo at every (mu, sigma); the KL's
        additivity over dimensions; ELBO = log p(x) - KL(q || p(z|x)) on a conjugate model."""
        dtype = self.dtype
        mu = jnp.asarray(cfg.mu, dtype)
        sigma = jnp.asarray(cfg.sigma, dtype)
        eps = jax.random.normal(self.key("eps"), (cfg.samples,), dtype)

        grad_closed = jax.vmap(jax.grad(kl_closed, argnums=(0, 1)))(mu, sigma)
        per_sample = jax.vmap(lambda m, s: jax.vmap(
            lambda e: jnp.stack([kl_single_sample(m, s, e), *jax.grad(kl_single_sample, argnums=(0, 1))(m, s, e)])
        )(eps))(mu, sigma)  # (points, samples, 3)
        mean = np.asarray(per_sample.mean(1))
        se = np.asarray(per_sample.std(1) / np.sqrt(cfg.samples))
        closed = np.stack([np.asarray(kl_closed(mu, sigma)), np.asarray(grad_closed[0]),
                           np.asarray(grad_closed[1])], -1)
        formula = np.stack([np.asarray(kl_closed(mu, sigma)), np.asarray(mu), np.asarray(sigma - 1 / sigma)], -1)
        rows = []
        for i in range(len(cfg.mu)):
            m_, s_ = cfg.mu[i], cfg.sigma[i]
            self.check(f"autodiff dKL/dmu = mu at ({m_}, {s_})", closed[i, 1], formula[i, 1], 1e-12)
            self.check(f"autodiff dKL/dsigma = sigma - 1/sigma at ({m_}, {s_})", closed[i, 2], formula[i, 2], 1e-12)
            for j, name in enumerate(("KL", "dKL/dmu", "dKL/dsigma")):
                self.check(f"MC {name} within 4 standard errors at ({m_}, {s_})", mean[i, j], closed[i, j],
                           4 * se[i, j] + 1e-12)
            rows.append({"mu": m_, "sigma": s_, "kl": float(closed[i, 0]), "kl_mc": float(mean[i, 0]),
                         "dmu": float(closed[i, 1]), "dmu_mc": float(mean[i, 1]),
                         "dsigma": float(closed[i, 2]), "dsigma_mc": float(mean[i, 2]),
                         "stderr": se[i].tolist()})

        # problem 1b: KL of independent dimensions adds up (full-covariance formula as the independent reference)
        m_d = jax.random.normal(self.key("dims/mu"), (cfg.dims,), dtype)
        s_d = jnp.exp(0.5 * jax.random.normal(self.key("dims/sigma"), (cfg.dims,), dtype))
        kl_sum = float(jnp.sum(kl_closed(m_d, s_d)))
        kl_full = float(kl_mvn(m_d, jnp.diag(s_d**2), jnp.zeros(cfg.dims, dtype), jnp.eye(cfg.dims, dtype=dtype)))
        self.check("KL of a diagonal Gaussian = sum of per-dimension KLs", kl_sum, kl_full, 1e-10)

        # problem 1a: ELBO = log p(x) - KL(q || p(z|x)) for z ~ N(0,1), x|z ~ N(z, 1): p(x) = N(0, 2),
        # p(z|x) = N(x/2, 1/2); q = N(m, s^2) arbitrary
        x, m, s = 1.3, 0.2, 0.9
        zq = m + s * eps
        elbo_mc = float(jnp.mean(normal_log_prob(x, zq, 1.0) + normal_log_prob(zq, 0.0, 1.0)
                                 - normal_log_prob(zq, m, s)))
        log_px = float(normal_log_prob(x, 0.0, jnp.sqrt(2.0)))
        kl_post = float(kl_mvn(jnp.array([m]), jnp.array([[s**2]]), jnp.array([x / 2]), jnp.array([[0.5]])))
        elbo_se = float(jnp.std(normal_log_prob(x, zq, 1.0) + normal_log_prob(zq, 0.0, 1.0)
                                - normal_log_prob(zq, m, s)) / np.sqrt(cfg.samples))
        self.check("ELBO = log p(x) - KL(q || p(z|x)) (4 standard errors)", elbo_mc, log_px - kl_post, 4 * elbo_se)

        err = np.abs(mean - closed)
        return {
            "points": rows,
            "max_abs_error": {"kl": float(err[:, 0].max()), "dmu": float(err[:, 1].max()),
                              "dsigma": float(err[:, 2].max())},
            "additivity": {"sum_of_dims": kl_sum, "full_covariance": kl_full},
            "elbo_identity": {"elbo_mc": elbo_mc, "log_px_minus_kl": log_px - kl_post},
            "samples": cfg.samples,
        }

    def figures(self, cfg: Config, fits: dict, evals: dict, metrics: dict) -> None:
        self.save_figure(gradient_figure(self.dtype, self.key("figure")), "kl_gradients")
