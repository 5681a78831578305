"""Flow objectives against closed forms: Gaussian log-densities and KLs, exact log Z, ESS, the seed's KL equivalence."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from vlab import flows
from vlab.distributions import densities
from vlab.engine import fit
from vlab.errors import TrainingDiverged
from vlab.objectives import flow as fo


def _gauss_kl(m0, s0, m1, s1):
    """KL(N(m0, diag s0^2) || N(m1, diag s1^2)) (seed 001 problem 6.1, summed over independent dimensions)."""
    return float(np.sum(np.log(s1 / s0) + (s0**2 + (m0 - m1) ** 2) / (2 * s1**2) - 0.5))


LOC, SCALE = np.array([0.5, -1.0]), np.array([0.7, 1.8])


def _affine_flow():
    b = flows.elementwise_affine(2, loc=jnp.asarray(LOC), scale=jnp.asarray(SCALE))
    return b, b.init(jax.random.key(0))


def test_flow_log_prob_is_the_gaussian_density(x64):
    b, p = _affine_flow()
    x = jax.random.normal(jax.random.key(1), (50, 2)) * 2
    ref = stats.multivariate_normal(LOC, np.diag(SCALE**2)).logpdf(np.asarray(x))
    np.testing.assert_allclose(fo.flow_log_prob(b, p, x), ref, atol=1e-10)


def test_forward_kl_is_kl_plus_entropy(x64):
    b, p = _affine_flow()
    m, s = np.array([0.0, 0.0]), np.array([1.0, 1.5])
    x = jnp.asarray(m + s * np.random.default_rng(0).standard_normal((200_000, 2)))
    entropy = float(np.sum(0.5 * np.log(2 * math.pi * math.e * s**2)))
    nll = float(fo.forward_kl(b, p, x))
    np.testing.assert_allclose(nll - entropy, _gauss_kl(m, s, LOC, SCALE), atol=0.01)
    log_px = lambda v: jnp.sum(-0.5 * ((v - m) / s) ** 2 - jnp.log(s) - 0.5 * math.log(2 * math.pi))
    kl, se = fo.kl_data_space(b, p, x, log_px)
    assert abs(float(kl) - _gauss_kl(m, s, LOC, SCALE)) < 4 * float(se)


def test_reverse_kl_plus_log_z_is_the_gaussian_kl(x64):
    b, p = _affine_flow()
    m, s = np.array([1.0, 0.0]), np.array([1.2, 0.8])
    log_p = lambda v: jnp.sum(-0.5 * ((v - m) / s) ** 2)  # unnormalised: log Z = sum log(sqrt(2 pi) s)
    log_z = float(np.sum(np.log(np.sqrt(2 * math.pi) * s)))
    _, log_w = fo.sample_log_weights(b, p, jax.random.key(2), log_p, 100_000, 2)
    est = fo.log_z_estimates(log_w)
    kl = float(fo.reverse_kl(b, p, jax.random.key(2), log_p, 100_000, 2)) + log_z
    assert abs(kl - _gauss_kl(LOC, SCALE, m, s)) < 4 * float(est["elbo_se"])
    assert abs(float(est["iw"]) - log_z) < 4 * float(est["iw_se"])
    assert float(est["elbo"]) < log_z


def test_exact_flow_gives_exact_log_z_and_full_ess(x64):
    b, p = _affine_flow()
    log_p = lambda v: jnp.sum(-0.5 * ((v - LOC) / SCALE) ** 2) + 3.0
    log_z = 3.0 + float(np.sum(np.log(np.sqrt(2 * math.pi) * SCALE)))
    _, log_w = fo.sample_log_weights(b, p, jax.random.key(3), log_p, 1000, 2)
    est = fo.log_z_estimates(log_w)
    np.testing.assert_allclose([est["elbo"], est["iw"]], log_z, atol=1e-10)
    np.testing.assert_allclose(est["ess"], 1000, rtol=1e-10)
    assert float(est["elbo_se"]) < 1e-10


def test_effective_sample_size():
    np.testing.assert_allclose(fo.effective_sample_size(jnp.zeros(64)), 64, rtol=1e-6)
    np.testing.assert_allclose(fo.effective_sample_size(jnp.array([0.0, -50.0, -50.0])), 1.0, rtol=1e-6)
    w = np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(fo.effective_sample_size(jnp.log(w)), w.sum() ** 2 / (w**2).sum(), rtol=1e-6)


def _random_spline_flow():
    b = flows.spline_flow(2, 3, bins=6, bound=3.0, conditioner=flows.Conditioner(hidden=16))
    p = b.init(jax.random.key(5))
    leaves, tree = jax.tree.flatten(p)
    keys = list(jax.random.split(jax.random.key(6), len(leaves)))
    return b, jax.tree.unflatten(tree, [x + 0.2 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys,
                                                                                              strict=True)])


def test_kl_equivalence_of_seed_002_question_3_1(x64):
    """KL[P_X || P_F(U)] (data space, inverse pass) = KL[P_F^-1(X) || P_U] (base space, forward pass)."""
    b, p = _random_spline_flow()
    target = densities.get("eight_gaussians")
    k1, k2 = jax.random.split(jax.random.key(7))
    x1, x2 = target.sample(k1, 20_000), target.sample(k2, 20_000)
    data_space = jax.jit(lambda p, x: fo.kl_data_space(b, p, x, target.log_prob))
    base_space = jax.jit(lambda p, x: fo.kl_base_space(b, p, x, target.log_prob))
    kl_x, se_x = data_space(p, x1)
    kl_u, se_u = base_space(p, x2)
    assert float(kl_x) > 0.5  # far from the target: the check is not between two zeros
    assert abs(float(kl_x - kl_u)) < 3 * math.hypot(float(se_x), float(se_u))
    # on the same samples the two sides agree term by term
    same, _ = base_space(p, x1)
    np.testing.assert_allclose(same, kl_x, rtol=1e-9)


def test_mode_shares():
    target = densities.get("eight_gaussians")
    x = target.sample(jax.random.key(0), 4000)
    assert fo.mode_shares(x, target.modes, target.mode_weights)["fraction"] == 1.0
    half = x[x[:, 0] > 0.1]  # three right-hand modes
    cov = fo.mode_shares(half, target.modes, target.mode_weights)
    assert cov["fraction"] == 3 / 8


def test_nan_energy_stops_training():
    b = flows.affine_flow(2, 1, conditioner=flows.Conditioner(hidden=8))
    log_p = lambda z: jnp.where(z[0] > 1.0, jnp.nan, -densities.u1(z))
    import optax

    with pytest.raises(TrainingDiverged, match="non-finite"):
        fit(fo.reverse_kl_loss(b, log_p, 64, 2), b.init(jax.random.key(0)), optax.adam(1e-3),
            jax.random.key(1), steps=20, chunk_size=10)


def test_forward_kl_training_lowers_the_nll():
    import optax

    target = densities.get("two_mode")
    b = flows.affine_flow(2, 2, conditioner=flows.Conditioner(hidden=16))
    data = jax.random.normal(jax.random.key(0), (2048, 2)) * 0.5 + jnp.array([2.0, 0.0])
    batch_fn = lambda d, k: d[jax.random.randint(k, (128,), 0, d.shape[0])]
    res = fit(fo.forward_kl_loss(b), b.init(jax.random.key(1)), optax.adam(2e-2), jax.random.key(2),
              steps=150, chunk_size=150, data=data, batch_fn=batch_fn)
    nll = float(fo.forward_kl(b, res.params, data))
    entropy = float(np.log(2 * math.pi * math.e * 0.25))
    assert nll < entropy + 0.1 and target is not None


def test_tempering_schedule_endpoints():
    beta = fo.tempering_schedule(0.1, 200)
    np.testing.assert_allclose([beta(0), beta(100), beta(200), beta(500)], [0.1, 0.55, 1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(fo.tempering_schedule(0.3, 0)(0), 1.0)
    for bad in ((0.0, 10), (1.5, 10), (0.5, -1)):
        with pytest.raises(ValueError):
            fo.tempering_schedule(*bad)


def test_tempered_beta_is_jittable_in_per_member_hyperparameters():
    """beta0 and the annealing steps as per-member arrays (hp): each member follows its own schedule, and T = 0 is
    untempered."""
    beta0, steps = jnp.array([0.1, 0.5, 0.3]), jnp.array([200, 10, 0], jnp.int32)
    at = jax.jit(jax.vmap(fo.tempered_beta, in_axes=(None, 0, 0)))
    np.testing.assert_allclose(at(0, beta0, steps), [0.1, 0.5, 1.0], rtol=1e-6)
    np.testing.assert_allclose(at(5, beta0, steps), [0.1 + 0.9 * 5 / 200, 0.75, 1.0], rtol=1e-6)
    np.testing.assert_allclose(at(400, beta0, steps), [1.0, 1.0, 1.0], rtol=1e-6)


END_OF_ANNEALING = {"step": 10, "beta0": 0.1, "anneal_steps": 10}


def test_tempered_reverse_kl_is_the_kl_to_the_tempered_gaussian(x64):
    """p~^beta of a Gaussian is N(m, s^2 / beta): loss + log Z_beta = KL(q || N(m, s^2 / beta)) in closed form."""
    b, p = _affine_flow()
    m, s = np.array([1.0, 0.0]), np.array([1.2, 0.8])
    log_p = lambda v: jnp.sum(-0.5 * ((v - m) / s) ** 2)
    key = jax.random.key(4)
    for beta in (0.25, 0.6, 1.0):
        loss = fo.tempered_reverse_kl_loss(b, log_p, 100_000, 2)
        value, aux = loss(p, None, key, {"step": jnp.int32(0), "beta0": beta, "anneal_steps": 1000})
        s_beta = s / math.sqrt(beta)
        log_z_beta = float(np.sum(np.log(math.sqrt(2 * math.pi) * s_beta)))
        _, log_w = fo.sample_log_weights(b, p, key, lambda v, beta=beta: beta * log_p(v), 100_000, 2)
        se = float(fo.log_z_estimates(log_w)["elbo_se"])
        assert abs(float(value) + log_z_beta - _gauss_kl(LOC, SCALE, m, s_beta)) < 4 * se + 1e-9
        # the same samples: the tempered loss is E[log q] - beta E[log p~]; aux holds the untempered ELBO
        np.testing.assert_allclose(value, fo.reverse_kl(b, p, key, lambda v, beta=beta: beta * log_p(v), 100_000, 2),
                                   rtol=1e-10)
        np.testing.assert_allclose(aux["elbo"], -fo.reverse_kl(b, p, key, log_p, 100_000, 2), rtol=1e-10)
        np.testing.assert_allclose(aux["beta"], beta)
    # at beta = 1 (end of annealing) the objective is the untempered one, with and without sticking the landing
    for stl in (False, True):
        tempered = fo.tempered_reverse_kl_loss(b, log_p, 512, 2, stick_the_landing=stl)
        plain = fo.reverse_kl_loss(b, log_p, 512, 2, stick_the_landing=stl)
        v1, g1 = jax.value_and_grad(lambda q, f=tempered: f(q, None, key, END_OF_ANNEALING)[0])(p)
        v0, g0 = jax.value_and_grad(lambda q, f=plain: f(q, None, key, {})[0])(p)
        np.testing.assert_allclose(v1, v0, rtol=1e-10)
        jax.tree.map(lambda a, c: np.testing.assert_allclose(a, c, rtol=1e-8, atol=1e-12), g1, g0)


def test_tempered_fit_follows_the_schedule_through_the_global_step():
    import optax

    b = flows.affine_flow(2, 1, conditioner=flows.Conditioner(hidden=8))
    loss = fo.tempered_reverse_kl_loss(b, lambda z: -densities.u1(z), 32, 2)
    res = fit(loss, b.init(jax.random.key(0)), optax.adam(1e-3), jax.random.key(1), steps=12, chunk_size=5,
              log_every=1, hp={"beta0": 0.2, "anneal_steps": 8})
    np.testing.assert_allclose(res.history["beta"], 0.2 + 0.8 * np.minimum(np.arange(12) / 8, 1.0), rtol=1e-6)
    # two members with their own schedules, as hp arrays with a leading member axis
    params = jax.vmap(b.init)(jax.random.split(jax.random.key(0), 2))
    res = fit(loss, params, optax.adam(1e-3), jax.random.split(jax.random.key(1), 2), steps=12, chunk_size=5,
              log_every=1, hp={"beta0": jnp.array([0.2, 0.5]), "anneal_steps": jnp.array([8, 4], jnp.int32)})
    t = np.arange(12)
    expected = np.stack([0.2 + 0.8 * np.minimum(t / 8, 1.0), 0.5 + 0.5 * np.minimum(t / 4, 1.0)], axis=1)
    np.testing.assert_allclose(res.history["beta"], expected, rtol=1e-6)


def test_mode_counts_and_coverage_of_counts_agree_with_mode_shares():
    target = densities.get("eight_gaussians")
    x = target.sample(jax.random.key(0), 4000)[:3000]
    counts = np.asarray(jax.jit(lambda v: fo.mode_counts(v, target.modes))(x))
    assert counts.sum() == 3000 and counts.shape == (8,)
    assert fo.coverage_of_counts(counts, target.mode_weights) == fo.mode_shares(x, target.modes, target.mode_weights)
    assert fo.coverage_of_counts(np.array([2, 0, 38]), np.full(3, 1 / 3))["covered"] == [False, False, True]


def test_forward_estimates_of_a_gaussian_flow_are_the_closed_forms(x64):
    """Data N(m, diag s^2), flow N(LOC, diag SCALE^2): NLL = entropy + KL, both sides of question 3.1 agree with the
    Gaussian KL, and the entropy is the Gaussian's."""
    b, p = _affine_flow()
    m, s = np.array([0.0, 0.5]), np.array([1.0, 1.5])
    log_px = lambda v: jnp.sum(-0.5 * ((v - m) / s) ** 2 - jnp.log(s) - 0.5 * math.log(2 * math.pi))
    x1, x2 = (jnp.asarray(m + s * np.random.default_rng(i).standard_normal((100_000, 2))) for i in (0, 1))
    est = jax.jit(lambda q: fo.forward_estimates(b, q, x1, x2, log_px))(p)
    kl = _gauss_kl(m, s, LOC, SCALE)
    np.testing.assert_allclose(est["nll"], est["entropy"] + est["kl_data"], rtol=1e-10)
    assert abs(float(est["entropy"]) - float(np.sum(0.5 * np.log(2 * math.pi * math.e * s**2)))) < 4 * float(
        est["entropy_se"])
    assert abs(float(est["kl_data"]) - kl) < 4 * float(est["kl_data_se"])
    assert abs(float(est["kl_base"]) - kl) < 4 * float(est["kl_base_se"])
    np.testing.assert_allclose(est["nll"], fo.forward_kl(b, p, x1), rtol=1e-10)
    assert set(fo.forward_estimates(b, p, x1)) == {"nll", "nll_se"}  # no density: the NLL alone


def test_reverse_estimates_are_the_log_z_estimates_of_fresh_flow_samples(x64):
    b, p = _affine_flow()
    log_p = lambda v: jnp.sum(-0.5 * ((v - LOC) / SCALE) ** 2) + 3.0  # the flow itself: exact log Z, full ESS
    est = fo.reverse_estimates(b, p, jax.random.key(3), log_p, 1000, 2)
    log_z = 3.0 + float(np.sum(np.log(np.sqrt(2 * math.pi) * SCALE)))
    np.testing.assert_allclose([est["elbo"], est["iw"]], log_z, atol=1e-10)
    np.testing.assert_allclose(est["ess_fraction"], 1.0, rtol=1e-10)
