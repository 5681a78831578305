"""Checkpoints whose entries say what they are: every leaf of a training state under its pytree key path.

A checkpoint is a flat ``{name: array}`` mapping (saved as ``.npz``): ``params['encoder']['w']``,
``opt_state[0].mu['encoder']['w']``, ``step``, plus whatever the writer adds (``hist/...``, ``meta/...``). Restoring
reads every leaf of a template pytree from the entry of its own key path and checks its shape and dtype, so a
renamed, removed or resized parameter is refused by name instead of being restored into the wrong place.
"""

from __future__ import annotations

import ast
import re
from typing import Any

import jax
import numpy as np

from vlab.engine.sharding import put


def named_leaves(tree: Any) -> dict[str, np.ndarray]:
    """Every leaf of ``tree`` (a dict of pytrees) under its key path, ``params['encoder']['w']``."""
    return {leaf_name(path): np.asarray(leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def leaf_name(path: tuple) -> str:
    """``params['w']`` for the key path ``(DictKey('params'), DictKey('w'))``: the top key bare, the rest as JAX
    spells key paths."""
    return f"{path[0].key}{jax.tree_util.keystr(tuple(path[1:]))}"


class CheckpointMismatch(ValueError):
    """A checkpoint does not hold the leaves, shapes or dtypes of the state it is restored into."""


def restore_named(ckpt: dict[str, np.ndarray], like: Any, where: Any) -> Any:
    """The pytree ``like`` with every leaf read from the checkpoint entry of its key path (:func:`named_leaves`),
    laid out as ``like``'s leaf is (its device or sharding).

    The checkpoint must hold exactly these leaves (among its entries that start with one of ``like``'s top keys)
    with these shapes and dtypes; anything else (a renamed or removed parameter, a changed size, another precision)
    raises :class:`CheckpointMismatch` naming the first leaf that differs and ``where`` the checkpoint is.
    """
    again = "expected a checkpoint of this run's model and config; delete it to train that fit again"
    leaves = jax.tree_util.tree_flatten_with_path(like)[0]
    names = [leaf_name(p) for p, _ in leaves]
    saved = {k for k in ckpt if k.startswith(tuple(like))}
    first_key = tuple(like)[0]
    order = lambda n: (not n.startswith(first_key), n)  # noqa: E731
    missing = sorted((n for n in names if n not in saved), key=order)
    extra = sorted(saved - set(names), key=order)
    if missing or extra:
        what = (f"has no {missing[0]}" if missing else "") + (" and " if missing and extra else "") + \
            (f"holds {extra[0]}, which the model does not have" if extra else "")
        raise CheckpointMismatch(f"checkpoint '{where}' {what} ({len(missing)} leaves missing, {len(extra)} "
                                 f"unexpected): {again}")
    like_of = {n: x for n, (_, x) in zip(names, leaves, strict=True)}
    for name in sorted(names, key=order):
        a, x = ckpt[name], like_of[name]
        if tuple(a.shape) != tuple(x.shape) or a.dtype != np.dtype(x.dtype):
            raise CheckpointMismatch(f"checkpoint '{where}': {name} is {a.dtype}{list(a.shape)} but the model's is "
                                     f"{np.dtype(x.dtype)}{list(x.shape)}: {again}")
    out = [_like(ckpt[n], like_of[n]) for n in names]
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(like), out)


def _like(a: np.ndarray, x: Any) -> Any:
    sharding = getattr(x, "sharding", None)
    return put(a, sharding) if sharding is not None else jax.numpy.asarray(a)


_TOKEN = re.compile(r"""\[('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\d+)\]|\.(\w+)""")


def unflatten_named(entries: dict[str, np.ndarray], top: str) -> Any:
    """The pytree under ``top`` rebuilt from its :func:`named_leaves` entries: ``params['enc'][0]['w']`` becomes
    ``{"enc": [{"w": ...}]}``. Dict keys come back as dicts, sequence indices as lists, attributes (a NamedTuple's
    fields) as dicts keyed by field name; a leaf stored bare under ``top`` comes back as that array.

    Raises:
        KeyError: no entry is under ``top``.
    """
    root: dict = {}
    found = False
    for name, value in entries.items():
        if name != top and not name.startswith((f"{top}[", f"{top}.")):
            continue
        found = True
        tokens = [ast.literal_eval(m.group(1)) if m.group(1) is not None else m.group(2)
                  for m in _TOKEN.finditer(name[len(top):])]
        node, keys = root, [top, *tokens]
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    if not found:
        raise KeyError(top)
    return _lists(root[top])


def _lists(node: Any) -> Any:
    """Dicts whose keys are exactly 0..n-1 (sequence indices) as lists, recursively."""
    if not isinstance(node, dict):
        return node
    out = {k: _lists(v) for k, v in node.items()}
    if out and all(isinstance(k, int) for k in out) and sorted(out) == list(range(len(out))):
        return [out[i] for i in range(len(out))]
    return out
