"""The ``vlab`` command line: run an experiment config, list what exists, reproduce every figure."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from vlab import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a program killed by the closed pipe would end
RUNS_ROOT_ENV = "VLAB_RUNS"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vlab",
        description="Differentiable experiments on deep generative models, in JAX. Each experiment is a YAML "
        "config; running it writes a folder with the resolved config, metrics.json, a metrics history "
        "and figures.",
        epilog="examples:\n"
        "  vlab run configs/kl_fit.yaml\n"
        "  vlab run configs/kl_fit.yaml n_inits=256 target.weights=[0.5,0.5] --out runs/equal\n"
        "  vlab run --resume runs/kl_fit/20261126-120000-ab12cd\n"
        "  vlab run configs/kl_fit.yaml --sweep train.optimizer.lr=0.03,0.1,0.3\n"
        "  vlab compare runs/kl_fit/A runs/kl_fit/B\n"
        "  vlab list\n"
        "  vlab reproduce --quick\n"
        "  vlab reproduce --quick --jobs 4",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p_run = sub.add_parser(
        "run",
        help="run one experiment config",
        description="Run an experiment config and write a run folder: config.yaml (resolved), metrics.json, "
        "history.jsonl, PNG figures and checkpoints. Any key can be overridden as key=value (dotted keys, "
        "YAML values: lists as [a,b]).",
        epilog="examples:\n"
        "  vlab run configs/kl_fit.yaml\n"
        "  vlab run configs/kl_fit.yaml estimator.kind=mc train.steps=500\n"
        "  vlab run configs/kl_fit.yaml --out runs/mine\n"
        "  vlab run configs/kl_fit.yaml --sweep seed=0,1,2 --sweep n_inits=16,64\n"
        "  vlab run configs/vae.yaml --sweep train.optimizer.lr=1e-4,1e-3,1e-2 --sweep seed=0,1  (one program)\n"
        "  vlab run configs/vae.yaml --quick\n"
        "  vlab run --resume runs/kl_fit/20261126-120000-ab12cd",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_run.add_argument("config", nargs="?", help="the experiment's YAML config (not with --resume)")
    p_run.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="override config keys, e.g. seed=3")
    p_run.add_argument("--out", metavar="DIR", help="the run folder (must be new or empty); default: "
                       f"${RUNS_ROOT_ENV:s} or runs/<experiment>/<timestamp>-<id>/")
    p_run.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its checkpoints")
    p_run.add_argument("--sweep", action="append", default=[], metavar="KEY=V1,V2,...",
                       help="run every value (repeat for a grid); adds to the config's sweep: section")
    p_run.add_argument("--separate", action="store_true",
                       help="run every sweep point as its own compiled program (by default keys that keep shapes "
                       "equal run as one vmapped program)")
    p_run.add_argument("--quick", action="store_true", help="apply the config's 'quick:' overrides (seconds)")
    p_run.add_argument("-q", "--quiet", action="store_true", help="no progress output")

    sub.add_parser("list", help="list experiments and configs",
                   description="List every experiment and every config under configs/ with a one-line description.")

    p_cmp = sub.add_parser(
        "compare",
        help="print two runs' metrics side by side with their config differences",
        description="Print the metrics of two run folders side by side (with the difference of numbers) and the "
        "config keys whose values differ.",
    )
    p_cmp.add_argument("run_a", metavar="RUN_A")
    p_cmp.add_argument("run_b", metavar="RUN_B")
    p_cmp.add_argument("--all", action="store_true", help="also list metrics that are equal, and timings")

    p_bench = sub.add_parser(
        "bench",
        help="run the benchmark suite (benchmarks/run.py) against the peers",
        description="Run every reference workload beside its peers (PyTorch, FlowJAX, normflows) and the cold "
        "start of every config; writes benchmarks/results/summary.md. Peers come from the benchmarks' own "
        "requirements files. Extra arguments go to benchmarks/run.py.",
    )
    p_bench.add_argument("bench_args", nargs=argparse.REMAINDER, metavar="ARGS")

    p_rep = sub.add_parser(
        "reproduce",
        help="run every config and write an index of figures and metrics",
        description="Run every config under configs/ (in order) and write index.md and index.html beside the "
        "runs, with every figure, the headline metrics and the checks against closed forms.",
    )
    p_rep.add_argument("--quick", action="store_true", help="apply each config's 'quick:' overrides (seconds each)")
    p_rep.add_argument("--out", metavar="DIR", help="where the runs and the index go "
                       "(default: runs/reproduce/<timestamp>-<id>)")
    p_rep.add_argument("--configs", metavar="DIR", help="the config folder (default: ./configs)")
    p_rep.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                       help="configs run at once, each in a process of its own (default 1; on one GPU they share it)")
    p_rep.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``vlab`` console script; returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "run":  # KEY=VALUE overrides may come after options too
        overrides = [x for x in extra if "=" in x and not x.startswith("-")]
        extra = [x for x in extra if x not in overrides]
        args.overrides = [*args.overrides, *overrides]
        if args.config is None and overrides and not args.resume:
            parser.error(f"missing CONFIG before the overrides {' '.join(overrides)}")
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from vlab.errors import ConfigError, TrainingDiverged

    try:
        status = _dispatch(args)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below, not at interpreter exit
        return status
    except ConfigError as e:
        print(f"vlab {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingDiverged as e:
        print(f"vlab {args.command}: training diverged: {e}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:  # the reader of our output went away (vlab list | head -1): stop quietly
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        return cmd_run(args)
    if args.command == "list":
        return cmd_list()
    if args.command == "compare":
        return cmd_compare(args)
    if args.command == "bench":
        return cmd_bench(args)
    return cmd_reproduce(args)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's flush at exit does not raise a second BrokenPipeError."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a file descriptor: drop the object instead
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stdout for the rest of the process
    finally:
        os.close(devnull)


# ------------------------------------------------------------------------------------------------ run


def cmd_run(args: argparse.Namespace) -> int:
    from vlab.errors import ConfigError

    if args.resume:
        if args.config or args.overrides:
            raise ConfigError("--resume continues a run with its own config: give no CONFIG or KEY=VALUE with it")
        if args.out:
            raise ConfigError("--resume writes into the run folder it continues: give no --out with it")
        if args.quick or args.sweep or args.separate:
            raise ConfigError("--resume continues a run with its own config: give no --quick, --sweep or --separate "
                              "with it")
        from vlab.cli import sweep

        if sweep.is_sweep_folder(args.resume):
            sweep.resume_sweep(args.resume, quiet=args.quiet)
            return EXIT_OK
        path = run_experiment(None, [], resume=args.resume, quiet=args.quiet)
    else:
        if not args.config:
            raise ConfigError("missing CONFIG: expected a YAML file, e.g. vlab run configs/kl_fit.yaml")
        overrides = list(args.overrides)
        if "=" in args.config and not args.config.endswith((".yaml", ".yml")):
            raise ConfigError(f"first argument '{args.config}' looks like an override: expected a YAML config file "
                              "before any KEY=VALUE")
        from vlab.cli import sweep
        from vlab.harness.config import read_yaml

        grid = {**sweep.from_config(read_yaml(args.config)), **sweep.parse_cli(args.sweep)}
        if args.separate and not grid:
            raise ConfigError("--separate applies to a sweep: give --sweep KEY=V1,V2,... or a sweep: section")
        if grid:
            sweep.run_sweep(args.config, overrides, grid, out=args.out, quiet=args.quiet, vmap=not args.separate,
                            quick=args.quick)
            return EXIT_OK
        path = run_experiment(args.config, overrides, out=args.out, quiet=args.quiet, quick=args.quick)
    return EXIT_OK if path is not None else EXIT_FAILED


def load(config: str, overrides: list[str], *, quick: bool = False):
    """Read a config file and overrides, resolve its experiment and return ``(ExperimentClass, cfg)``."""
    from omegaconf import OmegaConf

    from vlab.cli.sweep import SWEEP_KEY
    from vlab.errors import ConfigError
    from vlab.harness.config import QUICK_KEY, merge, parse_overrides, read_yaml, resolve_override_keys
    from vlab.harness.experiment import resolve

    raw = read_yaml(config)
    raw.pop(SWEEP_KEY, None)  # a sweep is expanded by vlab.cli.sweep, never part of one run's config
    quick_layer = raw.pop(QUICK_KEY, None)
    layers = [raw]
    if quick and quick_layer is not None:
        if not OmegaConf.is_dict(quick_layer):
            raise ConfigError(f"key '{QUICK_KEY}' in '{config}': expected a mapping of overrides")
        layers.append(quick_layer)
    layers.append(parse_overrides(overrides))
    name = None
    for layer in layers:
        if "experiment" in layer:
            name = layer["experiment"]
    if name is None:
        raise ConfigError(f"key 'experiment' is missing in '{config}': expected the experiment's name first")
    cls = resolve(name)
    layers[-1] = parse_overrides(resolve_override_keys(overrides, cls.Config))
    return cls, merge(cls.Config, *layers)


def run_experiment(config: str | None, overrides: list[str], *, out: str | None = None, resume: str | None = None,
                   quiet: bool = False, quick: bool = False, members: list[dict] | None = None) -> Path | None:
    """Run one config (or resume a run folder) and return the run folder, or None when training diverged.

    ``members`` are sweep points of shape-equal keys that the experiment trains as one vmapped program
    (:mod:`vlab.engine.members`); they are recorded in run.json, so a resumed run gets them back.

    Everything that can be checked before training is (the config, the device, the mesh, the data files, the
    ``--out`` folder), so bad input never leaves a run folder. The folder is locked while this process writes it.
    SIGINT and SIGTERM checkpoint at the next chunk boundary, mark the run ``interrupted`` and exit with 130 and
    143; a run that fails with a :class:`ConfigError` once training has begun keeps its folder and checkpoints."""
    t_start = time.perf_counter()
    import jax

    from vlab.engine import runtime

    import_s = time.perf_counter() - t_start
    # only process 0 writes the run folder; the others train beside it in a scratch folder of their own
    worker = runtime.maybe_initialize_distributed() and jax.process_index() != 0
    previous: dict = {}
    run = None
    if resume:
        run, previous, cls, cfg = _open_for_resume(resume, quiet, lock=not worker)
        members = previous.get("members")
    else:
        cls, cfg = load(config, overrides, quick=quick)  # type: ignore[arg-type]
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
        return _train_in(run, cls, cfg, device, mesh, members, previous, t_start, import_s)
    finally:
        run.close()


def _worker_run(resume: str | None):
    """The scratch run folder of a process other than 0 in a run over many processes: resuming, it starts from
    copies of process 0's checkpoints, so every process continues from the same step."""
    import tempfile

    from vlab.harness.runs import Run

    scratch = Path(tempfile.mkdtemp(prefix="vlab-worker-"))
    if resume:
        shutil.copytree(Path(resume) / "checkpoints", scratch / "checkpoints", dirs_exist_ok=True)
    return Run(scratch, resume=bool(resume), quiet=True)


