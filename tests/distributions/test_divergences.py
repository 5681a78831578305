"""Gaussian KLs and the KL estimators against scipy quadrature, closed forms and finite differences."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from vlab.distributions import kl_mvn, kl_normal, kl_to_standard_normal, mixture_1d
from vlab.distributions.divergences import (
    exclusive_kl_mc,
    exclusive_kl_quadrature,
    inclusive_kl_mc,
    inclusive_kl_quadrature,
    mean_and_stderr,
    standard_normal_rule,
)

SEED_TARGET = ([1 / 3, 2 / 3], [-3.0, 3.0], [1.0, 1.0])


def scipy_mixture_logpdf(w, m, s):
    comps = list(zip(w, m, s, strict=True))
    return lambda x: np.logaddexp.reduce([np.log(wk) + stats.norm.logpdf(x, mk, sk) for wk, mk, sk in comps], axis=0)


def scipy_kl(log_a, log_b, lo, hi, points):
    f = lambda x: np.exp(log_a(x)) * (log_a(x) - log_b(x))
    return integrate.quad(f, lo, hi, points=points, limit=500, epsabs=1e-13, epsrel=1e-12)[0]


@pytest.mark.parametrize("mu0,s0,mu1,s1", [(0.3, 0.7, -1.2, 2.0), (2.0, 3.0, 2.0, 0.5), (0.0, 1.0, 0.0, 1.0)])
def test_kl_normal_matches_quadrature(x64, mu0, s0, mu1, s1):
    ref = scipy_kl(lambda x: stats.norm.logpdf(x, mu0, s0), lambda x: stats.norm.logpdf(x, mu1, s1),
                   mu0 - 30 * s0, mu0 + 30 * s0, [mu0])
    assert float(kl_normal(mu0, s0, mu1, s1)) == pytest.approx(ref, abs=1e-10)


def test_kl_to_standard_normal_and_its_gradients(x64):
    """Seed 004: KL = (sigma^2 + mu^2 - log sigma^2 - 1)/2, dKL/dmu = mu, dKL/dsigma = sigma - 1/sigma."""
    mu, sigma = 0.8, 1.7
    assert float(kl_to_standard_normal(mu, sigma)) == pytest.approx(float(kl_normal(mu, sigma, 0.0, 1.0)), abs=1e-14)
    g_mu, g_sigma = jax.grad(kl_to_standard_normal, argnums=(0, 1))(mu, sigma)
    assert float(g_mu) == pytest.approx(mu, abs=1e-12)
    assert float(g_sigma) == pytest.approx(sigma - 1 / sigma, abs=1e-12)


def test_kl_mvn_closed_form(x64):
    """Seed 001 problem 6.1: against a diagonal case (sum of 1-D KLs) and scipy's MVN entropy/cross-entropy."""
    rng = np.random.default_rng(0)
    d = 3
    a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    s0, s1 = a @ a.T + d * np.eye(d), b @ b.T + d * np.eye(d)
    m0, m1 = rng.normal(size=d), rng.normal(size=d)
    # KL = E_0[log p0 - log p1] computed from scipy's entropy and the Gaussian cross-entropy identity
    h0 = stats.multivariate_normal(m0, s0).entropy()
    inv1 = np.linalg.inv(s1)
    dm = m1 - m0
    cross = 0.5 * (d * np.log(2 * np.pi) + np.linalg.slogdet(s1)[1] + np.trace(inv1 @ s0) + dm @ inv1 @ dm)
    assert float(kl_mvn(jnp.asarray(m0), jnp.asarray(s0), jnp.asarray(m1), jnp.asarray(s1))) == pytest.approx(
        cross - h0, abs=1e-10)
    sd0, sd1 = np.abs(rng.normal(size=d)) + 0.2, np.abs(rng.normal(size=d)) + 0.2
    diag = kl_mvn(jnp.asarray(m0), jnp.diag(jnp.asarray(sd0**2)), jnp.asarray(m1), jnp.diag(jnp.asarray(sd1**2)))
    assert float(diag) == pytest.approx(float(jnp.sum(kl_normal(m0, sd0, m1, sd1))), abs=1e-12)


def test_mixture_moments_and_normalisation(x64):
    t = mixture_1d(*SEED_TARGET)
    assert float(t.mean()) == pytest.approx(1.0, abs=1e-14)
    assert float(t.variance()) == pytest.approx(9.0, abs=1e-12)
    total = integrate.quad(lambda x: float(jnp.exp(t.log_prob(jnp.asarray(x)))), -20, 20, points=[-3, 3])[0]
    assert total == pytest.approx(1.0, abs=1e-10)


CASES = [(0.7364, 2.6453), (3.0, 1.0), (1.0, 3.0), (1.0, 10.0), (-5.0, 0.2), (-2.9759, 1.0347)]


@pytest.mark.parametrize("mu,sigma", CASES)
def test_exclusive_quadrature_matches_scipy(x64, mu, sigma):
    t = mixture_1d(*SEED_TARGET)
    log_p = scipy_mixture_logpdf(*SEED_TARGET)
    ref = scipy_kl(lambda x: stats.norm.logpdf(x, mu, sigma), log_p, mu - 40 * sigma, mu + 40 * sigma, [-0.23, mu])
    got = exclusive_kl_quadrature(mu, sigma, t.log_prob, standard_normal_rule(4001))
    assert float(got) == pytest.approx(ref, abs=1e-9)


