"""An optax optimiser from its configuration: any optimiser optax exports, by name, with its keyword arguments, a
learning-rate schedule, optional gradient clipping and the per-member learning-rate factor of a vmapped sweep."""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, Literal

from vlab.errors import ConfigError
from vlab.harness.fields import spec

# optax's own keyword names for the options a config can set as keys of their own
_NAMED_OPTIONS = ("b1", "b2", "momentum", "weight_decay")
# functions of optax that take a learning rate but are not optimisers of a loss alone (lbfgs needs the loss itself)
_NOT_OPTIMIZERS = ("lbfgs",)


@dataclass
class OptimizerConfig:
    """An optax optimiser: ``optax.<name>(learning_rate, **options)`` under a schedule, with gradient clipping.

    ``b1``, ``b2``, ``momentum`` and ``weight_decay`` are passed when set (unset: optax's own default) and only to
    an optimiser that takes them; ``options`` holds any other keyword of the optimiser (``{nesterov: true}``)."""

    name: str = spec("adam", help="any optax optimiser: adam, adamw, sgd, lion, adafactor, ...")
    lr: float = spec(1e-3, gt=0, help="peak learning rate")
    schedule: Literal["constant", "cosine", "exponential", "warmup_cosine"] = "constant"
    warmup_steps: int = spec(0, ge=0, help="linear warm-up steps (warmup_cosine)")
    final_lr_fraction: float = spec(0.0, ge=0, le=1, help="cosine schedules end at lr * final_lr_fraction")
    decay_rate: float = spec(0.1, gt=0, le=1, help="exponential schedule: lr multiplier over the whole run")
    b1: float | None = spec(None, ge=0, lt=1, help="first-moment decay (adam-like optimisers); unset: optax's")
    b2: float | None = spec(None, ge=0, lt=1, help="second-moment decay (adam-like optimisers); unset: optax's")
    momentum: float | None = spec(None, ge=0, lt=1, help="momentum (sgd, rmsprop, ...); unset: optax's")
    weight_decay: float | None = spec(None, ge=0, help="decoupled weight decay (adamw, lion, ...); unset: optax's")
    options: dict[str, Any] = spec({}, help="other keyword arguments of the optax optimiser")
    clip_norm: float | None = spec(None, gt=0, help="clip gradients to this global norm")

    def check(self, prefix: str) -> None:
        fn = optimizer_function(self.name, f"{prefix}name")
        params = inspect.signature(fn).parameters
        for key in _NAMED_OPTIONS:
            if getattr(self, key) is not None and key not in params:
                raise ConfigError(f"key '{prefix}{key}': value {getattr(self, key)} is not valid: optax.{self.name} "
                                  f"takes no '{key}' (it takes {', '.join(list(params)[1:]) or 'no options'})")
        for key in self.options:
            if key not in params or key == "learning_rate" or key in _NAMED_OPTIONS:
                raise ConfigError(f"key '{prefix}options.{key}' is not valid: expected a keyword of optax.{self.name} "
                                  f"other than learning_rate and {', '.join(_NAMED_OPTIONS)}: "
                                  f"{', '.join(k for k in list(params)[1:] if k not in _NAMED_OPTIONS)}")


@functools.cache
def optimizer_names() -> tuple[str, ...]:
    """Every optimiser optax exports: the public functions whose first parameter is ``learning_rate`` (not the
    ``scale_by_*`` building blocks, nor line-search methods that need the loss itself)."""
    import optax

    names = []
    for name in dir(optax):
        fn = getattr(optax, name)
        if name.startswith(("_", "scale_by_")) or name in _NOT_OPTIMIZERS or not inspect.isfunction(fn):
            continue
        params = list(inspect.signature(fn).parameters)
        if params and params[0] == "learning_rate":
            names.append(name)
    return tuple(sorted(names))


def optimizer_function(name: str, key: str = "train.optimizer.name") -> Any:
    """``optax.<name>``, or a :class:`ConfigError` for ``key`` listing every optimiser optax has."""
    import optax

    if name not in optimizer_names():
        raise ConfigError(f"key '{key}': value '{name}' is not valid: expected an optax optimiser, one of "
                          f"{', '.join(optimizer_names())}")
    return getattr(optax, name)


def build_optimizer(cfg: OptimizerConfig, steps: int) -> Any:
    """``optax.<cfg.name>(schedule, **options)`` for a run of ``steps`` steps, chained with the per-member
    learning-rate factor (:func:`vlab.engine.optim.lr_factor`) and, with ``clip_norm``, global-norm clipping first."""
    import optax

    from vlab.engine.optim import lr_factor

    final = cfg.lr * cfg.final_lr_fraction
    if cfg.schedule == "constant":
        lr = cfg.lr
    elif cfg.schedule == "cosine":
        lr = optax.cosine_decay_schedule(cfg.lr, decay_steps=steps, alpha=cfg.final_lr_fraction)
    elif cfg.schedule == "exponential":
        lr = optax.exponential_decay(cfg.lr, transition_steps=steps, decay_rate=cfg.decay_rate)
    else:  # warmup_cosine
        lr = optax.warmup_cosine_decay_schedule(
            0.0, cfg.lr, warmup_steps=min(cfg.warmup_steps, steps - 1), decay_steps=steps, end_value=final
        )
    options = {k: getattr(cfg, k) for k in _NAMED_OPTIONS if getattr(cfg, k) is not None}
    opt = optimizer_function(cfg.name)(lr, **options, **dict(cfg.options))
    opt = optax.chain(opt, lr_factor())  # a vmapped member's own learning rate, lr_factor * lr (vlab.engine.optim)
    if cfg.clip_norm is not None:
        opt = optax.chain(optax.clip_by_global_norm(cfg.clip_norm), opt)
    return opt
