"""Loggers: TensorBoard event files read back by TensorBoard's own reader, one stream per member; the logger
protocol's calls; the MLflow logger of docs/logging.md against a local file store."""

from __future__ import annotations

import re

import pytest
from helpers import ROOT, config

import vlab
from vlab.cli.main import main
from vlab.harness.loggers import stream_name

VAE_FAST = ["--quick", "train.steps=40", "train.chunk_size=20", "train.log_every=10"]


def _streams(folder):
    """Every event stream under ``folder`` (relative name -> EventAccumulator), read by TensorBoard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = {}
    for events in sorted(folder.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events.parent), size_guidance={"scalars": 0, "tensors": 0})
        acc.Reload()
        out[str(events.parent.relative_to(folder))] = acc
    return out


def test_tensorboard_writes_one_stream_per_member_with_the_history_and_final_metrics(tmp_path):
    out = tmp_path / "run"
    assert main(["run", config("vae"), *VAE_FAST, "-q", "--tensorboard", "--out", str(out),
                 "--sweep", "train.optimizer.lr=0.001,0.003"]) == 0
    run = next(p.parent for p in out.rglob("metrics.json"))
    streams = _streams(run / "tensorboard")
    members = [s for s in streams if s != "."]
    assert len(members) == 2 and all(s.startswith(("lr=0.001", "lr=0.003")) for s in members)
    history = vlab.load_history(run)
    metrics = vlab.load_runs(run)
    for m, lr in enumerate((0.001, 0.003)):
        name = next(s for s in members if s.startswith(f"lr={lr:g}"))
        acc = streams[name]
        rows = history[history["member"] == m]
        loss = acc.Scalars("vae/loss")
        assert [e.step for e in loss] == rows["step"].tolist()
        assert [e.value for e in loss] == pytest.approx(rows["loss"].tolist(), rel=1e-6)
        final = acc.Scalars("final/test.elbo")
        assert final[0].value == pytest.approx(metrics["metrics.test.elbo"][m], rel=1e-6)
        assert final[0].step == rows["step"].max()
    assert "config/text_summary" in streams["."].Tags()["tensors"]  # the resolved config, as text


def test_stream_names_are_the_members_swept_values():
    assert stream_name({}, None) == ""
    assert stream_name({"train.optimizer.lr": 0.001, "seed_index": 0}, 0) == "lr=0.001"
    assert stream_name({"train.optimizer.lr": 0.001, "seed_index": 2}, 5) == "lr=0.001,seed=2"
    assert stream_name({"seed_index": 3}, 3) == "seed=3"
    assert stream_name({}, 4) == "member-4"
    assert re.fullmatch(r"[\w.=,+-]+", stream_name({"model.name": "a b/c", "seed_index": 0}, 0))


class Recorder(vlab.Logger):
    def __init__(self):
        self.calls = []

    def start(self, run):
        self.calls.append(("start", run))

    def log(self, row):
        self.calls.append(("log", row))

    def finish(self, metrics, status):
        self.calls.append(("finish", metrics, status))


def test_a_logger_gets_start_every_history_row_and_finish(tmp_path):
    rec = Recorder()
    r = vlab.run(config("kl_fit"), ["n_inits=3", "train.steps=60", "train.log_every=20"], out=tmp_path / "r",
                 quiet=True, loggers=[rec])
    kinds = [c[0] for c in rec.calls]
    assert kinds[0] == "start" and kinds[-1] == "finish" and set(kinds[1:-1]) == {"log"}
    start = rec.calls[0][1]
    assert start.path == r.path and start.experiment == "kl_fit" and start.config["n_inits"] == 3
    rows = [c[1] for c in rec.calls[1:-1]]
    assert len(rows) == len(r.history)
    for row, (_, h) in zip(rows, r.history.iterrows(), strict=True):
        assert (row.fit, row.step, row.member) == (h["fit"], h["step"], h["member"])
        assert row.label == {"seed_index": h["seed_index"]}
        assert row.values == {k: h[k] for k in row.values} and "seed_index" not in row.values
    assert rec.calls[-1][2] == "complete" and rec.calls[-1][1]["exclusive"] == r.metrics["exclusive"]


def test_a_failed_run_finishes_its_loggers_with_its_status(tmp_path):
    rec = Recorder()
    with pytest.raises(vlab.TrainingDiverged):
        vlab.run(config("kl_fit"), ["n_inits=2", "train.steps=50", "train.optimizer.lr=1e30"], out=tmp_path / "r",
                 quiet=True, loggers=[rec])
    assert rec.calls[-1][0] == "finish" and rec.calls[-1][2] == "failed"


def test_the_mlflow_logger_of_the_docs_logs_to_a_local_file_store(tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    text = (ROOT / "docs" / "logging.md").read_text()
    block = re.search(r"### MLflow.*?```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block.replace('"file:./mlruns"', f'"file:{tmp_path}/mlruns"'), "docs/logging.md", "exec"),
         namespace)
    result = namespace["result"]
    client = mlflow.tracking.MlflowClient(f"file:{tmp_path}/mlruns")
    (run,) = client.search_runs([client.get_experiment_by_name("vlab").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["n_inits"] == "2"
    h = result.history
    for member in (0, 1):
        rows = h[(h["fit"] == "exclusive") & (h["member"] == member)]
        got = client.get_metric_history(run.info.run_id, f"exclusive/member{member}/mu")
        assert [m.step for m in sorted(got, key=lambda m: m.step)] == rows["step"].tolist()
        assert [m.value for m in sorted(got, key=lambda m: m.step)] == pytest.approx(rows["mu"].tolist())
    assert run.data.metrics["final/exclusive.mu"] == pytest.approx(result.metrics["exclusive"]["mu"])
