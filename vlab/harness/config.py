"""Typed experiment configurations: dataclass schemas with defaults, YAML and ``key=value`` overrides.

Loading, merging and parsing overrides is OmegaConf's job; this module adds the schema pieces every experiment
shares (:class:`BaseConfig`, :class:`TrainConfig`, :class:`OptimizerConfig`), value constraints declared on the
fields (``spec(0.1, gt=0)``) and error messages that name the key, the value and what was expected.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf import errors as oc_errors

from vlab.errors import ConfigError
from vlab.harness.fields import nested, spec
from vlab.harness.optimizers import OptimizerConfig, build_optimizer
from vlab.trees import schema_keys, schema_path_of_type

__all__ = [
    "QUICK_KEY", "BaseConfig", "FiguresConfig", "LoggingConfig", "OptimizerConfig", "ParallelConfig", "TrainConfig",
    "build_optimizer", "merge", "nested", "parse_overrides", "read_yaml", "resolve_key", "resolve_override_keys",
    "spec", "to_dict", "to_yaml", "validate",
]

QUICK_KEY = "quick"


@dataclass
class TrainConfig:
    """How long to train, in what chunks, and how often to log and checkpoint."""

    steps: int = spec(1000, gt=0, help="optimisation steps")
    chunk_size: int = spec(500, gt=0, help="steps per compiled lax.scan call")
    log_every: int = spec(10, gt=0, help="steps between rows of the metrics history")
    checkpoint_every: int = spec(0, ge=0, help="steps between checkpoints (0: only at the end)")
    checkpoint_seconds: float = spec(60.0, ge=0, help="wall-clock seconds between checkpoints, whatever the step "
                                     "count (0: by steps only); a killed process loses at most this")
    optimizer: OptimizerConfig = nested(OptimizerConfig)


FIGURE_FORMATS = ("png", "pdf", "svg")


@dataclass
class FiguresConfig:
    """How figures are written: PNG always first; PDF or SVG beside it for papers."""

    format: list[str] = spec(["png"], help="any of png, pdf, svg")
    dpi: int = spec(150, gt=0, help="raster resolution")

    def check(self, prefix: str) -> None:
        bad = [f for f in self.format if f not in FIGURE_FORMATS]
        if bad or not self.format:
            raise ConfigError(f"key '{prefix}format': value {self.format} is not valid: expected a non-empty list "
                              f"of {', '.join(FIGURE_FORMATS)}")


@dataclass
class ParallelConfig:
    """A jax.sharding mesh over the devices: batches split over ``data``, vmapped members (seeds,
    initialisations, sweep points) over ``sweep``. 1 x 1 runs on one device."""

    data: int = spec(1, ge=1, help="devices that split each batch")
    sweep: int = spec(1, ge=1, help="devices that split the vmapped members")


@dataclass
class LoggingConfig:
    """Where the run's curves go besides its folder's history.jsonl."""

    tensorboard: bool = spec(False, help="write TensorBoard event files in <run>/tensorboard, one stream per "
                             "member (also: vlab run --tensorboard)")


@dataclass
class BaseConfig:
    """Keys every experiment understands."""

    experiment: str = spec(MISSING, help="the experiment this config runs (vlab list names them); required")
    seed: int = spec(0, ge=0, help="root PRNG seed")
    device: Literal["auto", "cpu", "gpu", "tpu"] = spec("auto", help="where to run (auto: JAX's default backend)")
    precision: Literal["float32", "float64"] = spec("float32", help="float64 switches on jax_enable_x64 for the run")
    figures: FiguresConfig = nested(FiguresConfig)
    parallel: ParallelConfig = nested(ParallelConfig)
    logging: LoggingConfig = nested(LoggingConfig)


# --------------------------------------------------------------------------------------------- loading


def read_yaml(path: str | Path) -> DictConfig:
    """Read a YAML config file, turning a missing file or bad YAML into a :class:`ConfigError`."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file '{path}' does not exist")
    if not p.is_file():
        raise ConfigError(f"config path '{path}' is not a file (expected a .yaml file)")
    try:
        raw = OmegaConf.load(p)
    except yaml.YAMLError as e:
        raise ConfigError(f"config file '{path}' is not valid YAML: {yaml_problem(e)}") from None
    except oc_errors.OmegaConfBaseException as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"config file '{path}' is not valid YAML: {first}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file '{path}' cannot be read ({e}): expected a readable YAML text file") from None
    if not isinstance(raw, DictConfig):
        raise ConfigError(f"config file '{path}' must hold a mapping of keys (got a list or a scalar)")
    return raw


