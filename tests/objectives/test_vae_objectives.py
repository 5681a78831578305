"""The VAE objectives held to a linear-Gaussian model whose evidence and posterior are known in closed form.

p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I) with orthogonal columns in W: log p(x) = log N(x; b, WW^T + s^2 I) and
p(z|x) = N(Sigma W^T (x - b) / s^2, Sigma), Sigma = (I + W^T W / s^2)^-1 diagonal, so a one-layer encoder can
represent the exact posterior.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from vlab import engine
from vlab.algorithms.amortisation import amortisation_gap, optimise_point_posteriors, point_elbos
from vlab.distributions import kl_mvn, likelihoods
from vlab.models.vae import VAESpec, encode, init_vae
from vlab.objectives import vae

S = 0.7


def _linear_model(perturb: float = 0.0):
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 2)))
    w = q * np.array([1.5, 0.8])
    b = np.array([0.3, -0.2, 0.5])
    sigma_post = 1.0 / (1.0 + np.sum(w * w, 0) / S**2)  # diagonal of Sigma
    a = w * sigma_post / S**2  # mu = (x - b) @ a
    enc_w = np.concatenate([a, np.zeros((3, 2))], 1)
    enc_b = np.concatenate([-b @ a, np.log(sigma_post)])
    enc_w = enc_w + perturb * np.random.default_rng(1).normal(size=enc_w.shape)
    enc_b = enc_b + perturb * np.random.default_rng(2).normal(size=enc_b.shape)
    spec = VAESpec(x_dim=3, z_dim=2, hidden=(), likelihood=likelihoods.GAUSSIAN_FIXED, sigma_x=S)
    model = {"enc": [{"w": jnp.asarray(enc_w), "b": jnp.asarray(enc_b)}],
             "dec": [{"w": jnp.asarray(w.T), "b": jnp.asarray(b)}]}
    x = jnp.array([[0.9, -1.1, 0.4], [-0.5, 0.2, 1.3]])
    log_px = stats.multivariate_normal(b, w @ w.T + S**2 * np.eye(3)).logpdf(np.asarray(x))
    post_cov = np.diag(sigma_post)
    post_mu = (np.asarray(x) - b) @ a
    return spec, model, x, log_px, post_mu, post_cov


def test_exact_posterior_makes_every_bound_tight(x64):
    spec, model, x, log_px, _, _ = _linear_model()
    key = jax.random.PRNGKey(0)
    terms = vae.elbo_terms(model, spec, x, key, kl_estimator=vae.mc_kl)  # rec + log p(z) - log q(z) is constant
    np.testing.assert_allclose(terms.elbo, log_px, atol=1e-10)
    for k, chunk in [(1, 100), (10, 3), (64, 64)]:
        np.testing.assert_allclose(vae.iwae_bound(model, spec, x, key, k, chunk), log_px, atol=1e-10)


def test_elbo_gap_is_kl_to_true_posterior(x64):
    spec, model, x, log_px, post_mu, post_cov = _linear_model(perturb=0.3)
    mu, sigma = encode(model, spec, x)
    gap = np.array([float(kl_mvn(mu[i], jnp.diag(sigma[i] ** 2), jnp.asarray(post_mu[i]), jnp.asarray(post_cov)))
                    for i in range(2)])
    terms = vae.elbo_terms(model, spec, x, jax.random.PRNGKey(0), n_samples=200_000)
    assert np.all(gap > 0.05)
    np.testing.assert_allclose(terms.elbo, log_px - gap, atol=0.01)
    terms_mc = vae.elbo_terms(model, spec, x, jax.random.PRNGKey(1), kl_estimator=vae.mc_kl, n_samples=200_000)
    np.testing.assert_allclose(terms_mc.elbo, log_px - gap, atol=0.01)


def test_iwae_increases_with_k_towards_log_px(x64):
    spec, model, x, log_px, _, _ = _linear_model(perturb=0.3)
    keys = jax.random.split(jax.random.PRNGKey(0), 400)
    means = []
    for k in (1, 5, 50):
        vals = jax.vmap(lambda kk, k=k: vae.iwae_bound(model, spec, x, kk, k, 50))(keys)
        means.append(np.asarray(vals.mean(0)))
    assert np.all(means[0] < means[1]) and np.all(means[1] < means[2]) and np.all(means[2] <= log_px + 1e-3)
    big = vae.iwae_bound(model, spec, x, jax.random.PRNGKey(3), 5000, 500)
    np.testing.assert_allclose(big, log_px, atol=0.05)


def test_analytic_kl_matches_seed_004_and_its_gradients(x64):
    mu, sigma = 0.7, 1.6
    kl = lambda m, s: 0.5 * (s**2 + m**2 - jnp.log(s**2) - 1.0)
    eps = jax.random.normal(jax.random.PRNGKey(0), (400_000,))

    def kl_mc(m, s):  # reparameterised single-sample estimate, averaged: E[log q(z) - log p(z)], z = m + s eps
        z = m + s * eps
        return jnp.mean(-0.5 * ((z - m) / s) ** 2 - jnp.log(s) + 0.5 * z**2)

    g_mu, g_sigma = jax.grad(kl_mc, argnums=(0, 1))(mu, sigma)
    assert float(g_mu) == pytest.approx(mu, abs=0.01)
    assert float(g_sigma) == pytest.approx(sigma - 1 / sigma, abs=0.01)
    assert float(kl_mc(mu, sigma)) == pytest.approx(float(kl(mu, sigma)), abs=0.01)


def test_kl_penalty_free_bits_and_warmup():
    kl_dims = jnp.array([[0.1, 2.0, 0.0], [0.3, 4.0, 0.0]])  # batch means 0.2, 3.0, 0.0
    assert float(vae.kl_penalty(kl_dims, 0.0)) == pytest.approx(3.2)
    assert float(vae.kl_penalty(kl_dims, 0.5)) == pytest.approx(0.5 + 3.0 + 0.5)
    assert float(vae.kl_weight(jnp.asarray(2.0), jnp.asarray(0.0), 4)) == pytest.approx(0.5)
    assert float(vae.kl_weight(jnp.asarray(2.0), jnp.asarray(9.0), 4)) == pytest.approx(2.0)
    assert float(vae.kl_weight(jnp.asarray(2.0), jnp.asarray(0.0), 0)) == pytest.approx(2.0)


def test_loss_gradient_matches_finite_differences(x64):
    spec, model, x, _, _, _ = _linear_model(perturb=0.3)
    loss_fn = vae.make_loss(spec, free_bits=0.0, warmup_steps=4)
    key = jax.random.key(4)
    hp = {"beta": jnp.asarray(0.5), "step": jnp.asarray(1, jnp.int32)}
    f = lambda m: loss_fn(m, x, key, hp)[0]
    g = jax.grad(f)(model)
    direction = jax.tree.map(lambda a: jax.random.normal(jax.random.key(5), a.shape), model)
    h = 1e-6
    shift = lambda t: jax.tree.map(lambda a, d: a + t * d, model, direction)
    fd = (f(shift(h)) - f(shift(-h))) / (2 * h)
    analytic = sum(jnp.vdot(a, d) for a, d in zip(jax.tree.leaves(g), jax.tree.leaves(direction), strict=True))
    assert float(fd) == pytest.approx(float(analytic), rel=1e-6)
    # the KL weight in force is the warmed-up beta_t = 0.5 min(1, (1 + 1) / 4), and the loss is -(rec - beta_t KL)
    t = vae.elbo_terms(model, spec, x, key)
    loss, aux = loss_fn(model, x, key, hp)
    assert float(aux["beta"]) == pytest.approx(0.25)
    assert float(loss) == pytest.approx(float(-(t.rec.mean() - 0.25 * t.kl.mean())), rel=1e-12)


def test_warmup_follows_the_engines_step_for_each_members_beta():
    spec = VAESpec(x_dim=6, z_dim=2, hidden=(8,), likelihood=likelihoods.BERNOULLI)
    model = init_vae(jax.random.key(0), spec)
    params = jax.tree.map(lambda a: jnp.stack([a, a]), model)
    x = (jax.random.uniform(jax.random.key(1), (32, 6)) > 0.5).astype(jnp.float32)
    keys = jax.random.split(jax.random.key(2))
    res = engine.fit(vae.make_loss(spec, warmup_steps=10), params, optax.adam(1e-2), keys, steps=15,
                     hp={"beta": jnp.array([0.25, 4.0])}, data=x,
                     batch_fn=lambda d, k: d[jax.random.randint(k, (8,), 0, 32)], chunk_size=5, log_every=1)
    ramp = np.minimum(1.0, (np.arange(15) + 1) / 10)
    np.testing.assert_array_equal(res.history["step"], np.arange(15))
    np.testing.assert_allclose(res.history["beta"], np.stack([0.25 * ramp, 4.0 * ramp], 1), rtol=1e-6)
    assert set(res.params) == {"enc", "dec"} and res.compiles == 1  # the network alone is trained


def test_evaluate_matches_direct_computation(x64):
    spec, model, x, log_px, _, _ = _linear_model()
    xs = jnp.concatenate([x] * 4)[:7]
    out = vae.evaluate(model, spec, xs, jax.random.PRNGKey(0), batch_size=3, iwae_k=8)
    assert out["mu"].shape == (7, 2) and out["kl_dims"].shape == (7, 2)
    np.testing.assert_allclose(out["iwae"], np.tile(log_px, 4)[:7], atol=1e-10)
    np.testing.assert_allclose(out["kl"], out["kl_dims"].sum(1), atol=1e-12)


def test_iwae_rejects_k_below_one():
    spec, model, x, _, _, _ = _linear_model()
    with pytest.raises(ValueError, match="k must be >= 1"):
        vae.iwae_bound(model, spec, x, jax.random.PRNGKey(0), 0)


def test_amortisation_gap_closes_on_the_exact_posterior(x64):
    # the exact posterior is a diagonal Gaussian: each point's own q_i reaches it, so the optimised ELBO is log p(x)
    # (no approximation gap), while the perturbed encoder's ELBO falls short by KL(q_phi || p(z|x))
    spec, model, x, log_px, post_mu, post_cov = _linear_model(perturb=0.3)
    mu, sigma = encode(model, spec, x)
    gap = [float(kl_mvn(mu[i], jnp.diag(sigma[i] ** 2), jnp.asarray(post_mu[i]), jnp.asarray(post_cov)))
           for i in range(2)]
    am = amortisation_gap(model, spec, x, jax.random.key(0), steps=600, samples=32, lr=2e-2, eval_samples=20_000)
    np.testing.assert_allclose(am["optimised"], log_px, atol=0.02)  # the estimate's noise: 0.007 nats
    np.testing.assert_allclose(am["amortised"], log_px - np.array(gap), atol=0.02)
    assert np.all(am["optimised"] - am["amortised"] > 0.05)


def test_point_elbos_equal_the_elbo_of_the_encoders_q(x64):
    spec, model, x, _, _, _ = _linear_model(perturb=0.3)
    mu, sigma = encode(model, spec, x)
    q = {"mu": mu, "log_sigma": jnp.log(sigma)}
    key = jax.random.key(3)  # the same noise: the same estimate
    np.testing.assert_allclose(point_elbos(model, spec, x, q, key, 16),
                               vae.elbo_terms(model, spec, x, key, n_samples=16).elbo, atol=1e-12)


def test_point_posteriors_follow_the_engines_adam_steps():
    # the per-point optimisation is its own scan of Adam steps; the engine's fit of the same loss, drawing step t's
    # noise from fold_in(key, t) as well, takes the same steps
    spec = VAESpec(x_dim=6, z_dim=2, hidden=(8,), likelihood=likelihoods.BERNOULLI)
    model = init_vae(jax.random.key(0), spec)
    x = (jax.random.uniform(jax.random.key(1), (5, 6)) > 0.5).astype(jnp.float32)
    mu, sigma = encode(model, spec, x)
    q0 = {"mu": mu, "log_sigma": jnp.log(sigma)}
    key = jax.random.key(2)
    got = optimise_point_posteriors(model, spec, x, q0, key, steps=40, samples=4, lr=1e-2)

    def loss(q, batch, k, hp):
        return -jnp.sum(point_elbos(batch[0], spec, batch[1], q, k, 4)), {}

    want = engine.fit(loss, q0, optax.adam(1e-2), key, steps=40, data=(model, x), chunk_size=40, log_every=40).params
    for name in ("mu", "log_sigma"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)
    assert float(jnp.max(jnp.abs(got["mu"] - mu))) > 1e-3  # it moved
