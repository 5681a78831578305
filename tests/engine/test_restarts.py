"""Restart selection: the highest score of each group of restarts, and the members kept."""

from __future__ import annotations

import numpy as np
import pytest

from vlab.engine.members import Members
from vlab.engine.restarts import best_restarts, kept_members


def test_best_restarts_takes_each_groups_highest_score():
    scores = np.array([0.1, 0.7, 0.3, -2.0, -5.0, -1.0, 4.0, 4.0, 1.0])  # 3 groups of 3 restarts
    np.testing.assert_array_equal(best_restarts(scores, 3), [1, 5, 6])  # a tie keeps the first
    np.testing.assert_array_equal(best_restarts(scores, 1), np.arange(9))
    for bad, r in ((scores, 2), (scores.reshape(3, 3), 3), (scores, 0)):
        with pytest.raises(ValueError, match="scores"):
            best_restarts(bad, r)


def test_kept_members_are_the_points_with_one_member_per_seed():
    points = [{"train.optimizer.lr": 1e-3}, {"train.optimizer.lr": 2e-3}]
    training = Members(None, points, 2 * 3)  # 2 seeds x 3 restarts per point
    kept = kept_members(training, 3)
    assert kept.points == points and kept.n_seeds == 2 and len(kept) == 4
    # kept member p n + s is seed s of point p; its training members are (p n + s) R + r
    sel = best_restarts(np.arange(12.0), 3)
    assert [training.point_of(int(i)) for i in sel] == [kept.point_of(j) for j in range(4)]
    assert [kept.label(j) for j in range(4)] == ["lr=0.001, seed 0", "lr=0.001, seed 1", "lr=0.002, seed 0",
                                                 "lr=0.002, seed 1"]
    with pytest.raises(ValueError, match="restarts"):
        kept_members(Members(None, points, 5), 3)
