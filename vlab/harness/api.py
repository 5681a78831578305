"""vlab from Python: :func:`run` trains a config in this process and returns a :class:`Result`; :func:`resume`
continues an interrupted run.

These are the command line's ``vlab run`` and ``vlab run --resume`` with the same validation, run folder and
checks, made for a notebook: the figures come back open, the history as a DataFrame, the trained parameters as
pytrees, and nothing global changes (matplotlib's backend and rcParams, JAX's float64 switch are as they were).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlab.errors import ConfigError
from vlab.harness.launch import format_value, headline_metrics, run_experiment
from vlab.harness.loading import SWEEP_KEY, as_raw, load_config


@dataclass
class Result:
    """What a run produced.

    Attributes:
        metrics: the final metrics, as written to ``metrics.json`` (nested dicts; ``members`` per member of a sweep).
        params: each fit's trained parameters by fit name, as the pytree it trained (numpy leaves; with vmapped
            members a leading member axis).
        history: one row per logged step, fit and member (``pandas.DataFrame``; see :func:`vlab.load_history`).
        figures: the run's figures by name, open (``matplotlib.figure.Figure``; a notebook shows one when it is
            a cell's value).
        path: the run folder.
        config: the resolved config (the experiment's ``Config`` dataclass).
        experiment: the experiment class that ran.
    """

    metrics: dict
    params: dict[str, Any]
    history: Any
    figures: dict[str, Any]
    path: Path
    config: Any
    experiment: type

    @property
    def checks(self) -> list[dict]:
        """The closed-form checks the run recorded: name, value, reference, tol, ok."""
        return list(self.metrics.get("checks", []))

    @property
    def headline(self) -> dict:
        """The experiment's headline metrics (the summary line's)."""
        return headline_metrics(self.experiment, self.metrics)

    def __repr__(self) -> str:
        head = ", ".join(f"{k}={format_value(v)}" for k, v in self.headline.items())
        ok = sum(c["ok"] for c in self.checks)
        return (f"Result({self.config.experiment}: {head or 'no headline metrics'}; {ok}/{len(self.checks)} checks; "
                f"figures {', '.join(self.figures) or 'none'}; fits {', '.join(self.params) or 'none'}; "
                f"history {len(self.history)} rows; path '{self.path}')")


def run(config: Any, overrides: Sequence[str] = (), out: str | Path | None = None, quiet: bool = False, *,
        sweep: Mapping[str, Sequence] | None = None, quick: bool = False, loggers: Sequence[Any] = ()) -> Result:
    """Run an experiment config in this process and return its :class:`Result`.

    Args:
        config: a YAML path, a built-in config's name (``"kl_fit"``), or a config built in Python (a mapping or an
            experiment's ``Config`` object); validated like the command line's, so a bad key or value raises
            :class:`vlab.ConfigError` with the same one-line message.
        overrides: ``key=value`` overrides, as on the command line (``["train.steps=300"]``).
        out: the run folder (new or empty); None writes to a new temporary folder (``Result.path``).
        quiet: whether to silence the progress bar and the summary line (warnings still show).
        sweep: ``{key: values}`` of keys the experiment varies per member (its ``member_keys``: a learning rate,
            a KL weight, a seed), trained as the members of one vmapped program, added to the config's own
            ``sweep:`` section; keys that change shapes need a run each.
        quick: whether to apply the config's ``quick:`` overrides first (seconds instead of minutes).
        loggers: :class:`vlab.harness.loggers.Logger` objects that receive every history row and the final
            metrics (TensorBoard: the override ``logging.tensorboard=true``).

    Returns:
        The run's :class:`Result`; the run folder is complete and ``vlab.load_runs`` reads it like any other.

    Raises:
        ConfigError: a bad config, override, sweep or folder, before anything trains.
        TrainingDiverged: a loss became NaN or infinite (the run folder keeps its checkpoints).
        KeyboardInterrupt: the kernel was interrupted; the run checkpointed and :func:`resume` continues it.
    """
    overrides = _override_list(overrides)
    cls, cfg = load_config(config, overrides, quick=quick)
    members = _members(cls, config, overrides, sweep)
    if out is None:
        out = tempfile.mkdtemp(prefix=f"vlab-{cls.name}-")
    return _launch(config, overrides, out=str(out), quiet=quiet, quick=quick, members=members, loggers=loggers)


def explain(config: Any, overrides: Sequence[str] = (), *, quick: bool = False):
    """Every key of a config, resolved with its overrides, as a ``pandas.DataFrame`` (what ``vlab show`` prints):
    one row per key with its ``section``, ``key``, ``type``, ``value``, ``default``, ``allowed`` (bounds or
    choices), ``help`` and ``changed`` (whether the value differs from the default). Raises :class:`ConfigError`
    as :func:`run` would."""
    import pandas as pd

    from vlab.harness.describe import NO_DEFAULT, describe

    cls, cfg = load_config(config, _override_list(overrides), quick=quick)
    rows = [{"section": r.section or "(top level)", "key": r.key, "type": r.type, "value": r.value,
             "default": None if r.default is NO_DEFAULT else r.default, "allowed": r.bounds, "help": r.help,
             "changed": r.changed} for r in describe(cls, cfg)]
    return pd.DataFrame(rows).set_index("key")


def resume(path: str | Path, quiet: bool = False, *, loggers: Sequence[Any] = ()) -> Result:
    """Continue an interrupted run folder from its last checkpoints (as ``vlab run --resume``) and return its
    :class:`Result`."""
    return _launch(None, [], resume=str(path), quiet=quiet, loggers=loggers)


def _override_list(overrides: Any) -> list[str]:
    if isinstance(overrides, str):
        raise ConfigError(f"overrides {overrides!r} is not valid: expected a list of 'key=value' strings, "
                          f"e.g. [{overrides!r}]")
    if isinstance(overrides, Mapping):
        return [f"{k}={v}" for k, v in overrides.items()]
    return [str(o) for o in overrides]


def _members(cls: type, config: Any, overrides: list[str], sweep: Mapping[str, Sequence] | None) -> list[dict] | None:
    """The vmapped members of the config's ``sweep:`` section and ``sweep``, or None for a plain run."""
    from vlab.harness.grids import as_overrides, from_config, points, resolve_keys, split_grid

    grid = from_config(as_raw(config))
    for key, values in (sweep or {}).items():
        if isinstance(values, str) or not isinstance(values, Sequence) or not values:
            raise ConfigError(f"sweep key '{key}': value {values!r} is not valid: expected a non-empty list of values")
        grid[key] = list(values)
    if not grid:
        return None
    grid = resolve_keys(grid, cls.Config)
    separate, vmapped = split_grid(grid, cls.member_keys)
    if separate:
        raise ConfigError(f"{SWEEP_KEY} key '{next(iter(separate))}' is not valid for vlab.run: expected keys "
                          f"{cls.name} varies per member ({', '.join(cls.member_keys) or 'none'}); run each value "
                          "with its own vlab.run, or use vlab run --sweep")
    pts = points(vmapped)
    for p in pts:  # every point is a valid config before anything runs
        load_config(config, [*overrides, *as_overrides(p)])
    return pts


