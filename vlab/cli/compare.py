"""``vlab compare``: runs' config differences, then their metrics side by side.

Any number of run folders (at least two), or sweep folders standing for their runs; a vmapped sweep's run (its
metrics.json has a ``members`` list) stands for each of its members. Each run gets a label (A, B, C, ...) that a
legend maps to its folder; one column per run, and for exactly two runs the difference B - A of numbers. When the
columns would not fit the width, the tables are transposed: one row per run, one column per differing config key
and per metric (the experiment's headline metrics unless ``--all``), in as many blocks as the width needs.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vlab.cli.exits import EXIT_OK
from vlab.errors import ConfigError
from vlab.harness.launch import format_value
from vlab.trees import flatten

WIDTH = 120  # the terminal width the tables are laid out for
CELL = 14  # the narrowest value column (as two runs have always been shown)
MAX_CELL = 16  # a value column of many runs is at most this wide; longer values are cut with "…"
MEMBER_ID = "seed_index"  # a member's own key beside the swept ones


@dataclass
class Entry:
    """One column of the comparison: a run, or one member of a vmapped sweep's run."""

    label: str
    source: str  # the folder, and for a member which one
    config: dict[str, Any]  # flattened: {"train.optimizer.lr": 0.3, ...}
    metrics: dict[str, Any]  # flattened
    experiment: str = ""


def cmd_compare(args: argparse.Namespace) -> int:
    """``vlab compare RUN [RUN ...]``: the config keys that differ, then the metrics side by side (for two runs with
    their difference); a sweep folder stands for its runs."""
    entries = load_entries(list(args.runs))
    if len(entries) < 2:
        raise ConfigError(f"'{args.runs[0]}' is one run: expected at least two run folders to compare, or a sweep "
                          "folder holding several")
    for e in entries:
        print(f"{e.label:>3}  {e.source}")
    keys = sorted(set().union(*(e.config for e in entries)))
    diff = [k for k in keys if not _all_equal([e.config.get(k, "-") for e in entries])]
    metric_keys = [k for k in sorted(set().union(*(e.metrics for e in entries)))
                   if args.all or not (k.startswith("timing.") or k.startswith("checks["))]
    if not args.all:
        metric_keys = [k for k in metric_keys if not _all_equal([e.metrics.get(k, "-") for e in entries])]
    if len(entries) == 2 or _fits(entries, diff, metric_keys):
        _side_by_side(entries, diff, metric_keys)
    else:
        _transposed(entries, diff, metric_keys, headline=_headline(entries), show_all=args.all)
    return EXIT_OK


# ------------------------------------------------------------------------------------------------ reading


def load_entries(paths: list[str]) -> list[Entry]:
    """The runs that ``paths`` name, labelled A, B, C, ...: a run folder is one, a sweep folder each of its
    runs (its subfolders holding a metrics.json), a vmapped sweep's run each of its members. A folder that is
    neither a complete run nor a sweep is a :class:`ConfigError` naming it."""
    from vlab.cli.sweep import is_sweep_folder

    found: list[tuple[str, dict, dict, dict | None, str]] = []
    for d in paths:
        p = Path(d)
        if is_sweep_folder(p):
            runs = sorted(q for q in p.iterdir() if (q / "metrics.json").is_file())
            if not runs:
                raise ConfigError(f"sweep folder '{d}' holds no complete run: expected {p / '*' / 'metrics.json'}")
            for q in runs:
                found += _read(q, str(q))
        elif (p / "metrics.json").is_file():
            found += _read(p, d)
        else:
            raise ConfigError(f"'{d}' is not a complete run folder or a sweep folder: expected {p / 'metrics.json'} "
                              f"or {p / 'sweep.json'}")
    entries = []
    for i, (source, cfg, metrics, member, experiment) in enumerate(found):
        if member is not None:
            cfg = {**cfg, **{k: v for k, v in member.items() if k in cfg or k == MEMBER_ID}}
            own = {k: v for k, v in member.items() if k not in cfg}
            metrics = {**metrics, **flatten(own)}
        entries.append(Entry(label(i), source, cfg, metrics, experiment))
    return entries


def _read(folder: Path, name: str) -> list[tuple[str, dict, dict, dict | None, str]]:
    """A run folder's (source, flat config, flat metrics, member or None, experiment), one per member of a
    vmapped sweep's run."""
    try:
        metrics = json.loads((folder / "metrics.json").read_text())
        cfg_path = folder / "config.yaml"
        cfg = (yaml.safe_load(cfg_path.read_text()) if cfg_path.exists() else {}) or {}
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise ConfigError(f"run folder '{name}' cannot be read: {str(e).splitlines()[0]}") from None
    if not isinstance(metrics, dict) or not isinstance(cfg, dict):
        raise ConfigError(f"run folder '{name}' is damaged: expected mappings in metrics.json and config.yaml")
    experiment = str(cfg.get("experiment", ""))
    members = metrics.get("members")
    if not (isinstance(members, list) and members and all(isinstance(m, dict) for m in members)):
        return [(name, flatten(cfg), flatten(metrics), None, experiment)]
    flat_cfg = flatten(cfg)
    own = set().union(*members)  # per-member values replace their summaries at the top of metrics.json
    shared = {k: v for k, v in metrics.items() if k not in ("members", "summary")}
    shared_flat = {k: v for k, v in flatten(shared).items() if not any(k == o or k.startswith(f"{o}.") for o in own)}
    out = []
    for i, m in enumerate(members):
        swept = ", ".join(f"{k}={format_value(v)}" for k, v in m.items() if k in flat_cfg or k == MEMBER_ID)
        out.append((f"{name} member {i}" + (f" ({swept})" if swept else ""), flat_cfg, shared_flat, m, experiment))
    return out


