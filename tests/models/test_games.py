"""Games: fields by jax.grad, the stop-gradient surrogate that lets one optimiser play a game."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vlab.keys import stream
from vlab.models import games
from vlab.objectives import gan


def test_bilinear_field_is_seeds_gradient(x64):
    """Seed 002 q4: grad_d V = g and grad_g V = d, so F = (-g, d); stationary point (0, 0)."""
    f = games.field(games.bilinear(), (jnp.array(0.3), jnp.array(-2.0)), jax.random.key(0))
    np.testing.assert_allclose(jnp.stack(f), [2.0, 0.3])
    f0 = games.field(games.bilinear(), (jnp.array(0.0), jnp.array(0.0)), jax.random.key(0))
    np.testing.assert_allclose(jnp.stack(f0), [0.0, 0.0])


def test_matrix_bilinear_field(x64):
    a = jnp.array([[1.0, 2.0], [0.5, -1.0], [0.0, 3.0]])
    d, g = jnp.array([0.1, -0.2, 0.3]), jnp.array([1.0, 2.0])
    fd, fg = games.field(games.matrix_bilinear(a), (d, g), jax.random.key(0))
    np.testing.assert_allclose(fd, -a @ g)
    np.testing.assert_allclose(fg, a.T @ d)


def test_surrogate_gradient_is_the_field(x64):
    game = gan.gaussian_gan(64, loss=gan.NON_SATURATING, r1=0.5)
    params = {"d": {"w": jnp.array(0.3), "b": jnp.array(-0.1)}, "g": {"mu": jnp.array(-0.5)}}
    key = jax.random.key(3)
    (value, aux), grads = jax.value_and_grad(lambda p: games.surrogate_loss(game)(p, None, key, {}),
                                             has_aux=True)(params)
    fd, fg = games.field(game, (params["d"], params["g"]), key)
    for k in ("w", "b"):
        np.testing.assert_allclose(grads["d"][k], fd[k], rtol=1e-12)
    np.testing.assert_allclose(grads["g"]["mu"], fg["mu"], rtol=1e-12)
    d, g = params["d"], params["g"]
    np.testing.assert_allclose([aux["loss_d"], aux["loss_g"]], [game.loss_d(d, g, key), game.loss_g(d, g, key)])
    np.testing.assert_allclose(value, aux["loss_d"] + aux["loss_g"], rtol=1e-12)


def test_gan_players_see_the_same_named_samples(x64):
    """The players draw a step's samples from named streams of its key, the same for both: in the saturating
    game loss_d + loss_g = -E_real log D(x) (the generated terms cancel), with x from the stream "real"."""
    game = gan.gaussian_gan(32, mu_real=1.0, loss=gan.SATURATING)
    d, g = {"w": jnp.array(0.6), "b": jnp.array(0.2)}, {"mu": jnp.array(-1.0)}
    for k in range(3):
        key = jax.random.key(k)
        x_real = 1.0 + jax.random.normal(stream(key, "real"), (32,))
        expected = -jnp.mean(jax.nn.log_sigmoid(gan.logistic_logit(d, x_real)))
        np.testing.assert_allclose(game.loss_d(d, g, key) + game.loss_g(d, g, key), expected, rtol=1e-12)


def test_zero_sum_losses_cancel(x64):
    game = games.zero_sum(lambda d, g, key: jnp.sin(d) * g**2)
    d, g = jnp.array(0.4), jnp.array(1.5)
    assert float(game.loss_d(d, g, None) + game.loss_g(d, g, None)) == 0.0
