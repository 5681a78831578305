"""``vlab show``: a config explained, key by key: its type, resolved value, the schema's default, the bounds or
choices it must keep to and its help text, grouped by section; or with ``--yaml`` the resolved config alone."""

from __future__ import annotations

import argparse
import textwrap

from vlab.cli.exits import EXIT_OK

WIDTH = 120  # the terminal width the table is laid out for


def describe_config(config: str, overrides: list[str], *, quick: bool = False, width: int = WIDTH) -> str:
    """The description of a config (a YAML path or a built-in config's name) with its overrides applied: a heading
    with the experiment's name, description and seed question, then every key's row (see
    :mod:`vlab.harness.describe`). A bad config or override raises :class:`vlab.errors.ConfigError`."""
    from vlab.harness.describe import describe, format_rows, section_docs, title
    from vlab.harness.loading import config_path, load_config

    cls, cfg = load_config(config, list(overrides), quick=quick)
    where = f"config: {config_path(config)}" + (" with its quick: overrides" if quick else "")
    if overrides:
        where += f"; overrides: {' '.join(overrides)}"
    heading = "\n".join(textwrap.wrap(title(cls), width, subsequent_indent="  "))
    where = "\n".join(textwrap.wrap(where, width, subsequent_indent="  "))
    return f"{heading}\n{where}\n" + format_rows(describe(cls, cfg), width=width, docs=section_docs(cls, cfg))


def cmd_show(args: argparse.Namespace) -> int:
    """``vlab show CONFIG [KEY=VALUE ...]``: every key of the resolved config explained, or ``--yaml``: the resolved
    config as YAML (what the run folder's config.yaml would hold)."""
    if args.yaml:
        from vlab.harness.config import to_yaml
        from vlab.harness.loading import load_config

        _, cfg = load_config(args.config, list(args.overrides), quick=args.quick)
        print(to_yaml(cfg), end="")
        return EXIT_OK
    print(describe_config(args.config, list(args.overrides), quick=args.quick))
    return EXIT_OK
