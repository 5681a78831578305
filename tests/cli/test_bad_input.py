"""Bad input of every kind: one line on stderr naming what is wrong, no traceback, exit status 2, and no run folder
left behind (for runs that never started). Also broken pipes, which must end quietly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import CONFIGS, ROOT, config

from vlab import data
from vlab.cli.main import main

KL = config("kl_fit")
VAE = config("vae")
GAN = config("gan_gaussian_1d")
SMALL_VAE = ["train.steps=20", "data.n_train=64", "data.n_test=32", "eval.iwae_points=0", "n_seeds=1"]


def _idx_folder(tmp: Path, kind: str) -> Path:
    """A data.root whose files are ``garbage``, ``truncated``, ``empty`` (no file), ``zero`` (no image) or
    ``badgzip``."""
    root = tmp / f"idx-{kind}"
    root.mkdir()
    for split in ("train", "test"):
        stem_i, stem_l = data.IDX_FILES[split]
        if kind == "garbage":
            (root / stem_i).write_bytes(b"this is not an IDX file at all")
            (root / stem_l).write_bytes(b"nor this")
        elif kind == "truncated":
            data.write_idx(root / stem_i, np.zeros((10, 28, 28), np.uint8))
            (root / stem_i).write_bytes((root / stem_i).read_bytes()[:500])
            data.write_idx(root / stem_l, np.zeros((10,), np.uint8))
        elif kind == "zero":
            data.write_idx(root / stem_i, np.zeros((0, 28, 28), np.uint8))
            data.write_idx(root / stem_l, np.zeros((0,), np.uint8))
        elif kind == "badgzip":
            (root / f"{stem_i}.gz").write_bytes(b"\x1f\x8b\x08 not really gzip")
    return root


def _yaml(tmp: Path, text: str, name: str = "c.yaml") -> str:
    p = tmp / name
    p.write_bytes(text.encode("latin-1") if name.endswith(".latin1.yaml") else text.encode())
    return str(p)


def _complete_run(tmp: Path) -> str:
    out = tmp / "done"
    assert main(["run", KL, "n_inits=4", "train.steps=50", "train.chunk_size=50", "-q", "--out", str(out)]) == 0
    return str(out)


# (case id, argv builder taking tmp_path, the words the one line must hold)
CASES = [
    # keys, types, bounds
    ("unknown key", lambda t: ["run", KL, "n_init=4"], ["unknown key 'n_init'", "n_inits"]),
    ("unknown nested key", lambda t: ["run", KL, "target.weight=[1]"], ["unknown key 'target.weight'", "weights"]),
    ("unknown section", lambda t: ["run", KL, "trian.steps=5"], ["unknown key 'trian'", "train"]),
    ("not an int", lambda t: ["run", KL, "n_inits=abc"], ["n_inits", "an integer"]),
    ("float for int", lambda t: ["run", KL, "n_inits=1.5"], ["n_inits"]),
    ("not a bool", lambda t: ["run", KL, "logging.tensorboard=maybe"],
     ["logging.tensorboard", "'maybe'", "expected true or false"]),
    ("tensorboard with resume", lambda t: ["run", "--resume", str(t), "--tensorboard"], ["--tensorboard"]),
    ("zero steps", lambda t: ["run", KL, "train.steps=0"], ["train.steps", "> 0"]),
    ("negative steps", lambda t: ["run", KL, "train.steps=-5"], ["train.steps", "> 0"]),
    ("zero chunk", lambda t: ["run", KL, "train.chunk_size=0"], ["train.chunk_size", "> 0"]),
    ("zero log_every", lambda t: ["run", KL, "train.log_every=0"], ["train.log_every", "> 0"]),
    ("negative checkpoint_every", lambda t: ["run", KL, "train.checkpoint_every=-1"], ["train.checkpoint_every"]),
    ("negative checkpoint_seconds", lambda t: ["run", KL, "train.checkpoint_seconds=-1"],
     ["train.checkpoint_seconds", ">= 0"]),
    ("negative lr", lambda t: ["run", KL, "train.optimizer.lr=-1"], ["train.optimizer.lr", "> 0"]),
    ("nan lr", lambda t: ["run", KL, "train.optimizer.lr=.nan"], ["train.optimizer.lr", "finite"]),
    ("unknown optimiser", lambda t: ["run", KL, "train.optimizer.name=adamx"], ["train.optimizer.name", "adam"]),
    ("unknown schedule", lambda t: ["run", KL, "train.optimizer.schedule=linear"],
     ["train.optimizer.schedule", "cosine"]),
    ("b1 out of range", lambda t: ["run", KL, "train.optimizer.b1=1.5"], ["train.optimizer.b1", "< 1"]),
    ("negative seed", lambda t: ["run", KL, "seed=-1"], ["seed", ">= 0"]),
    ("weights not summing to 1", lambda t: ["run", KL, "target.weights=[0.5,0.6]"], ["target.weights", "summing to 1"]),
    ("weights and means of other lengths", lambda t: ["run", KL, "target.weights=[0.2,0.3,0.5]"],
     ["target.means", "3 values"]),
    ("negative std", lambda t: ["run", KL, "target.stds=[1.0,-1.0]"], ["target.stds", "> 0"]),
    ("nan inside a list", lambda t: ["run", KL, "target.means=[.nan,3.0]"], ["target.means", "finite"]),
    ("inf inside a list", lambda t: ["run", KL, "target.means=[-3.0,.inf]"], ["target.means", "finite"]),
    ("-inf inside a list", lambda t: ["run", KL, "target.stds=[-.inf,1.0]"], ["target.stds", "finite"]),
    ("unknown estimator", lambda t: ["run", KL, "estimator.kind=exact"], ["estimator.kind", "quadrature"]),
    ("unknown precision", lambda t: ["run", KL, "precision=float16"], ["precision", "float64"]),
    ("unavailable device", lambda t: ["run", KL, "device=tpu"], ["device", "auto"]),
    ("empty init range", lambda t: ["run", KL, "init.mu=[3,1]"], ["init.mu", "low < high"]),
    ("figure format", lambda t: ["run", KL, "figures.format=[gif]"], ["figures.format", "png"]),
    ("figure dpi", lambda t: ["run", KL, "figures.dpi=0"], ["figures.dpi", "> 0"]),
    ("mesh larger than the machine", lambda t: ["run", KL, "parallel.sweep=64"], ["parallel", "devices"]),
    ("mesh of zero", lambda t: ["run", KL, "parallel.data=0"], ["parallel.data", ">= 1"]),
    ("mapping given a scalar", lambda t: ["run", KL, "target=3"], ["target"]),
    # overrides and experiments
    ("override without value", lambda t: ["run", KL, "n_inits"], ["malformed", "key=value"]),
    ("override without key", lambda t: ["run", KL, "=3"], ["malformed", "key=value"]),
    ("override with a space in its key", lambda t: ["run", KL, "n inits=3"], ["malformed"]),
    ("unknown experiment", lambda t: ["run", KL, "experiment=nope"], ["unknown experiment 'nope'", "kl_fit"]),
    ("experiment module missing", lambda t: ["run", KL, "experiment=no_such_module:Thing"],
     ["cannot import module 'no_such_module'"]),
    ("experiment not an Experiment", lambda t: ["run", KL, "experiment=vlab.harness.config:BaseConfig"],
     ["does not name a vlab.Experiment subclass"]),
    ("ambiguous short override", lambda t: ["run", GAN, "steps=10"], ["key 'steps' is ambiguous", "train.steps"]),
    ("short override of a bad value", lambda t: ["run", VAE, "lr=-1"], ["train.optimizer.lr", "> 0"]),
    ("override before the config", lambda t: ["run", "n_inits=3", KL], ["looks like an override"]),
    ("unrecognised option", lambda t: ["run", KL, "--bogus"], ["unrecognized arguments: --bogus"]),
    # config files
    ("config file missing", lambda t: ["run", "does/not/exist.yaml"], ["does not exist", "does/not/exist.yaml"]),
    ("config path a folder", lambda t: ["run", str(t)], ["is not a file"]),
    ("no config", lambda t: ["run"], ["missing CONFIG"]),
    ("yaml syntax error", lambda t: ["run", _yaml(t, "experiment: kl_fit\nn_inits: [1, 2\nseed: 3\n")],
     ["not valid YAML", "line 3"]),
    ("yaml bad indentation", lambda t: ["run", _yaml(t, "experiment: kl_fit\ntarget:\n  means: [1, 2]\n stds: 3\n")],
     ["not valid YAML", "line 4"]),
    ("yaml duplicate key", lambda t: ["run", _yaml(t, "experiment: kl_fit\nn_inits: 3\nn_inits: 4\n")],
     ["not valid YAML", "line 3", "duplicate key 'n_inits'"]),
    ("yaml nested duplicate key",
     lambda t: ["run", _yaml(t, "experiment: kl_fit\ntrain:\n  steps: 3\n  steps: 4\n")],
     ["line 4", "duplicate key 'steps'"]),
    ("yaml a list", lambda t: ["run", _yaml(t, "- 1\n- 2\n")], ["mapping"]),
    ("yaml without experiment", lambda t: ["run", _yaml(t, "n_inits: 3\n")], ["key 'experiment'"]),
    ("yaml not utf-8", lambda t: ["run", _yaml(t, "experiment: kl_fit\n# caf\xe9\n", "c.latin1.yaml")],
     ["c.latin1.yaml"]),
    ("quick not a mapping", lambda t: ["run", _yaml(t, "experiment: kl_fit\nquick: 3\n"), "--quick"], ["quick"]),
    ("sweep section not a mapping", lambda t: ["run", _yaml(t, "experiment: kl_fit\nsweep: 3\n")], ["sweep"]),
    # --out
    ("out under /proc", lambda t: ["run", KL, "--out", "/proc/vlab-x"], ["--out '/proc/vlab-x'", "cannot be created"]),
    ("out under a file", lambda t: ["run", KL, "--out", "/etc/hostname/sub"], ["--out '/etc/hostname/sub'"]),
    ("out not empty", lambda t: ["run", KL, "--out", str(CONFIGS)], ["already exists and is not empty"]),
    # data
    ("data root missing", lambda t: ["run", VAE, "data.source=idx", f"data.root={t / 'nowhere'}"],
     ["data.root", "does not exist"]),
    ("data root empty", lambda t: ["run", VAE, "data.source=idx", f"data.root={_idx_folder(t, 'empty')}"],
     ["data.root", "holds no train-images-idx3-ubyte"]),
    ("data root a file", lambda t: ["run", VAE, "data.source=idx", f"data.root={ROOT / 'README.md'}"],
     ["data.root", "is not a folder"]),
    ("data files garbage", lambda t: ["run", VAE, "data.source=idx", f"data.root={_idx_folder(t, 'garbage')}"],
     ["data.root", "not an IDX file"]),
    ("data files truncated", lambda t: ["run", VAE, "data.source=idx", f"data.root={_idx_folder(t, 'truncated')}"],
     ["data.root", "truncated"]),
    ("data files without images", lambda t: ["run", VAE, "data.source=idx", f"data.root={_idx_folder(t, 'zero')}"],
     ["data.root", "no image"]),
    ("data file bad gzip", lambda t: ["run", VAE, "data.source=idx", f"data.root={_idx_folder(t, 'badgzip')}"],
     ["data.root", "cannot be read"]),
    ("mnist config without its files", lambda t: ["run", config("vae_mnist_iwae"),
                                                  f"data.root={t / 'mnist'}"], ["data.root", "MNIST-format"]),
    ("unknown toy set", lambda t: ["run", VAE, "data.name=spiral"], ["data.name", "'spiral'", "pinwheel", "rings"]),
    ("unknown optax optimiser", lambda t: ["run", VAE, "train.optimizer.name=adamx"],
     ["train.optimizer.name", "'adamx'", "lion", "sgd"]),
    ("option the optimiser lacks", lambda t: ["run", VAE, "train.optimizer.momentum=0.9"],
     ["train.optimizer.momentum", "optax.adam takes no 'momentum'"]),
    ("config name that is not built in", lambda t: ["run", "kl_fitt"], ["kl_fitt", "built-in config", "kl_fit"]),
    ("vae latent of zero", lambda t: ["run", VAE, "model.z_dim=0"], ["model.z_dim"]),
    ("vae image side not square", lambda t: ["run", VAE, "data.dim=50"], ["data.dim", "square"]),
    ("vae no beta", lambda t: ["run", VAE, "objective.beta=[]"], ["objective.beta"]),
    ("out of memory", lambda t: ["run", VAE, *SMALL_VAE, "batch_size=1000000000", "-q"],
     ["out of memory", "batch_size=1000000000", "lower them"]),
    # sweeps
    ("sweep without values", lambda t: ["run", KL, "--sweep", "seed"], ["--sweep 'seed' is malformed"]),
    ("sweep with an empty list", lambda t: ["run", KL, "--sweep", "seed=[]"], ["at least one value"]),
    ("sweep of an unknown key", lambda t: ["run", KL, "--sweep", "n_init=1,2"], ["unknown key 'n_init'"]),
    ("sweep of a bad value", lambda t: ["run", KL, "--sweep", "train.steps=10,0"], ["train.steps", "> 0"]),
    ("sweep with an ambiguous key", lambda t: ["run", GAN, "--sweep", "steps=10,20"], ["ambiguous"]),
    ("separate without a sweep", lambda t: ["run", KL, "--separate"], ["--separate"]),
    # resume
    ("resume a missing folder", lambda t: ["run", "--resume", "/nonexistent/run"], ["not a run folder"]),
    ("resume with a config", lambda t: ["run", "--resume", str(t), KL], ["--resume"]),
    ("resume with --out", lambda t: ["run", "--resume", str(t), "--out", str(t / "o")], ["--out"]),
    ("resume with --quick", lambda t: ["run", "--resume", str(t), "--quick"], ["--quick"]),
    ("resume with a sweep", lambda t: ["run", "--resume", str(t), "--sweep", "seed=0,1"], ["--sweep"]),
    ("resume a complete run", lambda t: ["run", "--resume", _complete_run(t)], ["already complete"]),
    # other commands
    ("compare non-runs", lambda t: ["compare", str(t), str(t)], ["not a complete run folder"]),
    ("reproduce with no configs", lambda t: ["reproduce", "--configs", str(t)], ["holds no .yaml"]),
    ("reproduce into a full folder", lambda t: ["reproduce", "--out", str(CONFIGS)], ["already exists"]),
    ("reproduce jobs 0", lambda t: ["reproduce", "--jobs", "0"], ["--jobs", ">= 1"]),
    ("reproduce jobs not a number", lambda t: ["reproduce", "--jobs", "x"], ["--jobs", "invalid int"]),
    ("unknown command", lambda t: ["frobnicate"], ["invalid choice"]),
]


def test_the_suite_is_broad():
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("build,needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_exit_2(build, needles, tmp_path, capsys, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv("VLAB_RUNS", str(runs))
    argv = build(tmp_path)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not runs.exists() or not any(runs.rglob("config.yaml"))  # no run folder left behind
    if "--out" in argv and argv[0] == "run" and "--resume" not in argv:
        out = Path(argv[argv.index("--out") + 1])
        assert out == CONFIGS or not out.exists()


def test_a_folder_another_process_writes_is_refused(tmp_path, capsys):
    from vlab.harness.runs import Run

    out = tmp_path / "busy"
    with Run(out, quiet=True):
        (out / "config.yaml").write_text(Path(KL).read_text())
        assert main(["run", "--resume", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"run folder '{out}' is being written by process {os.getpid()}" in err[0]


@pytest.mark.parametrize("argv", [["list"], ["compare", "A", "B"]])
def test_a_closed_pipe_ends_quietly(argv, tmp_path):
    """``vlab list | head -1``: the reader has gone before vlab writes; vlab stops with 141 (128 + SIGPIPE) and
    says nothing."""
    if argv[0] == "compare":
        for name in ("A", "B"):
            assert main(["run", KL, "n_inits=4", "train.steps=50", "train.chunk_size=50", "-q", "--out",
                         str(tmp_path / name)]) == 0
        argv = ["compare", str(tmp_path / "A"), str(tmp_path / "B"), "--all"]
    proc = subprocess.Popen([sys.executable, "-m", "vlab", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # the reader is gone before anything is written
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141
    assert err == "", err


def test_a_closed_pipe_in_process(monkeypatch, capsys):
    class Closed:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", Closed())
    assert main(["list"]) == 141
