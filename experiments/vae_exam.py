"""The exam's VAE (seed 000, question 5): exact ELBO, its gradient in (w1, w2), and two Monte Carlo estimators.

x in R^3, z in R^2, p(z) = N(0, I), sigma the logistic sigmoid:

    q(z|x) = N(mu1, Sigma1),  mu1 = sigma(A x + a),  Sigma1 = diag(sigma(B x + b)),   B = [[-1, 1, 1], [1, w1, -2]]
    p(x|z) = N(mu3, Sigma3),  mu3 = sigma(C z + c),  Sigma3 = diag(sigma(D z + d)),   C = [[2, 0], [-1, w2], [2, 1]]

(the sigmoids give the *variances*). L(w) = E_q[log p(x|z)] - KL(q || p(z)) with
KL = (tr Sigma1 + |mu1|^2 - log det Sigma1 - 2) / 2 in closed form and the reconstruction term by a 2-D
Gauss-Hermite product rule in q's standardised coordinates. Its gradient is autodiff of that exact value. Only
Sigma1 holds w1 and only mu3 holds w2, so dKL/dw2 = 0 and dKL/dw1 = (tr dSigma1 - tr(Sigma1^-1 dSigma1)) / 2 with
dSigma1 = diag(0, sigma'(u2) x2) (the seed's answer); the experiment checks both against autodiff.

Monte Carlo gradients from N samples z ~ q, with the KL's gradient exact in both:
- reparameterisation: z = mu1 + Sigma1^(1/2) eps, g = grad_w log p_w(x | z(w, eps));
- score function (REINFORCE): g = log p(x|z) grad_w log q_w(z|x) + grad_w log p_w(x|z) at fixed z.
Both are unbiased; their bias (measured) and variance (falling as 1/N) are reported against the exact gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from vlab.distributions import kl_to_standard_normal, normal_log_prob
from vlab.distributions.divergences import standard_normal_rule
from vlab.errors import ConfigError
from vlab.harness import plots
from vlab.harness.config import BaseConfig, spec
from vlab.harness.experiment import Experiment as _Experiment

A = [[2.0, 1.0, 1.0], [1.0, -1.0, -2.0]]
a_ = [1.0, -1.0]
b_ = [1.0, 2.0]
c_ = [1.0, -1.0, 2.0]
D = [[1.0, -2.0], [-1.0, 2.0], [-1.0, -2.0]]
d_ = [1.0, 2.0, -1.0]


@dataclass
class Config(BaseConfig):
    precision: Literal["float32", "float64"] = "float64"
    x: list[float] = spec([0.8, 0.3, 0.6], help="the data point x in R^3")
    w: list[float] = spec([1.0, 1.0], help="the free weights (w1, w2) where the gradient is taken")
    nodes: int = spec(64, ge=4, help="Gauss-Hermite nodes per latent dimension (exact ELBO)")
    samples: list[int] = spec([1, 4, 16, 64, 256, 1024], gt=0, help="Monte Carlo sample sizes N")
    replicates: int = spec(2000, ge=2, help="independent N-sample estimates per N (for bias and variance)")
    grid: int = spec(25, ge=3, help="points per axis of the ELBO surface")
    w_range: list[float] = spec([-4.0, 4.0], help="range of w1 and w2 on the ELBO surface")

    def check(self, prefix: str) -> None:
        for name, n in (("x", 3), ("w", 2), ("w_range", 2)):
            v = getattr(self, name)
            if len(v) != n:
                raise ConfigError(f"key '{prefix}{name}': value {v} is not valid: expected {n} numbers")
        if not self.w_range[0] < self.w_range[1]:
            raise ConfigError(f"key '{prefix}w_range': value {self.w_range} is not valid: expected [low, high] "
                              "with low < high")


# ------------------------------------------------------------------------------------------------ model


def encoder(w: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """mu1 = sigma(A x + a) and the diagonal of Sigma1 = sigma(B x + b), B holding w1 at (2, 2)."""
    B = jnp.array([[-1.0, 1.0, 1.0], [1.0, 0.0, -2.0]]) + w[0] * jnp.array([[0.0, 0, 0], [0, 1, 0]])
    return jax.nn.sigmoid(jnp.asarray(A) @ x + jnp.asarray(a_)), jax.nn.sigmoid(B @ x + jnp.asarray(b_))


def log_px_given_z(w: jax.Array, x: jax.Array, z: jax.Array) -> jax.Array:
    """log N(x; sigma(C z + c), diag sigma(D z + d)), C holding w2 at (2, 2)."""
    C = jnp.array([[2.0, 0.0], [-1.0, 0.0], [2.0, 1.0]]) + w[1] * jnp.array([[0.0, 0], [0, 1], [0, 0]])
    mu3 = jax.nn.sigmoid(C @ z + jnp.asarray(c_))
    var3 = jax.nn.sigmoid(jnp.asarray(D) @ z + jnp.asarray(d_))
    return jnp.sum(normal_log_prob(x, mu3, jnp.sqrt(var3)))


def log_q(w: jax.Array, x: jax.Array, z: jax.Array) -> jax.Array:
    """log q(z|x) = log N(z; mu1, Sigma1)."""
    mu1, var1 = encoder(w, x)
    return jnp.sum(normal_log_prob(z, mu1, jnp.sqrt(var1)))


def kl_term(w: jax.Array, x: jax.Array) -> jax.Array:
    """KL(q(z|x) || N(0, I)) = sum_j (Sigma1_jj + mu1_j^2 - log Sigma1_jj - 1) / 2."""
    mu1, var1 = encoder(w, x)
    return jnp.sum(kl_to_standard_normal(mu1, jnp.sqrt(var1)))


def rec_term(w: jax.Array, x: jax.Array, nodes: int) -> jax.Array:
    """E_q[log p(x|z)] by the product Gauss-Hermite rule: sum_ij v_i v_j log p(x | mu1 + Sigma1^(1/2) (u_i, u_j))."""
    u, v = standard_normal_rule(nodes, "gauss_hermite")
    u = u.astype(x.dtype)
    v = v.astype(x.dtype)
    mu1, var1 = encoder(w, x)
    uu = jnp.stack(jnp.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)
    vv = (v[:, None] * v[None, :]).reshape(-1)
    z = mu1 + jnp.sqrt(var1) * uu
    return jnp.sum(vv * jax.vmap(lambda zz: log_px_given_z(w, x, zz))(z))


def elbo(w: jax.Array, x: jax.Array, nodes: int) -> jax.Array:
    """The exact ELBO L(w) = E_q[log p(x|z)] - KL(q || p(z)) (quadrature + closed form)."""
    return rec_term(w, x, nodes) - kl_term(w, x)


def kl_grad_w1_seed(w: jax.Array, x: jax.Array) -> jax.Array:
    """The seed's dKL/dw1 = (tr dSigma1 - tr(Sigma1^-1 dSigma1)) / 2, dSigma1 = diag(0, sigma'(u2) x2)."""
    _, var1 = encoder(w, x)
    d22 = var1[1] * (1.0 - var1[1]) * x[1]
    return 0.5 * (d22 - d22 / var1[1])


# ------------------------------------------------------------------------------------------------ estimators


def reparam_grad(w: jax.Array, x: jax.Array, eps: jax.Array) -> jax.Array:
    """One-sample pathwise gradient of the ELBO: grad_w log p_w(x | mu1(w) + Sigma1(w)^(1/2) eps) - grad_w KL."""
    def f(w):
        mu1, var1 = encoder(w, x)
        return log_px_given_z(w, x, mu1 + jnp.sqrt(var1) * eps) - kl_term(w, x)

    return jax.grad(f)(w)


def score_grad(w: jax.Array, x: jax.Array, eps: jax.Array) -> jax.Array:
    """One-sample score-function gradient: f(z) grad log q_w(z|x) + grad_w log p_w(x|z) - grad KL at fixed z."""
    mu1, var1 = encoder(w, x)
    z = jax.lax.stop_gradient(mu1 + jnp.sqrt(var1) * eps)

    def surrogate(w):
        f = log_px_given_z(w, x, z)
        return jax.lax.stop_gradient(f) * log_q(w, x, z) + f - kl_term(w, x)

    return jax.grad(surrogate)(w)


def estimator_stats(per_sample: np.ndarray, exact: np.ndarray, sizes: list[int], replicates: int) -> list[dict]:
    """For each N: the mean of ``replicates`` independent N-sample averages, its bias against ``exact`` with the
    bias's standard error, and the variance of one N-sample estimate (per component)."""
    rows = []
    for n in sizes:
        est = per_sample[: replicates * n].reshape(replicates, n, -1).mean(1)
        mean = est.mean(0)
        var = est.var(0, ddof=1)
        rows.append({"n": n, "mean": mean.tolist(), "bias": (mean - exact).tolist(),
                     "bias_stderr": np.sqrt(var / replicates).tolist(), "variance": var.tolist()})
    return rows


