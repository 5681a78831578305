"""The experiment contract, held for every config: its quick run completes with every closed-form check passing,
an interrupted run resumes to the uninterrupted result, a bad key is one line and exit status 2, and every
experiment that declares member keys runs a seed x learning-rate sweep as one vmapped program whose rows equal
the separate runs."""

from __future__ import annotations

import csv
import json
import os
import signal
from pathlib import Path

import pytest
from helpers import CONFIGS, config

from vlab.cli.main import main
from vlab.engine import callbacks
from vlab.harness.loading import load_config as load

NAMES = sorted(p.stem for p in CONFIGS.glob("*.yaml"))
TIMES = ("timing", "steps_per_s", "compile_s", "train_s")  # wall-clock measurements differ between any two runs


def _needs_missing_data(name: str) -> bool:
    _, cfg = load(config(name), [])
    data = getattr(cfg, "data", None)
    root = getattr(data, "root", None)
    return getattr(data, "source", "") == "idx" and not Path(root).expanduser().is_dir()


def _stable(m):
    """``m`` without its wall-clock measurements."""
    if isinstance(m, dict):
        return {k: _stable(v) for k, v in m.items() if k not in TIMES}
    if isinstance(m, list):
        return [_stable(v) for v in m]
    return m


def _metrics(path: Path) -> dict:
    return _stable(json.loads((path / "metrics.json").read_text()))


def _history(path: Path) -> list[dict]:
    f = path / "history.jsonl"
    return [json.loads(line) for line in f.read_text().splitlines()] if f.exists() else []


@pytest.mark.parametrize("name", NAMES)
def test_quick_run_passes_its_checks_and_an_interrupted_run_resumes_to_it(name, quick, tmp_path, monkeypatch,
                                                                          capsys):
    if _needs_missing_data(name):
        pytest.skip(f"{name}: its data files are not on this machine")
    path = config(name)
    full = quick(name)
    metrics = json.loads((full / "metrics.json").read_text())
    failed = [c["name"] for c in metrics.get("checks", []) if not c["ok"]]
    assert not failed, f"{name}: checks failed: {failed}"

    fired = []

    def sigterm_after_first_chunk(self, loop, rows):
        if not fired:
            fired.append(loop.done)
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(callbacks.ProgressBar, "on_chunk", sigterm_after_first_chunk)
    cut = tmp_path / "cut"
    try:
        code = main(["run", path, "--quick", "-q", "--out", str(cut)])
    except SystemExit as e:
        code = e.code
    monkeypatch.undo()
    if not fired:  # nothing trained with the engine: there is no chunk boundary to stop at
        assert code == 0 and _metrics(cut) == _metrics(full)
        return
    assert code == 143 and not (cut / "metrics.json").exists()
    assert json.loads((cut / "run.json").read_text())["status"] == "interrupted"
    assert main(["run", "--resume", str(cut), "-q"]) == 0
    assert _metrics(cut) == _metrics(full)
    assert _stable(_history(cut)) == _stable(_history(full))
    capsys.readouterr()


@pytest.mark.parametrize("name", NAMES)
def test_a_bad_key_is_one_line_and_status_2(name, tmp_path, capsys):
    code = main(["run", config(name), "no_such_key=1", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "no_such_key" in err, err
    assert not (tmp_path / "r").exists()


def _member_configs() -> list[str]:
    from vlab.harness.experiment import builtin_names, resolve

    return [n for n in builtin_names() if resolve(n).member_keys and n in NAMES]


WARM_UP = {"vae": ["objective.warmup_steps=20"]}  # gmvae's warm-up (1000 steps) outlasts its quick run
# A vmapped program of four members sums in another order than a program of one: float32 results differ in the last
# bit, and hundreds of steps of chaotic training (a GAN, the GM-VAE's mixture phases) amplify that into different
# mode counts. In float64 the rounding is 1e-16 and the rows agree to 1e-5: what is equal by construction (the keys,
# learning rates, warm-up clocks and data of each member) is tested there.
PRECISION = "precision=float64"


@pytest.mark.parametrize("name", _member_configs())
def test_a_seed_by_learning_rate_sweep_is_one_program_equal_to_its_separate_runs(name, tmp_path):
    """Every row of the vmapped sweep equals the same point run on its own (rtol 1e-5), with KL warm-up where the
    experiment has one: members get their separate runs' keys, learning rates and warm-up clocks by construction."""
    path = config(name)
    _, cfg = load(path, [], quick=True)
    lr = float(cfg.train.optimizer.lr)
    sweep = ["--sweep", "seed=0,1", "--sweep", f"train.optimizer.lr={lr:g},{2 * lr:g}"]
    args = [path, "--quick", "n_seeds=1", PRECISION, *WARM_UP.get(name, []), *sweep, "-q"]
    assert main(["run", *args, "--out", str(tmp_path / "vmapped")]) == 0
    assert [p.name for p in (tmp_path / "vmapped").iterdir() if p.is_dir()] == ["00-vmapped"]
    assert main(["run", *args, "--separate", "--out", str(tmp_path / "separate")]) == 0
    table = lambda p: list(csv.DictReader((p / "sweep.csv").read_text().splitlines()))  # noqa: E731
    vmapped, separate = table(tmp_path / "vmapped"), table(tmp_path / "separate")
    assert len(vmapped) == len(separate) == 4
    by_point = lambda rows: {(r["seed"], float(r["train.optimizer.lr"])): r for r in rows}  # noqa: E731
    v, s = by_point(vmapped), by_point(separate)
    assert v.keys() == s.keys()
    shared = [c for c in vmapped[0] if c in separate[0] and c not in TIMES
              and c not in ("seed", "train.optimizer.lr", "run", "status", "seed_index", "point")]
    assert shared, (list(vmapped[0]), list(separate[0]))
    for point, row in v.items():
        for col in shared:
            value = row[col]
            try:
                a, b = float(value), float(s[point][col])
            except ValueError:
                assert value == s[point][col], (point, col)
                continue
            assert a == pytest.approx(b, rel=1e-5, abs=1e-6), (name, point, col, a, b)
    rows = list(v.values())
    metric = [c for c in rows[0] if c not in ("seed", "train.optimizer.lr", "run", "status", "seed_index")][-1]
    assert len({r[metric] for r in rows}) > 1 or name == "gan_mixture_2d"  # members differ (mode counts can tie)
