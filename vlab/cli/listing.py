"""``vlab list``: every built-in experiment and every config, one line each."""

from __future__ import annotations

from vlab.cli.exits import EXIT_OK
from vlab.harness.experiment import builtin_names, resolve
from vlab.harness.loading import builtin_configs, config_description


def cmd_list() -> int:
    """``vlab list``: each built-in experiment with its description and seed question, then each built-in config."""
    print("experiments:")
    for name in builtin_names():
        cls = resolve(name)
        source = f"  [{cls.source}]" if cls.source else ""
        print(f"  {name:<22} {cls.description}{source}")
    configs = builtin_configs()
    print("\nconfigs (run one by name: vlab run NAME):")
    for name, path in configs.items():
        print(f"  {name:<28} {config_description(path)}")
    return EXIT_OK
