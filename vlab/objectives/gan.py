"""GAN objectives as two-player games: losses, regularisers, the Dirac-GAN and the seed's 1-D Gaussian GAN.

A discriminator is a logit ``s(d, x)`` (``D = sigmoid(s)`` for the logistic losses, a critic for WGAN), a
generator maps latents to samples. :func:`gan_game` turns them into a :class:`vlab.models.games.Game` with one of
the losses (:class:`GANLoss`)

* :data:`SATURATING`      ``min_G max_D  E_real log D(x) + E_z log(1 - D(G(z)))``   (seed 000 question 2, eq. 7)
* :data:`NON_SATURATING`  the discriminator as above; the generator minimises ``-E_z log D(G(z))``
* :data:`WGAN`            ``min_G max_D  E_real s(x) - E_z s(G(z))`` (no clipping)

and the regularisers of Mescheder, Geiger & Nowozin (2018), "Which training methods for GANs actually
converge?": ``R1 = r1/2 E_real ||grad_x s(x)||^2``, ``R2 = r2/2 E_fake ||grad_x s(x)||^2`` (added to the
discriminator's loss) and instance noise ``N(0, noise_std^2)`` added to real and generated samples.
:data:`LOSSES` names the losses for configs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr, ndtri

from vlab.distributions.divergences import standard_normal_rule
from vlab.keys import stream
from vlab.models.games import Game


class GANLoss(NamedTuple):
    """A GAN loss: what each player optimises, from the discriminator's logits on real (``s_real``) and
    generated (``s_fake``) samples, with the closed-form coefficients and derivatives that depend on it.

    ``discriminator_value(s_real, s_fake)`` is what the discriminator maximises and ``generator_loss(s_fake)``
    what the generator minimises. ``dirac_slope`` and ``dirac_noise`` give the Dirac-GAN's Jacobian
    (:func:`dirac_jacobian`): ``b = dirac_slope`` and ``c = r1 + r2 + dirac_noise * noise_std^2``. The
    per-sample derivatives of seed 003, as functions of ``D = sigmoid(s)`` (:func:`seed_gradients`), are
    ``d value / d s_real = real_weight(D) / n``, ``d value / d s_fake = -fake_weight(D) / n`` and
    ``d generator_loss / d s_fake = -generator_weight(D) / n``.
    """

    discriminator_value: Callable[[jax.Array, jax.Array], jax.Array]
    generator_loss: Callable[[jax.Array], jax.Array]
    dirac_slope: float
    dirac_noise: float
    real_weight: Callable[[jax.Array], jax.Array]
    fake_weight: Callable[[jax.Array], jax.Array]
    generator_weight: Callable[[jax.Array], jax.Array]


def _logistic_value(s_real: jax.Array, s_fake: jax.Array) -> jax.Array:
    """``mean log sigmoid(s_real) + mean log sigmoid(-s_fake)``: ``log D(x) + log(1 - D(G(z)))``."""
    return jnp.mean(jax.nn.log_sigmoid(s_real)) + jnp.mean(jax.nn.log_sigmoid(-s_fake))


def _critic_value(s_real: jax.Array, s_fake: jax.Array) -> jax.Array:
    """WGAN's ``mean s_real - mean s_fake``."""
    return jnp.mean(s_real) - jnp.mean(s_fake)


def _ones(p: jax.Array) -> jax.Array:
    return jnp.ones_like(p)


SATURATING = GANLoss(
    discriminator_value=_logistic_value,
    generator_loss=lambda s_fake: jnp.mean(jax.nn.log_sigmoid(-s_fake)),  # mean log(1 - D(G(z)))
    dirac_slope=0.5, dirac_noise=0.5,
    real_weight=lambda p: 1 - p, fake_weight=lambda p: p, generator_weight=lambda p: p,
)
NON_SATURATING = GANLoss(
    discriminator_value=_logistic_value,
    generator_loss=lambda s_fake: -jnp.mean(jax.nn.log_sigmoid(s_fake)),  # -mean log D(G(z)), Goodfellow et al.
    dirac_slope=0.5, dirac_noise=0.5,
    real_weight=lambda p: 1 - p, fake_weight=lambda p: p, generator_weight=lambda p: 1 - p,
)
WGAN = GANLoss(
    discriminator_value=_critic_value,
    generator_loss=lambda s_fake: -jnp.mean(s_fake),
    dirac_slope=1.0, dirac_noise=0.0,
    real_weight=_ones, fake_weight=_ones, generator_weight=_ones,
)

