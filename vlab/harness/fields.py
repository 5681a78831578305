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
    """A dataclass field with a default and numeric bounds checked by :func:`validate`."""
    meta = {"gt": gt, "ge": ge, "lt": lt, "le": le, "help": help}
    if isinstance(default, list | dict):
        value = default
        return field(default_factory=lambda: typing.cast(Any, type(value))(value), metadata=meta)
    return field(default=default, metadata=meta)


def nested(cls: type, **kwargs: Any) -> Any:
    """A dataclass field holding a sub-configuration ``cls(**kwargs)``."""
    return field(default_factory=lambda: cls(**kwargs))
