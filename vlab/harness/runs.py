"""A run folder a person can read: resolved config, metrics, history, figures, checkpoints and status.

Layout of ``runs/<experiment>/<timestamp>-<id>/`` (or ``--out DIR``)::

    config.yaml     the resolved configuration (every key, defaults included)
    run.json        status (running | complete | failed | interrupted), versions, device, timings
    metrics.json    final metrics, nested by name; written last, only when the run completes
    history.jsonl   one JSON object per logged step: {"fit": ..., "step": ..., metric: value, ...}
    *.png           figures
    checkpoints/    parameters and optimiser state (.npz), written atomically
    .lock           an OS file lock held by the one process writing the folder (released when it exits or dies)
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import platform
import secrets
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from vlab.errors import ConfigError

STATUS_FILE = "run.json"
LOCK_FILE = ".lock"
CHECKPOINT_SECONDS = 60.0


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if hasattr(x, "tolist"):  # numpy / jax arrays and scalars
        return _jsonable(np.asarray(x).tolist())
    if isinstance(x, float) and not np.isfinite(x):
        return None if np.isnan(x) else (1e308 if x > 0 else -1e308)
    return x


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, obj: Any) -> None:
    """Atomically write ``obj`` (arrays allowed) as indented JSON."""
    atomic_write_text(path, json.dumps(_jsonable(obj), indent=2) + "\n")


def _git_info() -> dict:
    """The commit of the source checkout vlab runs from (nothing for an installed package)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return {}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return {}
    if commit.returncode != 0:
        return {}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def environment() -> dict:
    """Versions of vlab, Python, JAX, jaxlib and optax, the git commit and the devices."""
    import jax
    import jaxlib
    import optax

    from vlab import __version__
    from vlab.engine.runtime import describe_devices

    return {
        "vlab": __version__,
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "optax": optax.__version__,
        "platform": platform.platform(),
        "devices": describe_devices(),
        "git": _git_info(),
        "argv": sys.argv,
    }


