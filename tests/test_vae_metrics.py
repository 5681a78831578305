"""Assignment solver against brute force and scipy, clustering accuracy, NMI and active units on known cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from vlab import metrics


@pytest.mark.parametrize("shape", [(1, 1), (4, 4), (6, 6), (3, 5), (5, 3)])
def test_linear_assignment_is_optimal(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(5):
        cost = rng.integers(0, 20, size=shape).astype(float)
        rows, cols = metrics.linear_assignment(cost)
        r_ref, c_ref = linear_sum_assignment(cost)
        assert cost[rows, cols].sum() == pytest.approx(cost[r_ref, c_ref].sum())
        assert len(set(rows)) == len(rows) == min(shape) and len(set(cols)) == len(cols)
        if shape[0] == shape[1] and shape[0] <= 6:
            best = min(sum(cost[i, p[i]] for i in range(shape[0])) for p in itertools.permutations(range(shape[0])))
            assert cost[rows, cols].sum() == pytest.approx(best)


def test_linear_assignment_large_random_matches_scipy():
    cost = np.random.default_rng(0).normal(size=(40, 40))
    rows, cols = metrics.linear_assignment(cost)
    r, c = linear_sum_assignment(cost)
    assert cost[rows, cols].sum() == pytest.approx(cost[r, c].sum(), abs=1e-9)


def test_clustering_accuracy_is_permutation_invariant():
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    clusters = np.array([2, 2, 0, 0, 1, 1, 0])
    acc, mapping = metrics.clustering_accuracy(labels, clusters)
    assert acc == pytest.approx(6 / 7)
    assert mapping == {0: 1, 1: 2, 2: 0}


def test_nmi_known_values():
    labels = np.array([0, 0, 1, 1])
    assert metrics.nmi(labels, np.array([1, 1, 0, 0])) == pytest.approx(1.0)
    assert metrics.nmi(labels, np.array([0, 1, 0, 1])) == pytest.approx(0.0, abs=1e-12)
    # labels (0,0,1,1) vs clusters (0,0,0,1): I = H(C) - H(C|L) = h(1/4) - 1/2 ln 2, H(L) = ln 2
    h = lambda p: -(p * np.log(p) + (1 - p) * np.log(1 - p))
    expected = (h(0.25) - 0.5 * np.log(2)) / np.sqrt(np.log(2) * h(0.25))
    assert metrics.nmi(labels, np.array([0, 0, 0, 1])) == pytest.approx(expected)


def test_active_units_counts_dimensions_with_variance():
    rng = np.random.default_rng(0)
    mu = np.stack([rng.normal(size=5000), 0.05 * rng.normal(size=5000), np.full(5000, 3.0)], 1)
    n, a = metrics.active_units(mu)
    assert n == 1 and a[0] == pytest.approx(1.0, abs=0.05) and a[2] == pytest.approx(0.0)


def test_across_members():
    s = metrics.across_members([1.0, 2.0, 3.0])
    assert s["mean"] == 2.0 and s["std"] == pytest.approx(1.0) and s["values"] == [1.0, 2.0, 3.0]
