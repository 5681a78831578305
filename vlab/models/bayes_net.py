"""Discrete directed graphical models: ancestral sampling and exact inference by enumeration (seed 003, q. 1).

A network lists its variables in a topological order (parents before children). Each variable v has a
conditional probability table cpt_v of shape (*cards of its parents, card_v), so

    p(x_1, ..., x_N) = prod_v cpt_v[x_parents(v), x_v].

Ancestral sampling draws the variables in that order, each from its table row selected by the parents' values
already drawn. Exact marginals and conditionals come from the full joint table (fine for small networks).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vlab.keys import stream


class BayesNet(NamedTuple):
    """Variable names, cardinalities, parent indices (each earlier in the order) and tables."""

    names: tuple[str, ...]
    cards: tuple[int, ...]
    parents: tuple[tuple[int, ...], ...]
    cpts: tuple[jax.Array, ...]


def student_network() -> BayesNet:
    """The student network (Koller & Friedman, Probabilistic Graphical Models, fig. 3.4), in the seed's letters:
    D (difficulty), F (intelligence; the seed's F), G (grade | D, F), S (SAT | F), L (letter | G).

    The seed's marginal P(L = l, S = s) = sum_{D, F, G} P(D) P(F) P(G | D, F) P(S | F) P(L | G).
    """
    d = jnp.asarray([0.6, 0.4])
    f = jnp.asarray([0.7, 0.3])
    g = jnp.asarray([[[0.3, 0.4, 0.3], [0.9, 0.08, 0.02]],      # D = d0: F = f0, f1
                     [[0.05, 0.25, 0.7], [0.5, 0.3, 0.2]]])     # D = d1: F = f0, f1
    s = jnp.asarray([[0.95, 0.05], [0.2, 0.8]])
    letter = jnp.asarray([[0.1, 0.9], [0.4, 0.6], [0.99, 0.01]])
    return BayesNet(("D", "F", "G", "S", "L"), (2, 2, 3, 2, 2), ((), (), (0, 1), (1,), (2,)),
                    (d, f, g, s, letter))


def validate(net: BayesNet) -> None:
    """Raise ValueError unless parents precede children, table shapes match and rows sum to one."""
    for i, (parents, cpt) in enumerate(zip(net.parents, net.cpts, strict=True)):
        if any(p >= i for p in parents):
            raise ValueError(f"variable {net.names[i]}: parents must come earlier in the order")
        shape = tuple(net.cards[p] for p in parents) + (net.cards[i],)
        if tuple(cpt.shape) != shape:
            raise ValueError(f"variable {net.names[i]}: table shape {tuple(cpt.shape)}, expected {shape}")
        if not np.allclose(np.sum(np.asarray(cpt), -1), 1.0, atol=1e-6) or np.any(np.asarray(cpt) < 0):
            raise ValueError(f"variable {net.names[i]}: table rows must be probability vectors")


def ancestral_sample(key: jax.Array, net: BayesNet, n: int) -> jax.Array:
    """n joint samples, shape (n, N): x_v ~ cpt_v[x_parents(v)] in topological order, parents first.

    Variable v draws from the key stream named after it, ``stream(key, names[v])``."""
    values: list[jax.Array] = []
    for i, (parents, cpt) in enumerate(zip(net.parents, net.cpts, strict=True)):
        rows = cpt[tuple(values[p] for p in parents)] if parents else jnp.broadcast_to(cpt, (n, net.cards[i]))
        values.append(jax.random.categorical(stream(key, net.names[i]), jnp.log(rows), axis=-1))
    return jnp.stack(values, axis=-1)


def joint_table(net: BayesNet) -> jax.Array:
    """The full joint p(x_1, ..., x_N) as an array of shape ``cards`` (product of broadcast tables)."""
    n = len(net.names)
    joint = jnp.ones(net.cards)
    for i, (parents, cpt) in enumerate(zip(net.parents, net.cpts, strict=True)):
        axes = list(parents) + [i]
        order = np.argsort(axes)
        t = jnp.transpose(cpt, order)
        shape = [net.cards[j] if j in axes else 1 for j in range(n)]
        joint = joint * t.reshape(shape)
    return joint


def marginal(joint: jax.Array, keep: tuple[int, ...]) -> jax.Array:
    """Sum the joint over every variable not in ``keep`` (kept axes stay in their original order)."""
    drop = tuple(i for i in range(joint.ndim) if i not in keep)
    return jnp.sum(joint, axis=drop)


def probability(joint: jax.Array, assignment: dict[int, int]) -> jax.Array:
    """P(X_i = a_i for i in ``assignment``): the joint summed over the other variables."""
    idx = tuple(assignment.get(i, slice(None)) for i in range(joint.ndim))
    return jnp.sum(joint[idx])


def conditional(joint: jax.Array, query: dict[int, int], evidence: dict[int, int]) -> jax.Array:
    """P(query | evidence) = P(query, evidence) / P(evidence)."""
    return probability(joint, {**evidence, **query}) / probability(joint, evidence)


def matches(samples: jax.Array, assignment: dict[int, int]) -> jax.Array:
    """Boolean (n,): which samples agree with ``assignment``."""
    ok = jnp.ones(samples.shape[0], dtype=bool)
    for i, a in assignment.items():
        ok = ok & (samples[:, i] == a)
    return ok
