"""Config sweeps: a grid of values for any keys, one run per point, a table and a figure of the results.

A config's ``sweep:`` mapping (or ``vlab run CONFIG --sweep key=v1,v2,...``) names keys and their values: a list,
or a range ``{start, stop, num, log}``. Every point of the grid (the cartesian product) is validated before anything
runs. Keys that keep every shape equal and that the experiment can vary per member (its ``member_keys``: learning
rate, KL weight, seed, ...) run as the members of one vmapped program (:mod:`vlab.engine.members`); keys that change
shapes
(a latent size, a layer count) run as separate compiled programs, one run folder per value, in the same process.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from vlab import trees
from vlab.engine.members import short_items
from vlab.errors import ConfigError
from vlab.harness import plots
from vlab.harness.grids import as_overrides, points, resolve_keys, split_grid
from vlab.harness.launch import RUNS_ROOT_ENV, run_experiment
from vlab.harness.loading import config_path, load_config
from vlab.harness.runs import FolderLock, Run, make_folder, read_status, write_json


def point_name(i: int, point: dict[str, Any]) -> str:
    """A folder name such as ``03-lr=0.001-beta=2``."""

    name = "-".join(short_items(point)).replace("/", "_").replace(" ", "")
    return f"{i:02d}-{name}"[:120]


def scalar_metrics(metrics: dict, keys: tuple[str, ...]) -> dict[str, float]:
    """The named (dotted) metrics (a named dict of metrics gives each of its scalars, ``key.name``), or every
    top-level and nested scalar when none are named."""

    if keys:
        out = {}
        for k in keys:
            out.update(trees.flatten(trees.get(metrics, k, None), k))
    else:
        out = {k: v for k, v in trees.flatten(metrics).items() if not k.startswith(("timing.", "checks["))}
    return {k: float(v) for k, v in out.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def write_table(path: Path, rows: list[dict]) -> None:
    """One CSV row per point: the swept values, then the metrics."""
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)


def draw(path: Path, grid: dict[str, list], rows: list[dict], metric_keys: list[str], title: str = "sweep") -> None:
    """Each of up to four metrics against each swept numeric key. With one other swept key of at most six values,
    one line per value of it; otherwise the mean over the other keys. Points are the mean over seeds, the band their
    min-max spread (across seeds, and across the other keys when they are averaged).

    Args:
        path: where the figure is saved.
        grid: the swept keys and their values, ``{key: values}``; only numeric keys other than ``seed`` get a
            column of panels (``seed`` does when no other key is numeric).
        rows: the table, one dict per point and seed, holding the swept values and the metrics.
        metric_keys: the metrics to plot, one row of panels each; only the first four are drawn.
        title: the figure's title.

    Returns:
        None; nothing is drawn when no key is numeric or no metric is given.
    """

    numeric = lambda vs: all(isinstance(v, int | float) and not isinstance(v, bool) for v in vs)  # noqa: E731
    keys = [k for k in grid if numeric(grid[k])]
    keys = [k for k in keys if k != "seed"] or keys  # seeds are the spread unless nothing else is numeric
    metric_keys = metric_keys[:4]
    if not keys or not metric_keys:
        return
    fig, axes = plots.figure(len(metric_keys), len(keys), squeeze=False)
    for j, key in enumerate(keys):
        xs = sorted(set(grid[key]))
        others = [k for k in grid if k not in (key, "seed")]
        split = others[0] if len(others) == 1 and len(grid[others[0]]) <= 6 else None
        series = [(f"{split.split('.')[-1]} = {v}", lambda r, v=v, s=split: r.get(s) == v) for v in grid[split]] \
            if split else [("mean" if others else None, lambda r: True)]
        for i, m in enumerate(metric_keys):
            ax = axes[i][j]
            banded = False
            for c, (label, keep) in enumerate(series):
                vals = [[r[m] for r in rows if keep(r) and r.get(key) == x and r.get(m) is not None] for x in xs]
                mean = [np.mean(v) if v else math.nan for v in vals]
                color = plots.color(c if split else i)
                ax.plot(xs, mean, "o-", color=color, label=label)
                if any(len(v) > 1 for v in vals):
                    banded = True
                    ax.fill_between(xs, [np.min(v) if v else math.nan for v in vals],
                                    [np.max(v) if v else math.nan for v in vals], color=color, alpha=0.2)
            spread = "seeds" if split or not others else "seeds and " + ", ".join(o.split(".")[-1] for o in others)
            if banded or split:
                ax.set_title(f"band: range over {spread}" if banded else "", fontsize=9)
            if split:
                ax.legend(fontsize=8)
            if min(xs) > 0 and max(xs) / min(xs) >= 100:
                ax.set_xscale("log")
            elif all(isinstance(x, int) for x in xs) and len(xs) <= 12:
                ax.set_xticks(xs)
            ax.set_xlabel(key)
            ax.set_ylabel(m)
    fig.suptitle(title)
    plots.save(fig, path)


SWEEP_FILE = "sweep.json"
SOURCE_FILE = "sweep_config.yaml"  # the config as it was when the sweep started, so a resume runs the same grid


def is_sweep_folder(path: str | Path) -> bool:
    """Whether ``path`` is a sweep's folder (it holds sweep.json) rather than one run's."""
    return (Path(path) / SWEEP_FILE).is_file()


def run_sweep(config: str, overrides: list[str], grid: dict[str, list], *, out: str | None, quiet: bool,
              vmap: bool = True, quick: bool = False) -> Path:
    """Validate every point, then run the grid and write sweep.csv, sweep.json and sweep.png.

    Keys the experiment lists in ``member_keys`` (shape-equal hyperparameters: a learning rate, a KL weight, a
    seed) run as members of one vmapped program per combination of the other keys; with ``vmap=False``, or for
    the other keys, each point is its own run folder, one after another in this process. The table has one row
    per point and seed. An interrupted sweep continues with :func:`resume_sweep` (``vlab run --resume ROOT``).

    Args:
        config: the path of the YAML config every point starts from (copied into the sweep's folder).
        overrides: ``key=value`` overrides applied to every point before its swept values.
        grid: the swept keys and their values, ``{key: values}``; short keys are spelled out.
        out: the sweep's folder, absent or empty; None makes a new one, ``<runs root>/<experiment>-sweep/<time>``
            with the runs root ``$VLAB_RUNS`` or ``runs``.
        quiet: whether to silence each run's progress output.
        vmap: whether the experiment's ``member_keys`` run as members of one vmapped program (default True);
            False runs every point as its own run.
        quick: whether every point runs the config's quick variant (default False).

    Returns:
        The sweep's folder, holding sweep.csv, sweep.json, sweep.png and one run folder per point.
    """
    import os

    cls, _ = load_config(config, overrides, quick=quick)
    grid = resolve_keys(grid, cls.Config)
    for p in points(grid):  # every point is a valid config before anything runs
        cls, _ = load_config(config, [*overrides, *as_overrides(p)], quick=quick)
    if out:
        Run.check_fresh(out)
    root = Path(out) if out else Run.new_path(os.environ.get(RUNS_ROOT_ENV, "runs"), f"{cls.name}-sweep")
    make_folder(root)
    lock = FolderLock(root, "sweep folder")
    try:
        (root / SOURCE_FILE).write_text(config_path(config).read_text())
        info = {"config": str(config), "source": SOURCE_FILE, "overrides": list(overrides), "grid": grid,
                "vmap": vmap, "quick": quick, "status": "running"}
        write_json(root / SWEEP_FILE, info)
        return _run_points(root, info, quiet=quiet)
    finally:
        lock.release()


def resume_sweep(path: str | Path, *, quiet: bool) -> Path:
    """Continue an interrupted sweep: points whose run folder is complete are read back, interrupted ones resume
    from their checkpoints, the rest start; the table and figure then cover every point."""

    root = Path(path)
    lock = FolderLock(root, "sweep folder")
    try:
        try:
            info = json.loads((root / SWEEP_FILE).read_text())
        except (OSError, ValueError) as e:
            raise ConfigError(f"--resume '{path}': {SWEEP_FILE} cannot be read ({e}): expected a sweep folder") \
                from None
        if info.get("status") == "complete":
            raise ConfigError(f"--resume '{path}': that sweep is already complete; start a new one instead")
        if not (root / info.get("source", SOURCE_FILE)).is_file():
            raise ConfigError(f"--resume '{path}': {root / SOURCE_FILE} is missing: expected the sweep's config")
        print(f"sweep: resuming {root}", flush=True)
        return _run_points(root, info, quiet=quiet)
    finally:
        lock.release()


def _run_points(root: Path, info: dict, *, quiet: bool) -> Path:
    from vlab.trees import schema_keys

    config, overrides, grid, quick = str(root / info["source"]), info["overrides"], info["grid"], info["quick"]
    cls, _ = load_config(config, overrides, quick=quick)
    outer, inner = split_grid(grid, cls.member_keys if info["vmap"] else ())
    info = {**info, "keys": {"vmapped": list(inner), "separate": list(outer)}}
    write_json(root / SWEEP_FILE, info)
    outer_pts, inner_pts = points(outer), points(inner) if inner else []
    n_points = len(outer_pts) * max(len(inner_pts), 1)
    if inner:
        print(f"sweep: {len(inner_pts)} point(s) of {', '.join(inner)} as one vmapped program"
              + (f", for each of {len(outer_pts)} point(s) of {', '.join(outer)}" if outer else ""), flush=True)
    rows = []
    for i, p in enumerate(outer_pts):
        name = point_name(i, p) if p else "00-vmapped"
        folder = root / name
        if p:
            print(f"[sweep {i + 1}/{len(outer_pts)}] {' '.join(as_overrides(p))}", flush=True)
        try:
            path = _run_point(folder, config, [*overrides, *as_overrides(p)], quick, quiet, inner_pts)
        except (KeyboardInterrupt, SystemExit):
            write_json(root / SWEEP_FILE, {**info, "status": "interrupted"})
            print(f"vlab run: sweep interrupted at point {i + 1}/{len(outer_pts)}; continue it with: vlab run "
                  f"--resume {root}", file=sys.stderr)
            raise
        metrics = json.loads((Path(path) / "metrics.json").read_text())
        if inner:
            for r in metrics["members"]:
                rows.append({"point": name, **p, **r})
        else:
            rows.append({"point": name, **p, **scalar_metrics(metrics, cls.headline)})
    write_table(root / "sweep.csv", rows)
    config_keys = set(schema_keys(cls.Config))
    measured = lambda k: any(isinstance(r.get(k), int | float) and not isinstance(r.get(k), bool) for r in rows)  # noqa: E731
    # metrics only: not the swept keys, not config values the rows carry along, not columns with no value
    metric_keys = [k for k in rows[0] if k not in ("point", "seed_index", *grid) and k not in config_keys
                   and measured(k)]
    draw(root / "sweep.png", grid, rows, metric_keys,
         title=f"{Path(info['config']).stem}: sweep of {', '.join(grid)} ({n_points} points)")
    write_json(root / SWEEP_FILE, {**info, "status": "complete", "points": rows})
    print(f"sweep of {n_points} points: {root / 'sweep.csv'}, {root / 'sweep.png'}")
    return root


def _run_point(folder: Path, config: str, overrides: list[str], quick: bool, quiet: bool,
               members: list[dict]) -> Path:
    """One point's run folder: read back when complete, resumed when it was started, else run."""
    import shutil

    status = read_status(folder)
    if status.get("status") == "complete" and (folder / "metrics.json").is_file():
        print(f"  {folder.name}: already complete", flush=True)
        return folder
    if (folder / "config.yaml").is_file() and status:
        return run_experiment(None, [], resume=str(folder), quiet=quiet)
    if folder.exists():  # begun but never announced (killed while being created): start it again
        shutil.rmtree(folder)
    return run_experiment(config, overrides, out=str(folder), quiet=quiet, quick=quick, members=members or None)
