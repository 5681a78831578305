"""Measurements of a trained latent-variable model: active units, clustering accuracy (Hungarian matching), NMI,
and the mean and spread of metrics across vmapped seeds. Host-side numpy; nothing here is differentiated."""

from __future__ import annotations

from typing import Any

import numpy as np


def active_units(mu: np.ndarray, threshold: float = 0.01) -> tuple[int, np.ndarray]:
    """Active units (Burda et al. 2016): dimension j is active when A_j = Cov_x(E_{q(z|x)}[z_j]) > threshold.

    ``mu`` holds the posterior means of a set of points, shape ``(n, z_dim)``; returns the count and A.
    """
    a = np.var(np.asarray(mu, dtype=np.float64), axis=0)
    return int(np.sum(a > threshold)), a


def linear_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact minimum-cost assignment of rows to columns (Hungarian / Kuhn-Munkres with potentials, O(n^3)).

    A rectangular ``(r, c)`` cost is padded with zeros to a square; returns ``(rows, cols)`` of the min(r, c)
    matched pairs, rows ascending, minimising sum cost[rows, cols] (the same contract as scipy's
    ``linear_sum_assignment``).
    """
    cost = np.asarray(cost, dtype=np.float64)
    r, c = cost.shape
    n = max(r, c)
    a = np.zeros((n + 1, n + 1))
    a[1 : r + 1, 1 : c + 1] = cost
    u = np.zeros(n + 1)
    v = np.zeros(n + 1)
    p = np.zeros(n + 1, dtype=int)  # p[j]: row matched to column j (1-based; 0 = none)
    way = np.zeros(n + 1, dtype=int)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = np.full(n + 1, np.inf)
        used = np.zeros(n + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            cur = a[i0, 1:] - u[i0] - v[1:]
            free = ~used[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            cand = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(cand)) + 1
            delta = cand[j1 - 1]
            u[p[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    row_of_col = p[1:] - 1
    pairs = sorted((int(row_of_col[j]), j) for j in range(n) if row_of_col[j] < r and j < c)
    rows = np.array([i for i, _ in pairs], dtype=int)
    cols = np.array([j for _, j in pairs], dtype=int)
    return rows, cols


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
    """Unsupervised accuracy max_m (1/n) sum_i 1[l_i = m(c_i)] over one-to-one maps m from clusters to labels,
    found exactly by :func:`linear_assignment` on the confusion matrix. Returns the accuracy and the map."""
    c = confusion_matrix(labels, clusters)
    rows, cols = linear_assignment(-c)
    return float(c[rows, cols].sum() / max(len(labels), 1)), {int(r): int(k) for r, k in zip(rows, cols, strict=True)}


def nmi(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Normalised mutual information I(L; C) / sqrt(H(L) H(C)) (Strehl & Ghosh 2002; 1 for identical partitions,
    0 for independent ones; defined as 1 when both partitions are trivial)."""
    c = confusion_matrix(labels, clusters).astype(np.float64)
    n = c.sum()
    p = c / n
    pk, pl = p.sum(1), p.sum(0)
    nz = p > 0
    mi = float(np.sum(p[nz] * np.log(p[nz] / np.outer(pk, pl)[nz])))
    hk = -float(np.sum(pk[pk > 0] * np.log(pk[pk > 0])))
    hl = -float(np.sum(pl[pl > 0] * np.log(pl[pl > 0])))
    if hk == 0.0 or hl == 0.0:
        return 1.0 if hk == hl else 0.0
    return mi / np.sqrt(hk * hl)


def across_members(values: Any) -> dict[str, Any]:
    """Mean, standard deviation and per-member values of a metric with a leading member (seed) axis."""
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
            "min": float(a.min()), "max": float(a.max()), "values": a.tolist()}


def summarise(values: list[float] | np.ndarray, n_seeds: int) -> Any:
    """A float for one seed, else mean/std/min/max/values across seeds."""
    values = np.asarray(values, dtype=np.float64)
    return float(values[0]) if n_seeds == 1 else across_members(values)
