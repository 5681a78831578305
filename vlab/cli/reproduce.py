"""``vlab reproduce``: every config run in order (or a few at a time), with an index of figures and metrics."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from vlab.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from vlab.cli.report import write_index
from vlab.errors import ConfigError, DataNotFound
from vlab.harness.launch import RUNS_ROOT_ENV, run_experiment
from vlab.harness.loading import builtin_configs
from vlab.harness.runs import Run


def _reproduce_one(config: str, out: str, quick: bool, quiet: bool) -> dict:
    """Run one config for ``vlab reproduce``: its error, or the reason it was skipped (missing data), and the wall
    time. A failing config is recorded, never raised, so the others still run."""
    t0 = time.perf_counter()
    error = skipped = None
    try:
        if run_experiment(config, [], out=out, quiet=quiet, quick=quick) is None:
            error = "training diverged"
    except DataNotFound as e:
        skipped = str(e)
    except Exception as e:  # one failing config must not stop the others
        error = f"{type(e).__name__}: {e}"
    return {"error": error, "skipped": skipped, "seconds": time.perf_counter() - t0}


def _outcome(result: dict) -> str:
    if result["skipped"]:
        return f"skipped: {result['skipped']}"
    if result["error"]:
        return f"failed: {result['error']}"
    return f"done in {result['seconds']:.1f} s"


def cmd_reproduce(args: argparse.Namespace) -> int:
    """``vlab reproduce``: every config (the built-in ones, or ``--configs DIR``) in order or ``--jobs`` at a time,
    then index.md and index.html with every figure, the headline metrics and the checks."""

    if args.jobs < 1:
        raise ConfigError(f"key '--jobs': value {args.jobs} is not valid: expected an integer >= 1")
    cdir = Path(args.configs) if args.configs else None
    configs = sorted(cdir.glob("*.yaml")) if cdir else list(builtin_configs().values())
    if not configs:
        raise ConfigError(f"--configs '{cdir}' holds no .yaml files: expected a folder of experiment configs")
    if args.out:
        Run.check_fresh(args.out)
    root = Path(args.out) if args.out else Run.new_path(os.environ.get(RUNS_ROOT_ENV, "runs"), "reproduce")
    root.mkdir(parents=True, exist_ok=True)
    jobs = [(str(c), str(root / c.stem)) for c in configs]
    results: list[dict] = [{}] * len(jobs)
    if args.jobs == 1:
        for i, (config, out) in enumerate(jobs):
            print(f"[{i + 1}/{len(jobs)}] {configs[i].name}", file=sys.stderr, flush=True)
            results[i] = _reproduce_one(config, out, args.quick, args.quiet)
            if results[i]["error"] or results[i]["skipped"]:
                print(f"  {_outcome(results[i])}", file=sys.stderr)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # several processes on one accelerator: each takes the memory it needs instead of most of the device
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        print(f"running {len(jobs)} configs, {args.jobs} at a time (each run prints its summary line, no progress)",
              file=sys.stderr, flush=True)
        pool = ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn"))
        try:
            futures = {pool.submit(_reproduce_one, config, out, args.quick, True): i
                       for i, (config, out) in enumerate(jobs)}
            for n, future in enumerate(as_completed(futures), 1):
                i = futures[future]
                results[i] = future.result()
                print(f"[{n}/{len(jobs)}] {configs[i].name}: {_outcome(results[i])}", file=sys.stderr, flush=True)
        except KeyboardInterrupt:  # Ctrl-C reaches the workers too: their runs checkpoint and are marked interrupted
            pool.shutdown(wait=True, cancel_futures=True)
            print(f"vlab reproduce: interrupted; the runs under way are marked interrupted in {root} (continue one "
                  "with vlab run --resume DIR)", file=sys.stderr)
            return EXIT_INTERRUPTED
        pool.shutdown()
    entries = [{"config": c, "run": root / c.stem, **r} for c, r in zip(configs, results, strict=True)]
    md, html = write_index(root, entries, quick=args.quick)
    n_bad = sum(e["error"] is not None for e in entries)
    n_skip = sum(e["skipped"] is not None for e in entries)
    skipped = f", {n_skip} skipped for missing data" if n_skip else ""
    failed = f", {n_bad} failed" if n_bad else ""
    print(f"reproduced {len(entries) - n_bad - n_skip}/{len(entries)} configs{skipped}{failed}")
    print(f"index: {html}")
    print(f"       {md}")
    return EXIT_OK if n_bad == 0 else EXIT_FAILED