def make_folder(path: str | Path, what: str = "--out") -> Path:
    """Create ``path`` (and its parents), turning an OS refusal into a :class:`ConfigError` naming the folder."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        if not os.access(p, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ConfigError(f"{what} '{path}' cannot be created or written ({reason}): expected a writable folder") \
            from None
    return p


class FolderLock:
    """An exclusive ``flock`` on ``folder/.lock``: one writer per folder. The OS drops the lock when the process
    exits or is killed, so a dead writer never blocks a resume."""

    def __init__(self, folder: Path, what: str = "run folder"):
        self.file = open(folder / LOCK_FILE, "a+")  # noqa: SIM115 - held for the folder's lifetime
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.seek(0)
            owner = self.file.read().strip() or "another process"
            self.file.close()
            raise ConfigError(f"{what} '{folder}' is being written by {owner}: expected a folder no running vlab "
                              "writes to (wait for it to finish, or stop it and resume)") from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"process {os.getpid()} on {platform.node()}")
        self.file.flush()

    def release(self) -> None:
        if not self.file.closed:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()


class Run:
    """A run folder: where an experiment writes its history, figures, checkpoints and metrics.

    Opening one takes the folder's lock (:class:`FolderLock`); :meth:`close` (or leaving a ``with`` block, or the
    process ending) releases it. ``checkpoint_seconds`` is the wall time after which a fit checkpoints
    (:class:`vlab.engine.callbacks.Checkpoint`) even between its ``checkpoint_every`` steps, so a process killed
    outright
    loses at most that.
    """

    def __init__(self, path: str | Path, *, resume: bool = False, quiet: bool = False,
                 checkpoint_seconds: float = CHECKPOINT_SECONDS):
        self.path = Path(path)
        self.resume = resume
        self.quiet = quiet
        self.checkpoint_seconds = float(checkpoint_seconds)
        self.timings: dict[str, float] = {}
        self.checks: list[dict] = []
        self.figures: list[str] = []
        self.figure_formats: tuple[str, ...] = ("png",)
        self.figure_dpi = 150
        self.keep_figures = False
        self.open_figures: dict[str, Any] = {}
        self.loggers: list[Any] = []
        self.member_labels: list[dict] | None = None
        self._history = None
        make_folder(self.path)
        self._lock = FolderLock(self.path)
        (self.path / "checkpoints").mkdir(exist_ok=True)

    def close(self) -> None:
        """Release the folder's lock."""
        self._lock.release()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ----------------------------------------------------------------------------------- creation
    @staticmethod
    def new_path(root: str | Path, experiment: str) -> Path:
        """``root/<experiment>/<YYYYmmdd-HHMMSS>-<6 hex>``: a fresh, unused folder name."""
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        while True:
            p = Path(root) / experiment.replace(":", "_").replace("/", "_") / f"{stamp}-{secrets.token_hex(3)}"
            if not p.exists():
                return p

    @staticmethod
    def check_fresh(path: str | Path) -> None:
        """A run never overwrites another: ``path`` must be absent or an empty folder."""
        p = Path(path)
        if p.exists() and (not p.is_dir() or any(p.iterdir())):
            raise ConfigError(
                f"--out '{path}' already exists and is not empty: expected a new folder "
                f"(or continue that run with --resume {path})"
            )

    # ----------------------------------------------------------------------------------- status
    def status(self) -> dict:
        return read_status(self.path)

    def set_status(self, status: str, **extra: Any) -> None:
        info = self.status()
        info.update(extra)
        info["status"] = status
        info["updated"] = _dt.datetime.now().isoformat(timespec="seconds")
        write_json(self.path / STATUS_FILE, info)

    # ----------------------------------------------------------------------------------- output
    def log(self, message: str) -> None:
        """A line for the person watching (stderr), unless the run is quiet."""
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    def warn(self, message: str) -> None:
        """A warning: printed and recorded in run.json."""
        print(f"warning: {message}", file=sys.stderr, flush=True)
        info = self.status()
        self.set_status(info.get("status", "running"), warnings=[*info.get("warnings", []), message])

    def append_history(self, rows: list[dict]) -> None:
        """Append metric rows to history.jsonl."""
        lines = []
        for row in rows:
            try:  # rows of plain numbers (the engine's) need no conversion
                lines.append(json.dumps(row, allow_nan=False))
            except (TypeError, ValueError):
                lines.append(json.dumps(_jsonable(row)))
        if lines:
            with open(self.path / "history.jsonl", "a") as f:
                f.write("\n".join(lines) + "\n")
        if self.loggers:
            structured = [self.history_row(row) for row in rows]
            for logger in self.loggers:
                for row in structured:
                    logger.log(row)

    def history_row(self, row: dict) -> Any:
        """A history row as a :class:`vlab.harness.loggers.HistoryRow`: its member's label (from
        ``member_labels``) apart from its values; a run of one member has no member."""
        from vlab.harness.loggers import HistoryRow

        member = row.get("member")
        labels = self.member_labels
        label = dict(labels[member]) if member is not None and labels and member < len(labels) else {}
        values = {k: v for k, v in row.items() if k not in ("fit", "step", "member") and k not in label}
        if member is not None and labels is not None and len(labels) == 1:
            member, label = None, {}
        return HistoryRow(str(row.get("fit", "")), int(row.get("step", 0)), member, label, values)

    def truncate_history(self, fit: str, after_step: int) -> int:
        """Drop rows of ``fit`` logged after ``after_step`` (rows a resumed run will write again), and any line cut
        short by a killed process; returns how many rows were dropped."""
        f = self.path / "history.jsonl"
        if not f.exists():
            return 0
        lines = f.read_text().splitlines()
        keep = []
        for line in lines:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a killed process
                continue
            if not (row.get("fit") == fit and row.get("step", -1) > after_step):
                keep.append(line)
        if len(keep) < len(lines):
            atomic_write_text(f, "".join(line + "\n" for line in keep))
        return len(lines) - len(keep)

    def save_figure(self, fig: Any, name: str) -> Path:
        """Save a matplotlib figure as ``name.png`` (and the config's other ``figures.format``); with
        ``keep_figures`` the figure is kept, open, in ``open_figures[name]``, else closed."""
        from vlab.harness.plots import save

        path = save(fig, self.path / name, self.figure_formats, self.figure_dpi, close=not self.keep_figures)
        self.figures.append(path.name)
        if self.keep_figures:
            self.open_figures[name] = fig
        return path

    def check(self, name: str, value: float, reference: float, tol: float) -> bool:
        """Record a comparison of a measured value with its closed-form or reference value."""
        ok = bool(abs(float(value) - float(reference)) <= tol)
        self.checks.append({"name": name, "value": float(value), "reference": float(reference),
                            "tol": float(tol), "ok": ok})
        return ok

    # ----------------------------------------------------------------------------------- checkpoints
    def checkpoint_file(self, name: str) -> Path:
        return self.path / "checkpoints" / f"{name}.npz"

    def save_checkpoint(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        """Atomically write named arrays to ``checkpoints/<name>.npz``."""
        path = self.checkpoint_file(name)
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)

    def load_checkpoint(self, name: str) -> dict[str, np.ndarray] | None:
        """The arrays of ``checkpoints/<name>.npz`` (None when there is none). Pickled objects are never loaded;
        a damaged file is a :class:`ConfigError` naming it."""
        path = self.checkpoint_file(name)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
            raise ConfigError(
                f"checkpoint '{path}' cannot be read ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
                f": expected a .npz file written by vlab; delete it to train '{name}' again from step 0"
            ) from None

    # ----------------------------------------------------------------------------------- timing
    @contextlib.contextmanager
    def timed(self, name: str):
        """Context manager adding the wall time of its block to ``timings[name]``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0


def read_status(path: str | Path) -> dict:
    """A run folder's ``run.json`` ({} when it has none), read without taking the folder's lock."""
    f = Path(path) / STATUS_FILE
    try:
        return json.loads(f.read_text()) if f.is_file() else {}
    except ValueError:  # a file cut short by a killed process
        return {}


def load_params(path: str | Path, fit: str | None = None) -> Any:
    """The trained parameters of fit ``fit`` of the run folder ``path``, as the pytree the fit trained (dicts and
    lists of arrays; with vmapped members every leaf has a leading member axis), read from its last checkpoint.

    ``fit`` may be omitted when the run has one fit. Raises :class:`ConfigError` naming the fits there are."""
    from vlab.engine.checkpoints import unflatten_named

    folder = Path(path) / "checkpoints"
    fits = sorted(p.stem for p in folder.glob("*.npz")) if folder.is_dir() else []
    if fit is None and len(fits) == 1:
        fit = fits[0]
    if fit not in fits:
        raise ConfigError(f"fit {fit!r} has no checkpoint in '{path}': expected one of {', '.join(fits) or 'none'}"
                          if fit is not None else
                          f"run '{path}' has {len(fits)} fits: expected fit= one of {', '.join(fits)}")
    with np.load(folder / f"{fit}.npz", allow_pickle=False) as z:
        return unflatten_named({k: z[k] for k in z.files}, "params")
