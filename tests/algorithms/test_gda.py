"""GDA update rules against their closed forms: seed 002 question 4, the papers' radii, optax's OGDA."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vlab.algorithms import gda
from vlab.models import games
from vlab.objectives import gan


def _zero():
    return (jnp.array(0.0), jnp.array(0.0))


STEPS = [0.05, 0.3, 0.9, 1.7]


def test_simultaneous_bilinear_matrix_is_the_seeds(x64):
    """Seed 002 q4: one simultaneous step on V = d g is [[1, a], [-a, 1]], eigenvalues 1 +- i a."""
    a = 0.37
    jac = gda.update_jacobian(gda.simultaneous(a), games.bilinear(), _zero())
    np.testing.assert_allclose(jac, [[1, a], [-a, 1]], atol=1e-15)
    eig = np.sort_complex(np.linalg.eigvals(np.asarray(jac)))
    np.testing.assert_allclose(eig, [1 - 1j * a, 1 + 1j * a], atol=1e-14)


def test_simultaneous_norm_grows_exactly(x64):
    """||(d_k, g_k)|| = (1 + a^2)^{k/2} ||(d_0, g_0)|| for every k."""
    a, z0 = 0.2, (jnp.array(0.3), jnp.array(-1.1))
    traj = gda.simulate(gda.simultaneous(a), games.bilinear(), z0, jax.random.key(0), 150)
    k = np.arange(151)
    pred = (1 + a**2) ** (k / 2) * np.hypot(0.3, -1.1)
    np.testing.assert_allclose(traj.dist, pred, rtol=1e-12)
    assert int(traj.diverged_at) == -1


def test_alternating_determinant_one(x64):
    for a in STEPS:
        jac = gda.update_jacobian(gda.alternating(a), games.bilinear(), _zero())
        np.testing.assert_allclose(np.linalg.det(np.asarray(jac)), 1.0, atol=1e-13)
        np.testing.assert_allclose(jac, [[1, a], [-a, 1 - a**2]], atol=1e-15)


@pytest.mark.parametrize("kind", gda.RULES.values(), ids=gda.RULES)
def test_jacobian_spectral_radius_matches_closed_form(x64, kind):
    steps = jnp.asarray(STEPS)
    rho = jax.jit(jax.vmap(lambda a: gda.spectral_radius(
        gda.update_jacobian(gda.make_rule(kind, a), games.bilinear(), _zero()))))(steps)
    pred = jax.vmap(lambda a: gda.bilinear_spectral_radius(kind, a))(steps)
    np.testing.assert_allclose(rho, pred, rtol=1e-10)


@pytest.mark.parametrize("name", gda.RULES)
def test_measured_growth_matches_closed_form(x64, name):
    """The quality goal: the spectral radius measured from a simulated trajectory agrees to 1e-6 relative."""
    z0 = (jnp.array(0.8), jnp.array(-0.35))
    kind = gda.RULES[name]

    def measure(a):
        traj = gda.simulate(gda.make_rule(kind, a), games.bilinear(), z0, jax.random.key(1), 120)
        return gda.dmd_spectral_radius(traj), gda.norm_growth_rate(traj)

    steps = jnp.asarray(STEPS)
    dmd, norm = jax.jit(jax.vmap(measure))(steps)
    pred = jax.vmap(lambda a: gda.bilinear_spectral_radius(kind, a))(steps)
    np.testing.assert_allclose(dmd, pred, rtol=1e-6)
    if name in ("simultaneous", "extragradient", "consensus"):  # normal maps: the norm itself grows at rho
        np.testing.assert_allclose(norm, pred, rtol=1e-6)


def test_matrix_game_radius_is_max_over_singular_values(x64):
    a_mat = jnp.array([[1.0, 0.5, 0.0], [0.0, 2.0, -0.3]])
    game = games.matrix_bilinear(a_mat)
    z_star = (jnp.zeros(2), jnp.zeros(3))
    svals = np.linalg.svd(np.asarray(a_mat), compute_uv=False)
    steps = jnp.array([0.1, 0.4])
    for kind in gda.RULES.values():
        rho = jax.jit(
            jax.vmap(
                lambda a, kind=kind: gda.spectral_radius(
                    gda.update_jacobian(gda.make_rule(kind, a), game, z_star)
                )
            )
        )(steps)
        # A is 2 x 3: the extra generator direction is a zero singular value (eigenvalue 1 of the update)
        pred = [
            max(float(gda.bilinear_spectral_radius(kind, float(a), s)) for s in [*svals, 0.0]) for a in steps
        ]
        np.testing.assert_allclose(rho, pred, rtol=1e-10)


def test_extragradient_and_optimistic_converge_simultaneous_diverges(x64):
    game, z0 = games.bilinear(), (jnp.array(1.0), jnp.array(1.0))
    for name in ("extragradient", "optimistic", "consensus"):
        traj = jax.jit(
            lambda name=name: gda.simulate(
                gda.make_rule(gda.RULES[name], 0.2), game, z0, jax.random.key(0), 3000, record=False
            )
        )()
        assert float(traj.dist[-1]) < 1e-8, name
    grid = jnp.linspace(0.01, 3.0, 25)
    assert np.all(np.asarray(jax.vmap(lambda a: gda.bilinear_spectral_radius(gda.SIMULTANEOUS, a))(grid)) > 1.0)

    def grows(a):
        traj = gda.simulate(gda.simultaneous(a), game, z0, jax.random.key(0), 200, record=False)
        return traj.dist[jnp.sum(gda.valid_mask(traj)) - 1] > traj.dist[0]

    assert np.all(np.asarray(jax.jit(jax.vmap(grows))(grid)))


def test_optimistic_agrees_with_optax_step_for_step(x64):
    """vlab's OGDA against optax.optimistic_gradient_descent, on a nonlinear game, first step included."""
    game = gan.dirac_gan(gan.NON_SATURATING, r1=0.3)
    z0 = (jnp.array(0.7), jnp.array(-0.4))
    for alpha, beta in ((1.0, 1.0), (0.5, 2.0)):
        ours = gda.optimistic(0.1, alpha, beta)
        tx = optax.optimistic_gradient_descent(0.1, alpha=alpha, beta=beta)

        @jax.jit
        def both(carry, key, ours=ours, tx=tx):
            s, z, opt_state = carry
            s = ours.step(game, s, key)
            updates, opt_state = tx.update(games.field(game, z, key), opt_state, z)
            return s, optax.apply_updates(z, updates), opt_state

        carry = (ours.init(z0), z0, tx.init(z0))
        for k in range(40):
            carry = both(carry, jax.random.key(k))
            np.testing.assert_allclose(jnp.stack(carry[0].z), jnp.stack(carry[1]), rtol=1e-13, atol=1e-15)
        via = gda.simulate(gda.from_optax(tx), game, z0, jax.random.key(0), 40)
        own = gda.simulate(ours, game, z0, jax.random.key(0), 40)
        np.testing.assert_allclose(via.z_path, own.z_path, rtol=1e-13, atol=1e-15)