def _open_for_resume(resume: str, quiet: bool, lock: bool = True):
    """The run folder to continue (locked, unless ``lock`` is false: None then), its recorded status, its
    experiment class and its config."""
    from vlab.errors import ConfigError
    from vlab.harness.runs import Run, read_status

    rdir = Path(resume)
    if not (rdir / "config.yaml").is_file():
        raise ConfigError(f"--resume '{resume}' is not a run folder: expected {rdir / 'config.yaml'}")
    if not lock:
        return None, read_status(rdir), *load(str(rdir / "config.yaml"), [])
    run = Run(rdir, resume=True, quiet=quiet)  # the lock: a folder another process writes is refused here
    try:
        previous = run.status()
        if previous.get("status") == "complete":
            raise ConfigError(f"--resume '{resume}': that run is already complete; start a new run instead")
        cls, cfg = load(str(rdir / "config.yaml"), [])
    except BaseException:
        run.close()
        raise
    return run, previous, cls, cfg


def check_inputs(cfg) -> None:
    """What a config reads from disk, checked before a run folder exists: a ``data:`` section's files."""
    from vlab.data import sets as data

    section = getattr(cfg, "data", None)
    if isinstance(section, data.DataConfig):
        data.check(section)


def _create_run(cls, cfg, out: str | None, quiet: bool):
    from vlab.harness.config import to_yaml
    from vlab.harness.runs import Run

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
        from vlab.errors import ConfigError

        raise ConfigError(f"--out '{path}' cannot be written ({e.strerror}): expected a writable folder") from None
    return run


