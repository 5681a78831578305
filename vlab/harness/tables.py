"""Run folders as pandas DataFrames: many runs as one table (:func:`load_runs`), one run's history
(:func:`load_history`).

pandas is imported when one of these is called, never by ``import vlab``.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path
from typing import Any

from vlab import trees
from vlab.errors import ConfigError
from vlab.harness.runs import read_status

HEAD_COLUMNS = ("path", "experiment", "status", "member", "seed_index")


def run_folders(path_or_glob: str | Path) -> list[Path]:
    """The run folders (each holding ``config.yaml`` and ``run.json``) at ``path_or_glob``: a run folder itself, a
    folder searched recursively (a sweep's folder, ``runs/``), or a glob pattern of either; in path order."""
    text = str(path_or_glob)
    roots = [Path(p) for p in sorted(glob.glob(text, recursive=True))] if glob.has_magic(text) else [Path(text)]
    if not roots or not any(r.exists() for r in roots):
        raise ConfigError(f"'{path_or_glob}' does not exist: expected a run folder, a folder of runs or a glob "
                          "pattern of them")
    found: set[Path] = set()
    for root in roots:
        candidates = [root] if _is_run(root) else [p.parent for p in root.rglob("run.json")]
        found.update(c for c in candidates if _is_run(c))
    return sorted(found)


def _is_run(folder: Path) -> bool:
    return (folder / "run.json").is_file() and (folder / "config.yaml").is_file()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _scalars(tree: Any, prefix: str) -> dict[str, Any]:
    return {k: v for k, v in trees.flatten(tree, prefix).items()
            if isinstance(v, int | float | str | bool) or v is None}


def run_rows(folder: str | Path) -> list[dict[str, Any]]:
    """One run folder as table rows: one row, or for a vmapped sweep one per member. A row holds ``path``,
    ``experiment``, ``status``, the flattened config (``config.<key>``; a member's swept values replace the
    config's), every scalar metric (``metrics.<key>``) and the timings (``timing.<name>``)."""
    import yaml

    folder = Path(folder)
    status = read_status(folder)
    config = yaml.safe_load((folder / "config.yaml").read_text()) or {}
    metrics = _read_json(folder / "metrics.json") or {}
    head = {"path": str(folder), "experiment": config.get("experiment", status.get("experiment")),
            "status": status.get("status", "unknown")}
    timing = metrics.pop("timing", {}) if isinstance(metrics, dict) else {}
    members = metrics.pop("members", None) if isinstance(metrics, dict) else None
    metrics.pop("summary", None)
    checks = metrics.pop("checks", [])
    common = {**_scalars(config, "config"), **_scalars(timing, "timing"),
              **{f"checks.{c['name']}.ok": c["ok"] for c in checks if isinstance(c, dict) and "name" in c}}
    if not isinstance(members, list) or not members:
        return [{**head, **common, **_scalars(metrics, "metrics")}]
    swept = {k for p in status.get("members") or [] for k in p}
    rows = []
    for m, member in enumerate(members):
        point = {f"config.{k}": member[k] for k in swept if k in member}
        values = {k: v for k, v in member.items() if k not in swept and k != "seed_index"}
        rows.append({**head, "member": m, "seed_index": member.get("seed_index", 0), **common, **point,
                     **_scalars(values, "metrics")})
    return rows


def load_runs(path_or_glob: str | Path):
    """Every run under ``path_or_glob`` as a ``pandas.DataFrame``: one row per run, or per member for a vmapped
    sweep (see :func:`run_rows` for the columns); runs that did not complete have their status and config and no
    metrics. ``path_or_glob`` is a run folder, a folder searched recursively, or a glob pattern."""
    import pandas as pd

    rows = [row for folder in run_folders(path_or_glob) for row in run_rows(folder)]
    if not rows:
        raise ConfigError(f"'{path_or_glob}' holds no run folders: expected folders with run.json and config.yaml")
    frame = pd.DataFrame(rows)
    first = [c for c in HEAD_COLUMNS if c in frame.columns]
    return frame[first + [c for c in frame.columns if c not in first]]


def load_history(run_dir: str | Path):
    """A run's ``history.jsonl`` as a ``pandas.DataFrame``: one row per logged step, fit and member, with the
    columns ``fit``, ``step``, ``member`` (0 for a fit that is not vmapped), the member's swept values and
    ``seed_index``, and every logged metric. A line cut short by a killed process is skipped."""
    import pandas as pd

    folder = Path(run_dir)
    if not _is_run(folder):
        raise ConfigError(f"'{run_dir}' is not a run folder: expected {folder / 'run.json'} and config.yaml")
    rows = []
    path = folder / "history.jsonl"
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    frame = pd.DataFrame(rows, columns=None if rows else ["fit", "step", "member"])
    if "member" not in frame.columns:
        frame["member"] = 0
    frame["member"] = frame["member"].fillna(0).astype(int)
    first = [c for c in ("fit", "step", "member") if c in frame.columns]
    return frame[first + [c for c in frame.columns if c not in first]]
