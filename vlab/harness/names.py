"""Names in configs checked against the tables the mathematics offers (rules, losses, activations, ...): one
one-line :class:`ConfigError` naming the key, the value and the names expected."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vlab.errors import ConfigError


def check_names(values: Sequence[str], table: Mapping[str, Any], key: str, *, what: str = "name",
                once: bool = True) -> None:
    """A config's list of names: non-empty, each a key of ``table`` and, with ``once``, each once.

    Args:
        values: the names the config gave.
        table: the names that are valid (its keys), e.g. a registry of objects.
        key: the dotted config key, named in the error.
        what: what one name is, for the "each ... once" message.
        once: whether a name may appear only once.

    Returns:
        None; raises :class:`ConfigError` naming ``key``, the value and what was expected otherwise.
    """
    expected = ", ".join(table)
    if not values:
        raise ConfigError(f"key '{key}': value [] is not valid: expected at least one of {expected}")
    for v in values:
        if v not in table:
            raise ConfigError(f"key '{key}': value '{v}' is not valid: expected one of {expected}")
    if once and len(set(values)) != len(values):
        raise ConfigError(f"key '{key}': value {list(values)} is not valid: expected each {what} once")