def yaml_problem(e: yaml.YAMLError) -> str:
    """A YAML error as one line with its line number and, for a duplicate key, the key:
    ``line 3: duplicate key 'n_inits'`` or ``line 4, column 7: did not find expected ','``."""
    problem = getattr(e, "problem", None)
    mark = getattr(e, "problem_mark", None)
    if problem is None or mark is None:
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    where = f"line {mark.line + 1}, column {mark.column + 1}"
    dup = re.match(r"found duplicate key (.*)", problem)
    if dup:
        return f"line {mark.line + 1}: duplicate key '{dup.group(1).strip()}'"
    context, context_mark = getattr(e, "context", None), getattr(e, "context_mark", None)
    started = f" ({context} started at line {context_mark.line + 1})" if context and context_mark else ""
    return f"{where}: {problem}{started}"


def parse_overrides(overrides: list[str]) -> DictConfig:
    """``["a.b=1", "c=[1,2]"]`` as a DictConfig; a malformed item is a :class:`ConfigError`."""
    for item in overrides:
        key = item.split("=", 1)[0]
        if "=" not in item or not key or any(c.isspace() for c in key):
            raise ConfigError(f"override '{item}' is malformed: expected key=value, e.g. train.steps=500")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except (yaml.YAMLError, oc_errors.OmegaConfBaseException) as e:
        msg = str(e).strip().splitlines()[0]
        raise ConfigError(f"override list {overrides} is malformed: {msg}") from None


def _valid_keys(schema: DictConfig, full_key: str) -> list[str]:
    node: Any = schema
    parts = [p for p in full_key.split(".")[:-1] if p]
    for p in parts:
        if isinstance(node, DictConfig) and p in node:
            node = node[p]
        else:
            break
    return sorted(str(k) for k in node) if isinstance(node, DictConfig) else []


_TYPE_NAMES = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false", "String": "a string"}


def _explain(msg: str) -> str:
    """Rephrase OmegaConf's validation messages as 'value V is not valid: expected E'."""
    m = re.match(r"Value '(.*)' of type '.*' could not be converted to (\w+)", msg)
    if m:
        return f"value '{m.group(1)}' is not valid: expected {_TYPE_NAMES.get(m.group(2), m.group(2))}"
    m = re.match(r"Value '(.*)' is not a valid bool", msg)
    if m:
        return f"value '{m.group(1)}' is not valid: expected true or false"
    m = re.match(r"Invalid value '(.*)', expected one of \[(.*)\]", msg)
    if m:
        return f"value '{m.group(1)}' is not valid: expected one of {m.group(2).replace(chr(39), '')}"
    m = re.match(r"Invalid type assigned: (\w+) is not a subclass of (\w+)\. value: (.*)", msg)
    if m:
        return f"value {m.group(3)} is not valid: expected a mapping of {m.group(2)} keys"
    return msg


def _config_error(e: Exception, schema_cls: type) -> ConfigError:
    """One line naming the key, the value and what was expected, from an OmegaConf merge error."""
    full = getattr(e, "full_key", None)
    full = None if full in (None, "", "None") else str(full)
    msg = str(e).strip().splitlines()[0]
    m = re.search(r"(\w+) is not a subclass of (\w+)\. value: (.*)", msg)
    if m:
        key = full or schema_path_of_type(schema_cls, m.group(2)) or "?"
        return ConfigError(f"key '{key}': value {m.group(3)} is not valid: expected a mapping of keys")
    return ConfigError(f"key '{full}': {_explain(msg)}" if full else _explain(msg))


def merge(schema_cls: type, *layers: DictConfig) -> Any:
    """Merge config layers onto the dataclass schema and return a validated dataclass instance."""
    schema = OmegaConf.structured(schema_cls)
    layers = tuple(_lift_scalars(schema_cls, layer) for layer in layers)
    try:
        merged = OmegaConf.merge(schema, *layers)
    except oc_errors.ConfigKeyError as e:
        full = str(getattr(e, "full_key", "") or getattr(e, "key", ""))
        valid = _valid_keys(schema, full)
        where = full.rsplit(".", 1)[0] if "." in full else ""
        scope = f" under '{where}'" if where else ""
        raise ConfigError(f"unknown key '{full}'{scope}: valid keys are {', '.join(valid)}") from None
    except oc_errors.OmegaConfBaseException as e:
        raise _config_error(e, schema_cls) from None
    missing = sorted(OmegaConf.missing_keys(merged))
    if missing:
        raise ConfigError(f"key '{missing[0]}' is required but has no value")
    try:
        cfg = OmegaConf.to_object(merged)
    except oc_errors.OmegaConfBaseException as e:
        raise ConfigError(str(e).strip().splitlines()[0]) from None
    validate(cfg)
    return cfg


