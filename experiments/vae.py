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
import numpy as np

from vlab import data as vdata
from vlab.algorithms.amortisation import amortisation_gap
from vlab.engine.members import Members
from vlab.errors import ConfigError
from vlab.harness import data_config, plots
from vlab.harness import metrics as vmetrics
from vlab.harness.config import BaseConfig, OptimizerConfig, TrainConfig, nested, spec
from vlab.harness.experiment import Experiment as _Experiment
from vlab.harness.model_config import ModelConfig, spec_of
from vlab.keys import stream
from vlab.models.vae import VAESpec, decoder_mean, encode, init_vae
from vlab.objectives import vae as objective

KL_ESTIMATORS = {"analytic": objective.analytic_kl, "mc": objective.mc_kl}
"""The KL estimators by the names of ``objective.kl_estimator``."""

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
    data: data_config.DataConfig = nested(data_config.DataConfig)
    model: ModelConfig = nested(ModelConfig)
    objective: ObjectiveConfig = nested(ObjectiveConfig)
    eval: EvalConfig = nested(EvalConfig)
    n_seeds: int = spec(1, gt=0, help="independent initialisations per beta, trained as one vmapped program")
    batch_size: int = spec(128, gt=0, help="training batch size")
    train: TrainConfig = nested(TrainConfig, steps=3000, chunk_size=1000, log_every=25,
                                optimizer=OptimizerConfig(name="adam", lr=1e-3))


