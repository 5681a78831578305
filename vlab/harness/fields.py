"""Config fields: a value with a default, numeric bounds and a help text (:func:`spec`), or a nested
sub-configuration (:func:`nested`). The bounds are checked by :func:`vlab.harness.config.validate`."""

from __future__ import annotations

import typing
from dataclasses import field
from typing import Any

from omegaconf import MISSING


def spec(
    default: Any = MISSING,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    help: str = "",
) -> Any:
    """A dataclass field with a default and numeric bounds checked by :func:`validate`.

    Args:
        default: the field's default; a list or dict is copied for every instance. Without one the field is
            ``MISSING`` and the config must give it.
        gt: the value must be greater than this, or None for no bound.
        ge: the value must be at least this, or None for no bound.
        lt: the value must be less than this, or None for no bound.
        le: the value must be at most this, or None for no bound.
        help: a one-line description of the field, kept in its metadata.

    Returns:
        A ``dataclasses.field`` whose metadata holds the bounds and the help text.
    """
    meta = {"gt": gt, "ge": ge, "lt": lt, "le": le, "help": help}
    if isinstance(default, list | dict):
        value = default
        return field(default_factory=lambda: typing.cast(Any, type(value))(value), metadata=meta)
    return field(default=default, metadata=meta)


def nested(cls: type, **kwargs: Any) -> Any:
    """A dataclass field holding a sub-configuration ``cls(**kwargs)``."""
    return field(default_factory=lambda: cls(**kwargs))