def _checkpoint_seconds(cfg) -> float:
    from vlab.harness.runs import CHECKPOINT_SECONDS

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


def _train_in(run, cls, cfg, device, mesh, members, previous: dict, t_start: float, import_s: float) -> Path:
    import jax

    from vlab.engine import interrupts
    from vlab.errors import ConfigError, TrainingDiverged
    from vlab.harness.runs import environment, write_json

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
            _discard(run)
        raise
    except TrainingDiverged as e:
        end_segment("failed", error=str(e))
        raise
    except KeyboardInterrupt as e:
        signame = e.signal_name if isinstance(e, interrupts.Interrupted) else "SIGINT"
        end_segment("interrupted", signal=signame)
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
    if jax.process_index() != 0:
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
    from vlab.harness.config import to_dict

    found = []
    for key, value in flatten(to_dict(cfg)).items():
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
    import re

    from vlab.errors import ResourceExhausted

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
    import numpy as np

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
    from vlab.engine.members import short_items

    first = ", ".join(short_items({k: rows[0][k] for k in swept})) or "the first member"
    metrics["summary"] = (f"{', '.join(done)} summarise all {len(rows)} members (metrics['members'] holds each); "
                          f"other top-level values are the first member's ({first})")


def _print_summary(cls, cfg, metrics: dict, members: list[dict] | None) -> None:
    """The end-of-run line: the headline metrics, and for a vmapped sweep one line per member (up to 12) or the
    range over members."""
    head = headline_metrics(cls, metrics)
    summary = ", ".join(f"{k}={_fmt(v)}" for k, v in head.items())
    rows = metrics.get("members") if members and len(members) > 1 else None
    if rows:
        print(f"{cfg.experiment}: sweep of {len(members)} points, {len(rows)} members (mean ± std over members"
              f"{'; each member below' if len(rows) <= 12 else ''}): {summary}")
        if len(rows) <= 12:
            from vlab.engine.members import short_items

            keys = [k for k in cls.headline if k in rows[0]]
            swept = [k for k in rows[0] if k in {key for p in members for key in p}]
            several_seeds = any(r.get("seed_index", 0) for r in rows)
            for r in rows:
                seed = [f"seed {r.get('seed_index', 0)}"] if several_seeds else []
                label = ", ".join([*short_items({k: r[k] for k in swept}), *seed])
                print(f"  {label}: " + ", ".join(f"{k}={_fmt(r[k])}" for k in keys if r[k] is not None))
        return
    print(f"{cfg.experiment}: {summary}" if summary else cfg.experiment)


