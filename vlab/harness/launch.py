"""Launching a run: one config (or an interrupted run folder) trained into a run folder, with everything that can be
checked before training checked first (:func:`run_experiment`), and the summary line printed at the end."""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vlab import trees
from vlab.engine import interrupts
from vlab.engine.members import short_items
from vlab.errors import ConfigError, ResourceExhausted, TrainingDiverged
from vlab.harness.config import to_dict, to_yaml
from vlab.harness.loading import load_config
from vlab.harness.loggers import Logger
from vlab.harness.runs import CHECKPOINT_SECONDS, Run, environment, read_status, write_json

EXIT_INTERRUPTED = 130
RUNS_ROOT_ENV = "VLAB_RUNS"


def run_experiment(config: Any, overrides: list[str], *, out: str | None = None, resume: str | None = None,
                   quiet: bool = False, quick: bool = False, members: list[dict] | None = None,
                   import_s: float = 0.0, loggers: Sequence[Logger] = (), figures: dict | None = None,
                   from_python: bool = False) -> Path | None:
    """Run one config (or resume a run folder) and return the run folder.

    ``members`` are sweep points of shape-equal keys that the experiment trains as one vmapped program
    (:mod:`vlab.engine.members`); they are recorded in run.json, so a resumed run gets them back.

    Everything that can be checked before training is (the config, the device, the mesh, the data files, the
    ``--out`` folder), so bad input never leaves a run folder. The folder is locked while this process writes it.
    SIGINT and SIGTERM checkpoint at the next chunk boundary, mark the run ``interrupted`` and exit with 130 and
    143; a run that fails with a :class:`ConfigError` once training has begun keeps its folder and checkpoints.
    ``import_s`` is the time the caller took to import vlab, recorded with the run's timings. Called
    ``from_python`` (:func:`vlab.run`), an interrupt raises :class:`KeyboardInterrupt` to the caller instead of
    ending the process, and ``quiet`` silences the summary too.

    Args:
        config: the config, a YAML path, a built-in config's name or a config object (see
            :func:`vlab.harness.loading.load_config`); None when resuming.
        overrides: ``key=value`` overrides applied on top of the config (empty when resuming).
        out: the run folder, absent or empty; None makes a new one, ``<runs root>/<experiment>/<time>`` with the
            runs root ``$VLAB_RUNS`` or ``runs``.
        resume: a run folder to continue from its last checkpoint with its own config, or None for a new run.
        quiet: whether to silence the progress output (default False).
        quick: whether to apply the config's ``quick:`` overrides first (default False).
        members: the points of the vmapped members, one ``{key: value}`` per member, or None for a plain run
            (when resuming, the run's recorded members are used instead).
        import_s: seconds the caller spent importing vlab before calling this (default 0.0).
        loggers: :class:`vlab.harness.loggers.Logger` objects that receive the history rows and final metrics,
            besides those the config's ``logging`` section asks for.
        figures: a dict that receives the run's figures by name, open, instead of their being closed once saved.
        from_python: whether the caller is the Python API rather than the command line (default False).

    Returns:
        The run folder (on a process other than 0 of a run over many processes, its scratch folder).

    Raises:
        ConfigError: a bad config, override, device, data file or ``--out`` folder, found before training.
        TrainingDiverged: a loss or metric became NaN or infinite; the run is marked ``failed``.
    """
    t_start = time.perf_counter() - import_s
    import jax

    from vlab.engine import runtime

    # only process 0 writes the run folder; the others train beside it in a scratch folder of their own
    worker = runtime.maybe_initialize_distributed() and jax.process_index() != 0
    previous: dict = {}
    run = None
    if resume:
        run, previous, cls, cfg = _open_for_resume(resume, quiet, lock=not worker)
        members = previous.get("members")
    else:
        cls, cfg = load_config(config, overrides, quick=quick)  # type: ignore[arg-type]
    try:
        device = runtime.configure(cfg.device, cfg.precision)
        runtime.enable_compile_cache()
        mesh = runtime.make_mesh(cfg.parallel.data, cfg.parallel.sweep, device.platform)
        check_inputs(cfg)
        if worker:
            run = _worker_run(resume)
        elif not resume:
            run = _create_run(cls, cfg, out, quiet)
    except BaseException:
        if run is not None:
            run.close()
        raise
    try:
        run.loggers = [*config_loggers(cfg), *loggers]
        run.keep_figures = figures is not None
        path = _train_in(run, cls, cfg, device, mesh, members, previous, t_start, import_s, from_python)
        if figures is not None:
            figures.update(run.open_figures)
        return path
    finally:
        run.close()


