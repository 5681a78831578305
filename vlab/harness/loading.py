"""Reading an experiment's config: a YAML file or a built-in config's name, its ``quick:`` layer and ``key=value``
overrides, merged onto the experiment's schema and validated (:func:`load_config`)."""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

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


def config_description(path: Path) -> str:
    """The first comment line of a YAML config."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line.strip():
            break
    return ""


def load_config(config: str | Path, overrides: list[str] = (), *, quick: bool = False) -> tuple[type[Experiment], Any]:
    """Read a config (a YAML path or a built-in config's name) with its overrides, resolve its experiment and
    return ``(ExperimentClass, cfg)``; ``quick`` applies the config's ``quick:`` overrides first."""
    raw = read_yaml(config_path(config))
    raw.pop(SWEEP_KEY, None)  # a sweep is expanded by the command line, never part of one run's config
    quick_layer = raw.pop(QUICK_KEY, None)
    layers = [raw]
    if quick and quick_layer is not None:
        if not OmegaConf.is_dict(quick_layer):
            raise ConfigError(f"key '{QUICK_KEY}' in '{config}': expected a mapping of overrides")
        layers.append(quick_layer)
    layers.append(parse_overrides(list(overrides)))
    name = None
    for layer in layers:
        if "experiment" in layer:
            name = layer["experiment"]
    if name is None:
        raise ConfigError(f"key 'experiment' is missing in '{config}': expected the experiment's name first")
    cls = resolve(name)
    layers[-1] = parse_overrides(resolve_override_keys(list(overrides), cls.Config))
    return cls, merge(cls.Config, *layers)
