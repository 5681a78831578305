"""vlab: differentiable experiments on deep generative models in JAX.

The public API is the names below; each resolves lazily, so ``import vlab`` stays cheap. Everything else is private
by convention. The subpackages are the layers, top to bottom: ``vlab.cli`` (the command line),
``vlab.experiments`` (the built-in experiments), ``vlab.harness`` (the experiment contract, configs, run folders,
figures), ``vlab.engine`` (the training loop), and the mathematics, imported as modules: ``vlab.objectives``,
``vlab.algorithms``, ``vlab.models``, ``vlab.flows``, ``vlab.distributions``, ``vlab.data`` and ``vlab.nn``.

========================  =================================================================================
name                      what it is
========================  =================================================================================
``run``                   train a config (a path, a built-in name or an object) in this process: a ``Result``
                          with metrics, trained params, the history DataFrame and the open figures
``resume``                continue an interrupted run folder, as a ``Result``
``Result``                what ``run`` returns: metrics, params, history, figures, path, config
``explain``               every key of a config as a DataFrame: type, value, default, bounds, help (``vlab show``)
``load_runs``             run folders (a folder, a sweep, a glob) as a DataFrame, one row per run or member
``load_history``          one run's history as a DataFrame: a row per logged step, fit and member
``Logger``                the protocol of a run's loggers (start, log, finish): MLflow, W&B, your own
``TensorBoardLogger``     TensorBoard event files, one stream per member (``logging.tensorboard: true``)
``Experiment``            base class of an experiment: a ``Config`` schema and fixed sections (setup, init,
                          objective, evaluate, summarise, figures) that ``run(cfg, run)`` calls
``BaseConfig``            keys every experiment understands: experiment, seed, device, precision, figures
``TrainConfig``           steps, chunk size, logging and checkpoint intervals, the optimiser
``OptimizerConfig``       any optax optimiser by name with its options, a schedule and clipping
``spec``                  a config field with a default and numeric bounds
``nested``                a config field holding a sub-configuration
``build_optimizer``       the optax transformation an ``OptimizerConfig`` describes
``load_config``           a YAML file (or a built-in config's name) plus ``key=value`` overrides, as
                          ``(ExperimentClass, cfg)``
``fit``                   the training engine: ``loss(params, batch, key, hp)`` minimised by optax in
                          ``jit(lax.scan)`` chunks, vmapped over members, with callbacks between chunks
``FitResult``             what ``fit`` returns: params, optimiser state, history, compile and train seconds
``Callback``              hooks of ``fit``'s host loop (history, checkpoints, progress, your own logger)
``Members``               sweep points times seeds as the members of one vmapped program (``member_keys``)
``Run``                   a run folder: history, figures, checks, checkpoints
``load_params``           a run folder's trained parameters of one fit, as the pytree it trained
``ConfigError``           invalid configuration (the CLI prints one line and exits with status 2)
``TrainingDiverged``      a loss or metric became NaN or infinite
``plots``                 the shared figure style: ``plots.figure``, ``plots.PALETTE``
========================  =================================================================================
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "run": ("vlab.harness.api", "run"),
    "resume": ("vlab.harness.api", "resume"),
    "Result": ("vlab.harness.api", "Result"),
    "explain": ("vlab.harness.api", "explain"),
    "load_runs": ("vlab.harness.tables", "load_runs"),
    "load_history": ("vlab.harness.tables", "load_history"),
    "Logger": ("vlab.harness.loggers", "Logger"),
    "TensorBoardLogger": ("vlab.harness.loggers", "TensorBoardLogger"),
    "Experiment": ("vlab.harness.experiment", "Experiment"),
    "BaseConfig": ("vlab.harness.config", "BaseConfig"),
    "TrainConfig": ("vlab.harness.config", "TrainConfig"),
    "OptimizerConfig": ("vlab.harness.optimizers", "OptimizerConfig"),
    "spec": ("vlab.harness.fields", "spec"),
    "nested": ("vlab.harness.fields", "nested"),
    "build_optimizer": ("vlab.harness.optimizers", "build_optimizer"),
    "load_config": ("vlab.harness.loading", "load_config"),
    "fit": ("vlab.engine", "fit"),
    "FitResult": ("vlab.engine", "FitResult"),
    "Callback": ("vlab.engine", "Callback"),
    "Members": ("vlab.engine.members", "Members"),
    "Run": ("vlab.harness.runs", "Run"),
    "load_params": ("vlab.harness.runs", "load_params"),
    "ConfigError": ("vlab.errors", "ConfigError"),
    "TrainingDiverged": ("vlab.errors", "TrainingDiverged"),
    "plots": ("vlab.harness.plots", None),
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'vlab' has no attribute '{name}'")
    module, attr = _API[name]
    value = importlib.import_module(module)
    value = value if attr is None else getattr(value, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