def _worker_run(resume: str | None):
    """The scratch run folder of a process other than 0 in a run over many processes: resuming, it starts from
    copies of process 0's checkpoints, so every process continues from the same step."""
    import tempfile

    scratch = Path(tempfile.mkdtemp(prefix="vlab-worker-"))
    if resume:
        shutil.copytree(Path(resume) / "checkpoints", scratch / "checkpoints", dirs_exist_ok=True)
    return Run(scratch, resume=bool(resume), quiet=True)


def _open_for_resume(resume: str, quiet: bool, lock: bool = True):
    """The run folder to continue (locked, unless ``lock`` is false: None then), its recorded status, its
    experiment class and its config."""

    rdir = Path(resume)
    if not (rdir / "config.yaml").is_file():
        raise ConfigError(f"--resume '{resume}' is not a run folder: expected {rdir / 'config.yaml'}")
    if not lock:
        return None, read_status(rdir), *load_config(str(rdir / "config.yaml"), [])
    run = Run(rdir, resume=True, quiet=quiet)  # the lock: a folder another process writes is refused here
    try:
        previous = run.status()
        if previous.get("status") == "complete":
            raise ConfigError(f"--resume '{resume}': that run is already complete; start a new run instead")
        cls, cfg = load_config(str(rdir / "config.yaml"), [])
    except BaseException:
        run.close()
        raise
    return run, previous, cls, cfg


def config_loggers(cfg) -> list[Logger]:
    """The loggers a config's ``logging`` section asks for (``logging.tensorboard: true``)."""
    section = getattr(cfg, "logging", None)
    if section is not None and getattr(section, "tensorboard", False):
        from vlab.harness.loggers import TensorBoardLogger

        return [TensorBoardLogger()]
    return []


def _finish_loggers(run, metrics: dict, status: str) -> None:
    """Every logger's ``finish``, each even when an earlier one fails (the first failure is raised after)."""
    error = None
    for logger in run.loggers:
        try:
            logger.finish(metrics, status)
        except Exception as e:  # noqa: BLE001 - re-raised below, after the other loggers are closed
            error = error or e
    if error is not None and status == "complete":
        raise error


def check_inputs(cfg) -> None:
    """What a config reads from disk, checked before a run folder exists: a ``data:`` section's files."""
    from vlab.harness import data_config

    section = getattr(cfg, "data", None)
    if isinstance(section, data_config.DataConfig):
        data_config.check(section)


def _create_run(cls, cfg, out: str | None, quiet: bool):

    if out:
        Run.check_fresh(out)
    path = Path(out) if out else Run.new_path(os.environ.get(RUNS_ROOT_ENV, "runs"), cls.name or cfg.experiment)
    created = not path.exists()
    run = Run(path, quiet=quiet)  # _train_in sets its checkpoint_seconds, as for a resumed run
    run.created = created
    try:
        (run.path / "config.yaml").write_text(to_yaml(cfg))
    except OSError as e:
        run.close()
        _discard(run)

        raise ConfigError(f"--out '{path}' cannot be written ({e.strerror}): expected a writable folder") from None
    return run


def _checkpoint_seconds(cfg) -> float:

    train = getattr(cfg, "train", None)
    return float(getattr(train, "checkpoint_seconds", CHECKPOINT_SECONDS))


