"""docs/extending.md runs as written: its module and YAML become a working experiment outside the package."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

import vlab
from vlab.cli.main import main

DOC = Path(__file__).resolve().parent.parent / "docs" / "extending.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.fixture
def lab(tmp_path, monkeypatch):
    pkg = tmp_path / "my_lab"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "renyi_fit.py").write_text(blocks("python")[0])
    (tmp_path / "renyi.yaml").write_text(blocks("yaml")[0])
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("my_lab")]:
        del sys.modules[name]


def test_walkthrough_experiment_runs_like_a_builtin(lab):
    out = lab / "run"
    assert main(["run", str(lab / "renyi.yaml"), "alpha=0.999", "-q", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    # alpha -> 1 is the exclusive KL, whose best optimum is mu = 2.9896, sigma = 1.0160 (tests/test_kl_fit.py)
    assert m["mu"] == pytest.approx(2.9896, abs=0.02)
    assert m["sigma"] == pytest.approx(1.0160, abs=0.02)
    assert (out / "renyi_fit.png").exists() and (out / "history.jsonl").exists()


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
    (lab / "my_lab" / "renyi_sweep.py").write_text(blocks("python")[1])
    cfg = lab / "sweep.yaml"
    cfg.write_text(blocks("yaml")[0].replace("my_lab.renyi_fit:RenyiFit", "my_lab.renyi_sweep:RenyiSweep"))
    out = lab / "sw"
    assert main(["run", str(cfg), "n_inits=4", "train.steps=600", "--sweep", "alpha=0.3,0.999", "--sweep",
                 "seed=0,1", "-q", "--out", str(out)]) == 0
    import csv

    rows = list(csv.DictReader((out / "sweep.csv").read_text().splitlines()))
    assert [p.name for p in out.iterdir() if p.is_dir()] == ["00-vmapped"] and len(rows) == 16
    # near alpha = 1 the best of each point's fits is the exclusive-KL optimum mu = 2.99
    for seed in ("0", "1"):
        mine = [r for r in rows if r["alpha"] == "0.999" and r["seed"] == seed]
        best = min(mine, key=lambda r: float(r["divergence"]))
        assert float(best["mu"]) == pytest.approx(2.99, abs=0.05)
