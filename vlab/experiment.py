"""What an experiment is, and how a config's ``experiment:`` name finds one.

An experiment is a class with a ``Config`` dataclass schema (a subclass of :class:`vlab.config.BaseConfig`), a
one-line ``description`` and a ``run(cfg, run)`` method that trains, measures, draws and returns its metrics.
Built-in experiments live in the ``experiments`` package and are named by module (``experiment: kl_fit``); a
user's own is named by import path (``experiment: my_lab.objectives:RenyiVAE``). Both resolve the same way.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from typing import Any, ClassVar

from vlab.config import BaseConfig
from vlab.errors import ConfigError

BUILTIN_PACKAGE = "experiments"


class Experiment:
    """Base class of an experiment: a schema, a description and a ``run`` method.

    ``headline`` lists dotted metric keys shown in ``vlab reproduce``'s index; ``source`` names the seed question.
    ``member_keys`` lists the dotted config keys the experiment can vary per member of one vmapped program (see
    :mod:`vlab.members`): a sweep over only these keys runs as a single compiled program.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    source: ClassVar[str] = ""  # the seed question it answers, e.g. "seed 001, problem 6.3"
    Config: ClassVar[type[BaseConfig]] = BaseConfig
    headline: ClassVar[tuple[str, ...]] = ()
    member_keys: ClassVar[tuple[str, ...]] = ()

    def run(self, cfg: Any, run: Any) -> dict:  # pragma: no cover - interface
        raise NotImplementedError

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "run" in cls.__dict__:
            cls.run = _with_runtime(cls.__dict__["run"])  # type: ignore[method-assign]


def _with_runtime(run_fn: Callable) -> Callable:
    """``run_fn`` applying the config's runtime settings for the length of the call, however it is called (the
    command line, or ``Experiment().run(cfg, vlab.Run(dir))`` from Python): ``precision`` (float64 switches on
    ``jax_enable_x64``, restored afterwards) and ``device`` (JAX's default device)."""

    @functools.wraps(run_fn)
    def run(self: Experiment, cfg: Any, run_: Any) -> dict:
        import jax

        from vlab import runtime

        x64 = bool(jax.config.jax_enable_x64)
        device = runtime.configure(getattr(cfg, "device", "auto"), getattr(cfg, "precision", "float32"))
        try:
            with jax.default_device(device):
                return run_fn(self, cfg, run_)
        finally:
            jax.config.update("jax_enable_x64", x64)

    return run


def builtin_names() -> list[str]:
    """Short names of the experiments shipped in the ``experiments`` package."""
    pkg = importlib.import_module(BUILTIN_PACKAGE)
    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))


def resolve(name: str) -> type[Experiment]:
    """The experiment class a config names: a built-in short name or ``module.path:ClassName``."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"key 'experiment': value {name!r} is not valid: expected an experiment name")
    if ":" in name:
        module_name, _, attr = name.partition(":")
    else:
        module_name, attr = f"{BUILTIN_PACKAGE}.{name}", "Experiment"
        if name not in builtin_names():
            raise ConfigError(
                f"key 'experiment': unknown experiment '{name}': expected one of "
                f"{', '.join(builtin_names())}, or an import path 'module:Class'"
            )
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"key 'experiment': cannot import module '{module_name}' ({e})") from None
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Experiment)):
        raise ConfigError(
            f"key 'experiment': '{name}' does not name a vlab.Experiment subclass "
            f"(looked for '{attr}' in module '{module_name}')"
        )
    return cls
