"""The README and docs/ hold together: every relative link reaches a file, the README stays short, its experiment
table names every experiment module, and it states the test command the continuous integration runs."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest
from helpers import ROOT

README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]

FENCE = re.compile(r"^```.*?^```", flags=re.S | re.M)
CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", flags=re.M)


def links(page: Path) -> list[str]:
    """The link targets of a Markdown page, code spans and fenced blocks left out."""
    text = CODE.sub("", FENCE.sub("", page.read_text()))
    return LINK.findall(text) + REFERENCE.findall(text)


def is_relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.I) and not target.startswith("//")


def experiment_modules() -> set[str]:
    return {p.stem for p in (ROOT / "experiments").glob("*.py") if p.stem != "__init__"}


def experiment_table() -> list[list[str]]:
    """The cells of the README's experiment table (the one whose header starts with ``| name |``)."""
    lines = README.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"^\|\s*name\s*\|", line))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def test_pages_are_found():
    assert README.exists() and (ROOT / "docs" / "extending.md") in PAGES


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_a_file(page):
    bad = []
    for target in links(page):
        if not is_relative(target):
            continue
        if "#" in target:
            bad.append(f"{target} (an anchor: link to the file alone)")
            continue
        path = (page.parent / unquote(target)).resolve()
        if not path.exists():
            bad.append(f"{target} (no such file)")
    assert not bad, f"{page.relative_to(ROOT)}: " + "; ".join(bad)


def test_readme_is_short():
    n = len(README.read_text().splitlines())
    assert n < 150, f"README.md has {n} lines: move detail into docs/"


def test_readme_table_names_every_experiment_module_once():
    names = []
    for row in experiment_table():
        found = re.findall(r"`(\w+)`", row[0])
        assert len(found) == 1, f"the first cell of {row} should name one experiment"
        names.append(found[0])
    assert sorted(names) == sorted(set(names)), "an experiment has two rows"
    assert set(names) == experiment_modules()


def test_readme_table_rows_link_to_an_experiment_page():
    for row in experiment_table():
        (target,) = re.findall(r"\]\(([^)]+)\)", row[0])
        assert target.startswith("docs/experiments/") and target.endswith(".md"), row[0]
        assert all(row), f"a row with an empty cell: {row}"


def test_readme_states_the_test_command_the_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test" in ci
    assert re.search(r"^bash scripts/test\b", README.read_text(), flags=re.M)
