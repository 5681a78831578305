"""Walks over nested trees by dotted key: configs (dataclasses, DictConfigs), metrics and YAML mappings.

Every dotted-key walk of vlab goes through here: ``get`` reads ``tree["a"]["b"]`` or ``tree.a.b`` for ``"a.b"``,
``flatten`` turns a nested mapping into ``{"a.b": leaf, "c[0].d": leaf}``, and ``schema_keys`` /
``schema_path_of_type`` walk the fields of a dataclass schema.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from typing import Any

_MISSING = object()


def get(tree: Any, dotted: str, default: Any = _MISSING) -> Any:
    """``tree["a"]["b"]`` (mappings) or ``tree.a.b`` (objects) for ``"a.b"``; ``default`` when a part is absent,
    or :class:`KeyError` naming the key when no default is given."""
    node = tree
    for part in dotted.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif not isinstance(node, Mapping) and hasattr(node, part):
            node = getattr(node, part)
        elif default is _MISSING:
            raise KeyError(dotted)
        else:
            return default
    return node


def flatten(tree: Any, prefix: str = "", *, is_leaf: Callable[[Any], bool] | None = None) -> dict[str, Any]:
    """``{"a": {"b": 1}, "c": [{"d": 2}]}`` as ``{"a.b": 1, "c[0].d": 2}``; a list of scalars is one leaf, and so is
    any node ``is_leaf`` accepts."""
    out: dict[str, Any] = {}
    if is_leaf is not None and prefix and is_leaf(tree):
        out[prefix] = tree
    elif isinstance(tree, Mapping):
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k), is_leaf=is_leaf))
    elif isinstance(tree, list) and any(isinstance(v, Mapping | list) for v in tree):
        for i, v in enumerate(tree):
            out.update(flatten(v, f"{prefix}[{i}]", is_leaf=is_leaf))
    else:
        out[prefix] = tree
    return out


def _fields(cls: type) -> list[tuple[str, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f.name, hints.get(f.name)) for f in dataclasses.fields(cls)]


def schema_keys(schema: type) -> list[str]:
    """Every dotted leaf key of a dataclass schema (``train.optimizer.lr``, ...)."""
    out: list[str] = []
    for name, t in _fields(schema):
        if isinstance(t, type) and dataclasses.is_dataclass(t):
            out.extend(f"{name}.{k}" for k in schema_keys(t))
        else:
            out.append(name)
    return out


def schema_path_of_type(schema: type, type_name: str) -> str | None:
    """The dotted path of the first field of a dataclass schema whose type is named ``type_name``."""
    for name, t in _fields(schema):
        if isinstance(t, type) and dataclasses.is_dataclass(t):
            if t.__name__ == type_name:
                return name
            found = schema_path_of_type(t, type_name)
            if found:
                return f"{name}.{found}"
    return None