# ------------------------------------------------------------------------------------------------ experiment


class Experiment(_Experiment):
    description = "The exam VAE (seed 000 Q5): exact ELBO and gradient, reparameterisation vs score-function"
    Config = Config
    headline = ("elbo", "grad.w1", "grad.w2", "kl_grad.w2")

    def setup(self, cfg: Config) -> None:
        self.dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
        self.x, self.w = jnp.asarray(cfg.x, self.dtype), jnp.asarray(cfg.w, self.dtype)

    def train(self, cfg: Config) -> dict:
        """Nothing is trained: the ELBO and its estimators are computed in :meth:`summarise`."""
        return {}

    def summarise(self, cfg: Config, fits: dict, evals: dict) -> dict:
        """The exact ELBO and its gradient against finite differences and the seed's formulas, then the two Monte
        Carlo estimators' bias and variance against that gradient."""
        dtype, x, w, nodes = self.dtype, self.x, self.w, cfg.nodes
        value = float(elbo(w, x, nodes))
        finer = float(elbo(w, x, 2 * nodes))
        grad = np.asarray(jax.grad(elbo)(w, x, nodes))
        kl = float(kl_term(w, x))
        kl_grad = np.asarray(jax.grad(kl_term)(w, x))
        rec_grad = np.asarray(jax.grad(rec_term)(w, x, nodes))
        seed_kl_w1 = float(kl_grad_w1_seed(w, x))
        h = 1e-5
        fd = np.array([(float(elbo(w + h * e, x, nodes)) - float(elbo(w - h * e, x, nodes))) / (2 * h)
                       for e in jnp.eye(2, dtype=dtype)])

        # the seed's integral forms, by the same quadrature: dL/dw2 = E_q[d/dw2 log p(x|z)] and
        # d rec/dw1 = int dq/dw1 log p dz = E_q[log p(x|z) d/dw1 log q(z|x)]
        u, v = standard_normal_rule(nodes, "gauss_hermite")
        uu = jnp.stack(jnp.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2).astype(dtype)
        vv = (v[:, None] * v[None, :]).reshape(-1).astype(dtype)
        mu1, var1 = encoder(w, x)
        zs = mu1 + jnp.sqrt(var1) * uu
        dlogp_dw2 = jax.vmap(lambda z: jax.grad(log_px_given_z)(w, x, z)[1])(zs)
        score_w1 = jax.vmap(lambda z: jax.grad(log_q)(w, x, z)[0])(zs)
        logp = jax.vmap(lambda z: log_px_given_z(w, x, z))(zs)
        seed_w2 = float(jnp.sum(vv * dlogp_dw2))
        seed_rec_w1 = float(jnp.sum(vv * logp * score_w1))

        self.check("quadrature converged (nodes vs 2 x nodes)", value, finer, 1e-9)
        self.check("autodiff dL/dw1 = finite difference", grad[0], fd[0], 1e-6)
        self.check("autodiff dL/dw2 = finite difference", grad[1], fd[1], 1e-6)
        self.check("dKL/dw2 = 0 (KL depends on w1 only)", kl_grad[1], 0.0, 1e-12)
        self.check("dKL/dw1 = seed's (tr dS - tr S^-1 dS)/2", kl_grad[0], seed_kl_w1, 1e-10)
        self.check("dL/dw2 = E_q[d/dw2 log p(x|z)] (seed's integral form)", grad[1], seed_w2, 1e-8)
        self.check("dL/dw1 = int dq/dw1 log p dz - dKL/dw1 (seed's integral form)", grad[0],
                   seed_rec_w1 - seed_kl_w1, 1e-6)

        # Monte Carlo estimators
        n_max = max(cfg.samples)
        eps = jax.random.normal(self.key("estimators"), (cfg.replicates * n_max, 2), dtype)
        with self.out.timed("estimators"):
            g_rep = np.asarray(jax.jit(jax.vmap(reparam_grad, in_axes=(None, None, 0)))(w, x, eps))
            g_sf = np.asarray(jax.jit(jax.vmap(score_grad, in_axes=(None, None, 0)))(w, x, eps))
        stats = {"reparameterisation": estimator_stats(g_rep, grad, cfg.samples, cfg.replicates),
                 "score_function": estimator_stats(g_sf, grad, cfg.samples, cfg.replicates)}
        for name, g in (("reparameterisation", g_rep), ("score_function", g_sf)):
            se = g.std(0, ddof=1) / np.sqrt(g.shape[0])
            for j in range(2):
                self.check(f"{name} estimator unbiased, w{j + 1} (4 standard errors)", g[:, j].mean(), grad[j],
                           4 * se[j])
        for name, g in (("reparameterisation", g_rep), ("score_function", g_sf)):
            c = g - g.mean(0)
            kurt = (c**4).mean(0) / (c**2).mean(0) ** 2 - 3.0
            stats[f"{name}_excess_kurtosis"] = kurt.tolist()  # heavy tails: 1/sigma(Dz + d) grows like exp(-Dz)
        var_ratio = (np.array(stats["score_function"][0]["variance"])
                     / np.array(stats["reparameterisation"][0]["variance"]))
        return {
            "x": cfg.x, "w": cfg.w, "elbo": value, "rec": value + kl, "kl": kl,
            "grad": {"w1": float(grad[0]), "w2": float(grad[1])},
            "rec_grad": {"w1": float(rec_grad[0]), "w2": float(rec_grad[1])},
            "kl_grad": {"w1": float(kl_grad[0]), "w2": float(kl_grad[1]), "w1_seed_formula": seed_kl_w1},
            "q": {"mu1": np.asarray(mu1).tolist(), "Sigma1_diag": np.asarray(var1).tolist()},
            "estimators": stats,
            "variance_ratio_score_over_reparam": {"w1": float(var_ratio[0]), "w2": float(var_ratio[1])},
        }

    def figures(self, cfg: Config, fits: dict, evals: dict, metrics: dict) -> None:
        """The exact ELBO surface over (w1, w2) with its gradient field, and each estimator's variance against N."""
        x, w, dtype, stats = self.x, self.w, self.dtype, metrics["estimators"]
        lo, hi = cfg.w_range
        g = np.linspace(lo, hi, cfg.grid)
        W1, W2 = np.meshgrid(g, g)
        ws = jnp.asarray(np.stack([W1.ravel(), W2.ravel()], -1), dtype)
        f = jax.jit(jax.vmap(lambda ww: jax.value_and_grad(elbo)(ww, x, cfg.nodes)))
        vals, grads = f(ws)
        vals = np.asarray(vals).reshape(W1.shape)
        grads = np.asarray(grads).reshape(*W1.shape, 2)
        fig, axes = plots.figure(1, 2, size=(12, 4.8))
        ax = axes[0]
        cs = ax.contourf(W1, W2, vals, levels=30, cmap="viridis")
        fig.colorbar(cs, ax=ax, label="ELBO L(w1, w2)")
        step = max(cfg.grid // 12, 1)
        ax.quiver(W1[::step, ::step], W2[::step, ::step], grads[::step, ::step, 0], grads[::step, ::step, 1],
                  color="white", angles="xy")
        ax.scatter([float(w[0])], [float(w[1])], color=plots.color(1), zorder=3, label="w of the metrics")
        ax.set_xlabel("w1 (in the encoder's variance)")
        ax.set_ylabel("w2 (in the decoder's mean)")
        ax.set_title("exact ELBO; arrows: its gradient (w1 dominates)")
        ax.legend(loc="lower left")
        ax.grid(False)
        ax = axes[1]
        for i, name in enumerate(("reparameterisation", "score_function")):
            rows = stats[name]
            n = np.array([r["n"] for r in rows])
            var = np.array([r["variance"] for r in rows])
            for j, ls in ((0, "-"), (1, "--")):
                label = f"{name.replace('_', ' ')}, w{j + 1}" + (" (the same: q has no w2)" if j else "")
                ax.loglog(n, var[:, j], ls, marker="o" if j == 0 else "x", color=plots.color(i), label=label)
        n = np.array([r["n"] for r in stats["reparameterisation"]])
        ref = np.array(stats["reparameterisation"][0]["variance"]).mean()
        ax.loglog(n, ref / n, ":", color=plots.color(7), label="1/N")
        ax.set_xlabel("samples N")
        ax.set_ylabel("variance of the N-sample gradient estimate")
        ax.set_title(f"estimator variance at w = ({float(w[0]):g}, {float(w[1]):g}); both unbiased")
        ax.legend(fontsize=8)
        self.save_figure(fig, "elbo_surface_and_estimator_variance")