def _fmt(v) -> str:
    if isinstance(v, dict) and {"mean", "std", "min", "max"} <= set(v):
        return f"{v['mean']:.6g} ± {v['std']:.2g} [{v['min']:.6g}, {v['max']:.6g}]"
    if isinstance(v, dict) and {"mean", "std"} <= set(v):
        return f"{v['mean']:.6g} ± {v['std']:.2g}"
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def lookup(metrics: dict, dotted: str):
    """``metrics["a"]["b"]`` for ``"a.b"`` (None when absent)."""
    node = metrics
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None
    return node


def headline_metrics(cls, metrics: dict) -> dict:
    """The experiment's headline metrics that are present in ``metrics``."""
    out = {}
    for key in cls.headline:
        value = lookup(metrics, key)
        if value is not None:
            out[key] = value
    return out


# ------------------------------------------------------------------------------------------------ list


def config_dir(given: str | None = None) -> Path:
    """``given``, else ./configs, else the configs folder beside the installed package."""
    if given:
        return Path(given)
    here = Path("configs")
    return here if here.is_dir() else Path(__file__).resolve().parent.parent / "configs"


def config_description(path: Path) -> str:
    """The first comment line of a YAML config."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line.strip():
            break
    return ""


def cmd_list() -> int:
    from vlab.harness.experiment import builtin_names, resolve

    print("experiments:")
    for name in builtin_names():
        cls = resolve(name)
        source = f"  [{cls.source}]" if cls.source else ""
        print(f"  {name:<22} {cls.description}{source}")
    cdir = config_dir()
    configs = sorted(cdir.glob("*.yaml"))
    print(f"\nconfigs ({cdir}):")
    for p in configs:
        print(f"  {p.name:<28} {config_description(p)}")
    return EXIT_OK


# ------------------------------------------------------------------------------------------------ bench


def cmd_bench(args: argparse.Namespace) -> int:
    import subprocess

    from vlab.errors import ConfigError

    script = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
    if not script.is_file():
        raise ConfigError(f"benchmark suite not found at {script}: expected a source checkout of vlab")
    return subprocess.call([sys.executable, str(script), *args.bench_args])


# ------------------------------------------------------------------------------------------------ compare


def flatten(tree, prefix: str = "") -> dict:
    """``{"a": {"b": 1}, "c": [2, 3]}`` as ``{"a.b": 1, "c[0]": 2, "c[1]": 3}``."""
    out: dict = {}
    if isinstance(tree, dict):
        for k, v in tree.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(tree, list) and any(isinstance(v, dict | list) for v in tree):
        for i, v in enumerate(tree):
            out.update(flatten(v, f"{prefix}[{i}]"))
    else:
        out[prefix] = tree
    return out


def cmd_compare(args: argparse.Namespace) -> int:
    import yaml

    from vlab.errors import ConfigError

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
        print(f"  {k:{width}}  {_fmt(a):>14}  {_fmt(b):>14}")
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
        print(f"  {k:{width}}  {_fmt(a):>14}  {_fmt(b):>14}{delta}")
    return EXIT_OK


# ------------------------------------------------------------------------------------------------ reproduce


def _reproduce_one(config: str, out: str, quick: bool, quiet: bool) -> dict:
    """Run one config for ``vlab reproduce``: its error, or the reason it was skipped (missing data), and the wall
    time. A failing config is recorded, never raised, so the others still run."""
    from vlab.errors import DataNotFound

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
    from vlab.cli.report import write_index
    from vlab.errors import ConfigError
    from vlab.harness.runs import Run

    if args.jobs < 1:
        raise ConfigError(f"key '--jobs': value {args.jobs} is not valid: expected an integer >= 1")
    cdir = config_dir(args.configs)
    configs = sorted(cdir.glob("*.yaml"))
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
