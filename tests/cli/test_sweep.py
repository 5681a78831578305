"""Sweeps: grids from the config and the command line, validation before anything runs, the table and figure."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from helpers import CONFIGS, config

from vlab.cli import sweep
from vlab.cli.main import main
from vlab.errors import ConfigError
from vlab.harness import grids

KL = CONFIGS / "kl_fit.yaml"
FAST = ["n_inits=4", "train.steps=200", "train.chunk_size=100"]


def test_value_specs_expand():
    assert grids.expand_values("a", [1, 2]) == [1, 2]
    assert grids.expand_values("a", 3) == [3]
    assert grids.expand_values("a", {"start": 0, "stop": 1, "num": 3}) == [0.0, 0.5, 1.0]
    assert grids.expand_values("a", {"start": 1e-3, "stop": 1e-1, "num": 3, "log": True}) == pytest.approx(
        [1e-3, 1e-2, 1e-1])
    assert grids.parse_cli(["lr=1e-3,1e-2", "w=[[0.5,0.5],[0.2,0.8]]"]) == {"lr": [1e-3, 1e-2],
                                                                          "w": [[0.5, 0.5], [0.2, 0.8]]}
    assert len(grids.points({"a": [1, 2, 3], "b": ["x", "y"]})) == 6
    for bad in (["lr"], ["=1,2"], ["lr="]):
        with pytest.raises(ConfigError, match="malformed"):
            grids.parse_cli(bad)
    with pytest.raises(ConfigError, match="log range"):
        grids.expand_values("a", {"start": 0, "stop": 1, "num": 3, "log": True})


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


VAE = CONFIGS / "vae.yaml"
VAE_FAST = ["train.steps=60", "train.chunk_size=60", "data.n_train=512", "data.n_test=128", "eval.iwae_points=0",
            "model.hidden=[32]", "n_seeds=2"]


def test_shape_equal_keys_run_as_one_vmapped_program_equal_to_separate_runs(tmp_path):
    """lr and beta are member keys of the VAE: the 2 x 2 grid times 2 seeds is one run folder (one compiled
    program), and each row equals the separately compiled run of its point."""
    out = tmp_path / "sw"
    assert main(["run", str(VAE), *VAE_FAST, "--sweep", "train.optimizer.lr=1e-3,4e-3", "--sweep",
                 "objective.beta=0.5,1", "-q", "--out", str(out)]) == 0
    info = json.loads((out / "sweep.json").read_text())
    assert info["keys"] == {"vmapped": ["train.optimizer.lr", "objective.beta"], "separate": []}
    assert [p.name for p in out.iterdir() if p.is_dir()] == ["00-vmapped"]
    rows = list(csv.DictReader((out / "sweep.csv").read_text().splitlines()))
    assert len(rows) == 8 and {r["seed_index"] for r in rows} == {"0", "1"}
    assert len({r["test.elbo"] for r in rows}) == 8
    one = tmp_path / "one"
    assert main(["run", str(VAE), *VAE_FAST, "train.optimizer.lr=4e-3", "objective.beta=0.5", "-q", "--out",
                 str(one)]) == 0
    separate = json.loads((one / "metrics.json").read_text())["test"]["elbo"]["values"]
    vmapped = [float(r["test.elbo"]) for r in rows if r["train.optimizer.lr"] == "0.004" and
               r["objective.beta"] == "0.5"]
    np.testing.assert_allclose(vmapped, separate, rtol=1e-4)


def test_shape_changing_keys_compile_separately_around_the_vmapped_ones(tmp_path):
    out = tmp_path / "sw"
    assert main(["run", str(VAE), *VAE_FAST, "n_seeds=1", "--sweep", "model.z_dim=2,3", "--sweep", "seed=0,1",
                 "-q", "--out", str(out)]) == 0
    info = json.loads((out / "sweep.json").read_text())
    assert info["keys"] == {"vmapped": ["seed"], "separate": ["model.z_dim"]}
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["00-z_dim=2", "01-z_dim=3"]
    rows = list(csv.DictReader((out / "sweep.csv").read_text().splitlines()))
    assert [(r["model.z_dim"], r["seed"]) for r in rows] == [("2", "0"), ("2", "1"), ("3", "0"), ("3", "1")]
    assert rows[0]["test.elbo"] != rows[1]["test.elbo"]
    assert (out / "sweep.png").exists()


def test_separate_runs_every_point_as_its_own_program(tmp_path):
    out = tmp_path / "sw"
    assert main(["run", str(VAE), *VAE_FAST, "n_seeds=1", "--sweep", "seed=0,1", "--separate", "-q", "--out",
                 str(out)]) == 0
    assert json.loads((out / "sweep.json").read_text())["keys"] == {"vmapped": [], "separate": ["seed"]}
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["00-seed=0", "01-seed=1"]


def test_a_scalar_for_a_list_valued_key_is_a_one_element_list():
    from vlab.harness.loading import load_config as load

    _, cfg = load(str(VAE), ["objective.beta=0.5"])
    assert cfg.objective.beta == [0.5]


def test_a_vmapped_run_resumes_with_its_members(tmp_path):
    from vlab.harness.launch import run_experiment

    pts = [{"train.optimizer.lr": 1e-3}, {"train.optimizer.lr": 4e-3}]
    path = run_experiment(str(VAE), VAE_FAST, out=str(tmp_path / "r"), quiet=True, members=pts)
    first = json.loads((path / "metrics.json").read_text())["members"]
    info = json.loads((path / "run.json").read_text())
    assert info["members"] == pts
    info["status"] = "interrupted"
    (path / "run.json").write_text(json.dumps(info))
    (path / "metrics.json").unlink()
    assert main(["run", "--resume", str(path), "-q"]) == 0
    again = json.loads((path / "metrics.json").read_text())["members"]
    assert again == first and len(again) == 4


def test_a_short_sweep_key_is_the_one_schema_key_it_ends(tmp_path, capsys):
    from vlab.experiments.gan_gaussian_1d import Config as GanConfig
    from vlab.experiments.vae import Config as VaeConfig

    assert grids.resolve_keys({"lr": [1]}, VaeConfig) == {"train.optimizer.lr": [1]}
    assert grids.resolve_keys({"seed": [1], "model": [2]}, VaeConfig) == {"seed": [1], "model": [2]}
    with pytest.raises(ConfigError, match="ambiguous.*optimal_d.train.steps"):
        grids.resolve_keys({"steps": [1]}, GanConfig)
    cfg = CONFIGS / "gan_gaussian_1d.yaml"
    assert main(["run", str(cfg), "--sweep", "steps=10,20", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ambiguous" in err[0] and not (tmp_path / "x").exists()


@pytest.mark.parametrize("argv", [["--separate"], ["--resume", "RUN", "--sweep", "seed=0,1"]])
def test_sweep_options_out_of_place_are_one_line(argv, tmp_path, capsys):
    args = ["run", *argv] if argv[0] == "--resume" else ["run", str(VAE), *argv]
    args = [str(tmp_path) if a == "RUN" else a for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("--separate" in err[0] or "--sweep" in err[0])


def test_a_vmapped_sweep_reports_every_member_never_point_0_alone(tmp_path, capsys, monkeypatch):
    drawn = {}
    monkeypatch.setattr(sweep, "draw", lambda path, grid, rows, keys, title="": drawn.update(keys=keys))
    args = [str(VAE), "train.steps=60", "train.chunk_size=60", "data.n_train=256", "data.n_test=64",
            "eval.iwae_points=0", "model.hidden=[16]", "n_seeds=1", "--sweep", "lr=1e-4,1e-2", "--sweep", "seed=0,1",
            "-q", "--out", str(tmp_path / "sw")]
    assert main(["run", *args]) == 0
    out = capsys.readouterr().out
    m = json.loads((tmp_path / "sw" / "00-vmapped" / "metrics.json").read_text())
    elbos = [r["test.elbo"] for r in m["members"]]
    top = m["test"]["elbo"]
    assert top["mean"] == pytest.approx(np.mean(elbos)) and top["min"] == min(elbos) and top["max"] == max(elbos)
    worst = m["members"][int(np.argmin(elbos))]
    assert top["min_at"] == {"train.optimizer.lr": worst["train.optimizer.lr"], "seed": worst["seed"]}
    assert "summarise all 4 members" in m["summary"] and "first member's (lr=0.0001, seed=0)" in m["summary"]
    assert "sweep of 4 points, 4 members" in out
    for r in m["members"]:  # one line per member, each with its own ELBO
        assert f"lr={r['train.optimizer.lr']:g}, seed={r['seed']}: test.elbo={r['test.elbo']:.6g}" in out
    # the figure plots measured metrics: not objective.beta (a config value every row carries), not empty IWAE
    assert "test.elbo" in drawn["keys"] and "objective.beta" not in drawn["keys"] and "test.iwae" not in drawn["keys"]


def test_the_progress_line_of_vmapped_members_shows_the_loss_spread():
    from vlab.engine.callbacks import progress_metrics

    row = {"step": 9, "loss": np.array([0.1, 0.9, 0.4]), "mu": np.array([1.0, 1.1, 0.996])}
    shown = progress_metrics(row, n_members=3)
    assert shown["loss"] == "0.1..0.9" and shown["mean mu"] == pytest.approx(1.032)
    assert progress_metrics({"step": 9, "loss": np.array(0.5), "mu": np.array(1.032)}, None) == \
        {"loss": 0.5, "mu": pytest.approx(1.032)}


WARMUP_VAE = ["train.steps=60", "train.chunk_size=60", "data.n_train=512", "data.n_test=128", "eval.iwae_points=0",
              "model.hidden=[32]", "n_seeds=1", "objective.warmup_steps=40"]
WARMUP_GMVAE = ["train.steps=60", "train.chunk_size=60", "warmup_steps=40", "data.n_train=500", "data.n_test=200",
                "pretrain.steps=50", "mixture.qz_fit_steps=20", "n_seeds=1", "restarts=1"]


@pytest.mark.parametrize("name,args", [("vae", WARMUP_VAE), ("gmvae", WARMUP_GMVAE)])
def test_a_learning_rate_sweep_with_warm_up_equals_its_separate_runs(name, args, tmp_path):
    """The warm-up clock ticks once per step for every member, whatever its learning rate: each row of the sweep is
    its separate run (it was not: the clock ran at lr_scale steps per step)."""
    path = config(name)
    sweep_lr = ["--sweep", "train.optimizer.lr=1e-3,4e-3"]
    assert main(["run", path, *args, *sweep_lr, "-q", "--out", str(tmp_path / "sw")]) == 0
    rows = json.loads((tmp_path / "sw" / "00-vmapped" / "metrics.json").read_text())["members"]
    assert main(["run", path, *args, "train.optimizer.lr=4e-3", "-q", "--out", str(tmp_path / "one")]) == 0
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    key = "test.elbo"
    separate = one["test"]["elbo"]
    separate = separate["mean"] if isinstance(separate, dict) else separate
    assert rows[1]["train.optimizer.lr"] == 4e-3
    assert rows[1][key] == pytest.approx(separate, rel=1e-5)


def test_a_sweep_of_a_built_in_config_named_by_name(tmp_path):
    assert main(["run", "kl_fit", "--quick", "-q", "train.steps=20", "--sweep", "seed=0,1", "--out",
                 str(tmp_path / "s")]) == 0
    assert (tmp_path / "s" / "sweep_config.yaml").read_text() == KL.read_text()  # the config the name stands for
    assert len(list((tmp_path / "s").glob("*/metrics.json"))) == 2
