"""GAN objectives against closed forms: Dirac-GAN Jacobians, seed 000 q2 (D*, threshold), seed 003 gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import ndtr

from vlab.algorithms import gda
from vlab.data.toy import circle_mixture, circle_mixture_centres
from vlab.engine import fit
from vlab.harness.config import OptimizerConfig, build_optimizer
from vlab.keys import stream
from vlab.models import games
from vlab.objectives import gan

REGULARISERS = [{}, {"r1": 0.3}, {"r2": 0.6}, {"noise_std": 1.2}, {"r1": 0.2, "noise_std": 0.5}]


def _field_jacobian(game):
    z = (jnp.array(0.0), jnp.array(0.0))
    f = lambda v: jnp.stack(games.field(game, (v[0], v[1]), jax.random.key(0)))
    return jax.jacobian(f)(jnp.stack(z))


@pytest.mark.parametrize("loss", gan.LOSSES.values(), ids=gan.LOSSES)
def test_dirac_field_jacobian_matches_closed_form(x64, loss):
    regs = [jnp.asarray([r.get(k, 0.0) for r in REGULARISERS]) for k in ("r1", "r2", "noise_std")]
    jac = jax.jit(jax.vmap(lambda r1, r2, s: _field_jacobian(gan.dirac_gan(loss, r1=r1, r2=r2, noise_std=s))))(*regs)
    ref = jax.vmap(lambda r1, r2, s: gan.dirac_jacobian(loss, r1=r1, r2=r2, noise_std=s))(*regs)
    np.testing.assert_allclose(jac, ref, atol=1e-12)


def test_dirac_unregularised_simultaneous_gda_diverges_for_every_step_size(x64):
    """Eigenvalues +- i b of the field give |1 - i a b| > 1: provably divergent; the simulation agrees."""
    z0 = (jnp.array(0.05), jnp.array(0.1))
    for name, loss in gan.LOSSES.items():
        game = gan.dirac_gan(loss)
        for a in (0.01, 0.1, 0.5, 1.0):
            rho = gda.spectral_radius(gda.linear_update_matrix(gda.SIMULTANEOUS, a, gan.dirac_jacobian(loss), 1))
            assert float(rho) > 1.0
        traj = gda.simulate(gda.simultaneous(0.2), game, z0, jax.random.key(0), 400, record=False)
        assert float(traj.dist[-1]) > 1.5 * float(traj.dist[0]), name


@pytest.mark.parametrize("reg", [{"r1": 0.3}, {"r2": 0.6}, {"noise_std": 1.2}])
def test_regularised_dirac_gan_converges(x64, reg):
    game = gan.dirac_gan(gan.NON_SATURATING, **reg)
    traj = gda.simulate(gda.simultaneous(0.2), game, (jnp.array(0.5), jnp.array(1.0)), jax.random.key(0), 2000,
                        record=False)
    assert float(traj.dist[-1]) < 1e-6


@pytest.mark.parametrize("rule", [gda.EXTRAGRADIENT, gda.OPTIMISTIC], ids=["extragradient", "optimistic"])
def test_extragradient_and_optimistic_converge_on_the_unregularised_dirac_gan(x64, rule):
    game = gan.dirac_gan(gan.WGAN)
    traj = gda.simulate(gda.make_rule(rule, 0.2), game, (jnp.array(0.5), jnp.array(1.0)), jax.random.key(0),
                        3000, record=False)
    assert float(traj.dist[-1]) < 1e-6


def test_wgan_instance_noise_does_not_help(x64):
    """A linear critic does not see zero-mean noise: WGAN's Jacobian is unchanged (Mescheder et al. 2018)."""
    np.testing.assert_allclose(_field_jacobian(gan.dirac_gan(gan.WGAN, noise_std=2.0)), [[0, 1], [-1, 0]],
                               atol=1e-12)


def test_generator_is_the_seeds_gaussian(x64):
    """g(z) = mu + Phi^{-1}(z) maps U(0, 1) to N(mu, 1): Phi(g(z) - mu) = z."""
    z = jnp.linspace(0.001, 0.999, 101)
    np.testing.assert_allclose(ndtr(gan.uniform_to_gaussian(0.7, z) - 0.7), z, atol=1e-12)


def test_optimal_discriminator_maximises_the_value(x64):
    """Seed 000 q2a: D* = p / (p + p_g) is a stationary point of V, and it is sigmoid((1 - mu_g) x - (1 - mu_g^2)/2)."""
    mu_g = -1.3
    w, b = 1 - mu_g, -(1 - mu_g**2) / 2
    grad = jax.grad(lambda d: gan.expected_value(d, 1.0, mu_g, 80))({"w": jnp.array(w), "b": jnp.array(b)})
    assert abs(float(grad["w"])) < 1e-8 and abs(float(grad["b"])) < 1e-8
    x = jnp.linspace(-4, 4, 9)
    p, pg = jnp.exp(-0.5 * (x - 1) ** 2), jnp.exp(-0.5 * (x - mu_g) ** 2)
    np.testing.assert_allclose(gan.optimal_discriminator(x, 1.0, mu_g), p / (p + pg), rtol=1e-12)


