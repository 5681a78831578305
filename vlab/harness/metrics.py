"""Measurements of a trained latent-variable model: active units, clustering accuracy (optimal matching), NMI,
and the mean and spread of metrics across vmapped seeds. Host-side numpy; nothing here is differentiated."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment


def active_units(mu: np.ndarray, threshold: float = 0.01) -> tuple[int, np.ndarray]:
    """Active units (Burda et al. 2016): dimension j is active when A_j = Cov_x(E_{q(z|x)}[z_j]) > threshold.

    ``mu`` holds the posterior means of a set of points, shape ``(n, z_dim)``; returns the count and A.
    """
    a = np.var(np.asarray(mu, dtype=np.float64), axis=0)
    return int(np.sum(a > threshold)), a


def confusion_matrix(labels: np.ndarray, clusters: np.ndarray, n_labels: int | None = None,
                     n_clusters: int | None = None) -> np.ndarray:
    """Counts C[k, l] of points assigned to cluster k whose true label is l."""
    labels = np.asarray(labels, dtype=int)
    clusters = np.asarray(clusters, dtype=int)
    n_labels = n_labels or int(labels.max()) + 1
    n_clusters = n_clusters or int(clusters.max()) + 1
    c = np.zeros((n_clusters, n_labels), dtype=np.int64)
    np.add.at(c, (clusters, labels), 1)
    return c


def clustering_accuracy(labels: np.ndarray, clusters: np.ndarray) -> tuple[float, dict[int, int]]:
    """Unsupervised accuracy max_m (1/n) sum_i 1[l_i = m(c_i)] over one-to-one maps m from clusters to labels: the
    maximum-weight matching of the confusion matrix C[k, l], found exactly by scipy's ``linear_sum_assignment``
    (with more clusters than labels the unmatched clusters count as errors). Returns the accuracy and the map."""
    c = confusion_matrix(labels, clusters)
    rows, cols = linear_sum_assignment(c, maximize=True)
    return float(c[rows, cols].sum() / max(len(labels), 1)), {int(r): int(k) for r, k in zip(rows, cols, strict=True)}


ENTROPY_TOL = 1e-12
"""Entropies (nats) below this are zero: a one-cluster partition's log n - (1/n) n log n rounds to about +-1e-16, while
the smallest entropy of two non-empty clusters, about (1 + log n) / n, exceeds it for any n below 10^13."""

NMI_AVERAGES = ("geometric", "arithmetic")


def _entropy(counts: np.ndarray) -> float:
    """H = log n - (1/n) sum_k n_k log n_k (nats) of the integer cluster sizes n_k (n = sum_k n_k), 0 below
    :data:`ENTROPY_TOL`."""
    counts = counts[counts > 0].astype(np.float64)
    n = counts.sum()
    h = float(np.log(n) - np.sum(counts * np.log(counts)) / n)
    return h if h > ENTROPY_TOL else 0.0


def _contingency(labels: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Exact integer counts N[k, l] of points in cluster k with label l, over the values that occur (an unused
    cluster id has no row)."""
    _, li = np.unique(np.asarray(labels).ravel(), return_inverse=True)
    _, ci = np.unique(np.asarray(clusters).ravel(), return_inverse=True)
    n = np.zeros((int(ci.max()) + 1, int(li.max()) + 1), dtype=np.int64)
    np.add.at(n, (ci, li), 1)
    return n


def nmi(labels: np.ndarray, clusters: np.ndarray, average: str = "geometric") -> float:
    """Normalised mutual information between the true labels L and the clusters C (Strehl & Ghosh 2002),

        NMI = I(L; C) / sqrt(H(L) H(C))        (average="geometric", vlab's reported ``nmi``), or
        NMI = I(L; C) / ((H(L) + H(C)) / 2)   (average="arithmetic", scikit-learn's default),

    with I(L; C) = sum_kl (N_kl / n) log(n N_kl / (a_k b_l)) from the integer contingency counts N_kl (cluster k,
    label l), a_k and b_l its row and column sums. 1 for identical partitions, 0 for independent ones. The
    degenerate cases follow scikit-learn's ``normalized_mutual_info_score``: both partitions a single cluster -> 1;
    exactly one of them a single cluster (entropy 0, so I = 0) -> 0. Cluster ids that no point uses do not count."""
    if average not in NMI_AVERAGES:
        raise ValueError(f"average={average!r}: expected one of {NMI_AVERAGES}")
    counts = _contingency(labels, clusters)
    hc, hl = _entropy(counts.sum(1)), _entropy(counts.sum(0))
    if hc == 0.0 or hl == 0.0:
        return 1.0 if hc == hl else 0.0
    n = float(counts.sum())
    k, l = np.nonzero(counts)
    nkl = counts[k, l].astype(np.float64)
    outer = counts.sum(1)[k].astype(np.float64) * counts.sum(0)[l]
    mi = float(np.sum(nkl * (np.log(nkl) + np.log(n) - np.log(outer))) / n)
    norm = np.sqrt(hc * hl) if average == "geometric" else 0.5 * (hc + hl)
    return float(np.clip(mi / norm, 0.0, 1.0))


def across_members(values: Any) -> dict[str, Any]:
    """Mean, standard deviation and per-member values of a metric with a leading member (seed) axis."""
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
            "min": float(a.min()), "max": float(a.max()), "values": a.tolist()}


def summarise(values: list[float] | np.ndarray, n_seeds: int) -> Any:
    """A float for one seed, else mean/std/min/max/values across seeds."""
    values = np.asarray(values, dtype=np.float64)
    return float(values[0]) if n_seeds == 1 else across_members(values)
