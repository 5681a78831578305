"""Gaussian-mixture VAE (seed 001, problem 7): the three-term ELBO, training, and unsupervised clustering.

p(x, w, z) = p(z) p(w|z) p(x|w) with z ~ Categorical(pi), w | z=k ~ N(mu_k, sigma_k^2 I) (mu_k, sigma_k trained),
x | w from the decoder; q(w, z | x) = q(w|x) q(z|w, x), q(z|w,x) a network or the exact p(z|w) (config). The ELBO
and its terms are in :mod:`vlab.objectives.gmvae`.

Training procedure (problem 7.2), all in the config, VaDE-style (Jiang et al. 2017), one fit per phase:
(1) ``pretrain`` the encoder and decoder alone as a deterministic autoencoder or a plain VAE; (2) ``mixture.init:
kmeans`` fits K clusters to the encoded means m(x) of the training set (k-means++ seeding, Lloyd steps, restarts) and
starts mu_k at the centres, sigma_k (or Sigma_k, ``mixture.covariance``) at each cluster's spread and (when learned) pi
at its share; with ``em_iters`` EM refines the mixture of every k-means restart and the most likely one becomes the
prior (:mod:`vlab.algorithms.clustering`); after an autoencoder, which never trains q(w|x)'s variance, that width
starts at
``pretrain.encoder_scale`` times the components' sigma, and a network q(z|w,x) is first fitted to p(z|w) for
``qz_fit_steps``; ``init: random`` instead draws mu_k ~ N(0, mu_spread^2 I); (3) Adam on the full ELBO, the latent
terms weighted by ``beta`` and warmed up linearly over ``warmup_steps`` (hyperparameters, not trained parameters) so
the encoder learns a useful w before the prior pulls it into clusters. A component with a share of test points or a
mean q(z|w,x) below ``usage_warning`` / K is reported. Seeds are members of one vmapped program; ``restarts: R`` runs R
members per seed and keeps, per seed, the one of highest training ELBO (:mod:`vlab.engine.restarts`).

Clustering scores against the labels (test set, and the k-means / EM starts): the accuracy of the best one-to-one
map from components to labels, and the NMI (:func:`vlab.harness.metrics.nmi`) as ``nmi`` = I(L; C) /
sqrt(H(L) H(C)) (the one the README quotes) and ``nmi_arithmetic`` = I(L; C) / ((H(L) + H(C)) / 2)
(scikit-learn's default).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from vlab import data as vdata
from vlab.algorithms import clustering
from vlab.engine.restarts import best_restarts, kept_members
from vlab.errors import ConfigError
from vlab.harness import data_config, mixture_plots
from vlab.harness import metrics as vmetrics
from vlab.harness.config import BaseConfig, OptimizerConfig, TrainConfig, nested, spec
from vlab.harness.experiment import Experiment as _Experiment
from vlab.harness.model_config import ModelConfig, spec_of
from vlab.harness.plots import member_title
from vlab.keys import stream
from vlab.models.vae import decoder_mean, encode
from vlab.objectives import gmvae as objective
from vlab.objectives.vae import make_loss as vae_make_loss


@dataclass
class MixtureConfig:
    """The prior p(z) p(w|z) and the form of q(z|w,x)."""

    k: int = spec(5, ge=1, help="number of components K")
    pi: list[float] = spec([], ge=0, help="mixture weights (empty: uniform 1/K)")
    learn_pi: bool = False
    learn_sigma: bool = True
    sigma_init: list[float] = spec([0.5], gt=0, help="initial sigma_k: one value for all, or K values")
    covariance: Literal["spherical", "diagonal", "full"] = spec(
        "spherical", help="sigma_k^2 I (the seed's model), diag(sigma_k1^2, ..., sigma_kd^2) per component (VaDE), or "
        "a full Sigma_k = L_k L_k^T (Cholesky factor trained)")
    mu_spread: float = spec(1.5, ge=0, help="initial mu_k ~ N(0, mu_spread^2 I)")
    qz: Literal["network", "exact"] = "network"
    qz_hidden: list[int] = spec([64], gt=0, help="hidden widths of the q(z|w,x) network")
    init: Literal["random", "kmeans"] = "random"
    kmeans_restarts: int = spec(5, gt=0, help="k-means++ restarts (the lowest inertia is kept)")
    kmeans_iters: int = spec(100, gt=0, help="Lloyd iterations of each k-means restart")
    em_iters: int = spec(0, ge=0, help="init=kmeans: EM steps refining each k-means restart's Gaussian mixture on "
                         "the encoded means, the highest likelihood kept (0: the k-means partition's own Gaussians)")
    qz_fit_steps: int = spec(0, ge=0, help="network q(z|w,x): steps fitting it to the exact p(z|w) before the ELBO")

    def check(self, prefix: str) -> None:
        if self.pi and len(self.pi) != self.k:
            raise ConfigError(f"key '{prefix}pi': value {self.pi} is not valid: expected {self.k} weights, one per "
                              f"component ({prefix}k = {self.k})")
        if self.pi and abs(sum(self.pi) - 1.0) > 1e-6:
            raise ConfigError(f"key '{prefix}pi': value {self.pi} is not valid: expected weights summing to 1 "
                              f"(they sum to {sum(self.pi):.6g})")
        if self.pi and min(self.pi) <= 0:
            raise ConfigError(f"key '{prefix}pi': value {self.pi} is not valid: expected positive weights")
        if len(self.sigma_init) not in (1, self.k):
            raise ConfigError(f"key '{prefix}sigma_init': value {self.sigma_init} is not valid: expected 1 or "
                              f"{self.k} values")


@dataclass
class PretrainConfig:
    """Step (1) of the procedure: the encoder and decoder trained alone before the mixture prior is fitted."""

    kind: Literal["none", "autoencoder", "vae"] = "none"
    steps: int = spec(0, ge=0, help="pretraining steps (0: none)")
    lr: float = spec(1e-3, gt=0, help="pretraining learning rate (Adam)")
    encoder_scale: float = spec(0.3, gt=0, help="autoencoder: q(w|x) then starts with this fraction of the "
                                "components' mean sigma as its width (the autoencoder leaves it untrained)")

    def check(self, prefix: str) -> None:
        if self.kind != "none" and self.steps == 0:
            raise ConfigError(f"key '{prefix}steps': value 0 is not valid with {prefix}kind = {self.kind}: expected "
                              f"a number of steps > 0 (or {prefix}kind = none)")


@dataclass
class Config(BaseConfig):
    data: data_config.DataConfig = nested(data_config.DataConfig, embedding="linear", dim=2, noise=0.0, n_train=5000)
    model: ModelConfig = nested(ModelConfig, z_dim=2, hidden=[64, 64], likelihood="gaussian_learned", sigma_x=0.1)
    mixture: MixtureConfig = nested(MixtureConfig)
    pretrain: PretrainConfig = nested(PretrainConfig)
    warmup_steps: int = spec(1000, ge=0, help="linear warm-up of the w and z terms from 0 to beta")
    beta: float = spec(1.0, gt=0, help="weight of the w and z terms in the training loss (1: the ELBO itself)")
    n_samples: int = spec(1, gt=0, help="reparameterised samples of w per point")
    n_seeds: int = spec(1, gt=0, help="independent initialisations, one vmapped program")
    restarts: int = spec(1, gt=0, help="runs per seed (vmapped too); the one of highest training ELBO is kept")
    batch_size: int = spec(256, gt=0)
    usage_warning: float = spec(0.1, ge=0, le=1, help="warn when a component's test share or mean q(z|w,x) < this / K")
    train: TrainConfig = nested(TrainConfig, steps=6000, chunk_size=1000, log_every=25,
                                optimizer=OptimizerConfig(name="adam", lr=2e-3))


NMI_KEYS = {"nmi": "geometric", "nmi_arithmetic": "arithmetic"}
TERMS = ("elbo", "rec", "w_term", "z_term")


def _scores(labels: np.ndarray, clusters: np.ndarray) -> dict[str, float]:
    """The accuracy of the best one-to-one map of clusters to labels and the NMI in each normalisation of
    :data:`NMI_KEYS`."""
    acc = vmetrics.clustering_accuracy(labels, clusters)[0]
    return {"accuracy": acc, **{k: vmetrics.nmi(labels, clusters, average=a) for k, a in NMI_KEYS.items()}}


class Experiment(_Experiment):
    description = "Gaussian-mixture VAE (seed 001 P7): three-term ELBO, clustering accuracy, NMI, component usage"
    source = "seed 001, problem 7"
    Config = Config
    headline = ("test.accuracy", "test.nmi", "test.elbo")
    member_keys = ("seed", "train.optimizer.lr", "beta")

    def n_seeds(self, cfg: Config) -> int:
        return cfg.n_seeds * cfg.restarts  # member i of a point: restart i % R of seed i // R

    def setup(self, cfg: Config) -> None:
        self.ds = data_config.load(cfg.data)
        self.log(f"data: {self.ds.description}")
        self.spec = spec_of(cfg.model, self.ds.x_train.shape[1])
        self.labels = None if self.ds.y_test is None else np.asarray(self.ds.y_test)
        self.start: dict[str, np.ndarray] = {}

    def init(self, cfg: Config, key: jax.Array) -> dict:
        mx = cfg.mixture
        sigma = mx.sigma_init if len(mx.sigma_init) == mx.k else mx.sigma_init * mx.k
        return objective.init_gmvae(key, self.spec, mx.k,
                                    qz_hidden=tuple(mx.qz_hidden) if mx.qz == "network" else None,
                                    mu_spread=mx.mu_spread, sigma_init=sigma, pi=mx.pi or None,
                                    covariance=clustering.COVARIANCES[mx.covariance])

    def hyperparameters(self, cfg: Config) -> dict[str, np.ndarray]:
        return {"beta": self.members.values("beta")}

    def objective(self, cfg: Config):
        mx = cfg.mixture
        return objective.make_loss(self.spec, qz_logits=objective.QZ_LOGITS[mx.qz], learn_pi=mx.learn_pi,
                                   learn_sigma=mx.learn_sigma, warmup_steps=cfg.warmup_steps, n_samples=cfg.n_samples)

    def data(self, cfg: Config):
        return self.ds.x_train, lambda x, k: vdata.sample_batch(x, k, cfg.batch_size, cfg.data.binarize)

    def train(self, cfg: Config) -> dict:
        """(1) pretraining, (2) the mixture's start, q(w|x)'s width and the q(z|w,x) warm start, (3) the ELBO."""
        mx, p = cfg.mixture, cfg.pretrain
        data, batch_fn = self.data(cfg)
        models, fits = self.init_members(cfg), {}
        pretrained = p.kind != "none" and p.steps > 0
        if pretrained:  # beta 1 and pretrain.lr for every member: no swept value reaches this phase
            loss = objective.make_autoencoder_loss(self.spec) if p.kind == "autoencoder" else vae_make_loss(self.spec)
            tc = replace(cfg.train, steps=p.steps, optimizer=replace(cfg.train.optimizer, lr=p.lr, schedule="constant"))
            fits["pretrain"] = res = self.fit("pretrain", loss, models["vae"], data=data, batch_fn=batch_fn, hp={},
                                              train=tc)
            models = {**models, "vae": res.params}
            self.log(f"pretrained {len(self.members)} {p.kind}(s) for {p.steps} steps in {res.train_s:.1f} s; "
                     f"reconstruction log p(x|w) {float(np.mean(res.history['rec'][-1])):.2f}")
        if mx.init == "kmeans":
            models = self.start_mixture(cfg, models)
        if pretrained and p.kind == "autoencoder":
            models = self.start_encoder_scale(cfg, models)
        if mx.qz == "network" and mx.qz_fit_steps > 0:
            tc = replace(cfg.train, steps=mx.qz_fit_steps, optimizer=replace(cfg.train.optimizer, schedule="constant"))
            hp = {**self.member_hp(cfg), "held": {"vae": models["vae"], "prior": models["prior"]}}
            fits["qz_fit"] = res = self.fit("qz_fit", objective.make_qz_fit_loss(self.spec, learn_pi=mx.learn_pi),
                                            models["qz"], data=data, batch_fn=batch_fn, hp=hp, train=tc)
            models = {**models, "qz": res.params}
            self.log(f"fitted q(z|w,x) to p(z|w) for {mx.qz_fit_steps} steps: cross-entropy "
                     f"{float(np.mean(res.history['qz_cross_entropy'][-1])):.3f}")
        fits[self.name] = res = self.fit(self.name, self.objective(cfg), models, data=data, batch_fn=batch_fn)
        self.log(f"trained {len(self.members)} GM-VAE(s) for {cfg.train.steps} steps in {res.train_s:.1f} s "
                 f"({cfg.train.steps / max(res.train_s, 1e-9):.0f} steps/s)")
        return fits

    def start_mixture(self, cfg: Config, models: dict) -> dict:
        """Step (2): every member's prior from its encoded training means (:func:`vlab.objectives.gmvae.start_prior`,
        vmapped); ``self.start`` keeps the k-means inertia, EM's log-likelihood and (with labels) the test accuracy
        and NMI of k-means' nearest centres and, after EM, of the mixture's most probable components."""
        mx, ds = cfg.mixture, self.ds
        one = lambda m, key, x, x_test: objective.start_prior(  # noqa: E731
            m, self.spec, key, x, x_test, mx.k, covariance=clustering.COVARIANCES[mx.covariance],
            n_init=mx.kmeans_restarts, kmeans_iters=mx.kmeans_iters, em_iters=mx.em_iters,
            set_pi=mx.learn_pi and not mx.pi)
        with self.out.timed("kmeans"):
            models, res = jax.jit(jax.vmap(one, in_axes=(0, 0, None, None)))(models, self.keys("kmeans"), ds.x_train,
                                                                               ds.x_test)
        res = jax.tree.map(np.asarray, res)
        self.start = {"inertia": res["inertia"]}
        if mx.em_iters > 0:
            self.start["em_log_likelihood"] = res["trace"][:, [0, -1]]
            self.log(f"EM on the k-means mixture ({mx.covariance} covariances, {mx.em_iters} steps): mean "
                     f"log-likelihood {np.mean(res['trace'][:, 0]):.3f} -> {np.mean(res['trace'][:, -1]):.3f} (mean "
                     f"over {len(self.members)} member(s))")
        for name in ("kmeans", "em")[: 2 if mx.em_iters > 0 else 1] if self.labels is not None else ():
            scores = [_scores(self.labels, a) for a in res[name]]
            self.start |= {f"{name}_{k}": np.array([s[k] for s in scores]) for k in ("accuracy", *NMI_KEYS)}
            mean = {k: np.mean(self.start[f"{name}_{k}"]) for k in ("accuracy", *NMI_KEYS)}
            self.log(f"{'k-means' if name == 'kmeans' else 'EM'} on the encoded means: test accuracy "
                     f"{mean['accuracy']:.3f}, NMI {mean['nmi']:.3f} (arithmetic {mean['nmi_arithmetic']:.3f}; mean "
                     f"over {len(self.members)} member(s))")
        return models

    def start_encoder_scale(self, cfg: Config, models: dict) -> dict:
        """After autoencoder pretraining: q(w|x) starts at ``pretrain.encoder_scale`` times the components' mean
        sigma (geometric mean over components and dimensions), the same width for every x."""
        sigma = jnp.exp(jnp.mean(models["prior"]["log_sigma"].reshape(len(self.members), -1), axis=1))
        scale = cfg.pretrain.encoder_scale * sigma
        vae = jax.vmap(lambda v, s: objective.with_encoder_scale(v, self.spec, s))(models["vae"], scale)
        self.log(f"q(w|x) starts at width {float(jnp.mean(scale)):.3g} ({cfg.pretrain.encoder_scale:g} x the "
                 f"components' mean sigma {float(jnp.mean(sigma)):.3g}): the autoencoder left its variance untrained")
        return {**models, "vae": vae}

    def evaluate(self, cfg: Config, params: dict, key: jax.Array, hp: dict) -> dict:
        """The ELBO's terms on the test set and on as many training points, and the test points' components."""
        mx, x_test = cfg.mixture, self.ds.x_test
        qz_logits = objective.QZ_LOGITS[mx.qz]
        terms = {split: objective.gmvae_terms(params, self.spec, x, stream(key, split), qz_logits=qz_logits,
                                              learn_pi=mx.learn_pi)._asdict()
                 for split, x in (("test", x_test), ("train", self.ds.x_train[: x_test.shape[0]]))}
        z, q = objective.assign(params, self.spec, x_test, qz_logits=qz_logits, learn_pi=mx.learn_pi)
        return {**terms, "assign": z, "q": q, "w": encode(params["vae"], self.spec, x_test)[0]}

    def summarise(self, cfg: Config, fits: dict, evals: dict) -> dict:
        """Per seed the restart of highest training ELBO; its clustering scores, ELBO terms and prior."""
        K, R, restart_elbo = cfg.mixture.k, cfg.restarts, evals["train"]["elbo"].mean(-1)
        self.sel = sel = best_restarts(restart_elbo, R)
        if R > 1:
            self.log(f"kept restart(s) {(sel % R).tolist()} of {R} per seed (highest training ELBO)")
        self.kept = kept = kept_members(self.members, R)
        self.ev = ev = jax.tree.map(lambda a: a[sel], evals)
        self.final = final = jax.tree.map(lambda a: np.asarray(a)[sel], fits[self.name].params)
        start = {k: v[sel] for k, v in self.start.items()}
        if self.labels is None:
            self.warn("the data have no labels: clustering accuracy, NMI and the confusion matrix are skipped")
        self.rows = rows = []
        for i in range(len(sel)):
            counts = np.bincount(ev["assign"][i], minlength=K)
            rows.append({**(_scores(self.labels, ev["assign"][i]) if self.labels is not None else {}),
                         "usage": (counts / counts.sum()).tolist(), "mean_q": ev["q"][i].mean(0).tolist(),
                         **{f"{s}_{t}": float(ev[s][t][i].mean()) for s in ("test", "train") for t in TERMS}})
            low = [k for k in range(K) if min(rows[-1]["mean_q"][k], rows[-1]["usage"][k]) < cfg.usage_warning / K]
            if low:
                self.warn(f"{kept.label(i)}: component(s) {low} collapsed (usage below {cfg.usage_warning:g}/K = "
                          f"{cfg.usage_warning / K:.3g}); {int(np.sum(counts == 0))} of {K} components have no "
                          "test point assigned")
            self.check(f"ELBO = sum of its three terms ({kept.label(i)})", rows[-1]["test_elbo"],
                       sum(rows[-1][f"test_{t}"] for t in TERMS[1:]), 1e-3)
        n = len(rows)
        agg = lambda key: vmetrics.summarise([r[key] for r in rows], n)  # noqa: E731
        per = lambda a: a.tolist() if n > 1 else a[0].tolist()  # noqa: E731
        prior = final["prior"]
        scored = ("accuracy", *NMI_KEYS) if self.labels is not None else ()
        names = {**{f"test.{k}": k for k in scored}, "test.elbo": "test_elbo", "train.elbo": "train_elbo"}
        return {
            "test": {**{k: agg(k) for k in scored}, **{t: agg(f"test_{t}") for t in TERMS}},
            "train": {t: agg(f"train_{t}") for t in TERMS},
            "component_usage": per(np.array([r["usage"] for r in rows])),
            "component_mean_q": per(np.array([r["mean_q"] for r in rows])),
            "prior": {"sigma": per(np.asarray(jax.vmap(objective.marginal_sigma)(prior))),
                      "pi": per(np.asarray(jax.nn.softmax(jnp.asarray(prior["logits"]), -1)))},
            "qz": cfg.mixture.qz, "k": K, "n_seeds": cfg.n_seeds, "restarts": R,
            **({"restart_train_elbo": restart_elbo.reshape(-1, R).tolist()} if R > 1 else {}),
            **({"kmeans_inertia": vmetrics.summarise(start["inertia"], n)} if start else {}),
            **{f"{name}_init": {k: vmetrics.summarise(start[f"{name}_{k}"], n) for k in ("accuracy", *NMI_KEYS)}
               for name in ("kmeans", "em") if f"{name}_accuracy" in start},
            **({"em_log_likelihood": dict(zip(("first_step", "last_step"), start["em_log_likelihood"].T.tolist(),
                                              strict=True))} if "em_log_likelihood" in start else {}),
            "steps_per_s": cfg.train.steps / max(fits[self.name].train_s, 1e-9),
            "members": kept.rows({m: [r[k] for r in rows] for m, k in names.items()}),
        }

    def figures(self, cfg: Config, fits: dict, evals: dict, metrics: dict) -> None:
        """The first kept member's latent means by component, confusion matrix and training curves, and samples of
        each component, titled with the member they show."""
        note = member_title(self.kept, 0)
        model = jax.tree.map(lambda a: jnp.asarray(a[0]), self.final)
        mu, tril = np.asarray(model["prior"]["mu"]), np.asarray(objective.scale_tril(model["prior"]))
        history = {k: (v if k == "step" else v[:, self.sel[0]]) for k, v in fits[self.name].history.items()}
        self.save_figure(mixture_plots.latent_figure(self.ev["w"][0], mu, tril, self.ev["assign"][0], self.rows[0],
                                                     history, self.labels, note), "latent_confusion_curves")
        decode = lambda w: decoder_mean(model["vae"], self.spec, w)  # noqa: E731
        self.save_figure(mixture_plots.samples_figure(self.key("figures"), decode, mu, tril, self.ds.x_test,
                                                      self.ds.image_shape, note), "component_samples")
