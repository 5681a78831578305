"""A run's life: SIGINT, SIGTERM and kill -9 each followed by --resume end with the uninterrupted metrics; the
folder lock; resuming without a checkpoint; damaged checkpoints; sweeps that resume; time across segments."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, config, metrics_of

from vlab.cli.main import main
from vlab.engine import progress

KL = config("kl_fit")
ARGS = [KL, "n_inits=8", "train.steps=400", "train.chunk_size=50", "estimator.kind=mc", "figures.dpi=40", "-q"]




def history_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in (path / "history.jsonl").read_text().splitlines()]


def status_of(path: Path) -> dict:
    return json.loads((path / "run.json").read_text())


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted run every interrupted one must end equal to."""
    out = tmp_path_factory.mktemp("ref") / "full"
    assert main(["run", *ARGS, "--out", str(out)]) == 0
    return out


def _signal_at_update(monkeypatch, n: int, signum: int) -> None:
    """Deliver ``signum`` to this process at the n-th progress update (inside the training loop)."""
    orig, calls = progress.Progress.update, {"n": 0}

    def update(self, done, metrics):
        calls["n"] += 1
        if calls["n"] == n:
            os.kill(os.getpid(), signum)
        orig(self, done, metrics)

    monkeypatch.setattr(progress.Progress, "update", update)


@pytest.mark.parametrize("signum,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_checkpoints_at_the_chunk_boundary_and_resume_ends_equal(signum, code, reference, tmp_path,
                                                                          monkeypatch, capsys):
    out = tmp_path / "cut"
    _signal_at_update(monkeypatch, 11, signum)  # inclusive: 8 chunks; exclusive interrupted after 3
    with pytest.raises(SystemExit) as e:
        main(["run", *ARGS, "--out", str(out)])
    assert e.value.code == code
    err = capsys.readouterr().err
    assert f"interrupted by {signal.Signals(signum).name}" in err and f"vlab run --resume {out}" in err
    st = status_of(out)
    assert st["status"] == "interrupted" and st["signal"] == signal.Signals(signum).name
    assert not (out / "metrics.json").exists()
    assert int(np.load(out / "checkpoints" / "exclusive.npz")["step"]) == 150  # the chunk that was running ended
    monkeypatch.undo()
    assert main(["run", "--resume", str(out), "-q"]) == 0
    assert metrics_of(out) == metrics_of(reference)
    assert history_of(out) == history_of(reference)
    m = json.loads((out / "metrics.json").read_text())
    assert m["timing"]["segments"] == 2 and m["timing"]["train"] > 0