def label(i: int) -> str:
    """The label of the ``i``-th run: A, B, ..., Z, AA, AB, ..."""
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(ord("A") + r) + out
    return out


def _all_equal(values: list) -> bool:
    return all(v == values[0] for v in values[1:])


def _headline(entries: list[Entry]) -> tuple[str, ...]:
    """The headline metrics of the runs' experiments (none for an experiment that cannot be found)."""
    from vlab.harness.experiment import resolve

    out: list[str] = []
    for name in dict.fromkeys(e.experiment for e in entries if e.experiment):
        try:
            out += [h for h in resolve(name).headline if h not in out]
        except ConfigError:
            continue
    return tuple(out)


# ------------------------------------------------------------------------------------------------ printing


def _cell(v: Any, width: int | None = None) -> str:
    text = format_value(v)
    if width is not None and len(text) > width:
        return text[:width - 1] + "…"
    return text


def _key_width(diff: list[str], metric_keys: list[str]) -> int:
    return max([len(k) for k in diff] + [len(k) for k in metric_keys] + [6])


def _column_width(entries: list[Entry], diff: list[str], metric_keys: list[str]) -> int:
    cells = [len(format_value(e.config.get(k, "-"))) for e in entries for k in diff]
    cells += [len(format_value(e.metrics.get(k, "-"))) for e in entries for k in metric_keys]
    return min(max([CELL, *cells]), MAX_CELL) if len(entries) > 2 else CELL


def _fits(entries: list[Entry], diff: list[str], metric_keys: list[str]) -> bool:
    """Whether one column per run fits the width."""
    return 2 + _key_width(diff, metric_keys) + len(entries) * (2 + _column_width(entries, diff, metric_keys)) <= WIDTH


def _side_by_side(entries: list[Entry], diff: list[str], metric_keys: list[str]) -> None:
    """One row per key, one column per run; for two runs a last column B - A."""
    width = _key_width(diff, metric_keys)
    cw = _column_width(entries, diff, metric_keys)
    cut = cw if len(entries) > 2 else None
    two = len(entries) == 2
    head = "".join(f"  {e.label:>{cw}}" for e in entries)
    print(f"{'':{width}}{head}" + ("  B - A" if two else ""))
    print(f"config differences ({len(diff)}):" if diff else "configs are identical")
    for k in diff:
        row = "".join(f"  {_cell(e.config.get(k, '-'), cut):>{cw}}" for e in entries)
        print(f"  {k:{width}}{row}")
    print("metrics:")
    for k in metric_keys:
        values = [e.metrics.get(k, "-") for e in entries]
        row = "".join(f"  {_cell(v, cut):>{cw}}" for v in values)
        delta = ""
        if two and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            delta = f"  {values[1] - values[0]:+.4g}"
        print(f"  {k:{width}}{row}{delta}")


def _transposed(entries: list[Entry], diff: list[str], metric_keys: list[str], *, headline: tuple[str, ...],
                show_all: bool) -> None:
    """One row per run, one column per differing config key, then per metric: every one with ``show_all``,
    else the headline metrics (all differing metrics when none of them is a headline one)."""
    print(f"{len(entries)} runs, one row each")
    print(f"config differences ({len(diff)}):" if diff else "configs are identical")
    if diff:
        _blocks([e.label for e in entries], diff, [[e.config.get(k, "-") for k in diff] for e in entries])
    shown = metric_keys
    if not show_all:
        heads = [k for k in metric_keys if any(k == h or k.startswith((f"{h}.", f"{h}[")) for h in headline)]
        shown = heads or metric_keys
    rest = len(metric_keys) - len(shown)
    more = f"{rest} more differ{'' if rest > 1 else 's'}"
    print("metrics" + (f" (headline; {more}: --all shows every metric):" if rest else ":"))
    if shown:
        _blocks([e.label for e in entries], shown, [[e.metrics.get(k, "-") for k in shown] for e in entries])


def _blocks(labels: list[str], keys: list[str], values: list[list[Any]]) -> None:
    """A table with a row per label and a column per key, split into blocks of columns that fit the width."""
    lw = max(len(x) for x in labels)
    cells = [[_cell(v, MAX_CELL) for v in row] for row in values]
    widths = [max(len(k), *(len(row[j]) for row in cells)) for j, k in enumerate(keys)]
    start = 0
    while start < len(keys):
        end, used = start, 2 + lw
        while end < len(keys) and (end == start or used + 2 + widths[end] <= WIDTH):
            used += 2 + widths[end]
            end += 1
        cols = range(start, end)
        print(f"  {'':{lw}}" + "".join(f"  {keys[j]:>{widths[j]}}" for j in cols))
        for name, row in zip(labels, cells, strict=True):
            print(f"  {name:>{lw}}" + "".join(f"  {row[j]:>{widths[j]}}" for j in cols))
        start = end
