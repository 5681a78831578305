"""Ancestral sampling: the joint table against a hand-written product, printed textbook values, sample frequencies."""

from __future__ import annotations

import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from vlab.experiments.ancestral import QUERIES, estimates

from vlab.cli.main import main
from vlab.models import bayes_net as bn


def test_joint_table_is_the_product_of_the_tables(x64):
    net = bn.student_network()
    joint = np.asarray(bn.joint_table(net))
    d, f, g, s, l = (np.asarray(c) for c in net.cpts)
    for a, b, c, e, h in itertools.product(range(2), range(2), range(3), range(2), range(2)):
        assert joint[a, b, c, e, h] == pytest.approx(d[a] * f[b] * g[a, b, c] * s[b, e] * l[c, h], rel=1e-12)
    assert joint.sum() == pytest.approx(1.0, abs=1e-12)


def test_seed_marginal_and_printed_values(x64):
    net = bn.student_network()
    joint = bn.joint_table(net)
    d, f, g, s, l = (np.asarray(c) for c in net.cpts)
    # the seed's P(L = l1, S = s1) = sum_{D,F,G} P(D) P(F) P(G|D,F) P(S=s1|F) P(L=l1|G)
    seed = sum(d[a] * f[b] * g[a, b, c] * s[b, 1] * l[c, 1]
               for a, b, c in itertools.product(range(2), range(2), range(3)))
    assert float(bn.probability(joint, {4: 1, 3: 1})) == pytest.approx(seed, rel=1e-12)
    assert float(bn.probability(joint, {4: 1})) == pytest.approx(0.502336, abs=1e-6)
    assert float(bn.conditional(joint, {1: 1}, {2: 2})) == pytest.approx(0.079, abs=5e-4)
    assert float(bn.conditional(joint, {0: 1}, {2: 2})) == pytest.approx(0.629, abs=5e-4)


def test_samples_follow_the_joint():
    net = bn.student_network()
    n = 100_000
    x = bn.ancestral_sample(jax.random.key(0), net, n)
    assert x.shape == (n, 5)
    joint = np.asarray(bn.joint_table(net)).ravel()
    flat = np.ravel_multi_index(tuple(np.asarray(x).T), net.cards)
    freq = np.bincount(flat, minlength=joint.size) / n
    se = np.sqrt(joint * (1 - joint) / n) + 1e-12
    assert np.max(np.abs(freq - joint) / se) < 5.0


def test_children_follow_their_parents():
    # a deterministic child copies its parent: the seed's "parent factor being deterministic"
    net = bn.BayesNet(("A", "B"), (3, 3), ((), (0,)), (jnp.asarray([0.2, 0.3, 0.5]), jnp.eye(3)))
    bn.validate(net)
    x = np.asarray(bn.ancestral_sample(jax.random.key(1), net, 1000))
    assert np.all(x[:, 0] == x[:, 1])


def test_each_variable_draws_from_its_own_named_stream():
    # a variable's draws depend on its stream only: replacing a root's table leaves the other root's samples alone
    net = bn.student_network()
    other = net._replace(cpts=(jnp.asarray([0.1, 0.9]),) + net.cpts[1:])
    a, b = (np.asarray(bn.ancestral_sample(jax.random.key(2), m, 500)) for m in (net, other))
    np.testing.assert_array_equal(a[:, 1], b[:, 1])
    assert np.any(a[:, 0] != b[:, 0])


def test_estimates_exact_parts_and_rejection_counts(x64):
    net = bn.student_network()
    n = 20_000
    res = estimates(jax.random.key(4), net, n)
    joint = bn.joint_table(net)
    x = np.asarray(bn.ancestral_sample(jax.random.key(4), net, n))
    for name, (query, evidence) in QUERIES.items():
        assert float(res[f"query/{name}/exact"]) == pytest.approx(float(bn.conditional(joint, query, evidence)),
                                                                  rel=1e-12)
        ev = np.all([x[:, i] == v for i, v in evidence.items()], axis=0) if evidence else np.ones(n, bool)
        hit = ev & np.all([x[:, i] == v for i, v in query.items()], axis=0)
        assert int(res[f"query/{name}/kept"]) == int(ev.sum())
        assert float(res[f"query/{name}/mc"]) == pytest.approx(hit.sum() / ev.sum(), rel=1e-12)
    np.testing.assert_allclose(np.asarray(res["marginal/G/mc"]), np.bincount(x[:, 2], minlength=3) / n, rtol=1e-12)
    assert float(res["running"][-1]) == pytest.approx(float(res["query/P(L=l1, S=s1)/mc"]), rel=1e-12)
    assert float(res["joint_sum"]) == pytest.approx(1.0, abs=1e-12)


def test_validate_rejects_bad_networks():
    good = bn.student_network()
    with pytest.raises(ValueError, match="earlier"):
        bn.validate(good._replace(parents=((), (4,), (0, 1), (1,), (2,))))
    with pytest.raises(ValueError, match="shape"):
        bn.validate(good._replace(cpts=(good.cpts[0], good.cpts[1], good.cpts[3], good.cpts[3], good.cpts[4])))
    with pytest.raises(ValueError, match="probability"):
        bn.validate(good._replace(cpts=(jnp.asarray([0.5, 0.6]),) + good.cpts[1:]))


def test_quick_config_end_to_end(quick):
    path = quick("ancestral")
    m = json.loads((path / "metrics.json").read_text())
    assert all(c["ok"] for c in m["checks"]), [c for c in m["checks"] if not c["ok"]]
    assert m["queries"]["P(L=l1, S=s1)"]["exact"] == pytest.approx(0.19794, abs=1e-4)
    assert (path / "ancestral.png").exists()


@pytest.mark.parametrize("over", ["n_samples=10", "z_tolerance=0", "n_samples=many"])
def test_bad_config_exits_2_with_one_line(over, tmp_path, capsys):
    assert main(["run", "configs/ancestral.yaml", over, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and over.split("=")[0] in err[0]
