"""The command line end to end: run folders, overrides, list, reproduce, resume, determinism and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import CONFIGS, config, metrics_of

from vlab.cli.main import main

KL = config("kl_fit")
FAST = ["n_inits=8", "train.steps=300", "train.chunk_size=100"]




def test_run_writes_a_complete_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", KL, *FAST, "-q", "--out", str(out)]) == 0
    for name in ("config.yaml", "metrics.json", "history.jsonl", "run.json", "fits.png", "landscape.png", "loss.png"):
        assert (out / name).is_file(), name
    status = json.loads((out / "run.json").read_text())
    assert status["status"] == "complete"
    assert status["environment"]["jax"]
    m = json.loads((out / "metrics.json").read_text())
    for key in ("mu", "sigma", "kl"):
        assert key in m["inclusive"] and key in m["exclusive"]
    assert m["exclusive"]["optima"] and all("count" in o for o in m["exclusive"]["optima"])
    assert set(m["timing"]) >= {"import", "compile", "train", "plots", "total"}
    rows = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert {r["fit"] for r in rows} == {"inclusive", "exclusive"}
    assert "wrote" in capsys.readouterr().out


def test_overrides_reach_the_resolved_config_and_the_result(tmp_path):
    out = tmp_path / "sym"
    assert main(["run", KL, *FAST, "target.weights=[0.5,0.5]", "train.steps=600", "-q", "--out", str(out)]) == 0
    cfg = (out / "config.yaml").read_text()
    assert "- 0.5" in cfg and "n_inits: 8" in cfg
    m = metrics_of(out)
    # symmetric target: the inclusive fit is N(0, 1 + 9) and the two exclusive optima mirror each other
    assert m["inclusive"]["mu"] == pytest.approx(0.0, abs=1e-3)
    assert m["inclusive"]["sigma"] == pytest.approx(10**0.5, abs=1e-3)


def test_default_run_folders_never_collide(tmp_path, monkeypatch):
    monkeypatch.setenv("VLAB_RUNS", str(tmp_path / "runs"))
    assert main(["run", KL, *FAST, "-q"]) == 0
    assert main(["run", KL, *FAST, "-q"]) == 0
    runs = sorted((tmp_path / "runs" / "kl_fit").iterdir())
    assert len(runs) == 2 and all((r / "metrics.json").exists() for r in runs)


def test_same_seed_gives_identical_metrics(tmp_path):
    for name in ("a", "b"):
        assert main(["run", KL, *FAST, "estimator.kind=mc", "-q", "--out", str(tmp_path / name)]) == 0
    assert metrics_of(tmp_path / "a") == metrics_of(tmp_path / "b")


def test_resume_ends_with_the_same_metrics(tmp_path, monkeypatch):
    args = [KL, "n_inits=8", "train.steps=400", "train.chunk_size=100", "train.checkpoint_every=100",
            "estimator.kind=mc", "-q"]
    assert main(["run", *args, "--out", str(tmp_path / "full")]) == 0

    from vlab.engine import progress

    orig, calls = progress.Progress.update, {"n": 0}

    def interrupt(self, done, metrics):
        calls["n"] += 1
        if calls["n"] == 6:  # inclusive fit done (4 chunks), exclusive fit interrupted after 2 chunks
            raise KeyboardInterrupt
        orig(self, done, metrics)

    monkeypatch.setattr(progress.Progress, "update", interrupt)
    with pytest.raises(SystemExit) as e:
        main(["run", *args, "--out", str(tmp_path / "cut")])
    assert e.value.code == 130
    assert json.loads((tmp_path / "cut" / "run.json").read_text())["status"] == "interrupted"
    assert not (tmp_path / "cut" / "metrics.json").exists()
    monkeypatch.setattr(progress.Progress, "update", orig)
    assert main(["run", "--resume", str(tmp_path / "cut"), "-q"]) == 0
    assert metrics_of(tmp_path / "cut") == metrics_of(tmp_path / "full")
    hist = lambda p: [json.loads(x) for x in (p / "history.jsonl").read_text().splitlines()]
    assert hist(tmp_path / "cut") == hist(tmp_path / "full")


def test_list_names_experiments_and_configs(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    experiments, configs = out.split("configs")
    assert "kl_fit" in experiments and "Inclusive vs exclusive" in experiments
    assert any(line.split()[:1] == ["kl_fit"] for line in configs.splitlines())  # configs by name: vlab run kl_fit


def test_reproduce_writes_an_index(tmp_path):
    cdir = tmp_path / "configs"
    cdir.mkdir()
    (cdir / "kl_fit.yaml").write_text(Path(KL).read_text())
    out = tmp_path / "repro"
    assert main(["reproduce", "--quick", "--configs", str(cdir), "--out", str(out), "-q"]) == 0
    html = (out / "index.html").read_text()
    md = (out / "index.md").read_text()
    assert "kl_fit/fits.png" in html and "inclusive.mu" in md
    assert (out / "kl_fit" / "metrics.json").exists()


def test_reproduce_jobs_run_configs_in_parallel_with_the_same_results(tmp_path, capsys):
    cdir = tmp_path / "configs"
    cdir.mkdir()
    for name in ("kl_fit", "ancestral"):
        (cdir / f"{name}.yaml").write_text((CONFIGS / f"{name}.yaml").read_text())
    (cdir / "broken.yaml").write_text("experiment: kl_fit\nn_inits: many\n")
    (cdir / "no_data.yaml").write_text((CONFIGS / "vae_mnist_iwae.yaml").read_text().replace(
        "/usr/share/datasets/mnist", str(tmp_path / "absent")))
    code = main(["reproduce", "--quick", "--configs", str(cdir), "--out", str(tmp_path / "par"), "--jobs", "3"])
    err = capsys.readouterr().err
    assert code == 1  # the broken config fails; the others still run
    assert "3 at a time" in err and "broken.yaml: failed" in err and "no_data.yaml: skipped" in err
    assert main(["reproduce", "--quick", "--configs", str(cdir), "--out", str(tmp_path / "seq"), "-q"]) == 1
    md = {k: (tmp_path / k / "index.md").read_text() for k in ("par", "seq")}
    for name in ("kl_fit", "ancestral"):
        par, seq = (json.loads((tmp_path / k / name / "metrics.json").read_text()) for k in ("par", "seq"))
        par.pop("timing"), seq.pop("timing")
        assert par == seq
        assert f"{name}/" in md["par"]
    assert not (tmp_path / "par" / "broken").exists() or not (tmp_path / "par" / "broken" / "metrics.json").exists()


def test_help_reads_like_a_tool(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for word in ("run", "list", "reproduce", "examples"):
        assert word in out
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "--resume" in capsys.readouterr().out


def test_console_script_runs_in_a_fresh_process(tmp_path):
    env = dict(os.environ, VLAB_RUNS=str(tmp_path / "runs"))
    r = subprocess.run([sys.executable, "-m", "vlab", "run", KL, *FAST, "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "kl_fit: inclusive.mu=" in r.stdout


# ------------------------------------------------------------------------------------------------ bad input

BAD = [
    (["run", KL, "n_init=4"], "unknown key 'n_init'", "n_inits"),
    (["run", KL, "target.weight=[1]"], "unknown key 'target.weight'", "weights"),
    (["run", KL, "n_inits=abc"], "n_inits", "int"),
    (["run", KL, "train.steps=0"], "train.steps", "> 0"),
    (["run", KL, "train.steps=-5"], "train.steps", "> 0"),
    (["run", KL, "n_inits=1.5"], "n_inits", ""),
    (["run", KL, "target.weights=[0.5,0.6]"], "target.weights", "summing to 1"),
    (["run", KL, "target.weights=[0.2,0.3,0.5]"], "target.means", "3 values"),
    (["run", KL, "target.stds=[1.0,-1.0]"], "target.stds", "> 0"),
    (["run", KL, "estimator.kind=exact"], "estimator.kind", "quadrature"),
    (["run", KL, "precision=float16"], "precision", "float64"),
    (["run", KL, "device=tpu"], "device", "auto"),
    (["run", KL, "init.mu=[3,1]"], "init.mu", "low < high"),
    (["run", KL, "n_inits"], "malformed", "key=value"),
    (["run", KL, "=3"], "malformed", "key=value"),
    (["run", KL, "experiment=nope"], "unknown experiment 'nope'", "kl_fit"),
    (["run", "does/not/exist.yaml"], "does not exist", "does/not/exist.yaml"),
    (["run"], "missing CONFIG", ""),
    (["run", "--resume", "/nonexistent/run"], "not a run folder", ""),
    (["frobnicate"], "invalid choice", ""),
    (["reproduce", "--jobs", "0"], "--jobs", ">= 1"),
]


@pytest.mark.parametrize("argv,needle,hint", BAD, ids=[" ".join(a[2:] or a[:1]) for a, _, _ in BAD])
def test_bad_input_is_one_line_and_exit_2(argv, needle, hint, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VLAB_RUNS", str(tmp_path / "runs"))
    with pytest.raises(SystemExit) if argv == ["frobnicate"] else _no_raise() as e:
        code = main(argv)
    code = e.value.code if argv == ["frobnicate"] else code
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert needle in lines[0] and hint in lines[0]
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # no run folder left behind


def test_bad_yaml_file_and_wrong_shapes(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiment: kl_fit\nn_inits: [1, 2\n")
    assert main(["run", str(bad)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    bad.write_text("- 1\n- 2\n")
    assert main(["run", str(bad)]) == 2
    assert "mapping" in capsys.readouterr().err
    bad.write_text("n_inits: 3\n")
    assert main(["run", str(bad)]) == 2
    assert "key 'experiment'" in capsys.readouterr().err
    bad.write_text("experiment: kl_fit\ntarget: 3\n")
    assert main(["run", str(bad)]) == 2
    assert "target" in capsys.readouterr().err


def test_out_folder_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    assert main(["run", KL, *FAST, "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "metrics.json").read_text() == "{}"


def test_resuming_a_complete_run_is_refused(tmp_path, capsys):
    out = tmp_path / "done"
    assert main(["run", KL, *FAST, "-q", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["run", "--resume", str(out)]) == 2
    assert "already complete" in capsys.readouterr().err


class _no_raise:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
