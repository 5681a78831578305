"""``vlab compare``: two runs' metrics side by side, with their config differences."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from vlab.cli.exits import EXIT_OK
from vlab.errors import ConfigError
from vlab.harness.launch import format_value
from vlab.trees import flatten


def cmd_compare(args: argparse.Namespace) -> int:
    """``vlab compare A B``: the config keys that differ, then the metrics side by side with their difference."""
    runs = []
    for d in (args.run_a, args.run_b):
        p = Path(d)
        if not (p / "metrics.json").is_file():
            raise ConfigError(f"'{d}' is not a complete run folder: expected {p / 'metrics.json'}")
        cfg = yaml.safe_load((p / "config.yaml").read_text()) if (p / "config.yaml").exists() else {}
        runs.append((flatten(json.loads((p / "metrics.json").read_text())), flatten(cfg or {})))
    (ma, ca), (mb, cb) = runs
    keys = sorted(set(ca) | set(cb))
    diff = [(k, ca.get(k, "-"), cb.get(k, "-")) for k in keys if ca.get(k) != cb.get(k)]
    width = max([len(k) for k, *_ in diff] + [len(k) for k in ma] + [len(k) for k in mb] + [6])
    print(f"{'':{width}}  {'A':>14}  {'B':>14}")
    print(f"config differences ({len(diff)}):" if diff else "configs are identical")
    for k, a, b in diff:
        print(f"  {k:{width}}  {format_value(a):>14}  {format_value(b):>14}")
    print("metrics:")
    for k in sorted(set(ma) | set(mb)):
        if not args.all and (k.startswith("timing.") or k.startswith("checks[")):
            continue
        a, b = ma.get(k, "-"), mb.get(k, "-")
        if not args.all and a == b:
            continue
        delta = ""
        if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
            delta = f"  {b - a:+.4g}"
        print(f"  {k:{width}}  {format_value(a):>14}  {format_value(b):>14}{delta}")
    return EXIT_OK
