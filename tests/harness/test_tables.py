"""Run folders as DataFrames: load_runs over folders, sweeps and globs; load_history."""

from __future__ import annotations

import json

import pytest
from helpers import config

import vlab
from vlab.cli.main import main

KL_FAST = ["n_inits=8", "train.steps=100", "train.chunk_size=100"]


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for i, lr in enumerate((0.1, 0.2, 0.3)):
        assert main(["run", config("kl_fit"), *KL_FAST, f"train.optimizer.lr={lr}", "-q",
                     "--out", str(root / "kl_fit" / f"run{i}")]) == 0
    return root


def test_load_runs_over_a_folder_of_three_runs_gives_three_rows(three_runs):
    df = vlab.load_runs(three_runs)
    assert len(df) == 3
    assert list(df.columns[:3]) == ["path", "experiment", "status"]
    assert set(df["status"]) == {"complete"} and set(df["experiment"]) == {"kl_fit"}
    assert df["config.train.optimizer.lr"].tolist() == [0.1, 0.2, 0.3]
    for _, row in df.iterrows():
        metrics = json.loads((three_runs / row["path"] / "metrics.json").read_text())
        assert row["metrics.exclusive.mu"] == metrics["exclusive"]["mu"]
        assert row["timing.total"] == metrics["timing"]["total"]
        assert {f"checks.{c['name']}.ok": c["ok"] for c in metrics["checks"]} == \
            {c: row[c] for c in df.columns if c.startswith("checks.")}
    # a glob of run folders, and a single run folder
    assert len(vlab.load_runs(str(three_runs / "kl_fit" / "run[01]"))) == 2
    assert len(vlab.load_runs(three_runs / "kl_fit" / "run2")) == 1


def test_load_runs_gives_one_row_per_member_of_a_vmapped_sweep(tmp_path):
    out = tmp_path / "sweep"
    assert main(["run", config("vae"), "--quick", "train.steps=40", "train.chunk_size=20", "-q", "--out", str(out),
                 "--sweep", "train.optimizer.lr=0.001,0.003", "--sweep", "seed=0,1"]) == 0
    df = vlab.load_runs(out)
    assert len(df) == 4 and df["member"].tolist() == [0, 1, 2, 3]
    run = json.loads(next(out.rglob("metrics.json")).read_text())["members"]
    assert df["config.train.optimizer.lr"].tolist() == [m["train.optimizer.lr"] for m in run]
    assert df["config.seed"].tolist() == [m["seed"] for m in run]
    assert df["metrics.test.elbo"].tolist() == [m["test.elbo"] for m in run]


def test_an_unfinished_run_has_its_status_and_config_and_no_metrics(three_runs, tmp_path):
    import shutil

    broken = tmp_path / "copy"
    shutil.copytree(three_runs, broken)
    (broken / "kl_fit" / "run1" / "metrics.json").unlink()
    status = json.loads((broken / "kl_fit" / "run1" / "run.json").read_text())
    (broken / "kl_fit" / "run1" / "run.json").write_text(json.dumps({**status, "status": "interrupted"}))
    df = vlab.load_runs(broken).set_index("path")
    row = df.loc[str(broken / "kl_fit" / "run1")]
    assert row["status"] == "interrupted" and row["config.n_inits"] == 8
    assert row.isna()["metrics.exclusive.mu"]


def test_load_history_and_load_params_read_one_run(three_runs):
    run = three_runs / "kl_fit" / "run0"
    h = vlab.load_history(run)
    assert list(h.columns[:3]) == ["fit", "step", "member"]
    assert len(h) == len((run / "history.jsonl").read_text().splitlines())
    assert set(h["fit"]) == {"inclusive", "exclusive"} and set(h["member"]) == set(range(8))
    assert vlab.load_params(run, "exclusive")["mu"].shape == (8,)


def test_paths_that_hold_no_runs_are_one_clear_error(tmp_path):
    with pytest.raises(vlab.ConfigError, match="does not exist"):
        vlab.load_runs(tmp_path / "nothing")
    with pytest.raises(vlab.ConfigError, match="holds no run folders"):
        vlab.load_runs(tmp_path)
    with pytest.raises(vlab.ConfigError, match="is not a run folder"):
        vlab.load_history(tmp_path)
