"""vlab from Python: vlab.run returns a Result like the command line's run folder, in a notebook-safe way."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import matplotlib
import numpy as np
import pytest
from helpers import ROOT, config, metrics_of

import vlab
from vlab.cli.main import main

KL_FAST = ["n_inits=8", "train.steps=300", "train.chunk_size=100"]

FRESH = r"""
import json, matplotlib
backend = matplotlib.get_backend()
rc = {k: str(v) for k, v in matplotlib.rcParams.items()}
import vlab
after_import = matplotlib.get_backend()
r = vlab.run("kl_fit", overrides=["train.steps=300"], quiet=True)
from matplotlib.figure import Figure
print(json.dumps({
    "backend": backend, "after_import": after_import, "after_run": matplotlib.get_backend(),
    "rc_same": rc == {k: str(v) for k, v in matplotlib.rcParams.items()},
    "mu": r.metrics["exclusive"]["mu"], "sigma": r.metrics["exclusive"]["sigma"],
    "history_rows": len(r.history), "columns": list(r.history.columns),
    "figures": {k: [isinstance(f, Figure), len(f.axes)] for k, f in r.figures.items()},
    "fits": {k: sorted(v) for k, v in r.params.items()}, "path": str(r.path),
}))
"""


def test_run_in_a_fresh_process_returns_metrics_history_and_open_figures_and_leaves_matplotlib_alone(tmp_path):
    env = {**os.environ, "MPLBACKEND": "svg"}  # a backend that is not Agg: importing or running vlab keeps it
    out = subprocess.run([sys.executable, "-c", FRESH], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["backend"] == got["after_import"] == got["after_run"] == "svg"
    assert got["rc_same"]
    assert got["mu"] == pytest.approx(2.99, abs=0.02) and got["sigma"] == pytest.approx(1.0, abs=0.05)
    assert got["history_rows"] > 0 and "member" in got["columns"] and "loss" in got["columns"]
    assert set(got["figures"]) == {"fits", "landscape", "loss"}
    assert all(is_figure and n_axes > 0 for is_figure, n_axes in got["figures"].values())
    assert set(got["fits"]) == {"inclusive", "exclusive"}


def test_run_matches_the_command_line_run_of_the_same_config(tmp_path):
    r = vlab.run(config("kl_fit"), KL_FAST, out=tmp_path / "api", quiet=True)
    assert main(["run", config("kl_fit"), *KL_FAST, "-q", "--out", str(tmp_path / "cli")]) == 0
    assert metrics_of(r.path) == metrics_of(tmp_path / "cli")
    assert r.metrics["exclusive"] == metrics_of(tmp_path / "cli")["exclusive"]
    assert r.config.n_inits == 8 and r.config.train.steps == 300
    # params are the trained pytrees: the exclusive fit's mu per member, whose best is the reported optimum
    mu = np.asarray(r.params["exclusive"]["mu"])
    assert mu.shape == (8,) and np.min(np.abs(mu - r.metrics["exclusive"]["mu"])) < 1e-3
    # history: one row per logged step and member, as history.jsonl
    lines = (r.path / "history.jsonl").read_text().splitlines()
    assert len(r.history) == len(lines)
    assert sorted(r.history["member"].unique()) == list(range(8))
    last = r.history.groupby("fit")["step"].max().to_dict()
    assert last == {"exclusive": 299, "inclusive": 299}  # every log_every steps and the last


def test_a_bad_override_raises_the_command_lines_one_line_error(tmp_path, capsys):
    with pytest.raises(vlab.ConfigError) as err:
        vlab.run("kl_fit", ["n_inits=-3"], out=tmp_path / "a", quiet=True)
    assert main(["run", "kl_fit", "n_inits=-3", "--out", str(tmp_path / "b")]) == 2
    line = capsys.readouterr().err.strip()
    assert line == f"vlab run: error: {err.value}"
    assert "n_inits" in str(err.value) and "-3" in str(err.value)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    with pytest.raises(vlab.ConfigError, match="expected a list"):
        vlab.run("kl_fit", "n_inits=3")


def test_configs_built_in_python_are_validated_and_run(tmp_path):
    _, cfg = vlab.load_config("kl_fit", KL_FAST)
    cfg.n_inits = 0
    with pytest.raises(vlab.ConfigError, match="key 'n_inits': value 0"):
        vlab.run(cfg, quiet=True)
    cfg.n_inits = 8
    cfg.train.optimizer.lr = "fast"
    with pytest.raises(vlab.ConfigError, match="train.optimizer.lr"):
        vlab.run(cfg, quiet=True)
    with pytest.raises(vlab.ConfigError, match="unknown key 'n_init'"):
        vlab.run({"experiment": "kl_fit", "n_init": 3}, quiet=True)
    cfg.train.optimizer.lr = 0.3
    r = vlab.run(cfg, out=tmp_path / "obj", quiet=True)
    assert metrics_of(r.path) == metrics_of(vlab.run(config("kl_fit"), KL_FAST, out=tmp_path / "yaml",
                                                     quiet=True).path)


def test_a_sweep_of_member_keys_is_one_vmapped_run_with_a_row_per_member(tmp_path):
    r = vlab.run(config("vae"), ["train.steps=40", "train.chunk_size=20", "train.log_every=20"], quick=True,
                 quiet=True, out=tmp_path / "s", sweep={"lr": [1e-3, 3e-3]})
    members = r.metrics["members"]
    assert [m["train.optimizer.lr"] for m in members] == [1e-3, 3e-3]
    assert set(r.history["member"]) == {0, 1}
    assert r.history.groupby("member")["train.optimizer.lr"].first().tolist() == [1e-3, 3e-3]
    with pytest.raises(vlab.ConfigError, match="model.z_dim.*varies per member"):
        vlab.run(config("vae"), quick=True, sweep={"model.z_dim": [2, 4]})


def test_an_interrupt_raises_to_the_caller_and_resume_finishes_the_run(tmp_path, capsys):
    class StopAt(vlab.Logger):
        def log(self, row):
            if row.fit == "exclusive" and row.step >= 150:
                raise KeyboardInterrupt

    out = tmp_path / "r"
    with pytest.raises(KeyboardInterrupt):
        vlab.run(config("kl_fit"), KL_FAST, out=out, quiet=True, loggers=[StopAt()])
    assert f"vlab.resume('{out}')" in capsys.readouterr().err
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    r = vlab.resume(out, quiet=True)
    whole = vlab.run(config("kl_fit"), KL_FAST, out=tmp_path / "whole", quiet=True)
    assert r.metrics["exclusive"]["mu"] == pytest.approx(whole.metrics["exclusive"]["mu"], abs=1e-6)
    assert len(r.history) == len(whole.history)


def test_float64_runs_leave_the_callers_jax_precision_as_it_was(tmp_path):
    import jax

    before = jax.config.jax_enable_x64
    vlab.run(config("kl_fit"), [*KL_FAST, "precision=float64", "train.steps=100"], out=tmp_path / "r", quiet=True)
    assert jax.config.jax_enable_x64 == before
    assert matplotlib.rcParams["axes.spines.top"] is True  # vlab's style applied only inside the run


def test_import_vlab_imports_nothing_heavy():
    code = "import sys, vlab; print(sorted(m for m in ('jax', 'matplotlib', 'pandas', 'tensorboardX', 'omegaconf') " \
           "if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_explain_lists_every_key_with_its_type_default_bounds_and_help():
    import dataclasses

    from vlab.harness.experiment import resolve
    from vlab.trees import schema_keys

    table = vlab.explain("kl_fit", ["n_inits=8"])
    cls = resolve("kl_fit")
    assert set(schema_keys(cls.Config)) <= set(table.index)
    field = next(f for f in dataclasses.fields(cls.Config) if f.name == "n_inits")
    row = table.loc["n_inits"]
    assert (row["type"], row["value"], row["default"], row["allowed"]) == ("int", 8, field.default, "> 0")
    assert row["help"] == field.metadata["help"] and row["changed"]
    assert not table.loc["seed", "changed"]
    with pytest.raises(vlab.ConfigError, match="n_inits"):
        vlab.explain("kl_fit", ["n_inits=x"])