def _launch(config: Any, overrides: list[str], **kwargs: Any) -> Result:
    import json

    import jax

    from vlab.harness.runs import load_params
    from vlab.harness.tables import load_history

    figures: dict[str, Any] = {}
    _display_figures_in_ipython()
    x64 = bool(jax.config.jax_enable_x64)
    try:
        path = run_experiment(config, overrides, figures=figures, from_python=True, **kwargs)
    finally:
        jax.config.update("jax_enable_x64", x64)
    path = Path(path)
    metrics = json.loads((path / "metrics.json").read_text())
    cls, cfg = load_config(str(path / "config.yaml"), [])
    fits = sorted(p.stem for p in (path / "checkpoints").glob("*.npz"))
    params = {name: load_params(path, name) for name in fits}
    return Result(metrics, params, load_history(path), figures, path, cfg, cls)


def _display_figures_in_ipython() -> None:
    """In IPython or Jupyter, let a :class:`~matplotlib.figure.Figure` that is a cell's value show as a PNG, as
    ``%matplotlib inline`` would, unless the user has registered a PNG display of figures already. A figure vlab
    draws is not pyplot's, so nothing else would display it."""
    from vlab.engine.progress import ipython_shell

    shell = ipython_shell()
    if shell is None:
        return
    from functools import partial

    from IPython.core.pylabtools import print_figure
    from matplotlib.figure import Figure

    png = shell.display_formatter.formatters["image/png"]
    try:
        png.lookup_by_type(Figure)
    except KeyError:
        png.for_type(Figure, partial(print_figure, fmt="png", bbox_inches="tight", base64=True))
