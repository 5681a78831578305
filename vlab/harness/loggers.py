"""Where a run's numbers go besides its folder: the :class:`Logger` protocol, and TensorBoard as one logger.

A run hands every logger the same three calls: :meth:`Logger.start` once, with the run folder and the resolved
config; :meth:`Logger.log` for every row the run writes to ``history.jsonl`` (one per logged step, fit and member);
:meth:`Logger.finish` once, with the final metrics and how the run ended. Attach your own with
``vlab.run(..., loggers=[MyLogger()])`` (docs/logging.md shows MLflow and Weights & Biases, both offline).

:class:`TensorBoardLogger` (``logging.tensorboard: true`` or ``vlab run --tensorboard``) writes event files under
``<run>/tensorboard``: one event stream per member of a vmapped run, named by the member's swept values
(``lr=0.01,seed=1``), holding each fit's scalars as ``<fit>/<metric>`` at every ``log_every`` steps and the final
metrics as ``final/<metric>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlab import trees
from vlab.engine.members import short_items
from vlab.errors import ConfigError

TENSORBOARD_FOLDER = "tensorboard"


@dataclass(frozen=True)
class RunInfo:
    """What a logger learns when a run starts: its folder, experiment, resolved config (nested plain containers)
    and whether it continues an interrupted run."""

    path: Path
    experiment: str
    config: dict
    resumed: bool = False


@dataclass(frozen=True)
class HistoryRow:
    """One row of a run's history: fit ``fit`` at step ``step`` of member ``member`` (None for a fit that is not
    vmapped), the member's ``label`` (its swept values and ``seed_index``; empty without members) and the logged
    scalars ``values``."""

    fit: str
    step: int
    member: int | None
    label: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)


class Logger:
    """The protocol a run's loggers follow; every method may be left as this no-op.

    ``finish`` is called with ``status`` ``complete`` (``metrics`` the final metrics, as in ``metrics.json``),
    ``failed`` or ``interrupted`` (``metrics`` empty); then the logger should release what it holds. A logger's
    error stops the run like any other error, so keep network calls out of it or catch their failures."""

    def start(self, run: RunInfo) -> None:
        """The run begins (or resumes) in ``run.path``."""

    def log(self, row: HistoryRow) -> None:
        """One history row, as the run writes it to ``history.jsonl``."""

    def finish(self, metrics: dict, status: str) -> None:
        """The run ended with ``status``; ``metrics`` are its final metrics when it completed."""


def stream_name(label: dict, member: int | None) -> str:
    """The name of a member's event stream: its swept values with short keys and, when there are several seeds, its
    seed (``lr=0.01,seed=1``); ``member-3`` for a member without a label; ``""`` (the folder itself) without
    members."""
    if member is None:
        return ""
    point = {k: v for k, v in label.items() if k != "seed_index"}
    parts = [p.replace(" ", "") for p in short_items(point)] if point else []
    if label.get("seed_index") or not parts:
        parts.append(f"seed={label.get('seed_index', 0)}" if label else f"member-{member}")
    return re.sub(r"[^\w.=,+-]", "_", ",".join(parts))[:120]


def scalar_leaves(tree: Any, prefix: str = "") -> dict[str, float]:
    """The finite-or-not numbers of a nested dict of metrics, by dotted key (booleans and strings left out)."""
    return {k: float(v) for k, v in trees.flatten(tree, prefix).items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


class TensorBoardLogger(Logger):
    """TensorBoard event files in ``<run>/tensorboard``, one stream (sub-folder) per member; written with
    tensorboardX, read by TensorBoard (``tensorboard --logdir runs``) or any event-file reader."""

    def __init__(self, folder: str = TENSORBOARD_FOLDER):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:  # pragma: no cover - tensorboardX is a dependency
            raise ConfigError("key 'logging.tensorboard': value true needs the tensorboardX package: expected "
                              "pip install tensorboardX") from None
        self._writer_cls = SummaryWriter
        self.folder = folder
        self.root: Path | None = None
        self.writers: dict[str, Any] = {}
        self.labels: dict[int, dict] = {}
        self.last_step = 0

    def _writer(self, name: str):
        if name not in self.writers:
            self.writers[name] = self._writer_cls(str(self.root / name) if name else str(self.root),
                                                  flush_secs=10)
        return self.writers[name]

    def start(self, run: RunInfo) -> None:
        self.root = Path(run.path) / self.folder
        if not run.resumed:
            import yaml

            text = yaml.safe_dump(run.config, sort_keys=False)
            self._writer("").add_text("config", "```\n" + text + "\n```", 0)

    def log(self, row: HistoryRow) -> None:
        if row.member is not None:
            self.labels[row.member] = row.label
        writer = self._writer(stream_name(row.label, row.member))
        for key, value in row.values.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                writer.add_scalar(f"{row.fit}/{key}", value, row.step)
        self.last_step = max(self.last_step, row.step)

    def finish(self, metrics: dict, status: str) -> None:
        try:
            if status == "complete":
                self._final(metrics)
        finally:
            for w in self.writers.values():
                w.close()
            self.writers.clear()

    def _final(self, metrics: dict) -> None:
        members = metrics.get("members") if isinstance(metrics.get("members"), list) else None
        top = {k: v for k, v in metrics.items() if k not in ("members", "summary", "checks")}
        if members:
            for m, row in enumerate(members):
                label = self.labels.get(m, {k: row[k] for k in ("seed_index",) if k in row})
                values = {k: v for k, v in row.items() if k not in label and k != "seed_index"}
                writer = self._writer(stream_name(label, m))
                for key, value in scalar_leaves(values).items():
                    writer.add_scalar(f"final/{key}", value, self.last_step)
            top = {k: v for k, v in top.items() if k == "timing"}
        writer = self._writer("")
        for key, value in scalar_leaves(top).items():
            writer.add_scalar(f"final/{key}", value, self.last_step)
        for check in metrics.get("checks", []):
            writer.add_scalar(f"checks/{check['name']}", check["value"], self.last_step)
