"""The KL-fitting experiment against independent answers: moments, scipy optimisation of scipy quadrature."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from helpers import config
from scipy import integrate, optimize, stats

from vlab.cli.main import main

KL = config("kl_fit")


def scipy_exclusive_kl(mu, sigma, w, m, s):
    """KL(N(mu, sigma^2) || sum_k w_k N(m_k, s_k^2)) by scipy quadrature (scalar math: fast enough to optimise)."""
    comps = list(zip(w, m, s, strict=True))
    log_n = lambda x, a, b: -0.5 * ((x - a) / b) ** 2 - math.log(b) - 0.5 * math.log(2 * math.pi)

    def f(x):
        lq = log_n(x, mu, sigma)
        terms = [math.log(a) + log_n(x, b, c) for a, b, c in comps]
        top = max(terms)
        lp = top + math.log(sum(math.exp(t - top) for t in terms))
        return math.exp(lq) * (lq - lp)

    return integrate.quad(f, mu - 30 * sigma, mu + 30 * sigma, points=[mu], limit=400, epsabs=1e-13)[0]


def run(tmp_path, *overrides) -> dict:
    out = tmp_path / "run"
    assert main(["run", KL, "-q", "--out", str(out), *overrides]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_seed_problem_float64_matches_moments_and_scipy_optima(tmp_path):
    """Seed 001 problem 6.3: inclusive = moment matching (1, 3); exclusive optima = scipy's minimisers."""
    m = run(tmp_path, "precision=float64", "n_inits=16", "train.steps=1500")
    assert m["inclusive"]["mu"] == pytest.approx(1.0, abs=1e-8)
    assert m["inclusive"]["sigma"] == pytest.approx(3.0, abs=1e-8)
    assert m["inclusive"]["fit_mu"] == pytest.approx(1.0, abs=1e-5)
    assert m["inclusive"]["fit_sigma"] == pytest.approx(3.0, abs=1e-5)
    w, mu_k, s_k = [1 / 3, 2 / 3], [-3.0, 3.0], [1.0, 1.0]
    # inclusive KL at the optimum = E_p log p + log(3 sqrt(2 pi e)), by quadrature
    log_p = lambda x: np.logaddexp(np.log(1 / 3) + stats.norm.logpdf(x, -3, 1),
                                   np.log(2 / 3) + stats.norm.logpdf(x, 3, 1))
    e_log_p = integrate.quad(lambda x: np.exp(log_p(x)) * log_p(x), -30, 30, points=[-3, 3], epsabs=1e-13)[0]
    assert m["inclusive"]["kl"] == pytest.approx(e_log_p + np.log(3.0) + 0.5 * np.log(2 * np.pi * np.e), abs=1e-8)

    optima = m["exclusive"]["optima"]
    assert len(optima) == 2 and sum(o["count"] for o in optima) + m["exclusive"]["unconverged"] == 16
    for o in optima:
        res = optimize.minimize(lambda z: scipy_exclusive_kl(z[0], np.exp(z[1]), w, mu_k, s_k),
                                x0=[o["mu"] + 0.1, np.log(o["sigma"]) + 0.05], method="Nelder-Mead",
                                options={"xatol": 1e-8, "fatol": 1e-12, "maxiter": 2000})
        assert o["mu"] == pytest.approx(res.x[0], abs=2e-5)
        assert o["sigma"] == pytest.approx(np.exp(res.x[1]), abs=2e-5)
        assert o["kl"] == pytest.approx(res.fun, abs=1e-9)
    best = optima[0]
    assert best["mu"] > 2.9 and best["kl"] < optima[1]["kl"]  # the heavier mode wins
    assert m["exclusive"]["mu"] == best["mu"]
    assert all(c["ok"] for c in m["checks"])


def test_random_target_inclusive_is_moment_matching(tmp_path):
    rng = np.random.default_rng(7)
    w = rng.dirichlet(np.ones(3))
    w[-1] = 1.0 - w[:-1].sum()
    means, stds = rng.normal(0, 2.5, 3), rng.uniform(0.4, 1.5, 3)
    fmt = lambda v: "[" + ",".join(repr(float(x)) for x in v) + "]"
    m = run(tmp_path, "precision=float64", "n_inits=8", "train.steps=1500", f"target.weights={fmt(w)}",
            f"target.means={fmt(means)}", f"target.stds={fmt(stds)}")
    mean = float(w @ means)
    std = float(np.sqrt(w @ (stds**2 + means**2) - mean**2))
    assert m["inclusive"]["mu"] == pytest.approx(mean, abs=1e-8)
    assert m["inclusive"]["sigma"] == pytest.approx(std, abs=1e-8)
    assert m["target"]["mean"] == pytest.approx(mean, abs=1e-12)


def test_monte_carlo_estimators_find_the_same_answer(tmp_path):
    m = run(tmp_path, "estimator.kind=mc", "estimator.samples=512", "n_inits=16", "train.steps=2000")
    assert m["inclusive"]["fit_mu"] == pytest.approx(1.0, abs=0.1)
    assert m["inclusive"]["fit_sigma"] == pytest.approx(3.0, abs=0.1)
    best = m["exclusive"]["optima"][0]
    assert best["fit_mu"] == pytest.approx(2.9896, abs=0.1)
    assert best["fit_sigma"] == pytest.approx(1.0160, abs=0.1)


def test_softplus_parameterisation_reaches_the_same_optimum(tmp_path):
    m = run(tmp_path, "sigma_param=softplus", "n_inits=8", "train.steps=1500")
    assert m["inclusive"]["mu"] == pytest.approx(1.0, abs=1e-4)
    assert m["inclusive"]["sigma"] == pytest.approx(3.0, abs=1e-4)


def test_single_component_target_is_fit_exactly_by_both(tmp_path):
    m = run(tmp_path, "target.weights=[1.0]", "target.means=[2.0]", "target.stds=[0.5]", "n_inits=8",
            "train.steps=1000", "precision=float64")
    for d in ("inclusive", "exclusive"):
        assert m[d]["mu"] == pytest.approx(2.0, abs=1e-8)
        assert m[d]["sigma"] == pytest.approx(0.5, abs=1e-8)
        assert m[d]["kl"] == pytest.approx(0.0, abs=1e-9)
        assert m[d]["n_optima"] == 1
