"""Gaussian-mixture VAE (seed 001, problem 7): the three-term ELBO, training, and unsupervised clustering.

p(x, w, z) = p(z) p(w|z) p(x|w) with z ~ Categorical(pi), w | z=k ~ N(mu_k, sigma_k^2 I) (mu_k, sigma_k trained),
x | w from the decoder; q(w, z | x) = q(w|x) q(z|w, x), q(z|w,x) a network or the exact p(z|w) (config). The ELBO
and its terms are in :mod:`vlab.objectives.gmvae`.

Training procedure (problem 7.2), all in the config, VaDE-style (Jiang et al. 2017): (1) ``pretrain`` the encoder and
decoder alone as a deterministic autoencoder or a plain VAE; (2) ``mixture.init: kmeans`` fits K clusters to the encoded
means m(x) of the training set (k-means++ seeding, Lloyd steps, restarts; vmapped over seeds, in :mod:`vlab.clustering`)
and starts mu_k at the centres, sigma_k at each cluster's spread (or, with ``mixture.covariance: full``, Sigma_k at its
covariance) and (when learned) pi at its share; ``em_iters`` EM steps then refine the Gaussian mixture of every k-means
restart on the encoded means, and the one of highest likelihood becomes the prior (k-means' boundaries are equidistant
ones; EM's follow each cluster's own shape); after an autoencoder, which never trains q(w|x)'s variance, that width
starts at ``pretrain.encoder_scale`` times the components' sigma; ``init: random`` instead draws mu_k ~ N(0, mu_spread^2
I); (3) Adam on the full ELBO, the two latent terms warmed up linearly from 0 to 1 over ``warmup_steps`` so the encoder
learns a useful w before the prior pulls it into clusters; component usage (the batch mean of q(z|w,x)) is logged during
training, and after training a component that no test point is assigned to, or whose usage is below a tenth of uniform,
is reported as a warning (not a silent result). Every seed is a member of one vmapped program; metrics carry mean and
spread across seeds. ``restarts: R`` runs R members per seed (also vmapped) and keeps, per seed, the one of highest
training ELBO: an unsupervised choice between local optima (on a small pinwheel run one restart reaches 0.975, the one
of highest ELBO among three 0.9975).

Clustering scores against the labels (test set, and the k-means / EM starts): the accuracy of the best one-to-one map
from components to labels, and the normalised mutual information in two normalisations, ``nmi`` = I(L; C) /
sqrt(H(L) H(C)) (geometric mean, the one quoted in the README) and ``nmi_arithmetic`` = I(L; C) / ((H(L) + H(C)) / 2)
(scikit-learn's default), both from :func:`vlab.metrics.nmi`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from vlab import clustering, plots
from vlab import data as vdata
from vlab import metrics as vmetrics
from vlab.config import BaseConfig, OptimizerConfig, TrainConfig, build_optimizer, nested, spec
from vlab.encoders import ModelConfig, decoder_mean, encode, spec_of
from vlab.errors import ConfigError
from vlab.experiment import Experiment as _Experiment
from vlab.members import Members
from vlab.objectives import gmvae as objective
from vlab.objectives.vae import make_loss as vae_make_loss
from vlab.objectives.vae import vae_optimizer
from vlab.train import fit


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
    experiment: str = "gmvae"
    data: vdata.DataConfig = nested(vdata.DataConfig, embedding="linear", dim=2, noise=0.0, n_train=5000)
    model: ModelConfig = nested(ModelConfig, z_dim=2, hidden=[64, 64], likelihood="gaussian_learned", sigma_x=0.1)
    mixture: MixtureConfig = nested(MixtureConfig)
    pretrain: PretrainConfig = nested(PretrainConfig)
    warmup_steps: int = spec(1000, ge=0, help="linear warm-up of the w and z terms from 0 to beta")
    beta: float = spec(1.0, gt=0, help="weight of the w and z terms in the training loss (1: the ELBO itself)")
    n_samples: int = spec(1, gt=0, help="reparameterised samples of w per point")
    n_seeds: int = spec(1, gt=0, help="independent initialisations, one vmapped program")
    restarts: int = spec(1, gt=0, help="runs per seed (vmapped too); the one of highest training ELBO is kept")
    batch_size: int = spec(256, gt=0)
    usage_warning: float = spec(0.1, ge=0, le=1, help="warn when a component's usage is below this times 1/K")
    train: TrainConfig = nested(TrainConfig, steps=6000, chunk_size=1000, log_every=25,
                                optimizer=OptimizerConfig(name="adam", lr=2e-3))


NMI_KEYS = {"nmi": "geometric", "nmi_arithmetic": "arithmetic"}


def _nmis(labels: np.ndarray, clusters: np.ndarray) -> dict[str, float]:
    """The NMI of the clusters against the labels under each normalisation of :data:`NMI_KEYS`."""
    return {key: vmetrics.nmi(labels, clusters, average=avg) for key, avg in NMI_KEYS.items()}


def _confusion(ax, fig, conf: np.ndarray, row: dict) -> None:
    """Components (rows) against true labels (columns), with counts."""
    im = ax.imshow(conf, cmap="Blues")
    for (i, j), v in np.ndenumerate(conf):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=6 if conf.size > 60 else 8,
                color="white" if v > conf.max() / 2 else "black")
    ax.set_xlabel("true label")
    ax.set_ylabel("component")
    ax.set_title(f"confusion: accuracy {row['accuracy']:.3f}, NMI {row['nmi']:.3f} (arithmetic "
                 f"{row['nmi_arithmetic']:.3f})")
    ax.grid(False)
    fig.colorbar(im, ax=ax, fraction=0.046)


def _latent_axis_labels(z_dim: int) -> tuple[str, str]:
    """Axis names of the latent panel: w_1, w_2 themselves for z_dim <= 2, else the coordinates
    v_j . (w - mean w) along the first two principal directions v_1, v_2 of the points and component means."""
    if z_dim > 2:
        x, y = (rf"$v_{j} \cdot (w - \bar w)$ (principal direction {j})" for j in (1, 2))
        return x, y
    return r"$w_1$", (r"$w_2$" if z_dim == 2 else "")


def _titled(title: str, note: str) -> str:
    """``title`` with ``note`` (which member a figure shows) on a second line, when there is one."""
    return f"{title}\n{note}" if note else title


class Experiment(_Experiment):
    name = "gmvae"
    description = "Gaussian-mixture VAE (seed 001 P7): three-term ELBO, clustering accuracy, NMI, component usage"
    Config = Config
    headline = ("test.accuracy", "test.nmi", "test.elbo")
    member_keys = ("seed", "train.optimizer.lr", "beta")

    def run(self, cfg: Config, run) -> dict:
        key = jax.random.PRNGKey(cfg.seed)
        k_data, _, _, _, k_fig, _, _, _ = jax.random.split(key, 8)
        # member i is restart i % R of seed (i // R) % n of sweep point i // (n R); its keys are those a separate
        # run of its point would use
        members = Members.of(cfg, run, n_seeds=cfg.n_seeds * cfg.restarts)
        stream = lambda i: lambda seed: jax.random.split(jax.random.PRNGKey(seed), 8)[i]  # noqa: E731
        k_init, k_fit, k_eval, k_pre, k_km, k_qz = (members.keys(stream(i)) for i in (1, 2, 3, 5, 6, 7))
        ds = vdata.load(cfg.data, k_data)
        run.log(f"data: {ds.description}")
        spec_ = spec_of(cfg.model, ds.x_train.shape[1])
        mx = cfg.mixture
        K, n, R = mx.k, cfg.n_seeds, cfg.restarts
        n_members = len(members)
        lr_scale = members.lr_scale()
        sigma = mx.sigma_init if len(mx.sigma_init) == K else mx.sigma_init * K
        init = lambda k: objective.init_gmvae(k, spec_, K, qz=mx.qz, qz_hidden=tuple(mx.qz_hidden),
                                              mu_spread=mx.mu_spread, sigma_init=sigma, pi=mx.pi or None,
                                              covariance=mx.covariance)
        models = jax.vmap(init)(k_init)
        dtype = jax.tree.leaves(models)[0].dtype
        batch_fn = lambda x, k: vdata.sample_batch(x, k, cfg.batch_size, cfg.data.binarize)
        km: dict[str, np.ndarray] = {}
        if cfg.pretrain.kind != "none" and cfg.pretrain.steps > 0:
            models = self._pretrain(cfg, run, spec_, models, ds, batch_fn, k_pre, n_members)
        if mx.init == "kmeans":
            models, km = self._kmeans_init(cfg, run, spec_, models, ds, k_km, n_members)
        if cfg.pretrain.kind == "autoencoder" and cfg.pretrain.steps > 0:
            models = self._start_encoder_scale(cfg, run, spec_, models, n_members)
        if mx.qz == "network" and mx.qz_fit_steps > 0:
            models = self._fit_qz(cfg, run, spec_, models, ds, batch_fn, k_qz, n_members, lr_scale)
        params = {"model": models, "beta": jnp.asarray(members.values("beta"), dtype),
                  "step": jnp.zeros((n_members,), dtype)}
        loss_fn = objective.make_loss(spec_, qz=mx.qz, learn_pi=mx.learn_pi, learn_sigma=mx.learn_sigma,
                                      warmup_steps=cfg.warmup_steps,
                                      n_samples=cfg.n_samples)
        res = fit(loss_fn, params, vae_optimizer(build_optimizer(cfg.train.optimizer, cfg.train.steps)), k_fit,
                  steps=cfg.train.steps, chunk_size=cfg.train.chunk_size, log_every=cfg.train.log_every,
                  data=ds.x_train, batch_fn=batch_fn, n_members=n_members, lr_scale=lr_scale, run=run,
                  name="gmvae", checkpoint_every=cfg.train.checkpoint_every)
        run.log(f"trained {n_members} GM-VAE(s) for {cfg.train.steps} steps in {res.train_s:.1f} s "
                f"({cfg.train.steps / max(res.train_s, 1e-9):.0f} steps/s)")

        x_test, x_train = ds.x_test, ds.x_train[: ds.x_test.shape[0]]

        @jax.jit
        def evaluate(models, k):
            def one(m, kk):
                k1, k2 = jax.random.split(kk)
                te = objective.gmvae_terms(m, spec_, x_test, k1, qz=mx.qz, learn_pi=mx.learn_pi)
                tr = objective.gmvae_terms(m, spec_, x_train, k2, qz=mx.qz, learn_pi=mx.learn_pi)
                z, q = objective.assign(m, spec_, x_test, qz=mx.qz, learn_pi=mx.learn_pi)
                w_mean, _ = encode(m["vae"], spec_, x_test)
                return {"test": te._asdict(), "train": tr._asdict(), "assign": z, "q": q, "w": w_mean}

            return jax.vmap(one)(models, k)

        with run.timed("evaluate"):
            ev = jax.tree.map(np.asarray, evaluate(res.params["model"], k_eval))
        restart_elbo = ev["train"]["elbo"].mean(-1).reshape(-1, R)  # (point, seed) x restart
        sel = np.arange(restart_elbo.shape[0]) * R + np.argmax(restart_elbo, axis=1)  # highest training ELBO
        if R > 1:
            run.log(f"kept restart(s) {(sel % R).tolist()} of {R} per seed (highest training ELBO)")
        ev = jax.tree.map(lambda a: a[sel], ev)
        final = jax.tree.map(lambda a: np.asarray(a)[sel], res.params["model"])
        km = {k: v[sel] for k, v in km.items()}
        labels = None if ds.y_test is None else np.asarray(ds.y_test)
        if labels is None:
            run.warn("the data have no labels: clustering accuracy, NMI and the confusion matrix are skipped")
        kept = Members(cfg, members.points, n)  # one member per (point, seed) once restarts are chosen
        rows = []
        for i in range(len(sel)):
            counts = np.bincount(ev["assign"][i], minlength=K)
            scores = {}
            if labels is not None:
                acc, mapping = vmetrics.clustering_accuracy(labels, ev["assign"][i])
                scores = {"accuracy": acc, **_nmis(labels, ev["assign"][i]), "mapping": mapping}
            rows.append({
                **scores,
                "usage": (counts / counts.sum()).tolist(), "mean_q": ev["q"][i].mean(0).tolist(),
                **{f"test_{t}": float(ev["test"][t][i].mean()) for t in ("elbo", "rec", "w_term", "z_term")},
                **{f"train_{t}": float(ev["train"][t][i].mean()) for t in ("elbo", "rec", "w_term", "z_term")},
            })
            low = [k for k in range(K) if rows[-1]["mean_q"][k] < cfg.usage_warning / K]
            if low:
                run.warn(f"{kept.label(i)}: component(s) {low} collapsed (usage below {cfg.usage_warning:g}/K = "
                         f"{cfg.usage_warning / K:.3g}); {int(np.sum(counts == 0))} of {K} components have no "
                         "test point assigned")

        def agg(key: str) -> Any:
            return vmetrics.summarise([r[key] for r in rows], len(rows))

        # the components' marginal standard deviations sqrt(diag Sigma_k): (K,) spherical, (K, d) otherwise
        prior_sigma = (np.sqrt(np.sum(np.asarray(jax.vmap(objective.scale_tril)(final["prior"])) ** 2, -1))
                       if "tril" in final["prior"] else np.exp(final["prior"]["log_sigma"]))
        prior_pi = np.asarray(jax.nn.softmax(jnp.asarray(final["prior"]["logits"]), -1))
        metrics = {
            "test": {**({"accuracy": agg("accuracy"), **{k: agg(k) for k in NMI_KEYS}} if labels is not None else {}),
                     **{t: agg(f"test_{t}") for t in ("elbo", "rec", "w_term", "z_term")}},
            "train": {t: agg(f"train_{t}") for t in ("elbo", "rec", "w_term", "z_term")},
            "component_usage": [r["usage"] for r in rows] if len(rows) > 1 else rows[0]["usage"],
            "component_mean_q": [r["mean_q"] for r in rows] if len(rows) > 1 else rows[0]["mean_q"],
            "prior": {"sigma": prior_sigma.tolist() if len(rows) > 1 else prior_sigma[0].tolist(),
                      "pi": prior_pi.tolist() if len(rows) > 1 else prior_pi[0].tolist()},
            "qz": mx.qz, "k": K, "n_seeds": n, "restarts": R,
            **({"restart_train_elbo": restart_elbo.tolist()} if R > 1 else {}),
            **({"kmeans_inertia": vmetrics.summarise(km["inertia"], len(rows))} if km else {}),
            **{f"{name}_init": {"accuracy": vmetrics.summarise(km[f"{name}_accuracy"], len(rows)),
                                **{k: vmetrics.summarise(km[f"{name}_{k}"], len(rows)) for k in NMI_KEYS}}
               for name in ("kmeans", "em") if f"{name}_accuracy" in km},
            **({"em_log_likelihood": {"first_step": km["em_log_likelihood"][:, 0].tolist(),
                                      "last_step": km["em_log_likelihood"][:, 1].tolist()}}
               if "em_log_likelihood" in km else {}),
            "steps_per_s": cfg.train.steps / max(res.train_s, 1e-9),
        }
        if members.swept:
            names = {"test.elbo": "test_elbo", "train.elbo": "train_elbo"}
            if labels is not None:
                names = {"test.accuracy": "accuracy", **{f"test.{k}": k for k in NMI_KEYS}, **names}
            metrics["members"] = kept.rows({m: [r[k] for r in rows] for m, k in names.items()})
        for i, r in enumerate(rows):
            terms = r["test_rec"] + r["test_w_term"] + r["test_z_term"]
            run.check(f"ELBO = sum of its three terms ({kept.label(i)})", r["test_elbo"], terms, 1e-3)

        with run.timed("plots"):
            history = {k: (v if k == "step" else v[:, sel[0]]) for k, v in res.history.items()}
            self._figures(run, cfg, spec_, jax.tree.map(lambda a: jnp.asarray(a[0]), final), ds, ev, rows[0],
                          history, k_fig, plots.member_title(kept, 0))
        return metrics

    @staticmethod
    def _pretrain(cfg: Config, run, spec_, models: dict, ds, batch_fn, key: jax.Array, n: int) -> dict:
        """Step (1): the encoder/decoder of every member trained alone (autoencoder or plain VAE), one vmapped fit."""
        p = cfg.pretrain
        loss_fn = (objective.make_autoencoder_loss(spec_) if p.kind == "autoencoder" else vae_make_loss(spec_))
        dtype = jax.tree.leaves(models)[0].dtype
        params = {"model": models["vae"], "beta": jnp.ones((n,), dtype), "step": jnp.zeros((n,), dtype)}
        opt = build_optimizer(replace(cfg.train.optimizer, lr=p.lr, schedule="constant"), p.steps)
        res = fit(loss_fn, params, vae_optimizer(opt), key, steps=p.steps,
                  chunk_size=min(cfg.train.chunk_size, p.steps), log_every=cfg.train.log_every, data=ds.x_train,
                  batch_fn=batch_fn, n_members=n, run=run, name="pretrain", checkpoint_every=cfg.train.checkpoint_every)
        run.log(f"pretrained {n} {p.kind}(s) for {p.steps} steps in {res.train_s:.1f} s; reconstruction "
                f"log p(x|w) {float(np.mean(res.history['rec'][-1])):.2f}")
        return {**models, "vae": res.params["model"]}

    @staticmethod
    def _start_encoder_scale(cfg: Config, run, spec_, models: dict, n: int) -> dict:
        """After autoencoder pretraining: q(w|x) starts at ``pretrain.encoder_scale`` times the components' mean
        sigma (geometric mean over components and dimensions), the same width for every x."""
        sigma = jnp.exp(jnp.mean(models["prior"]["log_sigma"].reshape(n, -1), axis=1))
        scale = cfg.pretrain.encoder_scale * sigma
        vae = jax.vmap(lambda v, s: objective.with_encoder_scale(v, spec_, s))(models["vae"], scale)
        run.log(f"q(w|x) starts at width {float(jnp.mean(scale)):.3g} ({cfg.pretrain.encoder_scale:g} x the "
                f"components' mean sigma {float(jnp.mean(sigma)):.3g}): the autoencoder left its variance untrained")
        return {**models, "vae": vae}

    @staticmethod
    def _fit_qz(cfg: Config, run, spec_, models: dict, ds, batch_fn, key: jax.Array, n: int,
                lr_scale: Any = None) -> dict:
        """Warm start of the q(z|w,x) network: fitted to the exact p(z|w) of the initial prior, encoder held."""
        mx = cfg.mixture
        dtype = jax.tree.leaves(models)[0].dtype
        params = {"model": models, "beta": jnp.ones((n,), dtype), "step": jnp.zeros((n,), dtype)}
        opt = build_optimizer(replace(cfg.train.optimizer, schedule="constant"), mx.qz_fit_steps)
        res = fit(objective.make_qz_fit_loss(spec_, learn_pi=mx.learn_pi), params, vae_optimizer(opt), key,
                  steps=mx.qz_fit_steps, chunk_size=min(cfg.train.chunk_size, mx.qz_fit_steps),
                  log_every=cfg.train.log_every, data=ds.x_train, batch_fn=batch_fn, n_members=n,
                  lr_scale=lr_scale, run=run, name="qz_fit", checkpoint_every=cfg.train.checkpoint_every)
        run.log(f"fitted q(z|w,x) to p(z|w) for {mx.qz_fit_steps} steps: cross-entropy "
                f"{float(np.mean(res.history['qz_cross_entropy'][-1])):.3f}")
        return {**models, "qz": res.params["model"]["qz"]}

    @staticmethod
    def _kmeans_init(cfg: Config, run, spec_, models: dict, ds, key: jax.Array, n: int) -> tuple[dict, dict]:
        """Step (2): k-means on the encoded training means of every member (vmapped), each cluster's Gaussian
        (spherical, diagonal or full, as the prior), then ``em_iters`` EM steps on that mixture; mu_k, Sigma_k, pi
        from the result. Returns the models and, per member, the k-means inertia and (with labels) the test accuracy
        and NMI (both normalisations) of k-means and, after EM, of the mixture's assignments argmax_k pi_k
        N(m(x); mu_k, Sigma_k)."""
        mx = cfg.mixture
        spread = clustering.SPREADS[mx.covariance]

        @jax.jit
        def fit_prior(models, keys):
            def one(m, k):
                w = objective.encoded_means(m["vae"], spec_, ds.x_train)
                w_test = objective.encoded_means(m["vae"], spec_, ds.x_test)
                km = clustering.kmeans(k, w, mx.k, n_init=mx.kmeans_restarts, n_iter=mx.kmeans_iters)
                out = {"kmeans": clustering.assign(w_test, km.centers), "inertia": km.inertia}
                if mx.em_iters > 0:  # every k-means restart refined by EM; the highest likelihood kept
                    gmm = clustering.gmm(k, w, mx.k, covariance=mx.covariance, n_init=mx.kmeans_restarts,
                                         kmeans_iters=mx.kmeans_iters, em_iters=mx.em_iters)
                    centers, scale, pi = gmm.means, gmm.scales, gmm.weights
                    logp = jnp.log(pi) + clustering.gaussian_log_prob(w_test, centers, scale)
                    out |= {"em": jnp.argmax(logp, -1), "em_log_likelihood": gmm.log_likelihood_trace}
                else:
                    centers, (scale, pi) = km.centers, spread(w, km.labels, km.centers)
                prior = objective.prior_from_clusters(m["prior"], centers, scale,
                                                      pi if (mx.learn_pi and not mx.pi) else None)
                return {**m, "prior": prior}, out

            return jax.vmap(one)(models, keys)

        with run.timed("kmeans"):
            models, res = fit_prior(models, key)
        out = {"inertia": np.asarray(res["inertia"])}
        if mx.em_iters > 0:
            trace = np.asarray(res["em_log_likelihood"])
            out["em_log_likelihood"] = trace[:, [0, -1]]
            run.log(f"EM on the k-means mixture ({mx.covariance} covariances, {mx.em_iters} steps): mean "
                    f"log-likelihood {np.mean(trace[:, 0]):.3f} -> {np.mean(trace[:, -1]):.3f} (mean over {n} "
                    "member(s))")
        if ds.y_test is not None:
            y = np.asarray(ds.y_test)
            for name in ("kmeans", "em"):
                if name not in res:
                    continue
                a = np.asarray(res[name])
                out[f"{name}_accuracy"] = np.array([vmetrics.clustering_accuracy(y, a[i])[0] for i in range(n)])
                nmis = [_nmis(y, a[i]) for i in range(n)]
                out |= {f"{name}_{k}": np.array([m[k] for m in nmis]) for k in NMI_KEYS}
                run.log(f"{'k-means' if name == 'kmeans' else 'EM'} on the encoded means: test accuracy "
                        f"{np.mean(out[f'{name}_accuracy']):.3f}, NMI {np.mean(out[f'{name}_nmi']):.3f} (arithmetic "
                        f"{np.mean(out[f'{name}_nmi_arithmetic']):.3f}; mean over "
                        f"{n} member(s))")
        return models, out

    @staticmethod
    def _figures(run, cfg: Config, spec_, model, ds, ev, row, history, key, note: str = "") -> None:
        """The first kept member's latent means by component, confusion matrix and training curves, and samples of
        each component; ``note`` (which member they are) is added to the titles."""
        K = cfg.mixture.k
        labels = np.asarray(ds.y_test)
        assign = ev["assign"][0]
        w = ev["w"][0]
        mu = np.asarray(model["prior"]["mu"])
        tril = np.asarray(objective.scale_tril(model["prior"]))  # (K, d, d), Sigma_k = L_k L_k^T in every form
        if spec_.z_dim > 2:  # project onto the first two principal directions of the component means and points
            centre = w.mean(0)
            _, _, vt = np.linalg.svd(np.concatenate([w, mu]) - centre, full_matrices=False)
            basis = vt[:2]
        else:
            centre, basis = np.zeros(spec_.z_dim), np.eye(spec_.z_dim)
        proj = lambda a: (a - centre) @ basis.T
        pw, pmu = proj(w), proj(mu)
        fig, axes = plots.figure(1, 3, size=(15, 4.6))
        ax = axes[0]
        for k in range(K):
            sel = assign == k
            c = plots.label_color(k, K)
            ax.scatter(pw[sel, 0], pw[sel, 1] if pw.shape[1] > 1 else np.zeros(sel.sum()), s=4, color=c,
                       label=f"{k} ({row['usage'][k]:.0%})")
            if spec_.z_dim >= 2:  # the 2-sigma ellipse of N(mu_k, Sigma_k) projected: B Sigma_k B^T
                t = np.linspace(0, 2 * np.pi, 100)
                chol = np.linalg.cholesky(basis @ tril[k] @ tril[k].T @ basis.T)
                ring = pmu[k][:, None] + 2 * chol @ np.stack([np.cos(t), np.sin(t)])
                ax.plot(ring[0], ring[1], color=c, lw=1.5)
        ax.set_title("w means by component, 2-sigma ellipses" + (" (projected)" if spec_.z_dim > 2 else ""))
        xlabel, ylabel = _latent_axis_labels(spec_.z_dim)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if spec_.z_dim == 1:
            ax.set_yticks([])
        ax.set_aspect("equal", adjustable="datalim")
        ax.legend(markerscale=3, fontsize=7, ncol=2, title="component (usage)", title_fontsize=7)
        ax = axes[1]
        if ds.y_test is None:
            ax.bar(np.arange(K), row["usage"], color=[plots.label_color(k, K) for k in range(K)])
            ax.set_xlabel("component")
            ax.set_ylabel("fraction of test points")
            ax.set_title("component usage (no labels: no confusion matrix)")
        else:
            _confusion(ax, fig, vmetrics.confusion_matrix(labels, assign, n_clusters=K), row)
        ax = axes[2]
        steps = history["step"]
        h = {k: np.asarray(v).reshape(len(v), -1)[:, 0] for k, v in history.items() if k != "step"}
        ax.plot(steps, h["elbo"], color=plots.color(0), label="ELBO")
        ax.plot(steps, h["rec"], color=plots.color(2), label="(1) E log p(x|w)")
        ax.plot(steps, h["w_term"], color=plots.color(1), label="(2) w term")
        ax.plot(steps, h["z_term"], color=plots.color(3), label="(3) z term")
        lo = np.percentile(np.concatenate([h["elbo"], h["w_term"]]), 3)
        hi = max(np.max(h["rec"]), np.max(h["z_term"]))
        ax.set_ylim(lo - 0.1 * abs(hi - lo), hi + 0.1 * abs(hi - lo))
        ax.set_xlabel("step")
        ax.set_title("training curves (train batches)")
        ax.legend(fontsize=8)
        if note:
            fig.suptitle(note)
        run.save_figure(fig, "latent_confusion_curves")

        # samples from each component: w = mu_k + L_k eps ~ N(mu_k, Sigma_k), x = E[x | w]
        def component_draws(n_per: int) -> jax.Array:
            eps = jax.random.normal(key, (K, n_per, spec_.z_dim))
            return (jnp.asarray(mu)[:, None] + jnp.einsum("kij,knj->kni", jnp.asarray(tril), eps)).reshape(
                K * n_per, -1)

        n_per = 10
        ws = component_draws(n_per)
        xs = np.asarray(decoder_mean(model["vae"], spec_, ws))
        if ds.image_shape is not None:
            fig, ax = plots.figure(1, 1, size=(7, 0.7 * K + 1.3))
            plots.show_images(ax, plots.image_grid(xs, ds.image_shape, n_per),
                              _titled("samples of each component (rows)", note))
            rows_px = ds.image_shape[0]  # grid row k: one pixel of padding, then rows_px pixels of images
            centres = 1 + (rows_px + 1) * np.arange(K) + (rows_px - 1) / 2
            ax.set_yticks(centres, [str(k) for k in range(K)], fontsize=7)
            ax.tick_params(axis="y", length=0)
            ax.set_ylabel("component k")
            ax.set_xlabel(r"$x = \mathrm{E}[x \mid w]$, $w \sim N(\mu_k, \Sigma_k)$, one per column")
        else:
            fig, ax = plots.figure(1, 1, size=(5.5, 5))
            xd = np.asarray(ds.x_test)
            ax.scatter(xd[:, 0], xd[:, 1] if xd.shape[1] > 1 else np.zeros(len(xd)), s=3, color="0.8",
                       label="test data")
            many = np.asarray(decoder_mean(model["vae"], spec_, component_draws(200)))
            for k in range(K):
                part = many[k * 200:(k + 1) * 200]
                ax.scatter(part[:, 0], part[:, 1] if part.shape[1] > 1 else np.zeros(200), s=4,
                           color=plots.label_color(k, K), label=f"component {k}")
            ax.set_title(_titled("samples E[x | w], w ~ N(mu_k, Sigma_k)" + (" (first 2 dims)" if xd.shape[1] > 2
                                                                                 else ""), note))
            ax.set_xlabel(r"$x_1$")
            ax.set_ylabel(r"$x_2$" if xd.shape[1] > 1 else "")
            ax.legend(markerscale=3, fontsize=7)
        run.save_figure(fig, "component_samples")
