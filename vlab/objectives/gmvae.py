"""The Gaussian-mixture VAE of seed 001, problem 7, and its three-term ELBO.

Generative model p(x, w, z) = p(z) p(w|z) p(x|w):

    z ~ Categorical(pi),  w | z = k ~ N(mu_k, sigma_k^2 I),  x | w ~ p_theta(x | w)   (Gaussian or Bernoulli decoder)

(the seed's spherical components; ``log_sigma`` of shape (K, d) instead of (K,) gives each component a diagonal
covariance diag(sigma_k1^2, ..., sigma_kd^2), as in VaDE, and with a ``tril`` entry (K, d, d) as well each component
has a full covariance Sigma_k = L_k L_k^T, L_k lower triangular with diagonal exp(log_sigma_k) and the strictly lower
part of ``tril_k`` below it).

Variational model q(w, z | x) = q_psi(w|x) q_phi(z|w, x) with q_psi(w|x) = N(m(x), diag s^2(x)). Then

    log p(x) >= E_q[log p(x, w, z) - log q(w, z | x)]
             = E_{q(w|x)}[log p_theta(x|w)]                                                  (1) reconstruction
             + E_{q(w|x)}[sum_k q(k|w,x) log p(w|z=k)] - E_{q(w|x)}[log q(w|x)]               (2) w term
             + E_{q(w|x)}[sum_k q(k|w,x) (log pi_k - log q(k|w,x))]                            (3) z term

The sum over the K components is exact (no Gumbel relaxation); w = m + s * eps is reparameterised and every term is
evaluated at the same samples. q(z|w,x) is either a network of [w, x] (the seed's design, :func:`network_qz_logits`)
or the exact conditional p(z|w) ∝ pi_z N(w; mu_z, sigma_z^2 I) (x is independent of z given w,
:func:`exact_qz_logits`); with the latter (2) + (3) collapse to
E_q[log p(w) - log q(w|x)] with the mixture density p(w). With K = 1, mu = 0, sigma = 1 the ELBO is the plain
VAE's (with the Monte Carlo KL).

Training procedure (problem 7.2, VaDE-style, Jiang et al. 2017): pretrain q(w|x) and p(x|w) alone as an
autoencoder (:func:`make_autoencoder_loss`) or a plain VAE, fit K clusters to the encoded means m(x) with k-means
(:mod:`vlab.algorithms.clustering`), start mu_k, sigma_k (and pi) at the clusters (:func:`prior_from_clusters`), then
maximise the ELBO above.

Parameters: ``{"vae": encoder/decoder (vlab.models.vae), "prior": {"mu": (K, d), "log_sigma": (K,) or (K, d),
"logits": (K,), full covariances: "tril": (K, d, d)}, "qz": MLP or absent}``: only what is trained. Every loss is
``loss(params, x, key, hp) -> (loss, aux)`` with the hyperparameters in ``hp`` (``"beta"``, the weight of the latent
terms, 1 when absent; ``"step"``, the global step of the warm-up, from the engine).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from vlab import nn
from vlab.algorithms import clustering
from vlab.algorithms.clustering import CovarianceForm, component_log_probs
from vlab.batching import map_batches
from vlab.distributions import normal_log_prob
from vlab.keys import stream
from vlab.models.vae import VAESpec, encode, init_vae, log_px_given_z
from vlab.objectives.vae import kl_weight

QZLogits = Callable[[dict, jax.Array, jax.Array, bool], jax.Array]
"""``qz_logits(params, w, x, learn_pi) -> (..., K)``: the logits of q(z|w,x) at samples ``w`` (..., d) of q(w|x),
:func:`network_qz_logits` or :func:`exact_qz_logits`."""


class GMVAETerms(NamedTuple):
    """Per-example ELBO and its three terms, and q(z|w,x) at the first sample (B, K)."""

    elbo: jax.Array
    rec: jax.Array
    w_term: jax.Array
    z_term: jax.Array
    qz: jax.Array


def init_gmvae(key: jax.Array, spec: VAESpec, k: int, *, qz_hidden: tuple[int, ...] | None = (64,),
               mu_spread: float = 1.0, sigma_init: list[float] | float = 1.0, pi: list[float] | None = None,
               covariance: CovarianceForm = clustering.SPHERICAL) -> dict:
    """The parameters of a GM-VAE, each drawn from its own stream of ``key`` ("vae", "mu", "qz").

    Args:
        key: the randomness of the networks and the component means.
        spec: the encoder's and decoder's static shape.
        k: number of components K.
        qz_hidden: hidden widths of the q(z|w,x) network (an MLP [w, x] -> K logits, for
            :func:`network_qz_logits`); None for no network (:func:`exact_qz_logits`).
        mu_spread: the component means start at mu_k ~ N(0, mu_spread^2 I).
        sigma_init: every component's starting sigma_k, one value or K values.
        pi: the mixture weights (None: uniform).
        covariance: the components' form (:data:`vlab.algorithms.clustering.SPHERICAL`, ``DIAGONAL`` or ``FULL``):
            one log sigma_k per component, one per component and dimension, or those with zero off-diagonal
            Cholesky entries ``tril``.

    Returns:
        ``{"vae": networks of vlab.models.vae.init_vae, "prior": {"mu", "log_sigma", "logits"[, "tril"]}[, "qz"]}``.
    """
    sigma = jnp.broadcast_to(jnp.asarray(sigma_init, dtype=jnp.result_type(float)), (k,))
    pi_ = jnp.full((k,), 1.0 / k) if pi is None else jnp.asarray(pi)
    params = {
        "vae": init_vae(stream(key, "vae"), spec),
        "prior": {"mu": mu_spread * jax.random.normal(stream(key, "mu"), (k, spec.z_dim)),
                  **_scale_entries(covariance.isotropic(sigma, spec.z_dim)), "logits": jnp.log(pi_)},
    }
    if qz_hidden is not None:
        params["qz"] = nn.mlp_init(stream(key, "qz"), [spec.z_dim + spec.x_dim, *qz_hidden, k])
    return params


def _scale_entries(scale: jax.Array) -> dict[str, jax.Array]:
    """The prior's entries for component scales in the form of
    :func:`vlab.algorithms.clustering.component_log_probs`: ``log_sigma`` (the log of sigma_k, of diag sigma_k or of
    the Cholesky factor's diagonal) and, for a Cholesky factor (K, d, d), its strict lower part ``tril``."""
    diag = jnp.diagonal(scale, axis1=-2, axis2=-1) if scale.ndim == 3 else scale
    out = {"log_sigma": jnp.log(diag)}
    if scale.ndim == 3:
        out["tril"] = jnp.tril(scale, -1)
    return out


def prior_scale(prior: dict) -> jax.Array:
    """The components' scales in the form :func:`vlab.algorithms.clustering.component_log_probs` takes: sigma_k
    (K,), diagonal sigma_kj (K, d), or with ``tril`` the lower Cholesky factors L_k = diag(exp(log_sigma_k)) +
    strict lower part of tril_k (K, d, d), Sigma_k = L_k L_k^T."""
    sigma = jnp.exp(prior["log_sigma"])
    if "tril" not in prior:
        return sigma
    return jnp.tril(prior["tril"], -1) + sigma[..., None] * jnp.eye(sigma.shape[-1], dtype=sigma.dtype)


def scale_tril(prior: dict) -> jax.Array:
    """L_k (K, d, d) with Sigma_k = L_k L_k^T for any of the three covariance forms (sigma_k I, diag sigma_k, full):
    w = mu_k + L_k eps samples component k."""
    scale = prior_scale(prior)
    d = prior["mu"].shape[-1]
    if scale.ndim == 3:
        return scale
    s = scale if scale.ndim == 2 else jnp.broadcast_to(scale[:, None], prior["mu"].shape)
    return s[..., None] * jnp.eye(d, dtype=s.dtype)


def marginal_sigma(prior: dict) -> jax.Array:
    """The components' marginal standard deviations sqrt(diag Sigma_k): sigma_k (K,) for spherical components,
    (K, d) for diagonal and full ones (the row norms of L_k, Sigma_k = L_k L_k^T)."""
    if "tril" in prior:
        return jnp.sqrt(jnp.sum(scale_tril(prior) ** 2, -1))
    return jnp.exp(prior["log_sigma"])


def log_p_w_given_z(w: jax.Array, prior: dict) -> jax.Array:
    """log N(w; mu_k, sigma_k^2 I) for every component: ``w`` (..., d) -> (..., K). With ``log_sigma`` of shape
    (K, d) the components are diagonal: log N(w; mu_k, diag sigma_k^2) = sum_j log N(w_j; mu_kj, sigma_kj^2); with
    ``tril`` they are full, log N(w; mu_k, L_k L_k^T) = -||L_k^{-1}(w - mu_k)||^2 / 2 - log |L_k| - d log(2 pi) / 2."""
    return component_log_probs(w, prior["mu"], prior_scale(prior))


def log_pi(prior: dict, learn_pi: bool) -> jax.Array:
    """log pi = log_softmax(logits); the logits get no gradient unless pi is learned."""
    logits = prior["logits"] if learn_pi else jax.lax.stop_gradient(prior["logits"])
    return jax.nn.log_softmax(logits)


def network_qz_logits(params: dict, w: jax.Array, x: jax.Array, learn_pi: bool) -> jax.Array:
    """Logits of q(z|w,x) from the network ``params["qz"]`` on [w, x] (``learn_pi`` is not used)."""
    xb = jnp.broadcast_to(x, (*w.shape[:-1], x.shape[-1]))
    return nn.mlp_apply(params["qz"], jnp.concatenate([w, xb], axis=-1), jax.nn.relu)


def exact_qz_logits(params: dict, w: jax.Array, x: jax.Array, learn_pi: bool) -> jax.Array:
    """Logits of the exact conditional p(z|w): log pi_k + log N(w; mu_k, Sigma_k) (``x`` is not used)."""
    return log_pi(params["prior"], learn_pi) + log_p_w_given_z(w, params["prior"])


def gmvae_terms(params: dict, spec: VAESpec, x: jax.Array, key: jax.Array, *,
                qz_logits: QZLogits = network_qz_logits, learn_pi: bool = False, n_samples: int = 1) -> GMVAETerms:
    """The three ELBO terms of the module docstring, per example, with ``n_samples`` reparameterised w per x.

    Args:
        params: the GM-VAE's parameters (:func:`init_gmvae`).
        spec: the encoder's and decoder's static shape.
        x: a batch ``(B, x_dim)``.
        key: the randomness of w = m + s * eps.
        qz_logits: the form of q(z|w,x), :func:`network_qz_logits` or :func:`exact_qz_logits`.
        learn_pi: whether log pi gets a gradient.
        n_samples: samples of w per data point; the terms are their means.

    Returns:
        The per-example :class:`GMVAETerms`.
    """
    m, s = encode(params["vae"], spec, x)
    w = m + s * jax.random.normal(key, (n_samples, *m.shape), m.dtype)
    rec = log_px_given_z(params["vae"], spec, x, w)
    logits = qz_logits(params, w, x, learn_pi)
    log_q_z = jax.nn.log_softmax(logits)
    q_z = jnp.exp(log_q_z)
    log_q_w = jnp.sum(normal_log_prob(w, m, s), axis=-1)
    w_term = jnp.sum(q_z * log_p_w_given_z(w, params["prior"]), axis=-1) - log_q_w
    z_term = jnp.sum(q_z * (log_pi(params["prior"], learn_pi) - log_q_z), axis=-1)
    rec, w_term, z_term = (jnp.mean(t, axis=0) for t in (rec, w_term, z_term))
    return GMVAETerms(rec + w_term + z_term, rec, w_term, z_term, q_z[0])


def make_loss(spec: VAESpec, *, qz_logits: QZLogits = network_qz_logits, learn_pi: bool = False,
              learn_sigma: bool = True, warmup_steps: int = 0,
              n_samples: int = 1) -> Callable[[dict, jax.Array, jax.Array, dict], tuple[jax.Array, dict]]:
    """-(mean rec + beta_t (w term + z term)) over the batch as ``loss_fn(params, x, key, hp) -> (loss, aux)``: the
    negative ELBO with the latent terms warmed up linearly, beta_t = beta min(1, (t + 1) / warmup_steps),
    beta = ``hp["beta"]`` (1 when absent) and t = ``hp["step"]``.

    Args:
        spec: the encoder's and decoder's static shape.
        qz_logits: the form of q(z|w,x), :func:`network_qz_logits` or :func:`exact_qz_logits`.
        learn_pi: whether the mixture weights are trained.
        learn_sigma: False holds every sigma_k (or Sigma_k) at its initial value (no component can widen to absorb
            the rest).
        warmup_steps: steps of the linear warm-up of the latent terms (0: none).
        n_samples: reparameterised samples of w per data point.

    Returns:
        The loss function; its ``aux`` has the true ELBO, each term, beta_t and the smallest batch usage of a
        component.
    """

    def loss_fn(params: dict, x: jax.Array, key: jax.Array, hp: dict):
        model = params
        if not learn_sigma:
            prior = {**model["prior"], **{k: jax.lax.stop_gradient(v) for k, v in model["prior"].items()
                                          if k in ("log_sigma", "tril")}}
            model = {**model, "prior": prior}
        t = gmvae_terms(model, spec, x, key, qz_logits=qz_logits, learn_pi=learn_pi, n_samples=n_samples)
        beta = kl_weight(jnp.asarray(hp.get("beta", 1.0), t.elbo.dtype), hp["step"], warmup_steps)
        loss = -(jnp.mean(t.rec) + beta * jnp.mean(t.w_term + t.z_term))
        aux = {"elbo": jnp.mean(t.elbo), "rec": jnp.mean(t.rec), "w_term": jnp.mean(t.w_term),
               "z_term": jnp.mean(t.z_term), "beta": beta, "min_usage": jnp.min(jnp.mean(t.qz, axis=0))}
        return loss, aux

    return loss_fn


def make_autoencoder_loss(spec: VAESpec) -> Callable[[dict, jax.Array, jax.Array, dict], tuple[jax.Array, dict]]:
    """Pretraining loss -mean_x log p_theta(x | w = m(x)) of the encoder/decoder ``params`` alone: the encoder mean fed
    to the decoder, no noise and no prior term (a deterministic autoencoder); ``hp`` is not used."""

    def loss_fn(params: dict, x: jax.Array, key: jax.Array, hp: dict):
        m, _ = encode(params, spec, x)
        rec = jnp.mean(log_px_given_z(params, spec, x, m))
        return -rec, {"rec": rec}

    return loss_fn


def make_qz_fit_loss(spec: VAESpec, *,
                     learn_pi: bool = False) -> Callable[[dict, jax.Array, jax.Array, dict], tuple[jax.Array, dict]]:
    """Warm start of the q(z|w,x) network ``params``: the cross-entropy E_x E_{q(w|x)}[-sum_k p(k|w) log
    q_phi(k|w,x)] = E[KL(p(z|w) || q_phi(z|w,x))] + const. The encoder and the prior are held: they come in
    ``hp["held"]`` = ``{"vae": ..., "prior": ...}``, not in the trained parameters. Its minimiser is the exact
    conditional p(z|w), the ELBO's optimal q(z|w,x)."""

    def loss_fn(params: dict, x: jax.Array, key: jax.Array, hp: dict):
        held = hp["held"]
        m, s = encode(held["vae"], spec, x)
        w = m + s * jax.random.normal(key, m.shape, m.dtype)
        target = jax.nn.softmax(exact_qz_logits(held, w, x, learn_pi), axis=-1)
        log_q = jax.nn.log_softmax(network_qz_logits({**held, "qz": params}, w, x, learn_pi), axis=-1)
        ce = -jnp.mean(jnp.sum(target * log_q, axis=-1))
        return ce, {"qz_cross_entropy": ce}

    return loss_fn


def prior_from_clusters(prior: dict, centers: jax.Array, sigma: jax.Array, pi: jax.Array | None = None) -> dict:
    """The mixture prior started at a clustering of the encoded means: mu_k = c_k, log sigma_k = log s_k ((K,) or
    (K, d), as the prior's own ``log_sigma``; for full covariances ``sigma`` is the Cholesky factor L_k (K, d, d),
    whose diagonal gives log_sigma and whose strict lower part gives ``tril``) and, when ``pi`` is given,
    logits = log pi_k (else the old logits are kept)."""
    dtype = prior["log_sigma"].dtype
    out = {**prior, "mu": centers.astype(prior["mu"].dtype),
           **{name: v.astype(dtype) for name, v in _scale_entries(sigma).items()}}
    if pi is not None:
        out["logits"] = jnp.log(pi).astype(prior["logits"].dtype)
    return out


def start_prior(params: dict, spec: VAESpec, key: jax.Array, x: jax.Array, x_test: jax.Array, k: int, *,
                covariance: CovarianceForm = clustering.SPHERICAL, n_init: int = 5, kmeans_iters: int = 100,
                em_iters: int = 0, set_pi: bool = False) -> tuple[dict, dict[str, jax.Array]]:
    """Step (2) of the procedure for one model: a Gaussian mixture fitted to the encoded means m(x) of ``x``
    (:func:`vlab.algorithms.clustering.mixture_start`: k-means, then ``em_iters`` EM steps) becomes the prior
    (:func:`prior_from_clusters`).

    Args:
        params: the GM-VAE's parameters; its encoder gives m(x).
        spec: the encoder's and decoder's static shape.
        key: the randomness of the k-means restarts.
        x: the points whose encoded means the mixture is fitted to.
        x_test: the points whose components are reported.
        k: number of components K.
        covariance: the components' form (as the prior's own).
        n_init: k-means++ restarts.
        kmeans_iters: Lloyd steps of each restart.
        em_iters: EM steps refining each restart's mixture (0: the k-means partition's Gaussians).
        set_pi: whether the prior's weights become the mixture's (else they are kept).

    Returns:
        The model with that prior, and for ``x_test`` the nearest k-means centre ``"kmeans"`` and the mixture's
        most probable component ``"em"``, with the k-means ``"inertia"`` and EM's log-likelihood ``"trace"``.
    """
    w, w_test = encoded_means(params["vae"], spec, x), encoded_means(params["vae"], spec, x_test)
    s = clustering.mixture_start(key, w, k, covariance=covariance, n_init=n_init, kmeans_iters=kmeans_iters,
                                 em_iters=em_iters)
    prior = prior_from_clusters(params["prior"], s.means, s.scales, s.weights if set_pi else None)
    return {**params, "prior": prior}, {
        "kmeans": clustering.nearest_center(w_test, s.kmeans.centers), "inertia": s.kmeans.inertia,
        "em": clustering.mixture_assign(w_test, s.means, s.scales, s.weights), "trace": s.log_likelihood_trace}


def with_encoder_scale(vae: dict, spec: VAESpec, scale: jax.Array | float) -> dict:
    """The encoder with q(w|x) = N(m(x), scale^2 I) for every x: the log-variance half of its output layer gets zero
    weights and the bias log scale^2, the mean half is kept. An autoencoder's pretraining never trains that half,
    so it leaves widths of order 1 that can dwarf the clusters k-means then finds in m(x), and the first ELBO
    steps' samples of w scramble the initialisation."""
    last = vae["enc"][-1]
    d = spec.z_dim
    log_var = 2.0 * jnp.log(jnp.asarray(scale, last["b"].dtype))
    out = {**last, "w": last["w"].at[:, d:].set(0.0), "b": last["b"].at[d:].set(log_var)}
    return {**vae, "enc": [*vae["enc"][:-1], out]}


def encoded_means(vae: dict, spec: VAESpec, x: jax.Array, batch_size: int = 5000) -> jax.Array:
    """m(x) of the encoder q(w|x) = N(m(x), diag s^2(x)) for every row of ``x``, ``batch_size`` rows at a time
    (:func:`vlab.batching.map_batches`, so memory does not grow with n)."""
    return map_batches(lambda xb: encode(vae, spec, xb)[0], x, batch_size)


def assign(params: dict, spec: VAESpec, x: jax.Array, *, qz_logits: QZLogits = network_qz_logits,
           learn_pi: bool = False) -> tuple[jax.Array, jax.Array]:
    """Cluster assignment argmax_k q(z = k | w = m(x), x) at the posterior mean of w, and that q (B, K).

    Args:
        params: the GM-VAE's parameters.
        spec: the encoder's and decoder's static shape.
        x: a batch ``(B, x_dim)``.
        qz_logits: the form of q(z|w,x), :func:`network_qz_logits` or :func:`exact_qz_logits`.
        learn_pi: as in training (it changes no value, only gradients).

    Returns:
        The components ``(B,)`` and q(z|m(x), x) ``(B, K)``.
    """
    m, _ = encode(params["vae"], spec, x)
    q = jax.nn.softmax(qz_logits(params, m, x, learn_pi), axis=-1)
    return jnp.argmax(q, axis=-1), q


QZ_LOGITS = {"network": network_qz_logits, "exact": exact_qz_logits}
"""The forms of q(z|w,x) by the names configs use (``mixture.qz``)."""