def _discard(run) -> None:
    """Remove what a run that never started wrote: the folder if this run created it, else its contents."""
    if getattr(run, "created", False):
        shutil.rmtree(run.path, ignore_errors=True)
        return
    for child in run.path.iterdir() if run.path.is_dir() else []:
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _train_in(run, cls, cfg, device, mesh, members, previous: dict, t_start: float, import_s: float,
              from_python: bool) -> Path:
    import jax

    from vlab.harness.loggers import RunInfo

    segments = list(previous.get("segments", []))
    run.timings["import"] = import_s
    run.checkpoint_seconds = _checkpoint_seconds(cfg)
    run.figure_formats, run.figure_dpi = tuple(cfg.figures.format), cfg.figures.dpi
    run.set_status("running", experiment=cfg.experiment, environment=environment(),
                   mesh=dict(mesh.shape) if mesh is not None else None, **({"members": members} if members else {}))
    run.log(f"[{cfg.experiment}] run folder {run.path} (device {device.platform}, {cfg.precision})"
            + (f", resumed (segment {len(segments) + 1})" if run.resume else ""))

    def end_segment(status: str, **extra) -> None:
        seg = {"seconds": round(time.perf_counter() - t_start, 3), "ended": status}
        run.set_status(status, segments=[*segments, seg], **extra)
        if status != "complete":
            _finish_loggers(run, {}, status)

    info = RunInfo(run.path, cfg.experiment, to_dict(cfg), bool(run.resume))
    for logger in run.loggers:
        logger.start(info)
    try:
        with interrupts.handle_signals(), jax.default_device(device):
            try:
                metrics = cls().run(cfg, run, members=members, mesh=mesh)
            except jax.errors.JaxRuntimeError as e:
                if "RESOURCE_EXHAUSTED" not in str(e):
                    raise
                raise out_of_memory(e, cfg, device.platform) from None
    except ConfigError as e:
        if run.resume:
            end_segment(previous.get("status", "interrupted"), error=str(e))
        elif any(run.path.glob("checkpoints/*.npz")):  # training had begun: keep what it wrote
            end_segment("failed", error=str(e))
        else:
            _finish_loggers(run, {}, "failed")
            _discard(run)
        raise
    except TrainingDiverged as e:
        end_segment("failed", error=str(e))
        raise
    except KeyboardInterrupt as e:
        signame = e.signal_name if isinstance(e, interrupts.Interrupted) else "SIGINT"
        end_segment("interrupted", signal=signame)
        if from_python:
            print(f"vlab.run: interrupted by {signame}; continue with: vlab.resume({str(run.path)!r})",
                  file=sys.stderr)
            raise
        print(f"vlab run: interrupted by {signame}; continue with: vlab run --resume {run.path}", file=sys.stderr)
        raise SystemExit(e.exit_status if isinstance(e, interrupts.Interrupted) else EXIT_INTERRUPTED) from None
    except BaseException as e:
        end_segment("failed", error=f"{type(e).__name__}: {e}")
        raise
    run.timings["total"] = time.perf_counter() - t_start + sum(s["seconds"] for s in segments)
    metrics = dict(metrics)
    if members and len(members) > 1 and isinstance(metrics.get("members"), list):
        summarise_sweep(metrics, cls.headline, members)
    metrics["timing"] = {k: round(v, 4) for k, v in run.timings.items()}
    if segments:
        metrics["timing"]["segments"] = len(segments) + 1
    if run.checks:
        metrics["checks"] = run.checks
    write_json(run.path / "metrics.json", metrics)
    end_segment("complete", figures=run.figures)
    _finish_loggers(run, metrics, "complete")
    if jax.process_index() != 0 or (from_python and run.quiet):
        return run.path
    failed = [c["name"] for c in run.checks if not c["ok"]]
    _print_summary(cls, cfg, metrics, members)
    if failed:
        print(f"  checks outside tolerance: {', '.join(failed)}")
    print(f"  wrote {run.path}/ (metrics.json, history.jsonl, {len(run.figures)} figures) in "
          f"{run.timings['total']:.1f}s")
    return run.path


SIZE_KEY_WORDS = ("batch", "samples", "hidden", "points", "n_", "_dim", "dim", "size", "width", "nodes", "grid",
                  "components", "inits", "seeds", "train", "test", "layers", "iwae")


def size_keys(cfg, limit: int = 5) -> list[str]:
    """The config's integer keys that set array sizes (batch sizes, sample counts, widths, point counts), largest
    value first, as ``key=value``: what to lower when memory runs out."""

    found = []
    for key, value in trees.flatten(to_dict(cfg)).items():
        leaf = key.split(".")[-1].split("[")[0]
        if leaf in ("chunk_size", "log_every", "checkpoint_every", "steps", "seed", "embedding_seed") or \
                not any(w in leaf for w in SIZE_KEY_WORDS):
            continue
        ints = value if isinstance(value, list) else [value]
        if ints and all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
            found.append((max(ints), f"{key}={value}"))
    return [k for _, k in sorted(found, key=lambda t: -t[0])[:limit]]


