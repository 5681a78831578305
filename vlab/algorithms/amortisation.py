"""The amortisation gap of a VAE's encoder (seed 002 question 1): each point's own q_i against the amortised q(z|x).

An encoder q_phi(z|x) = N(mu(x), diag sigma^2(x)) shares its parameters over all x. For one point x_i the best
Gaussian of the family is q_i* = argmax_q ELBO(x_i; q), and

    log p(x_i) - ELBO(x_i; q_phi) = [log p(x_i) - ELBO(x_i; q_i*)] + [ELBO(x_i; q_i*) - ELBO(x_i; q_phi)],

the approximation gap (the Gaussian family's) plus the amortisation gap (the shared encoder's), both >= 0.
:func:`amortisation_gap` estimates the second by optimising each q_i = N(mu_i, diag sigma_i^2) on its own.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vlab.distributions import kl_to_standard_normal
from vlab.engine import fit
from vlab.keys import stream
from vlab.models.vae import VAESpec, encode, log_likelihood


def point_elbos(model: dict, spec: VAESpec, x: jax.Array, q: dict, key: jax.Array, n: int) -> jax.Array:
    """ELBO(x_i; q_i) = E_{q_i}[log p(x_i|z)] - KL(q_i || N(0, I)) for every row x_i of ``x``, with
    q_i = N(q["mu"][i], diag exp(2 q["log_sigma"][i])): the reconstruction term by ``n`` reparameterised samples,
    the KL in closed form."""
    eps = jax.random.normal(key, (n, *q["mu"].shape), q["mu"].dtype)
    sigma = jnp.exp(q["log_sigma"])
    rec = jnp.mean(log_likelihood(model, spec, x, q["mu"] + sigma * eps), 0)
    return rec - jnp.sum(kl_to_standard_normal(q["mu"], sigma), -1)


def amortisation_gap(model: dict, spec: VAESpec, x: jax.Array, key: jax.Array, *, steps: int, samples: int,
                     lr: float = 1e-2, eval_samples: int = 1000) -> dict[str, np.ndarray]:
    """Per-point ELBOs of the amortised q_phi(z|x_i) and of each point's own q_i, started at the encoder's output
    (mu_i, log sigma_i) and trained by Adam on -sum_i ELBO(x_i; q_i) with ``samples`` draws of z per point and step.

    All points train at once: the q_i share no parameters and Adam acts coordinate-wise, so the sum's optimisation
    is every point's own. Both ELBOs are estimated with ``eval_samples`` draws on the same noise; their difference
    is the amortisation gap per point (>= 0 up to that noise when the optimisation converged).
    """
    mu0, sigma0 = encode(model, spec, x)
    q0 = {"mu": mu0, "log_sigma": jnp.log(sigma0)}

    def loss(q, batch, k, hp):
        e = point_elbos(batch[0], spec, batch[1], q, k, samples)
        return -jnp.sum(e), {"elbo": jnp.mean(e)}

    res = fit(loss, q0, optax.adam(lr), stream(key, "fit"), steps=steps, data=(model, x), chunk_size=steps,
              log_every=max(steps // 50, 1))
    measure = jax.jit(lambda q: point_elbos(model, spec, x, q, stream(key, "evaluate"), eval_samples))
    return {"amortised": np.asarray(measure(q0)), "optimised": np.asarray(measure(res.params))}


def gap_figure(am: dict[str, np.ndarray]):
    """Each point's optimised ELBO against its amortised one, with the diagonal of no gap."""
    from vlab.harness import plots

    fig, ax = plots.figure(1, 1, size=(5.5, 4.5))
    a, o = am["amortised"], am["optimised"]
    ax.scatter(a, o, s=8, color=plots.color(0))
    lo, hi = float(min(a.min(), o.min())), float(max(a.max(), o.max()))
    ax.plot([lo, hi], [lo, hi], color=plots.color(7), lw=1, label="no gap")
    ax.set_xlabel("amortised ELBO, q_phi(z|x_i)")
    ax.set_ylabel("optimised ELBO, own q_i")
    ax.set_title(f"amortisation gap: mean {np.mean(o - a):.3f} nats")
    ax.legend()
    return fig
