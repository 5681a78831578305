"""Clustering accuracy against brute-force matching, NMI against scikit-learn, active units on known cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from vlab.harness import metrics


def _best_matching(conf: np.ndarray) -> int:
    """The oracle: the largest sum of C[k, m(k)] over every one-to-one map between the rows and the columns."""
    r, c = conf.shape
    if r <= c:
        return max(sum(conf[i, p[i]] for i in range(r)) for p in itertools.permutations(range(c), r))
    return max(sum(conf[p[j], j] for j in range(c)) for p in itertools.permutations(range(r), c))


@pytest.mark.parametrize("shape", [(1, 1), (4, 4), (6, 6), (3, 5), (5, 3)])
def test_clustering_accuracy_matching_is_optimal(shape):
    # (clusters, labels): every one-to-one map tried by brute force against the accuracy and the map returned
    n_clusters, n_labels = shape
    rng = np.random.default_rng(sum(shape))
    for _ in range(5):
        n = int(rng.integers(1, 60))
        labels, clusters = rng.integers(0, n_labels, n), rng.integers(0, n_clusters, n)
        conf = metrics.confusion_matrix(labels, clusters)
        acc, mapping = metrics.clustering_accuracy(labels, clusters)
        assert acc * n == pytest.approx(_best_matching(conf), abs=1e-9)
        assert len(mapping) == min(conf.shape) and len(set(mapping.values())) == len(mapping)
        assert acc == pytest.approx(sum(conf[k, l] for k, l in mapping.items()) / n, abs=1e-12)
        assert acc == pytest.approx(np.mean(np.array([mapping.get(int(k), -1) for k in clusters]) == labels))


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


def _random_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Labels and clusters of a random size, numbers of classes and of cluster ids, some ids left unused."""
    n = int(rng.integers(1, 500))
    n_labels, n_ids = int(rng.integers(1, 12)), int(rng.integers(1, 16))
    labels = rng.integers(0, n_labels, n)
    used = rng.choice(n_ids, size=int(rng.integers(1, n_ids + 1)), replace=False)  # a K-component model, some empty
    if rng.random() < 0.5:
        return labels, rng.choice(used, n)
    noisy = rng.random(n) < rng.uniform(0, 0.5)  # clusters that follow the labels, up to noise
    return labels, np.where(noisy, rng.choice(used, n), used[labels % len(used)])


def _degenerate_cases(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """One predicted cluster, one true class, both single, and one cluster under an id past the used ones."""
    out = []
    for n in (1, 2, 3, 7, 39, 98, 212, 1000):
        labels = rng.integers(0, 9, n)
        out += [(labels, np.zeros(n, int)), (np.zeros(n, int), labels), (np.full(n, 3), np.full(n, 7)),
                (labels, np.full(n, 11)), (np.ones(n, int), rng.integers(0, 2, n))]
    return out


@pytest.mark.parametrize("average", ["geometric", "arithmetic"])
def test_nmi_matches_scikit_learn(average):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    cases = [_random_case(rng) for _ in range(300)] + _degenerate_cases(rng)
    for labels, clusters in cases:
        want = sklearn_metrics.normalized_mutual_info_score(labels, clusters, average_method=average)
        got = metrics.nmi(labels, clusters, average=average)
        assert got == pytest.approx(want, abs=1e-12), (average, len(labels), np.unique(labels), np.unique(clusters))


def test_nmi_of_a_single_cluster_is_exactly_zero_and_of_two_single_ones_one():
    # 9 true classes of these sizes against one cluster: p_k = sum_l c_kl / n rounds below 1, so H(C) came out about
    # 1e-16 instead of 0 and the NMI was 1.5e-8 (n = 39) or NaN (n = 212)
    for sizes in ([5, 1, 3, 4, 5, 6, 2, 9, 4], [40, 26, 31, 29, 40, 46]):
        labels = np.repeat(np.arange(len(sizes)), sizes)
        one = np.zeros(len(labels), int)
        for average in ("geometric", "arithmetic"):
            assert metrics.nmi(labels, one, average) == 0.0 and metrics.nmi(one, labels, average) == 0.0
            assert metrics.nmi(one, one + 4, average) == 1.0
    with pytest.raises(ValueError, match="average"):
        metrics.nmi(labels, one, average="max")


def test_nmi_ignores_unused_cluster_ids():
    labels = np.array([0, 0, 1, 1, 2, 2, 2])
    clusters = np.array([0, 0, 1, 1, 1, 2, 2])
    for average in ("geometric", "arithmetic"):
        assert metrics.nmi(labels, 5 * clusters + 3, average) == pytest.approx(metrics.nmi(labels, clusters, average))


def test_active_units_counts_dimensions_with_variance():
    rng = np.random.default_rng(0)
    mu = np.stack([rng.normal(size=5000), 0.05 * rng.normal(size=5000), np.full(5000, 3.0)], 1)
    n, a = metrics.active_units(mu)
    assert n == 1 and a[0] == pytest.approx(1.0, abs=0.05) and a[2] == pytest.approx(0.0)


def test_across_members():
    s = metrics.across_members([1.0, 2.0, 3.0])
    assert s["mean"] == 2.0 and s["std"] == pytest.approx(1.0) and s["values"] == [1.0, 2.0, 3.0]
