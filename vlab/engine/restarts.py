"""Restarts as members: R runs per seed trained side by side, and per seed the one of highest score kept.

With ``n`` seeds of ``R`` restarts each, member ``i`` of a sweep point is restart ``i % R`` of seed ``i // R``; the
members of a run are ``Members(cfg, points, n * R)`` while training and ``Members(cfg, points, n)`` once one restart
per seed is kept (:func:`kept_members`), so the kept member of seed ``s`` of point ``p`` is member ``p n + s``.
Choosing by an unsupervised score (a training ELBO, a likelihood) guards against a local optimum without looking at
labels.
"""

from __future__ import annotations

import numpy as np

from vlab.engine.members import Members


def best_restarts(scores: np.ndarray, restarts: int) -> np.ndarray:
    """For ``scores`` of shape (G R,), G groups of ``restarts`` consecutive members, the index of each group's member
    of highest score: g R + argmax_r scores[g R + r] (the first of tied ones), shape (G,)."""
    scores = np.asarray(scores)
    if restarts < 1 or scores.ndim != 1 or scores.shape[0] % restarts:
        raise ValueError(f"expected scores of shape (groups * {restarts},), got {list(scores.shape)}")
    per_group = scores.reshape(-1, restarts)
    return np.arange(per_group.shape[0]) * restarts + np.argmax(per_group, axis=1)


def kept_members(members: Members, restarts: int) -> Members:
    """The members left when one restart of each seed is kept: the same points with ``n_seeds / restarts`` seeds."""
    if members.n_seeds % restarts:
        raise ValueError(f"{members.n_seeds} members per point are not whole groups of {restarts} restarts")
    return Members(members.cfg, members.points, members.n_seeds // restarts)
