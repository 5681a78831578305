"""docs/extending.md runs as written: its module and YAML, in the user's own package named ``experiments``, become a
working experiment outside vlab, and vlab's built-in experiments (``vlab.experiments``) still resolve beside it."""

from __future__ import annotations

import csv
import inspect
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

import vlab
from vlab.cli.main import main

DOC = ROOT / "docs" / "extending.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


def forget_user_package() -> None:
    """Drop the user's ``experiments`` package from the import cache (each test writes its own copy)."""
    for name in [m for m in sys.modules if m == "experiments" or m.startswith("experiments.")]:
        del sys.modules[name]


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """A user's folder as the walkthrough describes it: ``experiments/renyi_fit.py`` and ``renyi.yaml``."""
    pkg = tmp_path / "experiments"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "renyi_fit.py").write_text(blocks("python")[0])
    (tmp_path / "renyi.yaml").write_text(blocks("yaml")[0])
    forget_user_package()
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    forget_user_package()


def test_walkthrough_names_the_users_package_experiments():
    assert "experiment: experiments.renyi_fit:RenyiFit" in blocks("yaml")[0]
    assert "from experiments.renyi_fit import RenyiFit" in blocks("python")[1]
    assert "my_lab" not in DOC.read_text()


def test_walkthrough_experiment_runs_like_a_builtin(lab):
    out = lab / "run"
    assert main(["run", str(lab / "renyi.yaml"), "alpha=0.999", "-q", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    # alpha -> 1 is the exclusive KL, whose best optimum is mu = 2.9896, sigma = 1.0160 (tests/test_kl_fit.py)
    assert m["mu"] == pytest.approx(2.9896, abs=0.02)
    assert m["sigma"] == pytest.approx(1.0160, abs=0.02)
    assert (out / "renyi_fit.png").exists() and (out / "history.jsonl").exists()


def test_users_experiments_package_and_builtins_resolve_side_by_side(lab):
    from vlab.harness.experiment import builtin_names, resolve

    user = resolve("experiments.renyi_fit:RenyiFit")
    assert Path(inspect.getfile(user)).parent == lab / "experiments"
    assert "renyi_fit" not in builtin_names()
    for name in builtin_names():
        assert resolve(name).__module__ == f"vlab.experiments.{name}"


def test_walkthrough_bad_input_is_validated(lab, capsys):
    assert main(["run", str(lab / "renyi.yaml"), "alpha=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "key 'alpha'" in err and "< 1" in err


def test_import_path_errors_name_the_problem(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("experiment: no_such_module:Thing\n")
    assert main(["run", str(cfg)]) == 2
    assert "cannot import module 'no_such_module'" in capsys.readouterr().err
    cfg.write_text("experiment: vlab.harness.config:BaseConfig\n")
    assert main(["run", str(cfg)]) == 2
    assert "does not name a vlab.Experiment subclass" in capsys.readouterr().err


def test_public_api_is_listed_and_documented():
    for name in vlab.__all__:
        obj = getattr(vlab, name)
        if name != "__version__":
            assert (getattr(obj, "__doc__", None) or "").strip(), f"vlab.{name} has no docstring"
            assert f"``{name}``" in vlab.__doc__, f"vlab.{name} is not listed in the module docstring"
    with pytest.raises(AttributeError):
        vlab.not_a_name  # noqa: B018


def test_walkthrough_sweep_is_one_vmapped_program(lab):
    (lab / "experiments" / "renyi_sweep.py").write_text(blocks("python")[1])
    cfg = lab / "sweep.yaml"
    cfg.write_text(blocks("yaml")[0].replace("experiments.renyi_fit:RenyiFit", "experiments.renyi_sweep:RenyiSweep"))
    out = lab / "sw"
    assert main(["run", str(cfg), "n_inits=4", "train.steps=600", "--sweep", "alpha=0.3,0.999", "--sweep",
                 "seed=0,1", "-q", "--out", str(out)]) == 0

    rows = list(csv.DictReader((out / "sweep.csv").read_text().splitlines()))
    assert [p.name for p in out.iterdir() if p.is_dir()] == ["00-vmapped"] and len(rows) == 16
    # near alpha = 1 the best of each point's fits is the exclusive-KL optimum mu = 2.99
    for seed in ("0", "1"):
        mine = [r for r in rows if r["alpha"] == "0.999" and r["seed"] == seed]
        best = min(mine, key=lambda r: float(r["divergence"]))
        assert float(best["mu"]) == pytest.approx(2.99, abs=0.05)


def vlab_command() -> list[str]:
    """The installed ``vlab`` script beside this interpreter, else ``python -m vlab``."""
    script = Path(sys.executable).with_name("vlab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "vlab"]


@pytest.mark.slow
def test_from_the_users_folder_with_pythonpath_the_doc_and_the_builtins_work(lab):
    """The doc's command line in the user's folder (PYTHONPATH=. holding ``experiments/``), then ``vlab list`` and a
    built-in config of the repository from the same folder with the same PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": ".", "VLAB_RUNS": str(lab / "runs")}

    def vlab_cli(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([*vlab_command(), *args], cwd=lab, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, f"vlab {' '.join(args)}: exit {done.returncode}\n{done.stderr[-3000:]}"
        return done

    first = blocks("bash")[0].splitlines()[0]
    words = shlex.split(first)
    assert words[:2] == ["PYTHONPATH=.", "vlab"], first
    vlab_cli(*words[2:])
    (metrics,) = (lab / "runs").glob("*/*/metrics.json")
    m = json.loads(metrics.read_text())
    assert {"mu", "sigma", "divergence"} <= set(m)
    assert (metrics.parent / "renyi_fit.png").exists()

    from vlab.harness.experiment import builtin_names

    listed = vlab_cli("list").stdout
    for name in builtin_names():
        assert f"  {name} " in listed, f"vlab list lacks {name}"

    out = lab / "kl"
    vlab_cli("run", str(ROOT / "configs" / "kl_fit.yaml"), "--quick", "--out", str(out))
    m = json.loads((out / "metrics.json").read_text())
    assert m["exclusive"]["mu"] == pytest.approx(2.9896, abs=0.05)
