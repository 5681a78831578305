"""Gaussian VAE: train the (beta-)ELBO, evaluate ELBO, KL per dimension, active units and the IWAE bound.

q(z|x) = N(mu(x), diag sigma^2(x)), p(z) = N(0, I), p(x|z) Bernoulli on logits or Gaussian (seed 003 question 7,
seed 001 problems 2 and 4). Every (beta, seed) pair is one member of a single vmapped training program, so
``objective.beta: [0.1, 1, 10]`` with ``n_seeds: 3`` trains nine VAEs at once; metrics carry the mean and spread
across seeds for each beta. Data: an embedded synthetic set (no files; the default) or MNIST-format IDX files.
Optionally the amortisation gap (seed 002 question 1): each test point's q_i is optimised on its own, started at
the encoder's output, and the gain over the amortised ELBO is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vlab import data as vdata
from vlab import metrics as vmetrics
from vlab import plots
from vlab.config import BaseConfig, OptimizerConfig, TrainConfig, build_optimizer, nested, spec
from vlab.distributions import kl_to_standard_normal
from vlab.encoders import ModelConfig, VAESpec, decoder_mean, encode, init_vae, log_likelihood, spec_of
from vlab.errors import ConfigError
from vlab.experiment import Experiment as _Experiment
from vlab.members import Members
from vlab.objectives import vae as objective
from vlab.train import fit

# ------------------------------------------------------------------------------------------------ config


@dataclass
class ObjectiveConfig:
    """The training objective: -(E_q log p(x|z) - beta_t KL), with the KL estimated in closed form or by MC."""

    beta: list[float] = spec([1.0], ge=0, help="KL weights; each is a member of the vmapped program")
    kl_estimator: Literal["analytic", "mc"] = "analytic"
    free_bits: float = spec(0.0, ge=0, help="free bits per latent dimension (nats), 0 = off")
    warmup_steps: int = spec(0, ge=0, help="linear KL warm-up from 0 to beta over this many steps")
    n_samples: int = spec(1, gt=0, help="reparameterised samples of z per data point")

    def check(self, prefix: str) -> None:
        if not self.beta:
            raise ConfigError(f"key '{prefix}beta': value [] is not valid: expected at least one beta")


@dataclass
class EvalConfig:
    """What is measured after training."""

    iwae_k: int = spec(100, ge=1, help="importance samples of the IWAE bound (log-likelihood estimate)")
    iwae_points: int = spec(500, ge=0, help="test points the IWAE bound is computed on (0 = none)")
    batch_size: int = spec(500, gt=0, help="points per evaluation batch")
    au_threshold: float = spec(0.01, gt=0, help="active unit: Cov_x(E_q[z_j]) above this")
    amortisation_points: int = spec(0, ge=0, help="test points whose q_i is optimised on its own (0 = skip)")
    amortisation_steps: int = spec(500, gt=0, help="Adam steps of each per-point q_i")
    amortisation_samples: int = spec(16, gt=0, help="samples of z per point and step when optimising q_i")


@dataclass
class Config(BaseConfig):
    experiment: str = "vae"
    data: vdata.DataConfig = nested(vdata.DataConfig)
    model: ModelConfig = nested(ModelConfig)
    objective: ObjectiveConfig = nested(ObjectiveConfig)
    eval: EvalConfig = nested(EvalConfig)
    n_seeds: int = spec(1, gt=0, help="independent initialisations per beta, trained as one vmapped program")
    batch_size: int = spec(128, gt=0, help="training batch size")
    train: TrainConfig = nested(TrainConfig, steps=3000, chunk_size=1000, log_every=25,
                                optimizer=OptimizerConfig(name="adam", lr=1e-3))


# ------------------------------------------------------------------------------------------------ model


def init_members(keys: jax.Array, spec_: VAESpec, betas: np.ndarray) -> dict:
    """Training parameters of every member (one initialisation key and one KL weight each), stacked."""
    models = jax.vmap(lambda k: init_vae(k, spec_))(keys)
    beta = jnp.asarray(betas, dtype=jax.tree.leaves(models)[0].dtype)
    return {"model": models, "beta": beta, "step": jnp.zeros_like(beta)}


def member(tree: Any, i: int) -> Any:
    """The ``i``-th member of a stacked pytree."""
    return jax.tree.map(lambda a: a[i], tree)


# ------------------------------------------------------------------------------------------------ amortisation


def amortisation_gap(model: dict, spec_: VAESpec, x: jax.Array, key: jax.Array, *, steps: int, samples: int,
                     lr: float = 1e-2) -> dict[str, np.ndarray]:
    """Per-point variational parameters (mu_i, log sigma_i), started at the encoder's output and trained by Adam
    on each point's own ELBO (all points at once: Adam acts coordinate-wise, so the sum's optimisation is every
    point's own). Returns per-point amortised and optimised ELBOs (estimated with 1000 samples each)."""
    mu0, sigma0 = encode(model, spec_, x)

    def elbo_q(q, k, n):
        eps = jax.random.normal(k, (n, *q["mu"].shape), q["mu"].dtype)
        sigma = jnp.exp(q["log_sigma"])
        rec = jnp.mean(log_likelihood(model, spec_, x, q["mu"] + sigma * eps), 0)
        return rec - jnp.sum(kl_to_standard_normal(q["mu"], sigma), -1)

    def loss(q, batch, k):
        e = elbo_q(q, k, samples)
        return -jnp.sum(e), {"elbo": jnp.mean(e)}

    q0 = {"mu": mu0, "log_sigma": jnp.log(sigma0)}
    k_fit, k_eval = jax.random.split(key)
    res = fit(loss, q0, optax.adam(lr), k_fit, steps=steps, chunk_size=steps, log_every=max(steps // 50, 1),
              progress=False, name="amortisation")
    before = jax.jit(lambda q: elbo_q(q, k_eval, 1000))(q0)
    after = jax.jit(lambda q: elbo_q(q, k_eval, 1000))(res.params)
    return {"amortised": np.asarray(before), "optimised": np.asarray(after)}


# ------------------------------------------------------------------------------------------------ figures


def _pca2(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    mean = ref.mean(0)
    _, _, vt = np.linalg.svd(ref - mean, full_matrices=False)
    return (x - mean) @ vt[:2].T


def draw_figures(run, cfg: Config, spec_: VAESpec, model: dict, ds: vdata.Dataset, ev: dict, history: dict,
                 key: jax.Array, which: str = "") -> None:
    """Reconstructions, prior samples, traversal or 2-D manifold, latent means by label, KL per dimension,
    training curves (member 0; ``which`` names it in each figure's title when the run has several)."""

    def save(fig, name: str) -> None:
        if which:
            fig.suptitle(which, fontsize=10)
        run.save_figure(fig, name)

    k_s, _ = jax.random.split(key)
    x = np.asarray(ds.x_test)
    n_show = 8
    xs = x[:n_show]
    mu_show, _ = encode(model, spec_, jnp.asarray(xs))
    recon = np.asarray(decoder_mean(model, spec_, mu_show))
    z_prior = jax.random.normal(k_s, (64, spec_.z_dim))
    samples = np.asarray(decoder_mean(model, spec_, z_prior))
    kl_dims = np.asarray(ev["kl_dims"]).mean(0)
    order = np.argsort(-kl_dims)
    shape = ds.image_shape

    if shape is not None:
        fig, axes = plots.figure(1, 2, size=(10, 3.2))
        plots.show_images(axes[0], plots.image_grid(np.concatenate([xs, recon]), shape, n_show),
              "test inputs (top) and reconstructions E[x | mu(x)] (bottom)")
        plots.show_images(axes[1], plots.image_grid(samples[:32], shape, 8), "samples E[x | z], z ~ N(0, I)")
        save(fig, "reconstructions_and_samples")

        if spec_.z_dim == 2:
            q = np.linspace(-2.0, 2.0, 12)
            zz = np.stack(np.meshgrid(q, q[::-1]), -1).reshape(-1, 2)
            title = "2-D latent manifold: E[x | z] on a grid z in [-2, 2]^2"
        else:
            q = np.linspace(-2.5, 2.5, 9)
            dims = order[: min(6, spec_.z_dim)]
            zz = np.zeros((len(dims) * len(q), spec_.z_dim))
            for r, d in enumerate(dims):
                zz[r * len(q): (r + 1) * len(q), d] = q
            title = f"traversal of dims {dims.tolist()} (rows, by KL) from -2.5 to 2.5"
        imgs = np.asarray(decoder_mean(model, spec_, jnp.asarray(zz, dtype=mu_show.dtype)))
        fig, ax = plots.figure(1, 1, size=(6, 6 if spec_.z_dim == 2 else 4.5))
        plots.show_images(ax, plots.image_grid(imgs, shape, len(q)), title)
        save(fig, "latent_traversal")
    else:
        ref = np.asarray(ds.x_train)
        fig, axes = plots.figure(1, 2, size=(10, 4))
        p_in, p_rec, p_s = _pca2(x[:500], ref), _pca2(np.asarray(decoder_mean(model, spec_, ev["mu"][:500])), ref), \
            _pca2(samples, ref)
        axes[0].scatter(*p_in.T, s=6, color=plots.color(0), label="test data")
        axes[0].scatter(*p_rec.T, s=6, color=plots.color(1), label="reconstructions")
        axes[0].set_title("data and reconstructions (first 2 principal components)")
        axes[0].legend()
        axes[1].scatter(*p_in.T, s=6, color=plots.color(0), alpha=0.4, label="test data")
        axes[1].scatter(*p_s.T, s=8, color=plots.color(2), label="samples from the prior")
        axes[1].set_title("samples from the prior (first 2 principal components)")
        axes[1].legend()
        save(fig, "reconstructions_and_samples")

    mu = np.asarray(ev["mu"])
    labels = np.zeros(len(mu), int) if ds.y_test is None else np.asarray(ds.y_test)
    d0, d1 = (order[0], order[1]) if spec_.z_dim > 1 else (0, 0)
    fig, axes = plots.figure(1, 3, size=(15, 4.2))
    ax = axes[0]
    classes = np.unique(labels)
    for i, c in enumerate(classes[:20]):
        sel = labels == c
        ax.scatter(mu[sel, d0], mu[sel, d1] if spec_.z_dim > 1 else np.zeros(sel.sum()), s=4,
                   color=plots.label_color(i, len(classes)), label=str(c))
    ax.set_xlabel(f"mu_{d0}")
    ax.set_ylabel(f"mu_{d1}")
    ax.set_title("test set latent means" + (", coloured by label" if ds.y_test is not None else " (no labels)"))
    ax.legend(markerscale=3, fontsize=7, ncol=2)
    ax = axes[1]
    ax.bar(np.arange(spec_.z_dim), kl_dims, color=plots.color(0))
    ax.set_xlabel("latent dimension")
    ax.set_xticks(np.arange(spec_.z_dim))
    ax.set_ylabel("KL (nats)")
    ax.set_title("KL per latent dimension (test mean)")
    ax = axes[2]
    steps = history["step"]
    ax.plot(steps, history["elbo"][:, 0], color=plots.color(0), label="ELBO (train batch)")
    ax.plot(steps, -history["kl"][:, 0], color=plots.color(1), label="-KL")
    ax.plot(steps, history["rec"][:, 0], color=plots.color(2), label="E_q log p(x|z)")
    ax.set_xlabel("step")
    ax.set_ylabel("nats per example")
    lo = np.percentile(np.concatenate([history["elbo"][:, 0], -history["kl"][:, 0]]), 2)
    hi = max(float(history["rec"][:, 0].max()), 0.0)
    ax.set_ylim(lo - 0.1 * abs(hi - lo), hi + 0.1 * abs(hi - lo))
    ax.set_title("training curves")
    ax.legend()
    save(fig, "latents_kl_curves")


def draw_beta_figure(run, rows: list[dict]) -> None:
    """KL, active units and latent-mean correlation versus beta (seed 001 problem 4, seed 003 question 2)."""
    beta = np.array([r["beta"] for r in rows])
    fig, axes = plots.figure(1, 3, size=(14, 3.8))
    for ax, key, label in ((axes[0], "kl", "test KL (nats)"), (axes[1], "active_units", "active units"),
                           (axes[2], "mean_abs_corr", "mean |corr(mu_i, mu_j)|, active units\n(0 with fewer than 2)")):
        m = np.array([r[key]["mean"] for r in rows], dtype=float)
        s = np.array([r[key]["std"] for r in rows], dtype=float)
        ax.errorbar(beta, m, yerr=s, marker="o", color=plots.color(0), capsize=3)
        ax.set_xscale("log")
        ax.set_xlabel("beta")
        ax.set_ylabel(label)
    axes[0].set_title("KL falls as beta grows")
    axes[1].set_title("posterior collapse: units switch off")
    axes[2].set_title("latent means decorrelate")
    run.save_figure(fig, "beta_sweep")


# ------------------------------------------------------------------------------------------------ experiment


def mean_abs_corr(mu: np.ndarray, active: np.ndarray) -> float:
    """Mean |Pearson correlation| between posterior means of distinct active dimensions (0 with fewer than 2)."""
    idx = np.flatnonzero(active)
    if idx.size < 2:
        return 0.0
    c = np.corrcoef(mu[:, idx].T)
    return float(np.mean(np.abs(c[~np.eye(idx.size, dtype=bool)])))


class Experiment(_Experiment):
    name = "vae"
    description = "Gaussian VAE / beta-VAE: ELBO, KL per dimension, active units, IWAE log-likelihood bound"
    Config = Config
    headline = ("test.elbo", "test.iwae", "test.active_units")
    member_keys = ("seed", "train.optimizer.lr", "objective.beta")

    def run(self, cfg: Config, run) -> dict:
        key = jax.random.PRNGKey(cfg.seed)
        k_data, _, _, k_eval, k_fig, k_am = jax.random.split(key, 6)
        ds = vdata.load(cfg.data, k_data)
        run.log(f"data: {ds.description}")
        spec_ = spec_of(cfg.model, ds.x_train.shape[1])
        members = Members.of(cfg, run).expand("objective.beta", list(cfg.objective.beta))
        n_seeds, n_members = members.n_seeds, len(members)
        stream = lambda i: lambda seed: jax.random.split(jax.random.PRNGKey(seed), 6)[i]  # noqa: E731
        params = init_members(members.keys(stream(1)), spec_, members.values("objective.beta"))
        o = cfg.objective
        loss_fn = objective.make_loss(spec_, kl_estimator=o.kl_estimator, free_bits=o.free_bits,
                                      warmup_steps=o.warmup_steps, n_samples=o.n_samples)
        binarize = cfg.data.binarize
        batch_fn = lambda x, k: vdata.sample_batch(x, k, cfg.batch_size, binarize)
        optimizer = objective.vae_optimizer(build_optimizer(cfg.train.optimizer, cfg.train.steps))
        res = fit(loss_fn, params, optimizer, members.keys(stream(2)), steps=cfg.train.steps,
                  chunk_size=cfg.train.chunk_size, log_every=cfg.train.log_every, data=ds.x_train,
                  batch_fn=batch_fn, n_members=n_members, lr_scale=members.lr_scale(), run=run, name="vae",
                  checkpoint_every=cfg.train.checkpoint_every)
        run.log(f"trained {n_members} VAE(s) for {cfg.train.steps} steps in {res.train_s:.1f} s "
                f"({n_members * cfg.train.steps / max(res.train_s, 1e-9):.0f} member-steps/s)")

        with run.timed("evaluate"):
            x_test, x_train = ds.x_test, ds.x_train[: ds.x_test.shape[0]]
            if binarize != "none":
                kb1, kb2 = jax.random.split(jax.random.fold_in(k_eval, 1))  # a binarised evaluation set, once
                x_test = jax.random.bernoulli(kb1, x_test).astype(x_test.dtype)
                x_train = jax.random.bernoulli(kb2, x_train).astype(x_train.dtype)
            e = cfg.eval
            n_iwae = min(e.iwae_points, x_test.shape[0])

            @jax.jit
            def evaluate(models, keys):
                def one(m, kk):
                    k1, k2, k3 = jax.random.split(kk, 3)
                    te = objective.evaluate(m, spec_, x_test, k1, batch_size=e.batch_size)
                    tr = objective.evaluate(m, spec_, x_train, k2, batch_size=e.batch_size)
                    out = {"test": te, "train": {k: tr[k] for k in ("elbo", "rec", "kl")}}
                    if n_iwae:
                        out["iwae"] = objective.evaluate(m, spec_, x_test[:n_iwae], k3, batch_size=e.batch_size,
                                                         iwae_k=e.iwae_k)["iwae"]
                    return out

                return jax.vmap(one)(models, keys)

            ev = jax.tree.map(np.asarray, evaluate(res.params["model"], members.keys(stream(3))))

        per_member = []
        for i in range(n_members):
            mu = ev["test"]["mu"][i]
            n_au, a = vmetrics.active_units(mu, e.au_threshold)
            per_member.append({
                "train_elbo": float(ev["train"]["elbo"][i].mean()),
                "train_rec": float(ev["train"]["rec"][i].mean()),
                "train_kl": float(ev["train"]["kl"][i].mean()),
                "elbo": float(ev["test"]["elbo"][i].mean()),
                "rec": float(ev["test"]["rec"][i].mean()),
                "kl": float(ev["test"]["kl"][i].mean()),
                "kl_per_dim": ev["test"]["kl_dims"][i].mean(0).tolist(),
                "active_units": n_au,
                "mean_abs_corr": mean_abs_corr(mu, a > e.au_threshold),
                "iwae": float(ev["iwae"][i].mean()) if n_iwae else None,
                "elbo_iwae_points": float(ev["test"]["elbo"][i][:n_iwae].mean()) if n_iwae else None,
            })

        def group(point: dict, sl: slice) -> dict:
            rows = per_member[sl]
            out = {**{k: v for k, v in point.items() if k != "objective.beta"},
                   "beta": float(point["objective.beta"])}
            for k in ("elbo", "rec", "kl", "active_units", "mean_abs_corr", "iwae"):
                if rows[0][k] is not None:
                    out[k] = vmetrics.summarise([r[k] for r in rows], n_seeds)
            out["kl_per_dim"] = np.mean([r["kl_per_dim"] for r in rows], 0).tolist()
            out["train"] = {k: vmetrics.summarise([r[f"train_{k}"] for r in rows], n_seeds)
                            for k in ("elbo", "rec", "kl")}
            return out

        groups = [group(p, sl) for p, sl in members.groups()]
        first = groups[0]
        metrics: dict[str, Any] = {
            "train": first["train"],
            "test": {k: first[k] for k in ("elbo", "rec", "kl", "kl_per_dim", "active_units", "iwae")
                     if k in first},
            "beta": first["beta"],
            "iwae_k": e.iwae_k if n_iwae else 0,
            "iwae_points": n_iwae,
            "n_seeds": n_seeds,
            "steps_per_s": cfg.train.steps / max(res.train_s, 1e-9),
        }
        betas = sorted({g["beta"] for g in groups})
        if len(groups) > 1:
            metrics["by_beta" if len(betas) == len(groups) else "by_point"] = groups
        if getattr(run, "members", None):
            metrics["members"] = members.rows({
                "test.elbo": [r["elbo"] for r in per_member], "test.iwae": [r["iwae"] for r in per_member],
                "test.kl": [r["kl"] for r in per_member], "test.active_units": [r["active_units"] for r in per_member],
                "train.elbo": [r["train_elbo"] for r in per_member]})
        for i in range(n_members):
            if n_iwae:
                # IWAE_k >= ELBO holds in expectation; on the same points the means differ by more than the noise
                r = per_member[i]
                run.check(f"iwae >= elbo on the same points (member {i})",
                          min(r["iwae"] - r["elbo_iwae_points"], 0.0), 0.0, 0.05)
        if any(r["active_units"] == 0 for r in per_member):
            run.warn("a trained VAE has no active latent unit (posterior collapse): q(z|x) ignores x")

        if e.amortisation_points:
            n_am = min(e.amortisation_points, x_test.shape[0])
            am = amortisation_gap(member(res.params["model"], 0), spec_, x_test[:n_am], k_am,
                                  steps=e.amortisation_steps, samples=e.amortisation_samples)
            gap = am["optimised"] - am["amortised"]
            metrics["amortisation"] = {"points": n_am, "amortised_elbo": float(am["amortised"].mean()),
                                       "optimised_elbo": float(am["optimised"].mean()),
                                       "gap": float(gap.mean()), "gap_fraction_positive": float(np.mean(gap > 0))}
            if n_iwae >= n_am:
                # log p(x) ~ IWAE_k: the total gap splits into approximation (family) and amortisation parts
                iwae_am = float(ev["iwae"][0][:n_am].mean())
                metrics["amortisation"]["iwae"] = iwae_am
                metrics["amortisation"]["approximation_gap"] = iwae_am - float(am["optimised"].mean())
            run.check("per-point optimised ELBO >= amortised ELBO (mean)", min(float(gap.mean()), 0.0), 0.0, 0.02)
            self._amortisation_figure(run, am)

        with run.timed("plots"):
            model0 = member(res.params["model"], 0)
            ev0 = {"kl_dims": ev["test"]["kl_dims"][0], "mu": ev["test"]["mu"][0]}
            hist = {k: np.asarray(v).reshape(len(v), -1) for k, v in res.history.items()}
            draw_figures(run, cfg, spec_, model0, ds, ev0, hist, k_fig, plots.member_title(members, 0))
            if len(betas) > 1 and len(betas) == len(groups):
                draw_beta_figure(run, groups)
        return metrics

    @staticmethod
    def _amortisation_figure(run, am: dict) -> None:
        fig, ax = plots.figure(1, 1, size=(5.5, 4.5))
        a, o = am["amortised"], am["optimised"]
        ax.scatter(a, o, s=8, color=plots.color(0))
        lo, hi = float(min(a.min(), o.min())), float(max(a.max(), o.max()))
        ax.plot([lo, hi], [lo, hi], color=plots.color(7), lw=1, label="no gap")
        ax.set_xlabel("amortised ELBO, q_phi(z|x_i)")
        ax.set_ylabel("optimised ELBO, own q_i")
        ax.set_title(f"amortisation gap: mean {np.mean(o - a):.3f} nats")
        ax.legend()
        run.save_figure(fig, "amortisation_gap")
