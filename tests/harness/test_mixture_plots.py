"""Figures of a latent Gaussian mixture: the projection of the latent panel and the component draws."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vlab.harness import mixture_plots


def test_latent_basis_is_the_identity_in_2d_and_principal_directions_above():
    rng = np.random.default_rng(0)
    w, mu = rng.normal(size=(50, 2)), rng.normal(size=(4, 2))
    centre, basis = mixture_plots.latent_basis(w, mu)
    np.testing.assert_array_equal(centre, 0.0)
    np.testing.assert_array_equal(basis, np.eye(2))
    # in 3-D with almost no spread along the third axis, the two directions span the first two
    w3 = np.concatenate([rng.normal(size=(200, 2)) * [3.0, 1.0], 1e-3 * rng.normal(size=(200, 1))], 1)
    centre, basis = mixture_plots.latent_basis(w3, np.zeros((4, 3)))
    np.testing.assert_allclose(basis @ basis.T, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(np.abs(basis[:, 2]), 0.0, atol=1e-3)
    assert mixture_plots.latent_axis_labels(2) == ("$w_1$", "$w_2$")
    assert all("principal direction" in s for s in mixture_plots.latent_axis_labels(3))


def test_component_draws_have_each_components_mean_and_covariance():
    mu = jnp.array([[0.0, 0.0], [5.0, -1.0]])
    tril = jnp.array([[[1.0, 0.0], [0.0, 1.0]], [[0.5, 0.0], [0.8, 0.3]]])
    w = np.asarray(mixture_plots.component_draws(jax.random.key(0), mu, tril, 20000)).reshape(2, 20000, 2)
    for k in range(2):
        np.testing.assert_allclose(w[k].mean(0), mu[k], atol=0.03)
        np.testing.assert_allclose(np.cov(w[k].T), tril[k] @ tril[k].T, atol=0.03)