def test_consensus_term_is_jacobian_transpose_times_field(x64):
    """On V = d g: F = (-g, d), J_F^T F = (d, g), so one step is z - a (F + gamma z)."""
    a, gamma, z = 0.1, 0.7, (jnp.array(0.4), jnp.array(-1.3))
    s = gda.consensus(a, gamma).step(games.bilinear(), gda.PointState(z), jax.random.key(0))
    d, g = 0.4, -1.3
    np.testing.assert_allclose(
        jnp.stack(s.z), [d - a * (-g + gamma * d), g - a * (d + gamma * g)], rtol=1e-14
    )


def test_divergence_is_reported_with_its_step_not_nan(x64):
    """Simultaneous GDA at a = 2 grows by sqrt(5) a step: it leaves the ball of radius 1e6 at a known step."""
    z0 = (jnp.array(1.0), jnp.array(0.0))
    traj = gda.simulate(gda.simultaneous(2.0), games.bilinear(), z0, jax.random.key(0), 100, escape=1e6)
    expected = int(np.ceil(np.log(1e6) / np.log(np.sqrt(5.0))))
    assert int(traj.diverged_at) == expected
    assert np.all(np.isfinite(traj.dist)) and np.all(np.isfinite(traj.z_path))
    assert float(traj.dist[-1]) == pytest.approx(5.0 ** ((expected - 1) / 2))


