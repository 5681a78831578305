"""The amortisation gap of a VAE's encoder (seed 002 question 1): each point's own q_i against the amortised q(z|x).

An encoder q_phi(z|x) = N(mu(x), diag sigma^2(x)) shares its parameters over all x. For one point x_i the best
Gaussian of the family is q_i* = argmax_q ELBO(x_i; q), and

    log p(x_i) - ELBO(x_i; q_phi) = [log p(x_i) - ELBO(x_i; q_i*)] + [ELBO(x_i; q_i*) - ELBO(x_i; q_phi)],

the approximation gap (the Gaussian family's) plus the amortisation gap (the shared encoder's), both >= 0.
:func:`amortisation_gap` estimates the second by optimising each q_i = N(mu_i, diag sigma_i^2) on its own.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vlab.distributions import kl_to_standard_normal
from vlab.keys import stream
from vlab.models.vae import VAESpec, encode, log_px_given_z


def point_elbos(model: dict, spec: VAESpec, x: jax.Array, q: dict, key: jax.Array, n: int) -> jax.Array:
    """ELBO(x_i; q_i) = E_{q_i}[log p(x_i|z)] - KL(q_i || N(0, I)) for every row x_i of ``x``: the reconstruction
    term by ``n`` reparameterised samples, the KL in closed form.

    Args:
        model: the encoder and decoder parameters.
        spec: the networks' static shape.
        x: the points ``(B, x_dim)``.
        q: each point's own Gaussian, q_i = N(q["mu"][i], diag exp(2 q["log_sigma"][i])), both ``(B, z_dim)``.
        key: the randomness of the samples.
        n: samples of z per point.

    Returns:
        ELBO(x_i; q_i) of every point, shape ``(B,)``.
    """
    eps = jax.random.normal(key, (n, *q["mu"].shape), q["mu"].dtype)
    sigma = jnp.exp(q["log_sigma"])
    rec = jnp.mean(log_px_given_z(model, spec, x, q["mu"] + sigma * eps), 0)
    return rec - jnp.sum(kl_to_standard_normal(q["mu"], sigma), -1)


@functools.partial(jax.jit, static_argnames=("spec", "steps", "samples", "lr"))
def optimise_point_posteriors(model: dict, spec: VAESpec, x: jax.Array, q: dict, key: jax.Array, *, steps: int,
                              samples: int, lr: float) -> dict:
    """Each point's own q_i trained by Adam on -sum_i ELBO(x_i; q_i), ``samples`` draws of z per point and step.

    All points train at once: the q_i share no parameters and Adam acts coordinate-wise, so the sum's optimisation
    is every point's own. Step t draws its noise from the second half of ``split(fold_in(key, t))``.

    Args:
        model: the encoder and decoder parameters (held).
        spec: the networks' static shape.
        x: the points ``(B, x_dim)``.
        q: the starting ``{"mu", "log_sigma"}``, both ``(B, z_dim)``.
        key: the randomness of the steps.
        steps: Adam steps.
        samples: samples of z per point and step.
        lr: Adam's learning rate.

    Returns:
        The trained ``{"mu", "log_sigma"}``.
    """
    optimizer = optax.adam(lr)

    def loss(q_: dict, k: jax.Array) -> jax.Array:
        return -jnp.sum(point_elbos(model, spec, x, q_, k, samples))

    def step(carry, t):
        q_, state = carry
        _, k_loss = jax.random.split(jax.random.fold_in(key, t))
        updates, state = optimizer.update(jax.grad(loss)(q_, k_loss), state, q_)
        return (optax.apply_updates(q_, updates), state), None

    (q, _), _ = jax.lax.scan(step, (q, optimizer.init(q)), jnp.arange(steps, dtype=jnp.int32))
    return q


def amortisation_gap(model: dict, spec: VAESpec, x: jax.Array, key: jax.Array, *, steps: int, samples: int,
                     lr: float = 1e-2, eval_samples: int = 1000) -> dict[str, np.ndarray]:
    """Per-point ELBOs of the amortised q_phi(z|x_i) and of each point's own q_i, started at the encoder's output
    (mu_i, log sigma_i) and trained by :func:`optimise_point_posteriors`.

    Both ELBOs are estimated with ``eval_samples`` draws on the same noise; their difference is the amortisation gap
    per point (>= 0 up to that noise when the optimisation converged).

    Args:
        model: the encoder and decoder parameters.
        spec: the networks' static shape.
        x: the points ``(B, x_dim)``.
        key: the randomness of the optimisation ("fit") and of the estimates ("evaluate").
        steps: Adam steps of the q_i.
        samples: samples of z per point and step.
        lr: Adam's learning rate.
        eval_samples: samples of z per point of the final estimates.

    Returns:
        ``{"amortised": (B,), "optimised": (B,)}``, host arrays.
    """
    mu0, sigma0 = encode(model, spec, x)
    q0 = {"mu": mu0, "log_sigma": jnp.log(sigma0)}
    q = optimise_point_posteriors(model, spec, x, q0, stream(key, "fit"), steps=steps, samples=samples, lr=lr)
    measure = jax.jit(lambda q_: point_elbos(model, spec, x, q_, stream(key, "evaluate"), eval_samples))
    return {"amortised": np.asarray(measure(q0)), "optimised": np.asarray(measure(q))}
