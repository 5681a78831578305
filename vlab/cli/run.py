"""``vlab run``: one config, a sweep of configs, or the continuation of an interrupted run."""

from __future__ import annotations

import argparse
import time

from vlab.cli.exits import EXIT_FAILED, EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """``vlab run``: one config, a sweep (``--sweep`` or a ``sweep:`` section), or ``--resume`` of a run or a
    sweep folder."""
    t0 = time.perf_counter()
    from vlab.cli import sweep
    from vlab.errors import ConfigError
    from vlab.harness import grids
    from vlab.harness.launch import run_experiment
    from vlab.harness.loading import config_path

    import_s = time.perf_counter() - t0

    if args.resume:
        if args.config or args.overrides:
            raise ConfigError("--resume continues a run with its own config: give no CONFIG or KEY=VALUE with it")
        if args.out:
            raise ConfigError("--resume writes into the run folder it continues: give no --out with it")
        if args.quick or args.sweep or args.separate or args.tensorboard:
            raise ConfigError("--resume continues a run with its own config: give no --quick, --sweep, --separate "
                              "or --tensorboard with it")
        if sweep.is_sweep_folder(args.resume):
            sweep.resume_sweep(args.resume, quiet=args.quiet)
            return EXIT_OK
        path = run_experiment(None, [], resume=args.resume, quiet=args.quiet, import_s=import_s)
    else:
        if not args.config:
            raise ConfigError("missing CONFIG: expected a YAML file or a built-in config's name, e.g. vlab run kl_fit")
        overrides = list(args.overrides)
        if args.tensorboard:
            overrides.append("logging.tensorboard=true")
        if "=" in args.config and not args.config.endswith((".yaml", ".yml")):
            raise ConfigError(f"first argument '{args.config}' looks like an override: expected a YAML config file "
                              "before any KEY=VALUE")
        from vlab.harness.config import read_yaml

        grid = {**grids.from_config(read_yaml(config_path(args.config))), **grids.parse_cli(args.sweep)}
        if args.separate and not grid:
            raise ConfigError("--separate applies to a sweep: give --sweep KEY=V1,V2,... or a sweep: section")
        if grid:
            sweep.run_sweep(args.config, overrides, grid, out=args.out, quiet=args.quiet, vmap=not args.separate,
                            quick=args.quick)
            return EXIT_OK
        path = run_experiment(args.config, overrides, out=args.out, quiet=args.quiet, quick=args.quick,
                              import_s=import_s)
    return EXIT_OK if path is not None else EXIT_FAILED
