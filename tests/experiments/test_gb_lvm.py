"""Gaussian-Bernoulli LVM: closed-form p(h), p(h|x), p(x|h), log p(x) against integration, enumeration, Gibbs."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate
from vlab.experiments.gb_lvm import seed_prior

from vlab.cli.main import main
from vlab.models import gaussian_bernoulli as gb


def _seed():
    """The seed's W, c = 0, b = 0 (built inside each test, after the float64 fixture)."""
    return gb.GBParams(jnp.asarray([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), jnp.zeros(3), jnp.zeros(2))


def _random_params(seed, d=2, k=3):
    rng = np.random.default_rng(seed)
    return gb.GBParams(jnp.asarray(0.7 * rng.normal(size=(d, k))), jnp.asarray(0.5 * rng.normal(size=d)),
                       jnp.asarray(0.5 * rng.normal(size=k)))


def test_seed_prior_closed_form(x64):
    np.testing.assert_allclose(np.asarray(gb.prior(_seed())), seed_prior(), atol=1e-15)
    e = math.e
    assert seed_prior()[3] == pytest.approx(e**3 / (1 + 2 * e + e**3), rel=1e-15)


def test_prior_and_partition_against_scipy_quadrature(x64):
    p = _random_params(0, d=2, k=2)
    hs = np.asarray(gb.hidden_states(2))
    w, c, b = (np.asarray(a) for a in p)
    z_h = []
    for h in hs:
        # the energy written out independently: E = -h^T W^T x - c^T x + b^T h + x^T x / 2
        def f(x1, x2, h=h):
            x = np.array([x1, x2])
            return math.exp(h @ w.T @ x + c @ x - b @ h - 0.5 * x @ x)

        z_h.append(integrate.dblquad(f, -10, 10, -10, 10, epsabs=1e-11)[0])
    z_h = np.asarray(z_h)
    np.testing.assert_allclose(np.asarray(gb.prior(p)), z_h / z_h.sum(), atol=1e-9)
    assert float(gb.log_partition(p)) == pytest.approx(math.log(z_h.sum()), abs=1e-9)


def test_grid_quadrature_matches_closed_form(x64):
    p_quad, z = gb.prior_by_quadrature(_seed(), -8.0, 10.0, 61)
    np.testing.assert_allclose(np.asarray(p_quad), seed_prior(), atol=1e-10)
    assert float(jnp.log(z)) == pytest.approx(float(gb.log_partition(_seed())), abs=1e-9)


def test_posterior_factorises_and_matches_enumeration(x64):
    p = _random_params(1)
    hs = gb.hidden_states(3)
    x = jnp.asarray([0.3, -1.2])
    joint = jnp.exp(-jax.vmap(lambda h: gb.energy(x, h, p))(hs))
    probs = gb.posterior_probs(x, p)
    fact = jnp.prod(jnp.where(hs == 1, probs, 1 - probs), -1)
    np.testing.assert_allclose(np.asarray(fact), np.asarray(joint / joint.sum()), atol=1e-14)


def test_enumeration_helpers_match_the_energy_and_the_closed_forms(x64):
    p = _random_params(4)
    hs = gb.hidden_states(3)
    xs = jnp.asarray(np.random.default_rng(5).normal(size=(7, 2)))
    neg_e = gb.enumerated_log_joint(xs, p)
    assert neg_e.shape == (7, 8)
    for i in (0, 6):
        for j in (0, 5):
            assert float(neg_e[i, j]) == pytest.approx(-float(gb.energy(xs[i], hs[j], p)), rel=1e-14)
    post = gb.factorised_posterior(xs, p)
    np.testing.assert_allclose(np.asarray(post), np.asarray(jax.nn.softmax(neg_e, -1)), atol=1e-14)
    np.testing.assert_allclose(np.asarray(post.sum(-1)), 1.0, atol=1e-14)
    log_px = jax.scipy.special.logsumexp(neg_e, -1) - gb.log_partition(p)
    np.testing.assert_allclose(np.asarray(gb.log_marginal(xs, p)), np.asarray(log_px), atol=1e-12)


def test_seed_marginal_formula(x64):
    x = jnp.asarray([0.4, -0.3, 1.1])
    x1, x2, x3 = map(float, x)
    seed = math.exp(-0.5 * float(x @ x)) * (1 + math.exp(x1 + x3) + math.exp(x2 + x3) + math.exp(x1 + x2 + 2 * x3))
    expect = math.log(seed) - float(gb.log_partition(_seed()))
    assert float(gb.log_marginal(x, _seed())) == pytest.approx(expect, abs=1e-12)


def test_conditional_of_x_is_unit_gaussian_at_w_h(x64):
    # p(x | h) = p(x, h) / p(h) must equal N(x; W h + c, I) at any x.
    p = _random_params(2)
    h = jnp.asarray([1.0, 0.0, 1.0])
    x = jnp.asarray([0.2, 0.9])
    log_joint = -gb.energy(x, h, p) - gb.log_partition(p)
    log_ph = jnp.log(gb.prior(p)[gb.state_index(h)])
    m = gb.conditional_mean(h, p)
    log_n = -0.5 * jnp.sum((x - m) ** 2) - math.log(2 * math.pi)
    assert float(log_joint - log_ph) == pytest.approx(float(log_n), abs=1e-12)


def test_gibbs_final_states_follow_the_prior():
    h, x = gb.gibbs(jax.random.key(3), _seed(), 2000, 20)
    freq = np.bincount(np.asarray(gb.state_index(h[-1])), minlength=4) / 2000
    se = np.sqrt(seed_prior() * (1 - seed_prior()) / 2000)
    assert np.all(np.abs(freq - seed_prior()) < 4.5 * se)
    assert x.shape == (20, 2000, 3)


def test_quick_config_end_to_end(quick):
    path = quick("gb_lvm")
    m = json.loads((path / "metrics.json").read_text())
    assert all(c["ok"] for c in m["checks"]), [c for c in m["checks"] if not c["ok"]]
    np.testing.assert_allclose(m["p_h"]["closed_form"], seed_prior(), atol=1e-12)
    assert (path / "gb_lvm.png").exists()


BAD = ["w=[[1,0],[0]]", "c=[0,0]", "b=[0,0,0]", "burn_in=500", "n_chains=0", "w=[]"]


@pytest.mark.parametrize("over", BAD)
def test_bad_config_exits_2_with_one_line(over, tmp_path, capsys):
    assert main(["run", "configs/gb_lvm.yaml", over, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and over.split("=")[0] in err[0]