def _lift_scalars(schema_cls: type, layer: Any) -> Any:
    """A layer whose scalar values for list-typed fields are one-element lists (``beta=0.5`` means ``[0.5]``)."""
    if not OmegaConf.is_dict(layer):
        return layer
    tree = OmegaConf.to_container(layer)

    def lift(cls: type, node: dict) -> None:
        hints = typing.get_type_hints(cls)
        for name, value in node.items():
            t = hints.get(name)
            if isinstance(value, dict) and dataclasses.is_dataclass(t):
                lift(t, value)
            elif typing.get_origin(t) is list and isinstance(value, int | float | str | bool):
                node[name] = [value]

    if dataclasses.is_dataclass(schema_cls):
        lift(schema_cls, tree)
    return OmegaConf.create(tree)


def _bound_error(path: str, value: Any, meta: dict) -> str | None:
    ops = {"gt": ("> ", lambda v, b: v > b), "ge": (">= ", lambda v, b: v >= b),
           "lt": ("< ", lambda v, b: v < b), "le": ("<= ", lambda v, b: v <= b)}
    for name, (sym, ok) in ops.items():
        bound = meta.get(name)
        if bound is None or value is None:
            continue
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                return f"key '{path}': value {value} is not valid: expected a finite number"
            if not ok(v, bound):
                return f"key '{path}': value {value} is not valid: expected a number {sym}{bound}"
    return None


def _non_finite(value: Any) -> bool:
    """Whether a number anywhere in ``value`` (a scalar, or nested lists and mappings) is NaN or infinite."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list | tuple):
        return any(_non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    return False


def _finite_error(path: str, value: Any) -> str | None:
    if _non_finite(value):
        return f"key '{path}': value {value} is not valid: expected finite numbers (no .nan or .inf)"
    return None


def validate(cfg: Any, prefix: str = "") -> None:
    """Check the ``spec`` bounds of every field, recursively, then each dataclass's own ``check()``."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            validate(value, prefix=f"{path}.")
            continue
        if isinstance(value, list) and any(dataclasses.is_dataclass(v) for v in value):
            for i, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    validate(item, prefix=f"{path}[{i}].")
            continue
        err = _finite_error(path, value) or _bound_error(path, value, dict(f.metadata))
        if err:
            raise ConfigError(err)
    check = getattr(cfg, "check", None)
    if callable(check):
        check(prefix)


def to_yaml(cfg: Any) -> str:
    """The resolved configuration as YAML text."""
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def to_dict(cfg: Any) -> dict:
    """The resolved configuration as plain Python containers."""
    return typing.cast(dict, OmegaConf.to_container(OmegaConf.structured(cfg)))


def resolve_key(key: str, config_cls: type) -> str:
    """A dotted key as the schema spells it: a key that is not in the schema but ends exactly one schema key
    (``lr`` for ``train.optimizer.lr``) is that key; an ambiguous one is a :class:`ConfigError` naming the
    candidates; anything else is returned unchanged (the merge then names it as unknown). Overrides and
    ``--sweep`` keys follow this one rule."""
    known = schema_keys(config_cls)
    if key in known or any(k.startswith(f"{key}.") for k in known):
        return key
    matches = [k for k in known if k.endswith(f".{key}")]
    if len(matches) > 1:
        raise ConfigError(f"key '{key}' is ambiguous: expected one of {', '.join(matches)}")
    return matches[0] if matches else key


def resolve_override_keys(overrides: list[str], config_cls: type) -> list[str]:
    """``key=value`` overrides with their keys spelled out by :func:`resolve_key`."""
    out = []
    for item in overrides:
        key, sep, value = item.partition("=")
        out.append(f"{resolve_key(key, config_cls)}{sep}{value}" if sep and key else item)
    return out
