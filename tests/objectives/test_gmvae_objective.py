"""The GM-VAE ELBO: equal to the VAE's at K = 1, exact against a 1-D model with a closed-form evidence, and its
gradient against finite differences."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from vlab.algorithms import clustering
from vlab.distributions import likelihoods
from vlab.models.vae import VAESpec
from vlab.objectives import gmvae
from vlab.objectives import vae as vae_obj

HP = {"beta": jnp.asarray(1.0), "step": jnp.asarray(0, jnp.int32)}
QZ = {"exact": gmvae.exact_qz_logits, "network": gmvae.network_qz_logits}

S = 0.6


def _tiny(qz: str):
    """x, w in R, K = 2: x | w ~ N(a w + b, S^2), w | z=k ~ N(mu_k, sigma_k^2), pi = (0.3, 0.7)."""
    spec = VAESpec(x_dim=1, z_dim=1, hidden=(), likelihood=likelihoods.GAUSSIAN_FIXED, sigma_x=S)
    params = gmvae.init_gmvae(jax.random.key(0), spec, 2, qz_hidden=(8,) if qz == "network" else None, pi=[0.3, 0.7])
    params["vae"] = {"enc": [{"w": jnp.array([[0.5, 0.2]]), "b": jnp.array([0.1, -1.0])}],
                     "dec": [{"w": jnp.array([[1.4]]), "b": jnp.array([0.3])}]}
    params["prior"] = {"mu": jnp.array([[-1.5], [1.0]]), "log_sigma": jnp.log(jnp.array([0.5, 0.8])),
                       "logits": jnp.log(jnp.array([0.3, 0.7]))}
    return spec, params


def _exact(spec, params, x: float, qz: str):
    a, b = 1.4, 0.3
    mu, sd, pi = np.array([-1.5, 1.0]), np.array([0.5, 0.8]), np.array([0.3, 0.7])
    log_px = np.log(np.sum(pi * stats.norm.pdf(x, a * mu + b, np.sqrt(a**2 * sd**2 + S**2))))
    w = np.linspace(-10, 10, 20001)
    dw = w[1] - w[0]
    m, s = 0.5 * x + 0.1, np.exp(0.5 * (0.2 * x - 1.0))
    log_qw = stats.norm.logpdf(w, m, s)
    log_qz = np.asarray(jax.nn.log_softmax(QZ[qz](params, jnp.asarray(w)[:, None], jnp.array([x]), False), -1))
    log_joint = (np.log(pi) + stats.norm.logpdf(w[:, None], mu, sd)
                 + stats.norm.logpdf(x, a * w + b, S)[:, None])  # (W, K)
    q = np.exp(log_qw)[:, None] * np.exp(log_qz)
    kl = np.sum(q * (log_qw[:, None] + log_qz - (log_joint - log_px))) * dw
    return log_px, kl


@pytest.mark.parametrize("qz", ["exact", "network"])
def test_elbo_gap_is_kl_to_the_true_posterior(qz, x64):
    spec, params = _tiny(qz)
    x = 0.9
    log_px, kl = _exact(spec, params, x, qz)
    t = gmvae.gmvae_terms(params, spec, jnp.array([[x]]), jax.random.key(1), qz_logits=QZ[qz], n_samples=400_000)
    assert kl > 0.01
    assert float(t.elbo[0]) == pytest.approx(log_px - kl, abs=5e-3)
    assert float(t.elbo[0]) < log_px


def test_exact_qz_collapses_to_the_mixture_prior(x64):
    spec, params = _tiny("exact")
    x = jnp.array([[0.4], [-1.2]])
    key = jax.random.key(2)
    t = gmvae.gmvae_terms(params, spec, x, key, qz_logits=gmvae.exact_qz_logits)
    # the same samples: ELBO = log p(x|w) + log p(w) - log q(w|x), p(w) the mixture
    m, s = jnp.array([0.5 * 0.4 + 0.1, 0.5 * -1.2 + 0.1]), jnp.exp(0.5 * (0.2 * x[:, 0] - 1.0))
    w = m + s * jax.random.normal(key, (1, 2))[0]
    p_w = 0.3 * stats.norm.pdf(np.asarray(w), -1.5, 0.5) + 0.7 * stats.norm.pdf(np.asarray(w), 1.0, 0.8)
    expected = (stats.norm.logpdf(np.asarray(x[:, 0]), 1.4 * np.asarray(w) + 0.3, S) + np.log(p_w)
                - stats.norm.logpdf(np.asarray(w), np.asarray(m), np.asarray(s)))
    np.testing.assert_allclose(t.elbo, expected, atol=1e-10)


def test_k1_equals_the_plain_vae(x64):
    spec = VAESpec(x_dim=5, z_dim=3, hidden=(7,), likelihood=likelihoods.BERNOULLI)
    params = gmvae.init_gmvae(jax.random.key(0), spec, 1, qz_hidden=None, mu_spread=0.0)
    x = jax.random.uniform(jax.random.key(1), (4, 5))
    key = jax.random.key(2)
    for qz in ("exact", "network"):
        if qz == "network":
            params = {**params, "qz": gmvae.init_gmvae(jax.random.key(3), spec, 1)["qz"]}
        t = gmvae.gmvae_terms(params, spec, x, key, qz_logits=QZ[qz])
        ref = vae_obj.elbo_terms(params["vae"], spec, x, key, kl_estimator=vae_obj.mc_kl)
        np.testing.assert_allclose(t.elbo, ref.elbo, atol=1e-10)
        np.testing.assert_allclose(t.z_term, 0.0, atol=1e-12)


def test_loss_gradient_matches_finite_differences(x64):
    spec, params = _tiny("network")
    hp = {**HP, "beta": jnp.asarray(0.7)}
    loss_fn = gmvae.make_loss(spec, qz_logits=gmvae.network_qz_logits, learn_pi=True)
    x = jnp.array([[0.9], [-0.3], [2.0]])
    key = jax.random.key(5)
    f = lambda p: loss_fn(p, x, key, hp)[0]
    g = jax.grad(f)(params)
    d = jax.tree.map(lambda a: jax.random.normal(jax.random.key(6), a.shape), params)
    h = 1e-6
    shift = lambda t: jax.tree.map(lambda a, b: a + t * b, params, d)
    fd = (f(shift(h)) - f(shift(-h))) / (2 * h)
    an = sum(jnp.vdot(a, b) for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(d), strict=True))
    assert float(fd) == pytest.approx(float(an), rel=1e-6)


def test_beta_and_the_warm_up_come_from_hp(x64):
    # loss = -(rec + beta_t (w term + z term)), beta_t = beta min(1, (t + 1) / warmup) with t = hp["step"]
    spec, params = _tiny("exact")
    x = jnp.array([[0.9], [-0.3]])
    key = jax.random.key(7)
    t = gmvae.gmvae_terms(params, spec, x, key, qz_logits=gmvae.exact_qz_logits)
    rec, latent = float(jnp.mean(t.rec)), float(jnp.mean(t.w_term + t.z_term))
    loss_fn = gmvae.make_loss(spec, qz_logits=gmvae.exact_qz_logits, warmup_steps=10)
    for beta, step, weight in ((1.0, 0, 0.1), (0.5, 4, 0.25), (2.0, 9, 2.0), (2.0, 50, 2.0)):
        loss, aux = loss_fn(params, x, key, {"beta": jnp.asarray(beta), "step": jnp.asarray(step, jnp.int32)})
        assert float(aux["beta"]) == pytest.approx(weight, rel=1e-12)
        assert float(loss) == pytest.approx(-(rec + weight * latent), rel=1e-12)
        assert float(aux["elbo"]) == pytest.approx(float(jnp.mean(t.elbo)), rel=1e-12)
    # beta defaults to 1: the engine's hp holds only the step when the experiment sets no beta
    no_beta = gmvae.make_loss(spec, qz_logits=gmvae.exact_qz_logits)(params, x, key,
                                                                     {"step": jnp.asarray(3, jnp.int32)})[0]
    assert float(no_beta) == pytest.approx(-(rec + latent), rel=1e-12)


def test_pi_gets_no_gradient_unless_learned(x64):
    spec, params = _tiny("network")
    x = jnp.array([[0.9]])
    for learn, nonzero in ((False, False), (True, True)):
        loss = gmvae.make_loss(spec, learn_pi=learn)
        g = jax.grad(lambda p, loss=loss: loss(p, x, jax.random.key(0), HP)[0])(params)
        assert bool(jnp.any(g["prior"]["logits"] != 0)) == nonzero


def test_sigma_gets_no_gradient_when_held(x64):
    spec, params = _tiny("exact")
    x = jnp.array([[0.9]])
    for learn in (False, True):
        loss = gmvae.make_loss(spec, qz_logits=gmvae.exact_qz_logits, learn_sigma=learn)
        g = jax.grad(lambda p, loss=loss: loss(p, x, jax.random.key(0), HP)[0])(params)
        assert bool(jnp.any(g["prior"]["log_sigma"] != 0)) == learn


def test_autoencoder_pretraining_loss_is_the_reconstruction_at_the_mean(x64):
    spec, params = _tiny("exact")
    x = jnp.array([[0.9], [-0.3]])
    loss, aux = gmvae.make_autoencoder_loss(spec)(params["vae"], x, jax.random.key(0), HP)
    m = 0.5 * np.asarray(x[:, 0]) + 0.1  # encoder mean; the decoder mean is 1.4 m + 0.3, sigma_x = S
    expected = -np.mean(stats.norm.logpdf(np.asarray(x[:, 0]), 1.4 * m + 0.3, S))
    assert float(loss) == pytest.approx(expected, rel=1e-12) and float(aux["rec"]) == pytest.approx(-expected)


def test_encoded_means_in_batches_and_prior_from_clusters(x64):
    spec = VAESpec(x_dim=5, z_dim=3, hidden=(7,), likelihood=likelihoods.BERNOULLI)
    params = gmvae.init_gmvae(jax.random.key(0), spec, 4, qz_hidden=None)
    x = jax.random.uniform(jax.random.key(1), (23, 5))
    m = gmvae.encoded_means(params["vae"], spec, x, batch_size=5)  # 5 batches, the last padded
    np.testing.assert_allclose(m, gmvae.encode(params["vae"], spec, x)[0], atol=1e-12)
    c, s, pi = jnp.ones((4, 3)), jnp.array([0.5, 1.0, 2.0, 4.0]), jnp.array([0.1, 0.2, 0.3, 0.4])
    prior = gmvae.prior_from_clusters(params["prior"], c, s, pi)
    np.testing.assert_allclose(jnp.exp(prior["log_sigma"]), s, rtol=1e-12)
    np.testing.assert_allclose(jax.nn.softmax(prior["logits"]), pi, rtol=1e-12)
    kept = gmvae.prior_from_clusters(params["prior"], c, s)
    np.testing.assert_array_equal(kept["logits"], params["prior"]["logits"])
    np.testing.assert_array_equal(kept["mu"], c)


def test_qz_fit_loss_is_the_cross_entropy_to_the_exact_conditional(x64):
    spec, params = _tiny("network")
    hp = {**HP, "held": {"vae": params["vae"], "prior": params["prior"]}}  # held: only q(z|w,x) is trained
    x = jnp.array([[0.9], [-0.3]])
    key = jax.random.key(4)
    loss_fn = gmvae.make_qz_fit_loss(spec)
    loss, _ = loss_fn(params["qz"], x, key, hp)
    m, s = 0.5 * x + 0.1, jnp.exp(0.5 * (0.2 * x - 1.0))
    w = m + s * jax.random.normal(key, m.shape)
    p = jax.nn.softmax(gmvae.exact_qz_logits(params, w, x, False), -1)
    log_q = jax.nn.log_softmax(gmvae.network_qz_logits(params, w, x, False), -1)
    assert float(loss) == pytest.approx(float(-jnp.mean(jnp.sum(p * log_q, -1))), rel=1e-12)
    g = jax.grad(lambda q: loss_fn(q, x, key, hp)[0])(params["qz"])
    assert jax.tree.structure(g) == jax.tree.structure(params["qz"])  # the gradient is the network's alone
    assert any(float(jnp.max(jnp.abs(a))) > 0.0 for a in jax.tree.leaves(g))
    # the held encoder and prior move the target: the loss depends on them, though they are not trained
    moved = {**hp, "held": {**hp["held"], "prior": {**params["prior"], "mu": params["prior"]["mu"] + 0.5}}}
    assert float(loss_fn(params["qz"], x, key, moved)[0]) != pytest.approx(float(loss))


def test_diagonal_components_are_the_product_of_their_marginals(x64):
    # log N(w; mu_k, diag sigma_k^2) against scipy's multivariate normal; (K,) log sigma is the spherical special case
    rng = np.random.default_rng(0)
    mu, sd, w = rng.normal(size=(3, 4)), np.exp(rng.normal(size=(3, 4)) * 0.5), rng.normal(size=(5, 4))
    got = gmvae.log_p_w_given_z(jnp.asarray(w), {"mu": jnp.asarray(mu), "log_sigma": jnp.log(jnp.asarray(sd))})
    want = np.stack([stats.multivariate_normal(mu[k], np.diag(sd[k] ** 2)).logpdf(w) for k in range(3)], -1)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    sph = gmvae.log_p_w_given_z(jnp.asarray(w), {"mu": jnp.asarray(mu), "log_sigma": jnp.log(jnp.asarray(sd[:, 0]))})
    diag = gmvae.log_p_w_given_z(jnp.asarray(w), {"mu": jnp.asarray(mu), "log_sigma": jnp.log(
        jnp.repeat(jnp.asarray(sd[:, :1]), 4, axis=1))})
    np.testing.assert_allclose(sph, diag, rtol=1e-12)


def test_diagonal_init_has_one_sigma_per_component_and_dimension():
    spec = VAESpec(x_dim=3, z_dim=4, hidden=(8,))
    p = gmvae.init_gmvae(jax.random.key(0), spec, 5, qz_hidden=None, sigma_init=[0.5], covariance=clustering.DIAGONAL)
    assert p["prior"]["log_sigma"].shape == (5, 4)
    np.testing.assert_allclose(np.exp(p["prior"]["log_sigma"]), 0.5, rtol=1e-6)
    assert gmvae.init_gmvae(jax.random.key(0), spec, 5, qz_hidden=None)["prior"]["log_sigma"].shape == (5,)


def test_with_encoder_scale_sets_every_width_and_keeps_the_means():
    spec = VAESpec(x_dim=6, z_dim=3, hidden=(16,))
    vae = gmvae.init_gmvae(jax.random.key(0), spec, 4, qz_hidden=None)["vae"]
    x = jax.random.normal(jax.random.key(1), (20, 6))
    m0, s0 = gmvae.encode(vae, spec, x)
    m1, s1 = gmvae.encode(gmvae.with_encoder_scale(vae, spec, 0.05), spec, x)
    np.testing.assert_allclose(m1, m0, rtol=1e-6)
    np.testing.assert_allclose(s1, 0.05, rtol=1e-5)
    assert float(jnp.std(s0)) > 0.01  # the untouched head's widths vary with x


def test_full_components_match_scipy_and_reduce_to_diagonal(x64):
    rng = np.random.default_rng(1)
    K, d = 3, 4
    mu, w = rng.normal(size=(K, d)), rng.normal(size=(6, d))
    log_sigma, tril = rng.normal(size=(K, d)) * 0.3, rng.normal(size=(K, d, d)) * 0.5
    prior = {"mu": jnp.asarray(mu), "log_sigma": jnp.asarray(log_sigma), "tril": jnp.asarray(tril)}
    L = np.tril(tril, -1) + np.stack([np.diag(np.exp(log_sigma[k])) for k in range(K)])  # upper part is ignored
    np.testing.assert_allclose(gmvae.prior_scale(prior), L, rtol=1e-12)
    got = gmvae.log_p_w_given_z(jnp.asarray(w), prior)
    want = np.stack([stats.multivariate_normal(mu[k], L[k] @ L[k].T).logpdf(w) for k in range(K)], -1)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    diag = gmvae.log_p_w_given_z(jnp.asarray(w), {**prior, "tril": jnp.zeros((K, d, d))})
    np.testing.assert_allclose(diag, gmvae.log_p_w_given_z(jnp.asarray(w), {"mu": prior["mu"],
                                                                            "log_sigma": prior["log_sigma"]}),
                               rtol=1e-12)
    # scale_tril gives L_k L_k^T = Sigma_k in all three forms
    sph = {"mu": prior["mu"], "log_sigma": prior["log_sigma"][:, 0]}
    np.testing.assert_allclose(gmvae.scale_tril(sph)[1], np.exp(log_sigma[1, 0]) * np.eye(d), rtol=1e-12)
    np.testing.assert_allclose(gmvae.scale_tril(prior), L, rtol=1e-12)


def test_full_component_gradients_match_finite_differences(x64):
    from jax.test_util import check_grads

    rng = np.random.default_rng(2)
    prior = {"mu": jnp.asarray(rng.normal(size=(2, 3))), "log_sigma": jnp.asarray(rng.normal(size=(2, 3)) * 0.2),
             "tril": jnp.asarray(rng.normal(size=(2, 3, 3)) * 0.3)}
    w = jnp.asarray(rng.normal(size=(5, 3)))
    check_grads(lambda p: jnp.sum(jax.nn.logsumexp(gmvae.log_p_w_given_z(w, p), -1)), (prior,), order=2,
                modes=("rev",), atol=1e-6, rtol=1e-6)


def test_full_prior_from_a_cholesky_factor_and_its_init():
    spec = VAESpec(x_dim=3, z_dim=2, hidden=(8,))
    p = gmvae.init_gmvae(jax.random.key(0), spec, 4, qz_hidden=None, sigma_init=[0.5], covariance=clustering.FULL)
    assert p["prior"]["tril"].shape == (4, 2, 2) and p["prior"]["log_sigma"].shape == (4, 2)
    np.testing.assert_allclose(gmvae.prior_scale(p["prior"]), np.stack([0.5 * np.eye(2)] * 4), rtol=1e-6)
    chol = jnp.asarray(np.stack([np.array([[1.0, 0.0], [0.5, 2.0]]) * (k + 1) for k in range(4)]))
    out = gmvae.prior_from_clusters(p["prior"], jnp.ones((4, 2)), chol)
    np.testing.assert_allclose(gmvae.prior_scale(out), chol, rtol=1e-6)


def test_full_covariances_get_no_gradient_when_held(x64):
    spec = VAESpec(x_dim=3, z_dim=2, hidden=(8,))
    params = gmvae.init_gmvae(jax.random.key(0), spec, 3, qz_hidden=None, covariance=clustering.FULL)
    params["prior"]["tril"] = 0.3 * jax.random.normal(jax.random.key(2), (3, 2, 2))
    x = jax.random.normal(jax.random.key(1), (4, 3))
    for learn in (False, True):
        loss = gmvae.make_loss(spec, qz_logits=gmvae.exact_qz_logits, learn_sigma=learn)
        g = jax.grad(lambda p, loss=loss: loss(p, x, jax.random.key(0), HP)[0])(params)["prior"]
        assert bool(jnp.any(g["log_sigma"] != 0)) == learn
        assert bool(jnp.any(jnp.tril(g["tril"], -1) != 0)) == learn


def test_marginal_sigma_is_the_root_of_the_covariance_diagonal(x64):
    rng = np.random.default_rng(3)
    K, d = 3, 2
    log_sigma, tril = rng.normal(size=(K, d)) * 0.3, rng.normal(size=(K, d, d))
    full = {"mu": jnp.zeros((K, d)), "log_sigma": jnp.asarray(log_sigma), "tril": jnp.asarray(tril)}
    L = np.asarray(gmvae.scale_tril(full))
    want = np.sqrt(np.stack([np.diag(L[k] @ L[k].T) for k in range(K)]))
    np.testing.assert_allclose(gmvae.marginal_sigma(full), want, rtol=1e-12)
    for shape in ((K,), (K, d)):  # spherical and diagonal: sigma itself
        prior = {"mu": jnp.zeros((K, d)), "log_sigma": jnp.asarray(rng.normal(size=shape))}
        np.testing.assert_allclose(gmvae.marginal_sigma(prior), np.exp(prior["log_sigma"]), rtol=1e-12)


@pytest.mark.parametrize("em_iters", [0, 20])
def test_start_prior_is_the_mixture_fitted_to_the_encoded_means(x64, em_iters):
    spec = VAESpec(x_dim=4, z_dim=2, hidden=(8,))
    params = gmvae.init_gmvae(jax.random.key(0), spec, 3, qz_hidden=None, covariance=clustering.FULL)
    x, x_test = jax.random.normal(jax.random.key(1), (60, 4)), jax.random.normal(jax.random.key(2), (20, 4))
    key = jax.random.key(3)
    out, info = gmvae.start_prior(params, spec, key, x, x_test, 3, covariance=clustering.FULL, n_init=2,
                                  kmeans_iters=20, em_iters=em_iters, set_pi=True)
    w, w_test = gmvae.encode(params["vae"], spec, x)[0], gmvae.encode(params["vae"], spec, x_test)[0]
    s = clustering.mixture_start(key, w, 3, covariance=clustering.FULL, n_init=2, kmeans_iters=20, em_iters=em_iters)
    np.testing.assert_allclose(out["prior"]["mu"], s.means, atol=1e-10)
    np.testing.assert_allclose(gmvae.prior_scale(out["prior"]), s.scales, atol=1e-10)
    np.testing.assert_allclose(jax.nn.softmax(out["prior"]["logits"]), s.weights, atol=1e-10)
    np.testing.assert_array_equal(info["kmeans"], clustering.nearest_center(w_test, s.kmeans.centers))
    np.testing.assert_array_equal(info["em"], clustering.mixture_assign(w_test, s.means, s.scales, s.weights))
    assert info["trace"].shape == (em_iters,) and float(info["inertia"]) == pytest.approx(float(s.kmeans.inertia))
    kept = gmvae.start_prior(params, spec, key, x, x_test, 3, covariance=clustering.FULL, n_init=2, kmeans_iters=20)[0]
    np.testing.assert_array_equal(kept["prior"]["logits"], params["prior"]["logits"])  # pi kept without set_pi
    np.testing.assert_array_equal(kept["vae"]["enc"][0]["w"], params["vae"]["enc"][0]["w"])


def test_every_covariance_name_of_the_config_is_a_form_of_the_right_shape():
    # the experiment resolves mixture.covariance (a name the config validates) to a form; the mathematics has no names
    import typing

    from vlab.experiments.gmvae import MixtureConfig

    from vlab.algorithms.clustering import COVARIANCES
    from vlab.objectives.gmvae import QZ_LOGITS

    hints = typing.get_type_hints(MixtureConfig)
    assert set(COVARIANCES) == set(typing.get_args(hints["covariance"]))
    assert set(QZ_LOGITS) == set(typing.get_args(hints["qz"]))
    spec = VAESpec(x_dim=3, z_dim=2, hidden=(8,))
    shapes = {"spherical": (4,), "diagonal": (4, 2), "full": (4, 2)}
    for name, form in COVARIANCES.items():
        prior = gmvae.init_gmvae(jax.random.key(0), spec, 4, qz_hidden=None, sigma_init=[0.5], covariance=form)["prior"]
        assert prior["log_sigma"].shape == shapes[name] and ("tril" in prior) == (name == "full")
        assert gmvae.prior_scale(prior).shape == form.isotropic(jnp.ones(4), 2).shape