def out_of_memory(e: Exception, cfg, platform: str):
    """A :class:`ConfigError` for XLA's RESOURCE_EXHAUSTED: what ran out, how much was asked, and the keys that
    set the sizes."""

    text = str(e)
    m = re.search(r"RESOURCE_EXHAUSTED:\s*([^\n]*)", text)
    what = (m.group(1) if m else text.splitlines()[0]).strip().rstrip(".")
    n = re.search(r"(\d{6,}) bytes", what)
    asked = f" ({int(n.group(1)) / 2**30:.3g} GiB in one buffer)" if n else ""
    keys = size_keys(cfg)
    hint = f"; the sizes come from {', '.join(keys)}: lower them" if keys else "; lower the config's sizes"
    return ResourceExhausted(f"out of memory on {platform}{asked}: {what[:200]}{hint}")


def summarise_sweep(metrics: dict, headline: tuple[str, ...], members: list[dict]) -> None:
    """In a vmapped sweep of several points, every per-member metric that also has a place at the top of
    ``metrics`` (the headline ones first) becomes its summary over every member: mean, std, min, max and the
    point of each extreme, never point 0's value. Each member's own values stay in ``metrics["members"]``."""

    rows = metrics["members"]
    point_keys = {key for p in members for key in p}
    swept = [k for k in rows[0] if k in point_keys]
    columns = [k for k in rows[0] if k not in point_keys and k != "seed_index"]
    done = []
    for key in [*[h for h in headline if h in columns], *[c for c in columns if c not in headline]]:
        vals = [(r[key], {k: r[k] for k in swept}) for r in rows if isinstance(r.get(key), int | float)]
        parts = key.split(".")
        node = metrics
        for part in parts[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if not vals or not isinstance(node, dict) or parts[-1] not in node:
            continue
        xs = [v for v, _ in vals]
        lo, hi = min(vals, key=lambda t: t[0]), max(vals, key=lambda t: t[0])
        node[parts[-1]] = {"mean": float(sum(xs) / len(xs)), "std": float(np.std(xs)), "min": float(lo[0]),
                           "max": float(hi[0]), "min_at": lo[1], "max_at": hi[1],
                           "over": f"{len(xs)} members of {len(members)} sweep points"}
        done.append(key)

    first = ", ".join(short_items({k: rows[0][k] for k in swept})) or "the first member"
    metrics["summary"] = (f"{', '.join(done)} summarise all {len(rows)} members (metrics['members'] holds each); "
                          f"other top-level values are the first member's ({first})")


def _print_summary(cls, cfg, metrics: dict, members: list[dict] | None) -> None:
    """The end-of-run line: the headline metrics, and for a vmapped sweep one line per member (up to 12) or the
    range over members."""
    head = headline_metrics(cls, metrics)
    summary = ", ".join(f"{k}={format_value(v)}" for k, v in head.items())
    rows = metrics.get("members") if members and len(members) > 1 else None
    if rows:
        print(f"{cfg.experiment}: sweep of {len(members)} points, {len(rows)} members (mean ± std over members"
              f"{'; each member below' if len(rows) <= 12 else ''}): {summary}")
        if len(rows) <= 12:

            keys = [k for k in cls.headline if k in rows[0]]
            swept = [k for k in rows[0] if k in {key for p in members for key in p}]
            several_seeds = any(r.get("seed_index", 0) for r in rows)
            for r in rows:
                seed = [f"seed {r.get('seed_index', 0)}"] if several_seeds else []
                label = ", ".join([*short_items({k: r[k] for k in swept}), *seed])
                print(f"  {label}: " + ", ".join(f"{k}={format_value(r[k])}" for k in keys if r[k] is not None))
        return
    print(f"{cfg.experiment}: {summary}" if summary else cfg.experiment)


def format_value(v) -> str:
    """A metric for a summary line: a float to 6 digits, a summary over members as mean ± std [min, max]."""
    if isinstance(v, dict) and {"mean", "std", "min", "max"} <= set(v):
        return f"{v['mean']:.6g} ± {v['std']:.2g} [{v['min']:.6g}, {v['max']:.6g}]"
    if isinstance(v, dict) and {"mean", "std"} <= set(v):
        return f"{v['mean']:.6g} ± {v['std']:.2g}"
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def headline_metrics(cls, metrics: dict) -> dict:
    """The experiment's headline metrics that are present in ``metrics``."""
    out = {}
    for key in cls.headline:
        value = trees.get(metrics, key, None)
        if value is not None:
            out[key] = value
    return out