@pytest.mark.parametrize("mu,sigma", CASES)
def test_inclusive_quadrature_matches_scipy(x64, mu, sigma):
    t = mixture_1d(*SEED_TARGET)
    log_p = scipy_mixture_logpdf(*SEED_TARGET)
    ref = scipy_kl(log_p, lambda x: stats.norm.logpdf(x, mu, sigma), -40, 40, [-3, 3, mu])
    for rule, n, tol in (("grid", 801, 1e-9), ("gauss_hermite", 128, 1e-6)):
        got = inclusive_kl_quadrature(mu, sigma, t, standard_normal_rule(n, rule))
        assert float(got) == pytest.approx(ref, abs=tol), rule


def test_quadrature_on_a_random_mixture(x64):
    rng = np.random.default_rng(3)
    w = rng.dirichlet(np.ones(3))
    m, s = rng.normal(0, 3, 3), rng.uniform(0.3, 2.0, 3)
    t = mixture_1d(w, m, s)
    log_p = scipy_mixture_logpdf(w, m, s)
    mu, sigma = 0.4, 1.9
    ref_ex = scipy_kl(lambda x: stats.norm.logpdf(x, mu, sigma), log_p, -60, 60, list(m))
    ref_in = scipy_kl(log_p, lambda x: stats.norm.logpdf(x, mu, sigma), -60, 60, list(m))
    rule = standard_normal_rule(4001)
    assert float(exclusive_kl_quadrature(mu, sigma, t.log_prob, rule)) == pytest.approx(ref_ex, abs=1e-9)
    assert float(inclusive_kl_quadrature(mu, sigma, t, rule)) == pytest.approx(ref_in, abs=1e-9)


def test_quadrature_gradients_match_finite_differences(x64):
    t = mixture_1d(*SEED_TARGET)
    rule = standard_normal_rule(2001)
    for f in (lambda mu, ls: exclusive_kl_quadrature(mu, jnp.exp(ls), t.log_prob, rule),
              lambda mu, ls: inclusive_kl_quadrature(mu, jnp.exp(ls), t, rule)):
        for mu, ls in ((0.5, 0.3), (-2.0, -0.4), (4.0, 1.2)):
            g = jax.grad(f, argnums=(0, 1))(mu, ls)
            h = 1e-5
            fd_mu = (f(mu + h, ls) - f(mu - h, ls)) / (2 * h)
            fd_ls = (f(mu, ls + h) - f(mu, ls - h)) / (2 * h)
            assert float(g[0]) == pytest.approx(float(fd_mu), abs=1e-7)
            assert float(g[1]) == pytest.approx(float(fd_ls), abs=1e-7)


def test_monte_carlo_estimators_are_unbiased(x64):
    t = mixture_1d(*SEED_TARGET)
    rule = standard_normal_rule(2001)
    mu, sigma = 1.5, 2.0
    k1, k2 = jax.random.split(jax.random.key(0))
    est, se = exclusive_kl_mc(k1, mu, sigma, t.log_prob, 200_000)
    assert abs(float(est) - float(exclusive_kl_quadrature(mu, sigma, t.log_prob, rule))) < 4 * float(se)
    est, se = inclusive_kl_mc(k2, mu, sigma, t, 200_000)
    assert abs(float(est) - float(inclusive_kl_quadrature(mu, sigma, t, rule))) < 4 * float(se)


def test_reparameterised_gradient_is_unbiased(x64):
    """The mean of many reparameterised MC gradients equals the exact gradient of KL(q||p)."""
    t = mixture_1d(*SEED_TARGET)
    rule = standard_normal_rule(2001)
    mu, sigma = 0.5, 1.5
    keys = jax.random.split(jax.random.key(1), 400)
    grads = jax.vmap(lambda k: jnp.stack(jax.grad(lambda m, s: exclusive_kl_mc(k, m, s, t.log_prob, 500)[0],
                                                  argnums=(0, 1))(mu, sigma)))(keys)
    exact = jnp.stack(jax.grad(lambda m, s: exclusive_kl_quadrature(m, s, t.log_prob, rule), argnums=(0, 1))(mu, sigma))
    se = grads.std(0) / np.sqrt(grads.shape[0])
    assert np.all(np.abs(np.asarray(grads.mean(0) - exact)) < 4 * np.asarray(se))


def test_mean_and_stderr_is_the_mean_and_its_ddof1_standard_error(x64):
    v = jnp.array([1.0, 2.0, 4.0, 9.0])
    mean, se = mean_and_stderr(v)
    np.testing.assert_allclose(mean, 4.0, rtol=1e-15)
    np.testing.assert_allclose(se, stats.sem(np.asarray(v)), rtol=1e-14)
    # one estimate-and-error helper: the flow objectives' Monte Carlo estimates use the same function
    from vlab.objectives import flow as fo

    assert fo.mean_and_stderr is mean_and_stderr
    key = jax.random.key(0)
    est, est_se = exclusive_kl_mc(key, 0.5, 1.5, lambda x: -0.5 * x**2, 5000)
    eps = jax.random.normal(key, (5000,))
    terms = -0.5 * eps**2 - jnp.log(1.5) - 0.5 * np.log(2 * np.pi) + 0.5 * (0.5 + 1.5 * eps) ** 2
    np.testing.assert_allclose([est, est_se], mean_and_stderr(terms), rtol=1e-12)