# The losses by the names configs use; only the config layer looks names up here.
LOSSES: dict[str, GANLoss] = {"saturating": SATURATING, "non_saturating": NON_SATURATING, "wgan": WGAN}


def gradient_penalty(logit: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
    """``1/2 mean_i ||grad_x s(x_i)||^2`` over a batch ``x`` of shape ``(n, ...)`` (R1 on real, R2 on
    generated samples). ``logit`` maps the batch to ``(n,)`` logits, each depending on its own sample only."""
    g = jax.grad(lambda x: jnp.sum(logit(x)))(x)
    return 0.5 * jnp.mean(jnp.sum(g.reshape(g.shape[0], -1) ** 2, axis=1))


def gan_game(logit: Callable[[Any, jax.Array], jax.Array], generate: Callable[[Any, jax.Array], jax.Array],
             sample_real: Callable[[jax.Array], jax.Array],
             sample_latent: Callable[[jax.Array], jax.Array], *,
             loss: GANLoss = SATURATING, r1: float = 0.0, r2: float = 0.0, noise_std: float = 0.0) -> Game:
    """The GAN between discriminator logit ``logit(d, x)`` and generator ``generate(g, z)``.

    The discriminator minimises ``-loss.discriminator_value + R1 + R2``; the generator minimises
    ``loss.generator_loss``. Both players see the same samples for a given key.

    Args:
        logit: ``(d, x) -> (n,)`` logits of a batch ``x``, each depending on its own sample only.
        generate: ``(g, z) -> x``, the generator applied to a batch of latents.
        sample_real: ``key -> x``, a batch of real samples (drawn from the stream ``"real"``).
        sample_latent: ``key -> z``, a batch of latents (drawn from the stream ``"latent"``).
        loss: the GAN loss, e.g. :data:`SATURATING`.
        r1: weight of the R1 penalty on real samples (``>= 0``).
        r2: weight of the R2 penalty on generated samples (``>= 0``).
        noise_std: standard deviation of the instance noise added to real and generated samples (streams
            ``"noise/real"``, ``"noise/fake"``); ``0`` adds none.

    Returns:
        The :class:`vlab.models.games.Game` of the two players.
    """
    if not isinstance(loss, GANLoss):
        raise TypeError(f"loss {loss!r} is not a GANLoss: expected e.g. vlab.objectives.gan.SATURATING")
    for name, v in (("r1", r1), ("r2", r2), ("noise_std", noise_std)):
        if isinstance(v, int | float) and v < 0:
            raise ValueError(f"{name} = {v} is not valid: expected a number >= 0")
    # a regulariser given as a Python 0 is left out of the program; an array (e.g. vmapped) always enters it
    use_r1, use_r2, use_noise = (not (isinstance(v, int | float) and v == 0) for v in (r1, r2, noise_std))

    def samples(g: Any, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        x_real = sample_real(stream(key, "real"))
        x_fake = generate(g, sample_latent(stream(key, "latent")))
        if use_noise:
            x_real = x_real + noise_std * jax.random.normal(stream(key, "noise/real"), x_real.shape, x_real.dtype)
            x_fake = x_fake + noise_std * jax.random.normal(stream(key, "noise/fake"), x_fake.shape, x_fake.dtype)
        return x_real, x_fake

    def loss_d(d: Any, g: Any, key: jax.Array) -> jax.Array:
        x_real, x_fake = samples(g, key)
        out = -loss.discriminator_value(logit(d, x_real), logit(d, x_fake))
        if use_r1:
            out = out + r1 * gradient_penalty(lambda x: logit(d, x), x_real)
        if use_r2:
            out = out + r2 * gradient_penalty(lambda x: logit(d, x), jax.lax.stop_gradient(x_fake))
        return out

    def loss_g(d: Any, g: Any, key: jax.Array) -> jax.Array:
        _, x_fake = samples(g, key)
        return loss.generator_loss(logit(d, x_fake))

    return Game(loss_d, loss_g)


# ------------------------------------------------------------------------------------------- Dirac-GAN


def standard_nodes(n: int) -> jax.Array:
    """``n`` deterministic points with mean exactly 0 and variance exactly 1: the normal quantiles at
    ``(i + 1/2) / n``, standardised. An expectation over instance noise becomes a fixed average, so the noisy
    Dirac-GAN stays a deterministic game whose Jacobian at the equilibrium is exact (it needs only
    the noise's first two moments)."""
    with jax.ensure_compile_time_eval():  # a constant of the program, not ops to compile
        q = ndtri((jnp.arange(n) + 0.5) / n)
        return (q - q.mean()) / q.std()


def dirac_gan(loss: GANLoss = SATURATING, *, r1: float = 0.0, r2: float = 0.0, noise_std: float = 0.0,
              x_real: float = 0.0, n_noise: int = 64) -> Game:
    """The Dirac-GAN of Mescheder et al. (2018): data a point mass at ``x_real``, generator a point mass at
    ``theta`` (parameter ``g``), linear discriminator ``s(x) = psi x`` (parameter ``d``);
    equilibrium ``(psi, theta) = (0, x_real)``.

    With ``x_real = 0`` the field's Jacobian there is ``[[c, b], [-b, 0]]`` with ``b = f'(0)`` (1/2 for the
    logistic losses, 1 for WGAN) and ``c = r1 + r2 + noise_std^2 / 2`` (logistic) or ``r1 + r2`` (WGAN):
    purely imaginary eigenvalues ``+- i b`` without a regulariser, so simultaneous GDA spirals out, and
    eigenvalues with positive real part ``(c +- sqrt(c^2 - 4 b^2)) / 2`` with one.

    Args:
        loss: the GAN loss, e.g. :data:`SATURATING`.
        r1: weight of the R1 penalty.
        r2: weight of the R2 penalty.
        noise_std: standard deviation of the instance noise, its expectation taken over ``n_noise`` fixed
            nodes (:func:`standard_nodes`).
        x_real: where the data's point mass sits.
        n_noise: nodes of the instance-noise expectation.

    Returns:
        The game over the scalar players ``psi`` (discriminator) and ``theta`` (generator).
    """
    plain = isinstance(noise_std, int | float) and noise_std == 0
    eps = jnp.zeros((1,)) if plain else noise_std * standard_nodes(n_noise)
    return gan_game(
        logit=lambda psi, x: psi * x,
        generate=lambda theta, e: theta + e,
        sample_real=lambda key: x_real + eps,
        sample_latent=lambda key: eps,
        loss=loss, r1=r1, r2=r2,
    )


def dirac_jacobian(loss: GANLoss, *, r1: float = 0.0, r2: float = 0.0, noise_std: float = 0.0) -> jax.Array:
    """Closed-form Jacobian ``[[c, b], [-b, 0]]`` of the Dirac-GAN's field at its equilibrium (``x_real = 0``),
    ``b = loss.dirac_slope`` and ``c = r1 + r2 + loss.dirac_noise * noise_std^2``; see :func:`dirac_gan`."""
    b = loss.dirac_slope
    c = r1 + r2 + loss.dirac_noise * noise_std**2
    return jnp.array([[c, b], [-b, 0.0]])


# ------------------------------------------------------------------------------------------- 1-D Gaussian GAN


def uniform_to_gaussian(mu: jax.Array, z: jax.Array) -> jax.Array:
    """The seed's generator ``g(z) = mu_g + Phi^{-1}(z)``: ``z ~ Uniform(0, 1)`` gives ``N(mu_g,
    1)`` (seed 000 question 2)."""
    return mu + ndtri(z)


def logistic_logit(d: dict, x: jax.Array) -> jax.Array:
    """A logistic discriminator ``D(x) = sigmoid(w x + b)``; its logit ``w x + b``."""
    return d["w"] * x + d["b"]


def gaussian_gan(batch: int, *, mu_real: float = 1.0, loss: GANLoss = SATURATING, r1: float = 0.0,
                 r2: float = 0.0, noise_std: float = 0.0) -> Game:
    """Seed 000 question 2: real data ``N(mu_real, 1)``, generator ``{"mu": mu_g}`` mapping ``z ~ U(0, 1)``
    through :func:`uniform_to_gaussian`, discriminator ``{"w", "b"}`` logistic in ``x``. Both players'
    distributions have unit variance, so the optimal discriminator's logit is linear and representable.

    Args:
        batch: real and generated samples per evaluation.
        mu_real: mean of the real data.
        loss: the GAN loss, e.g. :data:`NON_SATURATING`.
        r1: weight of the R1 penalty.
        r2: weight of the R2 penalty.
        noise_std: standard deviation of the instance noise.

    Returns:
        The game (:func:`gan_game`) over ``d = {"w", "b"}`` and ``g = {"mu"}``.
    """
    u_min = jnp.finfo(jnp.float32).eps
    return gan_game(
        logit=logistic_logit,
        generate=lambda g, z: uniform_to_gaussian(g["mu"], z),
        sample_real=lambda key: mu_real + jax.random.normal(key, (batch,)),
        sample_latent=lambda key: jax.random.uniform(key, (batch,), minval=u_min, maxval=1.0),
        loss=loss, r1=r1, r2=r2, noise_std=noise_std,
    )


def expected_value(d: dict, mu_real: float | jax.Array, mu_g: float | jax.Array, nodes: int = 64) -> jax.Array:
    """``V(D) = E_{N(mu_real,1)} log D(x) + E_{N(mu_g,1)} log(1 - D(x))`` for ``D = sigmoid(w x + b)``, by
    ``nodes``-point Gauss-Hermite quadrature (seed 000 question 2a: maximised by :func:`optimal_discriminator`)."""
    u, v = standard_normal_rule(nodes, "gauss_hermite")
    s_real = logistic_logit(d, mu_real + u)
    s_fake = logistic_logit(d, mu_g + u)
    return jnp.sum(v * (jax.nn.log_sigmoid(s_real) + jax.nn.log_sigmoid(-s_fake)))


def discriminator_objective(nodes: int = 64) -> Callable[[dict, dict, jax.Array, Any], tuple[jax.Array, dict]]:
    """The objective of a logistic discriminator trained alone against a frozen generator:
    ``loss(d, batch, key, hp) = -V(D)`` (:func:`expected_value`) with ``batch = {"mu_real", "mu_g"}``, the means
    of the real and generated ``N(., 1)``. Quadrature makes it deterministic (``key`` and ``hp`` are unused); its
    minimiser is ``D*``, ``w = mu_real - mu_g``, ``b = -(mu_real^2 - mu_g^2) / 2``."""

    def loss(d: dict, batch: dict, key: jax.Array, hp: Any) -> tuple[jax.Array, dict]:
        del key, hp
        return -expected_value(d, batch["mu_real"], batch["mu_g"], nodes), {}

    return loss


def seed_gradients(d: dict, mu: jax.Array, x_real: jax.Array, u: jax.Array, loss: GANLoss) -> dict:
    """The hand-derived gradients of seed 003 questions 11-17 (written out correctly) for the logit
    ``s = w x + b`` (``D = sigmoid(s)``) and ``G(z) = mu + Phi^{-1}(z)``, with ``x_f = G(u)``.

    Logistic losses: ``dV/dw = mean (1 - D(x_r)) x_r - mean D(x_f) x_f``, ``dV/db = mean (1 - D(x_r)) - mean
    D(x_f)``; generator: saturating ``d/dmu mean log(1 - D(x_f)) = -mean D(x_f) w``, non-saturating
    ``d/dmu -mean log D(x_f) = -mean (1 - D(x_f)) w``. In general the weights ``1 - D``, ``D`` and the
    generator's are the loss's ``real_weight``, ``fake_weight`` and ``generator_weight`` (all 1 for WGAN).

    Args:
        d: the discriminator ``{"w", "b"}``.
        mu: the generator's mean.
        x_real: a batch of real samples.
        u: a batch of uniform latents in ``(0, 1)``.
        loss: the GAN loss.

    Returns:
        ``{"w": dV/dw, "b": dV/db, "mu": d generator_loss / d mu}``.
    """
    x_fake = uniform_to_gaussian(mu, u)
    d_real = jax.nn.sigmoid(d["w"] * x_real + d["b"])
    d_fake = jax.nn.sigmoid(d["w"] * x_fake + d["b"])
    dw = jnp.mean(loss.real_weight(d_real) * x_real) - jnp.mean(loss.fake_weight(d_fake) * x_fake)
    db = jnp.mean(loss.real_weight(d_real)) - jnp.mean(loss.fake_weight(d_fake))
    dmu = -jnp.mean(loss.generator_weight(d_fake)) * d["w"]
    return {"w": dw, "b": db, "mu": dmu}


def jax_gradients(d: dict, mu: jax.Array, x_real: jax.Array, u: jax.Array, loss: GANLoss) -> dict:
    """The derivatives of :func:`seed_gradients` by jax.grad of ``loss.discriminator_value`` and
    ``loss.generator_loss``.

    Args:
        d: the discriminator ``{"w", "b"}``.
        mu: the generator's mean.
        x_real: a batch of real samples.
        u: a batch of uniform latents in ``(0, 1)``.
        loss: the GAN loss.

    Returns:
        ``{"w", "b", "mu"}`` as :func:`seed_gradients`.
    """

    def value(d):
        return loss.discriminator_value(logistic_logit(d, x_real), logistic_logit(d, uniform_to_gaussian(mu, u)))

    def g_loss(mu):
        return loss.generator_loss(logistic_logit(d, uniform_to_gaussian(mu, u)))

    gd = jax.grad(value)(d)
    return {"w": gd["w"], "b": gd["b"], "mu": jax.grad(g_loss)(mu)}


def optimal_discriminator(x: jax.Array, mu_real: float, mu_g: float) -> jax.Array:
    """``D*(x) = p(x) / (p(x) + p_g(x))`` for ``p = N(mu_real, 1)`` and ``p_g = N(mu_g, 1)`` (seed 000 q. 2a):
    ``sigmoid((mu_real - mu_g) x - (mu_real^2 - mu_g^2) / 2)``."""
    return jax.nn.sigmoid((mu_real - mu_g) * x - (mu_real**2 - mu_g**2) / 2)


def prob_real_declared_fake(gamma: jax.Array, mu_real: float = 1.0) -> jax.Array:
    """Seed 000 question 2b: the rule "real iff ``x >= mu_real - gamma``" calls a real point
    ``x ~ N(mu_real, 1)`` fake with probability ``P(x < mu_real - gamma) = Phi(-gamma)``."""
    del mu_real
    return ndtr(-gamma)


def threshold_accuracy(gamma: jax.Array, mu_g: jax.Array, mu_real: float = 1.0) -> jax.Array:
    """Probability that the threshold rule decides correctly, real and generated points equally likely:
    ``(Phi(gamma) + Phi(mu_real - gamma - mu_g)) / 2``.

    A hard rule has ``log D = -inf`` on every misclassified point, so seed 000 question 2c's "maximise L"
    is read as maximising this; its stationary point ``phi(gamma) = phi(mu_real - gamma - mu_g)`` is the
    seed's ``gamma* = (mu_real - mu_g) / 2``: the threshold halfway between the two means.
    """
    return 0.5 * (ndtr(gamma) + ndtr(mu_real - gamma - mu_g))


def best_threshold(mu_g: jax.Array, mu_real: float = 1.0, *, grid: int = 2001, newton: int = 8) -> jax.Array:
    """``argmax_gamma`` of :func:`threshold_accuracy`, found numerically: the best point of a grid on
    ``[-|mu_real - mu_g| - 3, |mu_real - mu_g| + 3]`` polished by Newton steps on ``jax.grad``."""
    f = lambda t: threshold_accuracy(t, mu_g, mu_real)
    span = jnp.abs(mu_real - mu_g) + 3.0
    ts = jnp.linspace(-span, span, grid)
    t = ts[jnp.argmax(jax.vmap(f)(ts))]
    df, d2f = jax.grad(f), jax.grad(jax.grad(f))

    def newton_step(t, _):
        h = d2f(t)
        return jnp.where(h < 0, t - df(t) / h, t), None

    return jax.lax.scan(newton_step, t, None, length=newton)[0]


# ------------------------------------------------------------------------------------------- mode coverage


def mode_coverage(x: jax.Array, centres: jax.Array, std: float, *, k_sigma: float = 3.0,
                  min_fraction: float = 0.01) -> tuple[jax.Array, jax.Array]:
    """``(modes covered, fraction of high-quality samples)`` for samples ``x`` of a mixture with ``centres``.

    A sample is high quality when it lies within ``k_sigma * std`` of its nearest centre; a mode is covered
    when at least ``min_fraction`` of the samples are high-quality samples assigned to it (the usual
    8-Gaussians protocol of Metz et al. 2017, "Unrolled GANs").

    Args:
        x: samples, ``(n, dim)``.
        centres: the mixture's centres, ``(k, dim)``.
        std: the components' standard deviation.
        k_sigma: the radius of a high-quality sample, in standard deviations.
        min_fraction: the fraction of all samples a mode needs to count as covered.

    Returns:
        The number of covered modes and the fraction of high-quality samples.
    """
    d2 = jnp.sum((x[:, None, :] - centres[None, :, :]) ** 2, axis=-1)
    nearest = jnp.argmin(d2, axis=1)
    good = jnp.min(d2, axis=1) <= (k_sigma * std) ** 2
    counts = jnp.sum(jax.nn.one_hot(nearest, centres.shape[0]) * good[:, None], axis=0)
    return jnp.sum(counts >= min_fraction * x.shape[0]), jnp.mean(good)