def _pca2(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``x`` on the first two principal axes of ``ref`` (both centred on ``ref``'s mean)."""
    mean = ref.mean(0)
    return (x - mean) @ np.linalg.svd(ref - mean, full_matrices=False)[2][:2].T


def draw_figures(run, spec_: VAESpec, model: dict, ds: vdata.Dataset, ev: dict, history: dict, key: jax.Array,
                 which: str = "") -> None:
    """Reconstructions, prior samples, traversal or 2-D manifold, latent means by label, KL per dimension,
    training curves of one VAE.

    Args:
        run: the experiment whose run folder gets the figures (its ``save_figure``).
        spec_: the networks' static shape.
        model: the VAE's parameters.
        ds: the data set.
        ev: the test set's ``"kl_dims"`` and posterior means ``"mu"``.
        history: the training history, one column per member.
        key: the randomness of the prior samples.
        which: names the member in each figure's title when the run has several.

    Returns:
        None; the figures are saved.
    """

    def save(fig, name: str) -> None:
        if which:
            fig.suptitle(which, fontsize=10)
        run.save_figure(fig, name)

    x, mu, shape, zd = np.asarray(ds.x_test), np.asarray(ev["mu"]), ds.image_shape, spec_.z_dim
    recon = np.asarray(decoder_mean(model, spec_, encode(model, spec_, x[:8])[0]))
    samples = np.asarray(decoder_mean(model, spec_, jax.random.normal(key, (64, zd), mu.dtype)))
    kl_dims = np.asarray(ev["kl_dims"]).mean(0)
    order = np.argsort(-kl_dims)
    if shape is not None:
        fig, axes = plots.figure(1, 2, size=(10, 3.2))
        plots.show_images(axes[0], plots.image_grid(np.concatenate([x[:8], recon]), shape, 8),
                          "test inputs (top) and reconstructions E[x | mu(x)] (bottom)")
        plots.show_images(axes[1], plots.image_grid(samples[:32], shape, 8), "samples E[x | z], z ~ N(0, I)")
        save(fig, "reconstructions_and_samples")
        if zd == 2:
            q = np.linspace(-2.0, 2.0, 12)
            zz = np.stack(np.meshgrid(q, q[::-1]), -1).reshape(-1, 2)
            title = "2-D latent manifold: E[x | z] on a grid z in [-2, 2]^2"
        else:
            q, dims = np.linspace(-2.5, 2.5, 9), order[: min(6, zd)]
            zz = np.zeros((len(dims), len(q), zd))
            zz[np.arange(len(dims)), :, dims] = q
            zz = zz.reshape(-1, zd)
            title = f"traversal of dims {dims.tolist()} (rows, by KL) from -2.5 to 2.5"
        fig, ax = plots.figure(1, 1, size=(6, 6 if zd == 2 else 4.5))
        imgs = np.asarray(decoder_mean(model, spec_, jax.numpy.asarray(zz, mu.dtype)))
        plots.show_images(ax, plots.image_grid(imgs, shape, len(q)), title)
        save(fig, "latent_traversal")
    else:
        ref, rec = np.asarray(ds.x_train), np.asarray(decoder_mean(model, spec_, mu[:500]))
        p_in, (fig, axes) = _pca2(x[:500], ref), plots.figure(1, 2, size=(10, 4))
        panels = ((axes[0], rec, "reconstructions", 1), (axes[1], samples, "samples from the prior", 2))
        for ax, pts, label, c in panels:
            ax.scatter(*p_in.T, s=6, color=plots.color(0), alpha=0.4 if c == 2 else 1.0, label="test data")
            ax.scatter(*_pca2(pts, ref).T, s=6 if c == 1 else 8, color=plots.color(c), label=label)
            ax.set_title(f"{'data and ' if c == 1 else ''}{label} (first 2 principal components)")
            ax.legend()
        save(fig, "reconstructions_and_samples")

    labels = np.zeros(len(mu), int) if ds.y_test is None else np.asarray(ds.y_test)
    d0, d1 = (order[0], order[1]) if zd > 1 else (0, 0)
    fig, axes = plots.figure(1, 3, size=(15, 4.2))
    classes = np.unique(labels)
    for i, c in enumerate(classes[:20]):
        sel = labels == c
        axes[0].scatter(mu[sel, d0], mu[sel, d1] if zd > 1 else np.zeros(sel.sum()), s=4,
                        color=plots.label_color(i, len(classes)), label=str(c))
    axes[0].set(xlabel=f"mu_{d0}", ylabel=f"mu_{d1}", title="test set latent means"
                + (", coloured by label" if ds.y_test is not None else " (no labels)"))
    axes[0].legend(markerscale=3, fontsize=7, ncol=2)
    axes[1].bar(np.arange(zd), kl_dims, color=plots.color(0))
    axes[1].set(xlabel="latent dimension", xticks=np.arange(zd), ylabel="KL (nats)",
                title="KL per latent dimension (test mean)")
    h = {k: history[k][:, 0] for k in ("elbo", "kl", "rec")}
    for i, (v, label) in enumerate(((h["elbo"], "ELBO (train batch)"), (-h["kl"], "-KL"),
                                    (h["rec"], "E_q log p(x|z)"))):
        axes[2].plot(history["step"], v, color=plots.color(i), label=label)
    lo, hi = np.percentile(np.concatenate([h["elbo"], -h["kl"]]), 2), max(float(h["rec"].max()), 0.0)
    axes[2].set(xlabel="step", ylabel="nats per example", title="training curves",
                ylim=(lo - 0.1 * abs(hi - lo), hi + 0.1 * abs(hi - lo)))
    axes[2].legend()
    save(fig, "latents_kl_curves")


def draw_beta_figure(run, rows: list[dict]) -> None:
    """KL, active units and latent-mean correlation versus beta (seed 001 problem 4, seed 003 question 2), with
    the spread across seeds."""
    beta = np.array([r["beta"] for r in rows])
    fig, axes = plots.figure(1, 3, size=(14, 3.8))
    for ax, key, label, title in (
            (axes[0], "kl", "test KL (nats)", "KL falls as beta grows"),
            (axes[1], "active_units", "active units", "posterior collapse: units switch off"),
            (axes[2], "mean_abs_corr", "mean |corr(mu_i, mu_j)|, active units\n(0 with fewer than 2)",
             "latent means decorrelate")):
        v = [r[key] if isinstance(r[key], dict) else {"mean": r[key], "std": 0.0} for r in rows]
        ax.errorbar(beta, [x["mean"] for x in v], yerr=[x["std"] for x in v], marker="o", color=plots.color(0),
                    capsize=3)
        ax.set(xscale="log", xlabel="beta", ylabel=label, title=title)
    run.save_figure(fig, "beta_sweep")


def gap_figure(am: dict[str, np.ndarray]):
    """Each point's optimised ELBO against its amortised one, with the diagonal of no gap."""
    fig, ax = plots.figure(1, 1, size=(5.5, 4.5))
    a, o = am["amortised"], am["optimised"]
    ax.scatter(a, o, s=8, color=plots.color(0))
    lo, hi = float(min(a.min(), o.min())), float(max(a.max(), o.max()))
    ax.plot([lo, hi], [lo, hi], color=plots.color(7), lw=1, label="no gap")
    ax.set_xlabel("amortised ELBO, q_phi(z|x_i)")
    ax.set_ylabel("optimised ELBO, own q_i")
    ax.set_title(f"amortisation gap: mean {np.mean(o - a):.3f} nats")
    ax.legend()
    return fig


def mean_abs_corr(mu: np.ndarray, active: np.ndarray) -> float:
    """Mean |Pearson correlation| between posterior means of distinct active dimensions (0 with fewer than 2)."""
    idx = np.flatnonzero(active)
    if idx.size < 2:
        return 0.0
    c = np.corrcoef(mu[:, idx].T)
    return float(np.mean(np.abs(c[~np.eye(idx.size, dtype=bool)])))


class Experiment(_Experiment):
    description = "Gaussian VAE / beta-VAE: ELBO, KL per dimension, active units, IWAE log-likelihood bound"
    Config = Config
    headline = ("test.elbo", "test.iwae", "test.active_units")
    member_keys = ("seed", "train.optimizer.lr", "objective.beta")

    def expand_members(self, members: Members) -> Members:
        return members.expand("objective.beta", list(self.cfg.objective.beta))  # each beta is a member

    def setup(self, cfg: Config) -> None:
        """The data, the network's shapes and the evaluation sets (binarised once when training binarises)."""
        self.ds = ds = data_config.load(cfg.data)
        self.log(f"data: {ds.description}")
        self.spec = spec_of(cfg.model, ds.x_train.shape[1])
        self.x_test, self.x_train = ds.x_test, ds.x_train[: ds.x_test.shape[0]]
        if cfg.data.binarize != "none":
            self.x_test, self.x_train = (jax.random.bernoulli(self.key(f"binarise/{name}"), x).astype(x.dtype)
                                         for name, x in (("test", self.x_test), ("train", self.x_train)))
        self.n_iwae = min(cfg.eval.iwae_points, self.x_test.shape[0])

    def init(self, cfg: Config, key: jax.Array) -> dict:
        return init_vae(key, self.spec)

    def hyperparameters(self, cfg: Config) -> dict[str, np.ndarray]:
        return {"beta": self.members.values("objective.beta", np.float64)}  # the KL weight of each member

    def objective(self, cfg: Config):
        o = cfg.objective
        return objective.make_loss(self.spec, kl_estimator=KL_ESTIMATORS[o.kl_estimator], free_bits=o.free_bits,
                                   warmup_steps=o.warmup_steps, n_samples=o.n_samples)

    def data(self, cfg: Config):
        return self.ds.x_train, lambda x, k: vdata.sample_batch(x, k, cfg.batch_size, cfg.data.binarize)

    def evaluate(self, cfg: Config, params: dict, key: jax.Array, hp: dict) -> dict:
        """Per-point ELBO terms and posterior means on the test set and as many training points, and the IWAE bound
        on the first ``eval.iwae_points`` test points."""
        b = cfg.eval.batch_size
        tr = objective.evaluate(params, self.spec, self.x_train, stream(key, "train"), batch_size=b)
        out = {"test": objective.evaluate(params, self.spec, self.x_test, stream(key, "test"), batch_size=b),
               "train": {k: tr[k] for k in ("elbo", "rec", "kl")}}
        if self.n_iwae:
            out["iwae"] = objective.evaluate(params, self.spec, self.x_test[: self.n_iwae], stream(key, "iwae"),
                                             batch_size=b, iwae_k=cfg.eval.iwae_k)["iwae"]
        return out

    def summarise(self, cfg: Config, fits: dict, evals: dict) -> dict:
        """Per member, then per point across its seeds: ELBO, terms, KL per dimension, active units, IWAE; the
        check IWAE_k >= ELBO; the amortisation gap of member 0 when asked for."""
        e, n_seeds, n_iwae, res = cfg.eval, self.members.n_seeds, self.n_iwae, fits[self.name]
        n = len(self.members)
        self.log(f"trained {n} VAE(s) for {cfg.train.steps} steps in {res.train_s:.1f} s "
                 f"({n * cfg.train.steps / max(res.train_s, 1e-9):.0f} member-steps/s)")
        te = evals["test"]
        au = [vmetrics.active_units(mu, e.au_threshold) for mu in te["mu"]]
        per = {k: te[k].mean(1) for k in ("elbo", "rec", "kl")}
        per |= {f"train_{k}": v.mean(1) for k, v in evals["train"].items()}
        per["active_units"] = np.array([c for c, _ in au])
        per["mean_abs_corr"] = np.array([mean_abs_corr(mu, a > e.au_threshold) for mu, (_, a) in zip(te["mu"], au,
                                                                                                     strict=True)])
        if n_iwae:
            per["iwae"] = evals["iwae"].mean(1)
        kl_per_dim = te["kl_dims"].mean(1)

        def group(point: dict, sl: slice) -> dict:
            out = {**{k: v for k, v in point.items() if k != "objective.beta"}, "beta": float(point["objective.beta"])}
            out |= {k: vmetrics.summarise(per[k][sl], n_seeds) for k in ("elbo", "rec", "kl", "active_units",
                                                                          "mean_abs_corr", "iwae") if k in per}
            out["kl_per_dim"] = kl_per_dim[sl].mean(0).tolist()
            out["train"] = {k: vmetrics.summarise(per[f"train_{k}"][sl], n_seeds) for k in ("elbo", "rec", "kl")}
            return out

        self.groups = groups = [group(p, sl) for p, sl in self.members.groups()]
        first = groups[0]
        metrics: dict[str, Any] = {
            "train": first["train"],
            "test": {k: first[k] for k in ("elbo", "rec", "kl", "kl_per_dim", "active_units", "iwae") if k in first},
            "beta": first["beta"], "iwae_k": e.iwae_k if n_iwae else 0, "iwae_points": n_iwae, "n_seeds": n_seeds,
            "steps_per_s": cfg.train.steps / max(res.train_s, 1e-9)}
        if len(groups) > 1:
            metrics["by_beta" if len({g["beta"] for g in groups}) == len(groups) else "by_point"] = groups
        metrics["members"] = self.member_rows({
            "test.elbo": per["elbo"], "test.iwae": per["iwae"] if n_iwae else [None] * n, "test.kl": per["kl"],
            "test.active_units": per["active_units"], "train.elbo": per["train_elbo"]})
        if n_iwae:  # IWAE_k >= ELBO holds in expectation; on the same points the means differ by more than the noise
            elbo_iwae = te["elbo"][:, :n_iwae].mean(1)
            for i in range(n):
                self.check(f"iwae >= elbo on the same points (member {i})", min(per["iwae"][i] - elbo_iwae[i], 0.0),
                           0.0, 0.05)
        if np.any(per["active_units"] == 0):
            self.warn("a trained VAE has no active latent unit (posterior collapse): q(z|x) ignores x")
        self.am = None
        if e.amortisation_points:
            metrics["amortisation"] = self.amortisation(cfg, jax.tree.map(lambda a: a[0], res.params), evals)
        return metrics

    def amortisation(self, cfg: Config, model: dict, evals: dict) -> dict:
        """Member 0's amortisation gap on the first ``eval.amortisation_points`` test points, and (with IWAE on
        them) the approximation gap IWAE_k - optimised ELBO beside it."""
        e = cfg.eval
        n_am = min(e.amortisation_points, self.x_test.shape[0])
        self.am = am = amortisation_gap(model, self.spec, self.x_test[:n_am], self.key("amortisation"),
                                        steps=e.amortisation_steps, samples=e.amortisation_samples)
        gap = am["optimised"] - am["amortised"]
        out = {"points": n_am, "amortised_elbo": float(am["amortised"].mean()),
               "optimised_elbo": float(am["optimised"].mean()), "gap": float(gap.mean()),
               "gap_fraction_positive": float(np.mean(gap > 0))}
        if self.n_iwae >= n_am:  # log p(x) ~ IWAE_k: the total gap is approximation (family) + amortisation
            out["iwae"] = float(evals["iwae"][0][:n_am].mean())
            out["approximation_gap"] = out["iwae"] - out["optimised_elbo"]
        self.check("per-point optimised ELBO >= amortised ELBO (mean)", min(float(gap.mean()), 0.0), 0.0, 0.02)
        return out

    def figures(self, cfg: Config, fits: dict, evals: dict, metrics: dict) -> None:
        """Member 0's figures, KL, active units and correlation against beta, and the amortisation gap."""
        hist = {k: np.asarray(v).reshape(len(v), -1) for k, v in fits[self.name].history.items()}
        ev0 = {"kl_dims": evals["test"]["kl_dims"][0], "mu": evals["test"]["mu"][0]}
        model0 = jax.tree.map(lambda a: a[0], fits[self.name].params)
        draw_figures(self, self.spec, model0, self.ds, ev0, hist, self.key("figures"), self.member_title(0))
        if "by_beta" in metrics:
            draw_beta_figure(self, self.groups)
        if self.am is not None:
            self.save_figure(gap_figure(self.am), "amortisation_gap")
