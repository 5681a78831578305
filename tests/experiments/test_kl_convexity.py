"""KL convexity: the discrete KL against scipy, the inequality, its equality cases and the log-sum split."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from vlab.cli.main import main
from vlab.distributions import categorical as cat


def draw_cases(seed, n, k, scale):
    """Random (p1, p2, q1, q2, lambda) with p = softmax(scale * N(0, I)), drawn with numpy."""
    rng = np.random.default_rng(seed)

    def simplex():
        z = np.exp(scale * rng.normal(size=(n, k)))
        return jnp.asarray(z / z.sum(-1, keepdims=True))

    return simplex(), simplex(), simplex(), simplex(), jnp.asarray(rng.random(n))


def test_kl_and_entropy_match_scipy(x64):
    p1, _, q1, _, _ = draw_cases(0, 50, 5, 2.0)
    np.testing.assert_allclose(np.asarray(cat.kl_categorical(p1, q1)),
                               [stats.entropy(a, b) for a, b in zip(np.asarray(p1), np.asarray(q1), strict=True)],
                               rtol=1e-12)
    np.testing.assert_allclose(np.asarray(cat.entropy_categorical(p1)), [stats.entropy(a) for a in np.asarray(p1)],
                               rtol=1e-12)
    assert float(cat.kl_categorical(jnp.asarray([1.0, 0.0]), jnp.asarray([0.5, 0.5]))) == pytest.approx(np.log(2))


def test_convexity_holds_on_random_cases(x64):
    cases = draw_cases(1, 20000, 3, 5.0)
    lhs, rhs = cat.convexity_sides(*cases)
    assert float(jnp.min(rhs - lhs)) >= -1e-13
    terms = cat.log_sum_terms(*cases)
    assert float(jnp.min(terms)) >= -1e-13
    np.testing.assert_allclose(np.asarray(jnp.sum(terms, -1)), np.asarray(rhs - lhs), atol=1e-12)


def test_equality_cases(x64):
    p1, p2, q1, q2, lam = draw_cases(2, 100, 4, 1.0)
    for l in (jnp.zeros(100), jnp.ones(100)):
        lhs, rhs = cat.convexity_sides(p1, p2, q1, q2, l)
        np.testing.assert_allclose(np.asarray(lhs), np.asarray(rhs), atol=1e-13)
    lhs, rhs = cat.convexity_sides(p1, p1, q1, q1, lam)
    np.testing.assert_allclose(np.asarray(lhs), np.asarray(rhs), atol=1e-13)


def test_a_hand_computed_case(x64):
    p1, p2 = jnp.asarray([0.9, 0.1]), jnp.asarray([0.1, 0.9])
    q1, q2 = jnp.asarray([0.5, 0.5]), jnp.asarray([0.5, 0.5])
    lhs, rhs = cat.convexity_sides(p1, p2, q1, q2, 0.5)
    assert float(lhs) == pytest.approx(0.0, abs=1e-15)  # both mixtures are uniform
    kl = 0.9 * np.log(1.8) + 0.1 * np.log(0.2)
    assert float(rhs) == pytest.approx(kl, rel=1e-13)


def test_random_cases_lie_on_the_simplex_and_concentrate_with_the_scale(x64):
    key = jax.random.key(3)
    p1, p2, q1, q2, lam = cat.random_cases(key, 5000, 4, 1.0)
    for p in (p1, p2, q1, q2):
        assert p.shape == (5000, 4) and float(jnp.min(p)) > 0
        np.testing.assert_allclose(np.asarray(jnp.sum(p, -1)), 1.0, atol=1e-14)
    assert lam.shape == (5000,) and float(jnp.min(lam)) > 0 and float(jnp.max(lam)) < 1
    assert abs(float(jnp.mean(lam)) - 0.5) < 0.02
    # the five draws come from their own streams: no two distributions coincide
    assert min(float(jnp.max(jnp.abs(a - b))) for a, b in [(p1, p2), (p1, q1), (q1, q2), (p2, q2)]) > 0.1
    # a larger logit scale gives more concentrated distributions (lower entropy); the same key, the same cases
    flat, peaked = (float(jnp.mean(cat.entropy_categorical(cat.random_cases(key, 5000, 4, s)[0]))) for s in (0.3, 10.0))
    assert peaked < 0.5 * flat < np.log(4)
    np.testing.assert_array_equal(np.asarray(cat.random_cases(key, 5000, 4, 1.0)[0]), np.asarray(p1))


def test_figure_labels_every_panel(x64):
    from vlab.experiments.kl_convexity import draw

    lhs, rhs = cat.convexity_sides(*cat.random_cases(jax.random.key(0), 400, 3, 1.0))
    conc = np.repeat([1.0, 3.0], 200)
    gap = np.abs(np.random.default_rng(0).normal(size=(12, 5))) * 1e-3
    fig = draw(np.asarray(lhs), np.asarray(rhs), conc, 3, jax.random.key(1), np.arange(12) * 25, gap)
    assert len(fig.axes) == 3 and all(ax.get_xlabel() and ax.get_ylabel() and ax.get_title() for ax in fig.axes)
    assert len(fig.axes[1].get_lines()) == 6  # LHS and its chord for three cases


def test_quick_config_end_to_end(quick):
    path = quick("kl_convexity")
    m = json.loads((path / "metrics.json").read_text())
    assert all(c["ok"] for c in m["checks"]), [c for c in m["checks"] if not c["ok"]]
    assert m["violations"] == 0 and m["worst_gap"] >= 0
    assert (path / "kl_convexity.png").exists()
    assert len(m["adversary"]["final_gap_per_member"]) == 16  # the quick config's adversaries, one fit
    assert (path / "checkpoints" / "adversary.npz").exists()


BAD = ["n_outcomes=1", "logit_scales=[1.0,-2.0]", "adversary.members=0", "adversary.train.steps=0", "n_draws=0"]


@pytest.mark.parametrize("over", BAD)
def test_bad_config_exits_2_with_one_line(over, tmp_path, capsys):
    assert main(["run", "configs/kl_convexity.yaml", over, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and over.split("=")[0] in err[0]
