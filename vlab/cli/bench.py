"""``vlab bench``: the benchmark suite of a source checkout, run beside its peers."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from vlab.errors import ConfigError


def cmd_bench(args: argparse.Namespace) -> int:
    """``vlab bench ARGS``: benchmarks/run.py of the checkout in the working folder, with ``ARGS``."""
    script = Path("benchmarks") / "run.py"
    if not script.is_file():
        raise ConfigError(f"benchmark suite not found at {script.resolve()}: expected to run from a source checkout "
                          "of vlab (the benchmarks are not installed with the package)")
    return subprocess.call([sys.executable, str(script), *args.bench_args])
