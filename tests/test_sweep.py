"""Sweeps: grids from the config and the command line, validation before anything runs, the table and figure."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from vlab import sweep
from vlab.cli import main
from vlab.errors import ConfigError

KL = Path(__file__).resolve().parent.parent / "configs" / "kl_fit.yaml"
FAST = ["n_inits=4", "train.steps=200", "train.chunk_size=100"]


def test_value_specs_expand():
    assert sweep.expand_values("a", [1, 2]) == [1, 2]
    assert sweep.expand_values("a", 3) == [3]
    assert sweep.expand_values("a", {"start": 0, "stop": 1, "num": 3}) == [0.0, 0.5, 1.0]
    assert sweep.expand_values("a", {"start": 1e-3, "stop": 1e-1, "num": 3, "log": True}) == pytest.approx(
        [1e-3, 1e-2, 1e-1])
    assert sweep.parse_cli(["lr=1e-3,1e-2", "w=[[0.5,0.5],[0.2,0.8]]"]) == {"lr": [1e-3, 1e-2],
                                                                          "w": [[0.5, 0.5], [0.2, 0.8]]}
    assert len(sweep.points({"a": [1, 2, 3], "b": ["x", "y"]})) == 6
    for bad in (["lr"], ["=1,2"], ["lr="]):
        with pytest.raises(ConfigError, match="malformed"):
            sweep.parse_cli(bad)
    with pytest.raises(ConfigError, match="log range"):
        sweep.expand_values("a", {"start": 0, "stop": 1, "num": 3, "log": True})


def test_sweep_from_the_command_line_writes_a_table_and_figure(tmp_path):
    out = tmp_path / "sw"
    assert main(["run", str(KL), *FAST, "--sweep", "seed=0,1", "--sweep", "target.weights=[[0.5,0.5],[0.25,0.75]]",
                 "-q", "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "sweep.csv").read_text().splitlines()))
    assert len(rows) == 4 and {"seed", "target.weights", "inclusive.mu"} <= set(rows[0])
    # the inclusive optimum is the mixture mean: 0 for equal weights, 1.5 for (1/4, 3/4)
    for r in rows:
        expected = 0.0 if r["target.weights"] == "[0.5, 0.5]" else 1.5
        assert float(r["inclusive.mu"]) == pytest.approx(expected, abs=1e-3)
    assert (out / "sweep.png").exists()
    assert json.loads((out / "sweep.json").read_text())["status"] == "complete"
    assert all((out / r["point"] / "metrics.json").exists() for r in rows)


def test_sweep_section_in_a_config(tmp_path):
    cfg = tmp_path / "s.yaml"
    cfg.write_text(KL.read_text() + "\nsweep:\n  train:\n    optimizer:\n      lr: {start: 0.1, stop: 0.3, num: 2}\n")
    out = tmp_path / "sw"
    assert main(["run", str(cfg), *FAST, "-q", "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "sweep.csv").read_text().splitlines()))
    assert [float(r["train.optimizer.lr"]) for r in rows] == pytest.approx([0.1, 0.3])


def test_every_point_is_validated_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "sw"
    assert main(["run", str(KL), *FAST, "--sweep", "train.steps=10,-1", "--out", str(out)]) == 2
    assert "train.steps" in capsys.readouterr().err
    assert not out.exists()
    assert main(["run", str(KL), "--sweep", "no_such_key=1,2", "--out", str(out)]) == 2
    assert "unknown key 'no_such_key'" in capsys.readouterr().err
