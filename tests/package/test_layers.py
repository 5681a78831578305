"""The package's layering: import-linter's contracts (pyproject.toml) hold, and no module of vlab imports itself
back through any chain of imports."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest
from helpers import ROOT


def import_cycles(graph: grimp.ImportGraph, package: str) -> list[list[str]]:
    """Every elementary cycle's witness in the module import graph of ``package``: one cycle per strongly connected
    component of more than one module (Tarjan's algorithm), as the modules of that component."""
    modules = sorted(m for m in graph.modules if m == package or m.startswith(f"{package}."))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = [0]

    def visit(m: str) -> None:
        index[m] = low[m] = counter[0]
        counter[0] += 1
        stack.append(m)
        on_stack.add(m)
        for n in sorted(graph.find_modules_directly_imported_by(m)):
            if not n.startswith(package):
                continue
            if n not in index:
                visit(n)
                low[m] = min(low[m], low[n])
            elif n in on_stack:
                low[m] = min(low[m], index[n])
        if low[m] == index[m]:
            component = []
            while True:
                n = stack.pop()
                on_stack.discard(n)
                component.append(n)
                if n == m:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for m in modules:
        if m not in index:
            visit(m)
    return out


def test_no_module_of_vlab_imports_itself_back():
    graph = grimp.build_graph("vlab")
    assert import_cycles(graph, "vlab") == []


def test_the_cycle_finder_finds_a_cycle(tmp_path, monkeypatch):
    pkg = tmp_path / "cyc"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cyc import b\n")
    (pkg / "b.py").write_text("import cyc.c\n")
    (pkg / "c.py").write_text("from cyc.a import x\n")
    (pkg / "d.py").write_text("from cyc import a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles(grimp.build_graph("cyc"), "cyc") == [["cyc.a", "cyc.b", "cyc.c"]]


@pytest.mark.skipif(shutil.which("lint-imports", path=str(Path(sys.executable).parent)) is None,
                    reason="import-linter is not installed")
def test_the_import_contracts_hold():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    out = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]


def test_the_top_level_stays_small_and_no_module_is_long():
    """The folders carry the architecture: at most 12 modules at vlab's top level, none of vlab's or the
    experiments' modules over 400 lines."""
    top = sorted(p.name for p in (ROOT / "vlab").glob("*.py"))
    assert len(top) <= 12, top
    modules = [*(ROOT / "vlab").rglob("*.py"), *(ROOT / "experiments").glob("*.py")]
    long = [f"{p.relative_to(ROOT)} ({n} lines)" for p in modules if (n := len(p.read_text().splitlines())) > 400]
    assert not long, long
