"""Models of the seeds as pure functions over parameter pytrees: the VAE's encoder and decoder, the
Gaussian-Bernoulli latent variable model, discrete Bayesian networks, masked convolutions and two-player games."""