def test_overflow_in_float32_is_reported():
    z0 = (jnp.array(1.0, jnp.float32), jnp.array(1.0, jnp.float32))
    traj = gda.simulate(
        gda.simultaneous(100.0), games.bilinear(), z0, jax.random.key(0), 50, escape=float("inf")
    )
    assert 0 < int(traj.diverged_at) < 50
    assert np.all(np.isfinite(traj.dist))


def test_rules_by_name():
    """Configs name the rules; the table gives the kinds the mathematics takes."""
    assert list(gda.RULES) == ["simultaneous", "alternating", "extragradient", "optimistic", "consensus"]
    kinds = (gda.SIMULTANEOUS, gda.ALTERNATING, gda.EXTRAGRADIENT, gda.OPTIMISTIC, gda.CONSENSUS)
    assert all(k is kind for k, kind in zip(gda.RULES.values(), kinds, strict=True))


def test_bad_rule_and_step_size():
    """A rule given by name (not looked up in RULES) is refused with a message that says what is expected;
    a step size must be positive."""
    with pytest.raises(TypeError, match="'adagrad' is not a RuleKind"):
        gda.make_rule("adagrad", 0.1)
    for a in (0.0, -0.1):
        with pytest.raises(ValueError, match="expected a number > 0"):
            gda.make_rule(gda.SIMULTANEOUS, a)


def test_step_size_vmaps(x64):
    """Step sizes are an axis: one vmapped program gives the same radii as separate calls."""
    grid = jnp.linspace(0.1, 1.5, 7)
    rho = jax.jit(
        jax.vmap(
            lambda a: gda.spectral_radius(
                gda.update_jacobian(gda.extragradient(a), games.bilinear(), _zero())
            )
        )
    )(grid)
    np.testing.assert_allclose(
        rho, [gda.bilinear_spectral_radius(gda.EXTRAGRADIENT, float(a)) for a in grid], rtol=1e-10
    )


@pytest.mark.parametrize("kind", gda.RULES.values(), ids=gda.RULES)
@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 1.0), (0.5, 2.0)])
def test_linear_update_matrix_is_the_jacobian_of_the_step(x64, kind, alpha, beta):
    """The hand-written update matrices equal jax.jacobian of each rule on a random linear (quadratic) game,
    with every rule's own hyperparameters passed through."""
    rng = np.random.default_rng(0)
    m = rng.normal(size=(3, 3))
    n_d = 1
    m[n_d:, n_d:] = (m[n_d:, n_d:] + m[n_d:, n_d:].T) / 2  # each player's own block is a Hessian: symmetric
    jmat = jnp.asarray(m)

    def loss_d(d, g, key):
        return 0.5 * d @ jmat[:n_d, :n_d] @ d + d @ jmat[:n_d, n_d:] @ g

    def loss_g(d, g, key):
        return 0.5 * g @ jmat[n_d:, n_d:] @ g + g @ jmat[n_d:, :n_d] @ d

    game = games.Game(loss_d, loss_g)
    hyper = {"consensus_weight": 0.7, "alpha": alpha, "beta": beta}
    jac = gda.update_jacobian(gda.make_rule(kind, 0.3, **hyper), game, (jnp.zeros(1), jnp.zeros(2)))
    ref = gda.linear_update_matrix(kind, 0.3, jmat, n_d, **hyper)
    np.testing.assert_allclose(jac, ref, atol=1e-13)
