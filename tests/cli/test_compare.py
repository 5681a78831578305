"""``vlab compare`` over any number of runs: three run folders, a sweep folder, a vmapped sweep's members, and a dozen
runs shown transposed within 120 columns; bad folders are one line and exit status 2."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from helpers import config

from vlab.cli.main import main

KL = config("kl_fit")
FAST = ["n_inits=4", "train.steps=20", "train.chunk_size=20"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three quick kl_fit runs, A with the defaults, B with seed=1, C with seed=2 and lr=0.1."""
    root = tmp_path_factory.mktemp("compare")
    extra = {"a": [], "b": ["seed=1"], "c": ["seed=2", "train.optimizer.lr=0.1"]}
    for name, more in extra.items():
        assert main(["run", KL, *FAST, *more, "-q", "--out", str(root / name)]) == 0
    return root


def _legend(out: str) -> dict[str, str]:
    legend = {}
    for line in out.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0].isalpha() and parts[0].isupper() and "/" in parts[1]:
            legend[parts[0]] = parts[1]
    return legend


def test_three_runs_side_by_side(runs, capsys):
    capsys.readouterr()
    folders = [str(runs / n) for n in "abc"]
    assert main(["compare", *folders]) == 0
    out = capsys.readouterr().out
    assert _legend(out) == dict(zip("ABC", folders, strict=True))
    lines = out.splitlines()
    seed = next(line for line in lines if line.split()[:1] == ["seed"])
    assert seed.split()[1:] == ["0", "1", "2"]
    lr = next(line for line in lines if line.split()[:1] == ["train.optimizer.lr"])
    assert lr.split()[1:] == ["0.3", "0.3", "0.1"]
    assert "B - A" not in out and "exclusive.kl" in out
    assert max(len(line) for line in lines) <= 120


def test_two_runs_keep_the_difference_column(runs, capsys):
    capsys.readouterr()
    assert main(["compare", str(runs / "a"), str(runs / "c")]) == 0
    out = capsys.readouterr().out
    assert "B - A" in out.splitlines()[2]
    m_a = json.loads((runs / "a" / "metrics.json").read_text())
    m_c = json.loads((runs / "c" / "metrics.json").read_text())
    kl = next(line for line in out.splitlines() if line.split()[:1] == ["exclusive.kl"])
    assert kl.split()[-1] == f"{m_c['exclusive']['kl'] - m_a['exclusive']['kl']:+.4g}"


def test_a_sweep_folder_stands_for_its_runs(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    assert main(["run", KL, *FAST, "--sweep", "train.optimizer.lr=0.1,0.3", "-q", "--out", str(sweep)]) == 0
    capsys.readouterr()
    assert main(["compare", str(sweep)]) == 0
    out = capsys.readouterr().out
    points = sorted(p for p in sweep.iterdir() if (p / "metrics.json").is_file())
    assert len(points) == 2
    assert _legend(out) == {"A": str(points[0]), "B": str(points[1])}
    lr = next(line for line in out.splitlines() if line.split()[:1] == ["train.optimizer.lr"])
    assert lr.split()[1:] == ["0.1", "0.3"]


def test_a_vmapped_sweep_shows_each_member(runs, tmp_path, capsys):
    """A vmapped sweep's one run folder: each member is a run of its own (config: the swept keys)."""
    sweep = tmp_path / "vmapped"
    run = sweep / "00-vmapped"
    shutil.copytree(runs / "a", run)
    (sweep / "sweep.json").write_text(json.dumps({"status": "complete", "grid": {"train.optimizer.lr": [0.1, 0.3]}}))
    members = [{"train.optimizer.lr": lr, "seed": 0, "seed_index": i, "kl": 0.5 + lr + i}
               for lr in (0.1, 0.3) for i in range(2)]
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.update(members=members, kl={"mean": 1.0, "std": 0.1, "min": 0.6, "max": 1.8}, summary="...")
    (run / "metrics.json").write_text(json.dumps(metrics))
    capsys.readouterr()
    assert main(["compare", str(sweep)]) == 0
    out = capsys.readouterr().out
    legend = _legend(out)
    assert list(legend) == ["A", "B", "C", "D"]
    assert all(v.startswith(f"{run} member {i} ") for i, v in enumerate(legend.values()))
    lines = out.splitlines()
    kl = next(line for line in lines if line.split()[:1] == ["kl"])
    assert kl.split()[1:] == ["0.6", "1.6", "0.8", "1.8"]
    assert next(line for line in lines if line.split()[:1] == ["seed_index"]).split()[1:] == ["0", "1", "0", "1"]
    assert not any(line.split()[:1] == ["kl.mean"] for line in lines)  # the summary gives way to the members


def test_a_dozen_runs_are_transposed_within_120_columns(runs, tmp_path, capsys):
    folders = []
    for i in range(12):
        d = tmp_path / f"run{i:02d}"
        d.mkdir()
        cfg = yaml.safe_load((runs / "a" / "config.yaml").read_text())
        cfg["seed"], cfg["train"]["optimizer"]["lr"] = i, 0.01 * (i + 1)
        (d / "config.yaml").write_text(yaml.safe_dump(cfg))
        metrics = json.loads((runs / "a" / "metrics.json").read_text())
        metrics["exclusive"]["kl"] += i
        (d / "metrics.json").write_text(json.dumps(metrics))
        folders.append(str(d))
    capsys.readouterr()
    assert main(["compare", *folders]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 120
    assert "12 runs, one row each" in out
    labels = [chr(ord("A") + i) for i in range(12)]
    assert list(_legend(out)) == labels and list(_legend(out).values()) == folders
    header = next(i for i, line in enumerate(lines) if "seed" in line.split() and "train.optimizer.lr" in line)
    cols = lines[header].split()
    rows = [line.split() for line in lines[header + 1:header + 13]]
    assert [r[0] for r in rows] == labels
    assert [r[1 + cols.index("seed")] for r in rows] == [str(i) for i in range(12)]
    metric_header = next(line for line in lines[header + 13:] if "exclusive.kl" in line.split())
    assert metric_header


def test_one_run_is_refused(runs, capsys):
    capsys.readouterr()
    assert main(["compare", str(runs / "a")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "at least two" in err[0]


def test_a_folder_that_is_not_a_run_is_named(runs, tmp_path, capsys):
    capsys.readouterr()
    missing = tmp_path / "nothing"
    assert main(["compare", str(runs / "a"), str(runs / "b"), str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"'{missing}' is not a complete run folder" in err[0]
