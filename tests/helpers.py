"""What the tests share: the repository's folders, its configs by name, and reading a run folder."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


def config(name: str) -> str:
    """The path of the built-in config ``configs/<name>.yaml``, as the command line takes it."""
    return str(CONFIGS / f"{name}.yaml")


def metrics_of(path: Path) -> dict:
    """A run folder's metrics.json without its wall-clock timings (which differ between any two runs)."""
    metrics = json.loads((Path(path) / "metrics.json").read_text())
    metrics.pop("timing", None)
    return metrics
