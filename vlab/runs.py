"""A run folder a person can read: resolved config, metrics, history, figures, checkpoints and status.

Layout of ``runs/<experiment>/<timestamp>-<id>/`` (or ``--out DIR``)::

    config.yaml     the resolved configuration (every key, defaults included)
    run.json        status (running | complete | failed | interrupted), versions, device, timings
    metrics.json    final metrics, nested by name; written last, only when the run completes
    history.jsonl   one JSON object per logged step: {"fit": ..., "step": ..., metric: value, ...}
    *.png           figures
    checkpoints/    parameters and optimiser state (.npz), written atomically
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from vlab.errors import ConfigError

STATUS_FILE = "run.json"


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
    root = Path(__file__).resolve().parent.parent
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
    from vlab.runtime import describe_devices

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


class Run:
    """A run folder: where an experiment writes its history, figures, checkpoints and metrics."""

    def __init__(self, path: str | Path, *, resume: bool = False, quiet: bool = False):
        self.path = Path(path)
        self.resume = resume
        self.quiet = quiet
        self.timings: dict[str, float] = {}
        self.checks: list[dict] = []
        self.figures: list[str] = []
        self.figure_formats: tuple[str, ...] = ("png",)
        self.figure_dpi = 150
        self.mesh = None  # a jax.sharding.Mesh when the config asks for several devices
        self.members: list[dict] | None = None  # sweep points trained as one vmapped program (vlab.members)
        self._history = None
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "checkpoints").mkdir(exist_ok=True)

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
        f = self.path / STATUS_FILE
        return json.loads(f.read_text()) if f.exists() else {}

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
        with open(self.path / "history.jsonl", "a") as f:
            for row in rows:
                f.write(json.dumps(_jsonable(row)) + "\n")

    def truncate_history(self, fit: str, after_step: int) -> None:
        """Drop rows of ``fit`` logged after ``after_step`` (rows a resumed run will write again)."""
        f = self.path / "history.jsonl"
        if not f.exists():
            return
        keep = []
        for line in f.read_text().splitlines():
            row = json.loads(line)
            if not (row.get("fit") == fit and row.get("step", -1) > after_step):
                keep.append(line)
        atomic_write_text(f, "".join(line + "\n" for line in keep))

    def save_figure(self, fig: Any, name: str) -> Path:
        """Save a matplotlib figure as ``name.png`` (and the config's other ``figures.format``) and close it."""
        from vlab.plots import save

        path = save(fig, self.path / name, self.figure_formats, self.figure_dpi)
        self.figures.append(path.name)
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
        path = self.checkpoint_file(name)
        if not path.exists():
            return None
        with np.load(path) as z:
            return {k: z[k] for k in z.files}

    # ----------------------------------------------------------------------------------- timing
    @contextlib.contextmanager
    def timed(self, name: str):
        """Context manager adding the wall time of its block to ``timings[name]``."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0
