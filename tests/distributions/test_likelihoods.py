"""Observation models against scipy's densities and the Bernoulli formula written out."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from vlab.distributions import likelihoods


def test_bernoulli_logits_matches_formula(x64):
    key = jax.random.PRNGKey(0)
    logits = 3.0 * jax.random.normal(key, (5, 7))
    x = jax.random.uniform(jax.random.PRNGKey(1), (5, 7))
    p = 1.0 / (1.0 + np.exp(-np.asarray(logits)))
    expected = np.sum(np.asarray(x) * np.log(p) + (1 - np.asarray(x)) * np.log1p(-p), axis=-1)
    np.testing.assert_allclose(likelihoods.bernoulli_logits_log_prob(x, logits), expected, rtol=1e-12)


def test_bernoulli_logits_finite_at_extreme_logits():
    out = likelihoods.bernoulli_logits_log_prob(jnp.array([1.0, 0.0]), jnp.array([-200.0, 200.0]))
    assert np.isfinite(out) and out == pytest.approx(-400.0)


def test_gaussian_matches_scipy(x64):
    x = jnp.array([[0.3, -1.2, 2.0]])
    mu = jnp.array([0.0, -1.0, 1.5])
    log_sigma = jnp.log(jnp.array([0.5, 2.0, 1.0]))
    expected = stats.norm(np.asarray(mu), np.exp(np.asarray(log_sigma))).logpdf(np.asarray(x)).sum()
    assert float(likelihoods.diag_normal_log_prob(x, mu, log_sigma)[0]) == pytest.approx(expected, rel=1e-12)


KINDS = {"bernoulli": likelihoods.BERNOULLI, "gaussian_fixed": likelihoods.GAUSSIAN_FIXED,
         "gaussian_learned": likelihoods.GAUSSIAN_LEARNED, "gaussian_decoder": likelihoods.GAUSSIAN_DECODER}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_observation_model(kind, x64):
    lik = KINDS[kind]
    x = jnp.array([[0.2, 0.7]])
    out = jnp.array([[0.1, -0.4, 0.3, -0.2]]) if kind == "gaussian_decoder" else jnp.array([[0.1, -0.4]])
    ls = jnp.log(jnp.array([0.8, 1.3]))
    got = float(lik.log_prob(x, out, ls)[0])
    if kind == "bernoulli":
        want = float(likelihoods.bernoulli_logits_log_prob(x, out)[0])
        mean = 1.0 / (1.0 + np.exp(-np.array([0.1, -0.4])))
    elif kind == "gaussian_decoder":
        want = stats.norm([0.1, -0.4], np.exp([0.3, -0.2])).logpdf([0.2, 0.7]).sum()
        mean = np.array([0.1, -0.4])
    else:
        want = stats.norm([0.1, -0.4], [0.8, 1.3]).logpdf([0.2, 0.7]).sum()
        mean = np.array([0.1, -0.4])
    assert got == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(lik.mean(out)[0], mean, rtol=1e-12)
    assert lik.n_outputs(2) == (4 if kind == "gaussian_decoder" else 2)
    assert lik.learned_sigma == (kind == "gaussian_learned")


def test_the_config_names_every_observation_model():
    from vlab.harness.model_config import LIKELIHOODS

    assert LIKELIHOODS == KINDS
    assert len(set(KINDS.values())) == len(KINDS)  # no two names for one model