def test_discriminator_objective_trains_to_the_optimal_discriminator(x64):
    """-V(D) by quadrature, deterministic: the engine's fit from D = 1/2 reaches D* = sigmoid((1 - mu_g) x -
    (1 - mu_g^2) / 2), where the objective's gradient vanishes."""
    loss = gan.discriminator_objective(64)
    means = {"mu_real": jnp.array(1.0), "mu_g": jnp.array(-0.5)}
    d0 = {"w": jnp.array(0.0), "b": jnp.array(0.0)}
    value, aux = loss(d0, means, jax.random.key(0), {})
    assert aux == {} and float(value) == pytest.approx(2 * np.log(2), rel=1e-12)  # D = 1/2: -2 log 1/2
    opt = build_optimizer(OptimizerConfig(name="adam", lr=0.05, schedule="cosine"), 1500)
    res = fit(loss, d0, opt, jax.random.key(0), steps=1500, data=means, chunk_size=1500)
    np.testing.assert_allclose([res.params["w"], res.params["b"]], [1.5, -(1 - 0.25) / 2], atol=1e-4)
    star = {"w": jnp.array(1.5), "b": jnp.array(-0.375)}
    grad = jax.grad(lambda d: loss(d, means, jax.random.key(1), {})[0])(star)
    assert max(abs(float(grad["w"])), abs(float(grad["b"]))) < 1e-10


@pytest.mark.parametrize("loss", gan.LOSSES.values(), ids=gan.LOSSES)
def test_seed003_hand_gradients_equal_jax_grad(x64, loss):
    """The hand-derived derivatives each loss carries (its real, fake and generator weights) are jax.grad's."""
    key = jax.random.key(0)
    x_real = 1.0 + jax.random.normal(stream(key, "real"), (64,))
    u = jax.random.uniform(stream(key, "latent"), (64,), minval=1e-6, maxval=1.0)
    d, mu = {"w": jnp.array(0.8), "b": jnp.array(-0.4)}, jnp.array(-0.6)
    hand, auto = gan.seed_gradients(d, mu, x_real, u, loss), gan.jax_gradients(d, mu, x_real, u, loss)
    for k in hand:
        np.testing.assert_allclose(auto[k], hand[k], rtol=1e-12, err_msg=k)


def test_threshold_probability_and_best_threshold(x64):
    """Seed 000 q2b-c: P(real declared fake) = Phi(-gamma) (by sampling) and gamma* = (1 - mu_g) / 2."""
    x = 1.0 + jax.random.normal(jax.random.key(1), (400_000,))
    for gamma in (0.3, 1.0, 2.0):
        p = float(gan.prob_real_declared_fake(jnp.array(gamma)))
        se = np.sqrt(p * (1 - p) / x.size)
        assert abs(float(jnp.mean(x < 1.0 - gamma)) - p) < 4 * se
    mus = jnp.array([-3.0, -1.0, 0.0, 0.6])
    np.testing.assert_allclose(jax.vmap(gan.best_threshold)(mus), (1 - mus) / 2, atol=1e-9)


def test_gradient_penalty_closed_forms(x64):
    """Linear logit w.x: 1/2 ||w||^2. Quadratic logit x.x: 1/2 mean ||2 x||^2."""
    w = jnp.array([0.3, -1.2])
    x = jax.random.normal(jax.random.key(0), (50, 2))
    assert float(gan.gradient_penalty(lambda x: x @ w, x)) == pytest.approx(0.5 * float(w @ w), rel=1e-12)
    ref = 0.5 * float(jnp.mean(jnp.sum((2 * x) ** 2, axis=1)))
    assert float(gan.gradient_penalty(lambda x: jnp.sum(x**2, axis=1), x)) == pytest.approx(ref, rel=1e-12)


def test_mode_coverage():
    coverage = jax.jit(gan.mode_coverage, static_argnames=("k_sigma", "min_fraction"))
    centres = circle_mixture_centres(8, 2.0)
    x, _ = circle_mixture(jax.random.key(0), 4000, 8, 2.0, 0.05)
    covered, good = coverage(x, centres, 0.05)
    assert int(covered) == 8 and float(good) > 0.98  # 2-D: P(r < 3 std) = 1 - exp(-9/2)
    collapsed = centres[3] + 0.01 * jax.random.normal(jax.random.key(1), (1000, 2))
    covered, good = coverage(collapsed, centres, 0.05)
    assert int(covered) == 1 and float(good) == 1.0
    covered, good = coverage(jnp.zeros((100, 2)), centres, 0.05)
    assert int(covered) == 0 and float(good) == 0.0


def test_losses_by_name():
    """Configs name the losses; the table gives the loss objects the mathematics takes."""
    assert gan.LOSSES == {"saturating": gan.SATURATING, "non_saturating": gan.NON_SATURATING, "wgan": gan.WGAN}
    assert all(isinstance(loss, gan.GANLoss) for loss in gan.LOSSES.values())


def test_bad_loss_and_negative_penalty():
    """A loss given by name (not looked up in LOSSES) is refused with a message that says what is expected."""
    with pytest.raises(TypeError, match="'hinge' is not a GANLoss"):
        gan.dirac_gan("hinge")
    with pytest.raises(ValueError, match="r1 = -0.5 is not valid"):
        gan.gaussian_gan(8, r1=-0.5)
