"""Members of one vmapped program: ordering, per-member values, learning-rate factors and keys."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from vlab.engine.members import Members
from vlab.harness.config import OptimizerConfig, TrainConfig


class Cfg:
    seed = 7
    n_seeds = 2
    train = TrainConfig(optimizer=OptimizerConfig(lr=1e-3))


def test_points_times_seeds_in_point_major_order():
    m = Members(Cfg(), [{"train.optimizer.lr": 1e-3}, {"train.optimizer.lr": 4e-3}])
    assert len(m) == 4 and m.swept
    np.testing.assert_allclose(m.values("train.optimizer.lr"), [1e-3, 1e-3, 4e-3, 4e-3])
    np.testing.assert_allclose(m.lr_factors(), [1, 1, 4, 4])
    assert [sl for _, sl in m.groups()] == [slice(0, 2), slice(2, 4)]
    rows = m.rows({"elbo": [1, 2, 3, 4]})
    assert rows[3] == {"train.optimizer.lr": 4e-3, "seed_index": 1, "elbo": 4.0}


def test_without_a_sweep_there_is_one_point_and_no_lr_factor():
    m = Members(Cfg())
    assert len(m) == 2 and not m.swept and m.lr_factors() is None
    assert m.values("seed").tolist() == [7, 7]


def test_expand_adds_a_list_valued_key_unless_the_point_sets_it():
    m = Members(Cfg(), [{"seed": 1}, {"seed": 2}]).expand("beta", [0.5, 1.0])
    assert m.points == [{"seed": 1, "beta": 0.5}, {"seed": 1, "beta": 1.0}, {"seed": 2, "beta": 0.5},
                        {"seed": 2, "beta": 1.0}]
    assert Members(Cfg(), [{"beta": 3.0}]).expand("beta", [0.5, 1.0]).points == [{"beta": 3.0}]


@pytest.mark.parametrize("stream", [jax.random.PRNGKey, lambda s: jax.random.split(jax.random.key(s), 6)[2]])
def test_keys_are_those_a_separate_run_of_each_point_splits(stream):
    m = Members(Cfg(), [{"seed": 3}, {}])
    keys = m.keys(stream)
    if jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key):
        keys, stream = jax.random.key_data(keys), (lambda f: lambda s: jax.random.key_data(f(s)))(stream)
    keys = np.asarray(keys)
    assert keys.shape[0] == 4
    np.testing.assert_array_equal(keys[:2], np.asarray(jax.random.split(stream(3), 2)))
    np.testing.assert_array_equal(keys[2:], np.asarray(jax.random.split(stream(7), 2)))


def test_a_member_label_names_its_point_and_seed():
    assert Members(Cfg()).label(1) == "seed 1"
    m = Members(Cfg(), [{"train.optimizer.lr": 1e-3}, {"train.optimizer.lr": 4e-3}])
    assert m.label(3) == "lr=0.004, seed 1"
