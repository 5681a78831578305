"""Reading an experiment's config: a YAML file or a built-in config's name, its ``quick:`` layer and ``key=value``
overrides, merged onto the experiment's schema and validated (:func:`load_config`)."""

from __future__ import annotations

import dataclasses
import importlib.resources
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf import errors as oc_errors

from vlab.errors import ConfigError
from vlab.harness.config import QUICK_KEY, merge, parse_overrides, read_yaml, resolve_override_keys
from vlab.harness.experiment import Experiment, resolve

SWEEP_KEY = "sweep"
CONFIG_PACKAGE = "vlab.configs"


def builtin_configs() -> dict[str, Path]:
    """The configs shipped with vlab, by name (``kl_fit`` for ``kl_fit.yaml``)."""
    root = importlib.resources.files(CONFIG_PACKAGE)
    return {Path(p.name).stem: Path(str(p)) for p in sorted(root.iterdir(), key=lambda p: p.name)
            if p.name.endswith(".yaml")}


def config_path(config: str | Path) -> Path:
    """The config file ``config`` names: a path to a YAML file, else the name of a built-in config."""
    path = Path(config)
    if path.is_file() or path.suffix in (".yaml", ".yml") or "/" in str(config):
        return path
    shipped = builtin_configs()
    if str(config) in shipped:
        return shipped[str(config)]
    raise ConfigError(f"config '{config}' is neither a file nor a built-in config: expected a YAML path or one of "
                      f"{', '.join(shipped)}")


def as_raw(config: Any) -> DictConfig:
    """A config of any kind :func:`load_config` takes, as an unvalidated OmegaConf mapping (a copy)."""
    if isinstance(config, str | Path):
        return read_yaml(config_path(config))
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
        config = _plain(config)
    if isinstance(config, DictConfig):
        return config.copy()
    if isinstance(config, Mapping):
        try:
            return OmegaConf.create(_plain(dict(config)))
        except oc_errors.OmegaConfBaseException as e:
            raise ConfigError(f"config mapping is not valid: {str(e).strip().splitlines()[0]}") from None
    raise ConfigError(f"config {config!r} is not valid: expected a YAML path, a built-in config's name, a mapping "
                      "or an experiment's Config object")


def _plain(node: Any) -> Any:
    """Dataclasses, tuples and mappings inside a config object as plain dicts and lists (values unchecked)."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return {f.name: _plain(getattr(node, f.name)) for f in dataclasses.fields(node)}
    if isinstance(node, Mapping):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_plain(v) for v in node]
    return node


def config_description(path: Path) -> str:
    """The first comment line of a YAML config."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line.strip():
            break
    return ""


def load_config(config: Any, overrides: list[str] = (), *, quick: bool = False) -> tuple[type[Experiment], Any]:
    """Read a config with its overrides, resolve its experiment and return ``(ExperimentClass, cfg)``; ``quick``
    applies the config's ``quick:`` overrides first.

    ``config`` is a YAML path, a built-in config's name, or a config built in Python: a mapping (a dict, an
    OmegaConf ``DictConfig``) or an experiment's ``Config`` dataclass. Every kind is merged onto the experiment's
    schema and validated the same way, so an edited object with a bad value is the same :class:`ConfigError`
    as a bad YAML file."""
    raw = as_raw(config)
    where = str(config) if isinstance(config, str | Path) else "the config object"
    raw.pop(SWEEP_KEY, None)  # a sweep is expanded by the command line, never part of one run's config
    quick_layer = raw.pop(QUICK_KEY, None)
    layers = [raw]
    if quick and quick_layer is not None:
        if not OmegaConf.is_dict(quick_layer):
            raise ConfigError(f"key '{QUICK_KEY}' in '{where}': expected a mapping of overrides")
        layers.append(quick_layer)
    layers.append(parse_overrides(list(overrides)))
    name = None
    for layer in layers:
        if "experiment" in layer:
            name = layer["experiment"]
    if name is None:
        raise ConfigError(f"key 'experiment' is missing in '{where}': expected the experiment's name first")
    cls = resolve(name)
    layers[-1] = parse_overrides(resolve_override_keys(list(overrides), cls.Config))
    return cls, merge(cls.Config, *layers)
