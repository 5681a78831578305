"""The ``vlab`` command line: run an experiment config, list what exists, compare runs, reproduce every figure.

Each command lives in a module of its own (:mod:`vlab.cli.run`, :mod:`vlab.cli.listing`, :mod:`vlab.cli.compare`,
:mod:`vlab.cli.reproduce`, :mod:`vlab.cli.bench`), imported only when it runs, so ``vlab --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys

from vlab import __version__
from vlab.cli.exits import EXIT_BROKEN_PIPE, EXIT_FAILED, EXIT_USAGE


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line and exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        print(f"{self.prog}: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command, with examples; usage errors are one line and exit status 2."""
    parser = _Parser(
        prog="vlab",
        description="Differentiable experiments on deep generative models, in JAX. Each experiment is a YAML "
        "config; running it writes a folder with the resolved config, metrics.json, a metrics history "
        "and figures.",
        epilog="examples:\n"
        "  vlab run kl_fit\n"
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
                       "$VLAB_RUNS or runs/<experiment>/<timestamp>-<id>/")
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
    p_rep.add_argument("--configs", metavar="DIR", help="a folder of configs (default: the built-in configs)")
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
        from vlab.cli.run import cmd_run

        return cmd_run(args)
    if args.command == "list":
        from vlab.cli.listing import cmd_list

        return cmd_list()
    if args.command == "compare":
        from vlab.cli.compare import cmd_compare

        return cmd_compare(args)
    if args.command == "bench":
        from vlab.cli.bench import cmd_bench

        return cmd_bench(args)
    from vlab.cli.reproduce import cmd_reproduce

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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