def _start(out: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "vlab", "run", *ARGS, "train.steps=4000", *extra, "--out", str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(pred, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    t0 = time.time()
    while not pred():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError("timed out waiting for the run")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def long_reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "long"
    assert main(["run", *ARGS, "train.steps=4000", "--out", str(out)]) == 0
    return out


def _rows(out: Path, fit: str) -> int:
    f = out / "history.jsonl"
    return sum(f'"fit": "{fit}"' in line for line in f.read_text().splitlines()) if f.exists() else 0


def test_sigterm_to_a_real_process_then_resume(long_reference, tmp_path):
    out = tmp_path / "term"
    proc = _start(out)
    _wait_for(lambda: _rows(out, "inclusive") >= 50, proc)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    assert proc.returncode == 143, proc.stderr.read()
    assert status_of(out)["status"] == "interrupted"
    assert "Traceback" not in proc.stderr.read()
    assert main(["run", "--resume", str(out), "-q"]) == 0
    assert metrics_of(out) == metrics_of(long_reference)
    assert history_of(out) == history_of(long_reference)


def test_kill_9_loses_at_most_the_last_checkpoint_and_a_second_writer_is_refused(long_reference, tmp_path, capsys):
    out = tmp_path / "kill"
    proc = _start(out, "train.checkpoint_every=200")
    _wait_for(lambda: (out / "checkpoints" / "inclusive.npz").exists() and _rows(out, "inclusive") >= 30, proc)
    # the folder is locked while its writer lives: a second process may not resume it
    assert main(["run", "--resume", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is being written by process" in err[0]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert status_of(out)["status"] == "running"  # nobody could record the kill
    assert main(["run", "--resume", str(out), "-q"]) == 0  # the dead writer's lock went with it
    assert metrics_of(out) == metrics_of(long_reference)
    rows = history_of(out)
    assert rows == history_of(long_reference)  # rows after the checkpoint were dropped and written once again
    assert len({(r["fit"], r["step"], r.get("member")) for r in rows}) == len(rows)


def test_wall_time_checkpoints_between_step_checkpoints(tmp_path, monkeypatch):
    saved = []
    from vlab.harness.runs import Run

    orig = Run.save_checkpoint
    monkeypatch.setattr(Run, "save_checkpoint", lambda self, name, arrays: (saved.append(int(arrays["step"])),
                                                                             orig(self, name, arrays)))
    assert main(["run", *ARGS, "train.checkpoint_seconds=1e-9", "--out", str(tmp_path / "t")]) == 0
    assert saved.count(400) == 2 and len(saved) == 16  # every chunk of both fits, and each end
    saved.clear()
    assert main(["run", *ARGS, "train.checkpoint_seconds=0", "--out", str(tmp_path / "s")]) == 0
    assert saved == [400, 400]  # default checkpoint_every=0: only the ends


def test_resume_without_a_checkpoint_restarts_cleanly(reference, tmp_path, monkeypatch, capsys):
    out = tmp_path / "nock"
    _signal_at_update(monkeypatch, 11, signal.SIGINT)
    with pytest.raises(SystemExit):
        main(["run", *ARGS, "--out", str(out)])
    monkeypatch.undo()
    (out / "checkpoints" / "exclusive.npz").unlink()  # killed before its first checkpoint, or deleted
    capsys.readouterr()
    assert main(["run", "--resume", str(out)]) == 0
    err = capsys.readouterr().err
    # 15 logged steps x 8 members
    assert "[exclusive] no checkpoint to resume from: training from step 0 (120 history rows" in err
    assert metrics_of(out) == metrics_of(reference)
    assert history_of(out) == history_of(reference)  # never a second copy of the rows


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> Path:
    """A run interrupted during its second fit, with that fit's checkpoint at step 150."""
    out = tmp_path_factory.mktemp("interrupted") / "run"
    mp = pytest.MonkeyPatch()
    _signal_at_update(mp, 11, signal.SIGINT)
    try:
        with pytest.raises(SystemExit):
            main(["run", *ARGS, "--out", str(out)])
    finally:
        mp.undo()
    return out


@pytest.mark.parametrize("damage", ["truncate", "garbage", "pickle", "shape"])
def test_a_damaged_checkpoint_is_one_line_and_the_run_is_kept(damage, interrupted, tmp_path, capsys):
    out = tmp_path / "bad"
    shutil.copytree(interrupted, out)
    ck = out / "checkpoints" / "exclusive.npz"
    if damage == "truncate":
        ck.write_bytes(ck.read_bytes()[:200])
    elif damage == "garbage":
        ck.write_bytes(b"not a zip file at all")
    elif damage == "pickle":
        np.savez(ck.with_suffix(""), state_0=np.array([{"evil": 1}], dtype=object), step=np.asarray(150))
    else:
        arrays = dict(np.load(ck))
        arrays[next(k for k in arrays if k.startswith("params"))] = np.zeros((3, 3), np.float32)
        np.savez(ck.with_suffix(""), **arrays)
    capsys.readouterr()
    assert main(["run", "--resume", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0] and str(ck) in err[0]
    assert status_of(out)["status"] == "interrupted"  # still resumable once the file is removed
    if damage == "shape":
        ck.unlink()
        assert main(["run", "--resume", str(out), "-q"]) == 0


def test_a_config_edited_to_other_shapes_is_refused_naming_the_leaf(interrupted, tmp_path, capsys):
    out = tmp_path / "edited"
    shutil.copytree(interrupted, out)
    cfg = out / "config.yaml"
    cfg.write_text(cfg.read_text().replace("n_inits: 8", "n_inits: 4"))
    capsys.readouterr()
    assert main(["run", "--resume", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "params" in err[0] and "[8]" in err[0] and "[4]" in err[0], err


def test_an_interrupted_sweep_resumes_skipping_completed_points(tmp_path, monkeypatch, capsys):
    sweep_args = [KL, "n_inits=4", "train.steps=200", "train.chunk_size=50", "figures.dpi=40", "-q",
                  "--sweep", "target.weights=[[0.5,0.5],[0.25,0.75],[0.75,0.25]]", "--separate"]
    assert main(["run", *sweep_args, "--out", str(tmp_path / "full")]) == 0
    _signal_at_update(monkeypatch, 8 + 5, signal.SIGINT)  # point 1 done (8 chunks), point 2 in its 2nd fit
    with pytest.raises(SystemExit) as e:
        main(["run", *sweep_args, "--out", str(tmp_path / "cut")])
    assert e.value.code == 130
    assert f"vlab run --resume {tmp_path / 'cut'}" in capsys.readouterr().err
    cut = tmp_path / "cut"
    assert json.loads((cut / "sweep.json").read_text())["status"] == "interrupted"
    first = next(p for p in sorted(cut.iterdir()) if p.name.startswith("00-"))
    before = (first / "metrics.json").read_text()
    monkeypatch.undo()
    assert main(["run", "--resume", str(cut), "-q"]) == 0
    assert (first / "metrics.json").read_text() == before  # a completed point is read back, not run again
    assert "already complete" in capsys.readouterr().out
    full = tmp_path / "full"
    assert (cut / "sweep.csv").read_text() == (full / "sweep.csv").read_text()
    assert json.loads((cut / "sweep.json").read_text())["status"] == "complete"


def test_train_time_and_steps_per_s_cover_every_segment(tmp_path, monkeypatch):
    from vlab.experiments import vae as _  # noqa: F401 - VAE metrics report steps_per_s from fit's train time

    vae = config("vae")
    args = [vae, "train.steps=200", "train.chunk_size=20", "data.n_train=256", "data.n_test=64",
            "eval.iwae_points=0", "model.hidden=[16]", "n_seeds=1", "-q"]
    assert main(["run", *args, "--out", str(tmp_path / "full")]) == 0
    _signal_at_update(monkeypatch, 6, signal.SIGINT)
    with pytest.raises(SystemExit):
        main(["run", *args, "--out", str(tmp_path / "cut")])
    monkeypatch.undo()
    assert main(["run", "--resume", str(tmp_path / "cut"), "-q"]) == 0
    full, cut = (json.loads((tmp_path / k / "metrics.json").read_text()) for k in ("full", "cut"))
    # both segments count: the resumed run's rate is of the same order as the uninterrupted one (it was 10^5x)
    assert 0.2 < cut["steps_per_s"] / full["steps_per_s"] < 5
    assert cut["timing"]["train"] == pytest.approx(200 / cut["steps_per_s"], rel=0.05)


def test_the_python_api_applies_the_configs_precision(tmp_path):
    import jax

    import vlab

    cls, cfg = vlab.load_config(config("elastic_net"), [])
    assert cfg.precision == "float64"
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        with vlab.Run(tmp_path / "py", quiet=True) as run:
            m = cls().run(cfg, run)
        assert m["coordinate_descent"]["kkt_violation"] < 1e-10  # float32 gave 7.6e-6
        assert jax.config.jax_enable_x64 is False  # the caller's setting is restored
    finally:
        jax.config.update("jax_enable_x64", before)
