"""Sweep grids: the values of swept keys (a list or a range), read from a config's ``sweep:`` section or from
``--sweep key=v1,v2`` items, their points (the cartesian product) and the split into keys that run as vmapped
members and keys that need programs of their own. The command line (:mod:`vlab.cli.sweep`) and :func:`vlab.run`
share them."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import yaml
from omegaconf import DictConfig, OmegaConf

from vlab import trees
from vlab.errors import ConfigError
from vlab.harness.config import resolve_key
from vlab.harness.loading import SWEEP_KEY


def expand_values(key: str, spec: Any) -> list:
    """The values of one swept key: a list as is, a scalar as ``[scalar]``, or a range mapping
    ``{start, stop, num, log}`` as ``num`` evenly (or log-evenly) spaced values from start to stop."""
    if isinstance(spec, list | tuple):
        if not spec:
            raise ConfigError(f"key '{SWEEP_KEY}.{key}': value [] is not valid: expected at least one value")
        return list(spec)
    if isinstance(spec, dict):
        extra = set(spec) - {"start", "stop", "num", "log"}
        if extra or not {"start", "stop", "num"} <= set(spec):
            raise ConfigError(f"key '{SWEEP_KEY}.{key}': value {spec} is not valid: expected a list or a range "
                              "{start, stop, num, log}")
        num = spec["num"]
        if not isinstance(num, int) or num < 1:
            raise ConfigError(f"key '{SWEEP_KEY}.{key}.num': value {num} is not valid: expected an integer >= 1")
        start, stop = float(spec["start"]), float(spec["stop"])
        if spec.get("log", False):
            if start <= 0 or stop <= 0:
                raise ConfigError(f"key '{SWEEP_KEY}.{key}': value {spec} is not valid: a log range needs start > 0 "
                                  "and stop > 0")
            return [float(v) for v in np.geomspace(start, stop, num)]
        return [float(v) for v in np.linspace(start, stop, num)]
    return [spec]


def parse_cli(items: list[str]) -> dict[str, list]:
    """``["lr=1e-4,1e-3", "beta=[1,2]"]`` as ``{"lr": [1e-4, 1e-3], "beta": [1, 2]}``."""
    grid: dict[str, list] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise ConfigError(f"--sweep '{item}' is malformed: expected key=v1,v2,... e.g. --sweep "
                              "train.optimizer.lr=1e-3,1e-2")
        text = values if values.startswith("[") else f"[{values}]"
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(f"--sweep '{item}' is malformed: expected key=v1,v2,...") from None
        grid[key] = expand_values(key, _numbers(parsed))
    return grid


def _numbers(value: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` as a string; read such strings as numbers, as OmegaConf does."""
    if isinstance(value, list):
        return [_numbers(v) for v in value]
    if isinstance(value, str):
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
    return value


def from_config(raw: DictConfig) -> dict[str, list]:
    """The ``sweep:`` section of a raw config as ``{key: values}`` (and removed from ``raw``)."""
    section = raw.pop(SWEEP_KEY, None)
    if section is None:
        return {}
    if not OmegaConf.is_dict(section):
        raise ConfigError(f"key '{SWEEP_KEY}': value {section} is not valid: expected a mapping of key: values")
    plain = OmegaConf.to_container(section)
    return {str(k): expand_values(str(k), v) for k, v in trees.flatten(plain, is_leaf=_is_range).items()}


def _is_range(node: Any) -> bool:
    """A sweep value written as a range mapping (``{start: 1e-4, stop: 1e-2, num: 3}``), not a nested key."""
    return isinstance(node, dict) and {"start", "stop", "num"} <= set(node)



def points(grid: dict[str, list]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in order (the last key varies fastest)."""
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]


def as_overrides(point: dict[str, Any]) -> list[str]:
    """A point as ``key=value`` overrides (values in YAML flow style)."""
    return [f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
            for k, v in point.items()]


def resolve_keys(grid: dict[str, list], config_cls: type) -> dict[str, list]:
    """The grid with short keys spelled out (:func:`vlab.harness.config.resolve_key`, the rule overrides follow too)."""
    return {resolve_key(key, config_cls): values for key, values in grid.items()}


def split_grid(grid: dict[str, list], member_keys: tuple[str, ...]) -> tuple[dict[str, list], dict[str, list]]:
    """The grid as ``(outer, inner)``: keys the experiment cannot vary per member (each value a separately compiled
    run) and keys it can (all of their combinations become members of one vmapped program)."""
    inner = {k: v for k, v in grid.items() if k in member_keys}
    return {k: v for k, v in grid.items() if k not in inner}, inner
