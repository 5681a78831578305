"""The ``vlab`` command line: run an experiment config, list what exists, compare runs, reproduce every figure.

Each command lives in a module of its own (:mod:`vlab.cli.run`, :mod:`vlab.cli.show`, :mod:`vlab.cli.listing`,
:mod:`vlab.cli.compare`, :mod:`vlab.cli.reproduce`, :mod:`vlab.cli.bench`), imported only when it runs, so
``vlab --help`` stays fast. ``vlab run CONFIG --help`` prints the run command's usage and then that config's keys
explained, as ``vlab show CONFIG`` does.
"""

from __future__ import annotations

import argparse
import os
import sys

from vlab import __version__
from vlab.cli.exits import EXIT_BROKEN_PIPE, EXIT_FAILED, EXIT_OK, EXIT_USAGE


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
        "  vlab show kl_fit n_inits=256       (every key: type, value, default, bounds, help)\n"
        "  vlab run configs/kl_fit.yaml --help\n"
        "  vlab compare runs/kl_fit/A runs/kl_fit/B\n"
        "  vlab compare runs/sweep/lr          (every run of a sweep)\n"
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
        "  vlab run --resume runs/kl_fit/20261126-120000-ab12cd\n"
        "  vlab run configs/kl_fit.yaml --help          (this usage, then every key of the config explained)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,  # -h with a CONFIG also explains the config's keys (see main)
    )
    p_run.add_argument("-h", "--help", action="store_true",
                       help="show this help and exit; after a CONFIG, its usage and then every key of the config "
                       "explained (as vlab show CONFIG)")
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
    p_run.add_argument("--tensorboard", action="store_true",
                       help="write TensorBoard event files in <run>/tensorboard, one stream per member "
                       "(the override logging.tensorboard=true)")
    p_run.add_argument("-q", "--quiet", action="store_true", help="no progress output")

    p_show = sub.add_parser(
        "show",
        help="explain a config: every key's type, value, default, bounds and help",
        description="Print the resolved config (after any KEY=VALUE overrides) key by key, grouped by section: "
        "its type, value, the schema's default, the bounds or choices it must keep to and its help text; a "
        "value that differs from its default is marked *. Nothing runs.",
        epilog="examples:\n"
        "  vlab show kl_fit\n"
        "  vlab show configs/kl_fit.yaml n_inits=256 estimator.kind=mc\n"
        "  vlab show configs/vae.yaml --quick\n"
        "  vlab show configs/vae.yaml lr=1e-2 --yaml     (the resolved YAML alone, as the run folder keeps it)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_show.add_argument("config", metavar="CONFIG", help="a YAML config file or a built-in config's name")
    p_show.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="override config keys, e.g. seed=3")
    p_show.add_argument("--yaml", action="store_true", help="print only the resolved config as YAML")
    p_show.add_argument("--quick", action="store_true", help="apply the config's 'quick:' overrides first")

    sub.add_parser("list", help="list experiments and configs",
                   description="List every experiment and every config under configs/ with a one-line description.")

    p_cmp = sub.add_parser(
        "compare",
        help="print runs' metrics side by side with their config differences",
        description="Print the config keys whose values differ across run folders, then their metrics side by "
        "side: one column per run, labelled A, B, C, ... (a legend names each folder), and for two runs the "
        "difference B - A of numbers. A sweep folder stands for each of its runs, and a vmapped sweep's run for "
        "each of its members. Too many runs for the width are shown transposed: one row per run, one column per "
        "differing key and headline metric.",
        epilog="examples:\n"
        "  vlab compare runs/kl_fit/A runs/kl_fit/B\n"
        "  vlab compare runs/kl_fit/A runs/kl_fit/B runs/kl_fit/C --all\n"
        "  vlab compare runs/sweep/lr\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p_cmp.add_argument("runs", nargs="+", metavar="RUN",
                       help="run folders (at least two), or sweep folders (their runs)")
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
    """Entry point of the ``vlab`` console script; returns the exit status. Its figures are not pyplot's, so they
    need no display and no backend choice."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command in ("run", "show"):  # KEY=VALUE overrides may come after options too
        overrides = [x for x in extra if "=" in x and not x.startswith("-")]
        extra = [x for x in extra if x not in overrides]
        args.overrides = [*args.overrides, *overrides]
        if args.command == "run" and args.config is None and overrides and not args.resume and not args.help:
            parser.error(f"missing CONFIG before the overrides {' '.join(overrides)}")
    if args.command == "run" and args.help:  # help wins over anything else given, as argparse's own -h does
        extra = []
        if not args.config:
            _subparser(parser, "run").print_help()
            raise SystemExit(EXIT_OK)
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
    if args.command == "run" and args.help:  # vlab run CONFIG --help: the usage, then the config explained
        from vlab.cli.show import describe_config

        text = describe_config(args.config, args.overrides, quick=args.quick)  # a bad config fails before any output
        print(_subparser(build_parser(), "run").format_usage().rstrip())
        print("  (vlab run --help lists every option; below, every key of this config: set any as KEY=VALUE)\n")
        print(text)
        return EXIT_OK
    if args.command == "show":
        from vlab.cli.show import cmd_show

        return cmd_show(args)
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


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """The parser of the subcommand ``name``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise KeyError(name)


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
