"""Probability distributions: Gaussians and their KLs, divergences by quadrature and Monte Carlo, target
densities, discrete distributions and observation likelihoods."""

from vlab.distributions.gaussian import *  # noqa: F403
