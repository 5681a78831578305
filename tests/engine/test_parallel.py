"""Sharding over devices and hosts with JAX itself: results equal the single-device run; only process 0 writes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from helpers import ROOT, config

SCRIPT = textwrap.dedent("""
    import os, sys, json
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    import jax, jax.numpy as jnp, numpy as np, optax
    from vlab.cli.main import main
    from vlab.engine import fit
    from vlab.engine.runtime import make_mesh
    from vlab.engine.sharding import shard_members

    out = sys.argv[1]
    res = {"devices": jax.device_count()}
    base = ["run", "configs/kl_fit.yaml", "n_inits=8", "train.steps=200", "estimator.kind=mc", "-q"]
    for name, extra in (("one", []), ("grid", ["parallel.sweep=4", "parallel.data=2"])):
        assert main([*base, "--out", f"{out}/{name}", *extra]) == 0
        res[name] = json.load(open(f"{out}/{name}/metrics.json"))["exclusive"]["optima"]

    # data-parallel least squares with minibatches drawn inside the compiled loop
    kx, kw = jax.random.split(jax.random.key(0))
    X = jax.random.normal(kx, (4096, 5)); w_true = jnp.arange(5.0); Y = X @ w_true
    def batch_fn(data, key):
        idx = jax.random.randint(key, (256,), 0, data[0].shape[0])
        return data[0][idx], data[1][idx]
    def loss(w, batch, key, hp):
        x, y = batch
        return jnp.mean((x @ w - y) ** 2), {}
    curves = {}
    for name, mesh in (("one", None), ("data8", make_mesh(8, 1, "cpu"))):
        w0, key, hp, data, draw = shard_members(mesh, jnp.zeros(5), jax.random.key(1), {}, (X, Y), batch_fn)
        r = fit(loss, w0, optax.adam(0.05), key, steps=300, chunk_size=100, log_every=1, data=data, batch_fn=draw)
        curves[name] = np.asarray(r.history["loss"]).tolist()
    res["curves"] = curves
    print("RESULT" + json.dumps(res))
""")


def test_sharded_runs_equal_the_single_device_run(tmp_path):
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.split("RESULT", 1)[1])
    assert res["devices"] == 8
    for name in ("grid",):
        for a, b in zip(res["one"], res[name], strict=True):
            assert a["count"] == b["count"]
            assert a["fit_mu"] == pytest.approx(b["fit_mu"], abs=1e-5)
            assert a["fit_sigma"] == pytest.approx(b["fit_sigma"], abs=1e-5)
    one, data8 = res["curves"]["one"], res["curves"]["data8"]
    assert len(one) == len(data8) == 300
    assert data8 == pytest.approx(one, rel=1e-4, abs=1e-5)
    assert one[-1] < 1e-3 * one[0]


W1_SCRIPT = textwrap.dedent("""
    import os, sys, json
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    from vlab.cli.main import main

    out = sys.argv[1]
    w1 = ["run", "configs/vae.yaml", "model.hidden=[512,256]", "model.z_dim=16", "data.embedding=images",
          "data.dim=784", "data.n_train=2048", "data.n_test=256", "eval.iwae_points=0", "batch_size=128",
          "train.steps=120", "train.chunk_size=60", "train.log_every=1", "-q"]
    curves = {}
    for n in (1, 8):
        assert main([*w1, f"parallel.data={n}", "--out", f"{out}/data{n}"]) == 0
        rows = [json.loads(line) for line in open(f"{out}/data{n}/history.jsonl")]
        curves[n] = [r["loss"] for r in rows if r.get("fit") == "vae"]
        curves[f"mesh{n}"] = json.load(open(f"{out}/data{n}/run.json"))["mesh"]
    print("RESULT" + json.dumps(curves))
""")


def test_data_parallel_w1_vae_on_8_devices_has_the_single_device_loss_curve(tmp_path):
    """The W1 network (784-512-256-16, batch 128) trained with its batches split over 8 CPU devices: every step's
    loss equals the single-device run's to float32 tolerance (XLA all-reduces the gradient)."""
    r = subprocess.run([sys.executable, "-c", W1_SCRIPT, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    curves = json.loads(r.stdout.split("RESULT", 1)[1])
    one, eight = curves["1"], curves["8"]
    assert curves["mesh1"] is None and curves["mesh8"] == {"data": 8, "sweep": 1}
    assert len(one) == len(eight) == 120
    assert eight == pytest.approx(one, rel=2e-4)
    assert one[-1] < 0.8 * one[0]


def test_parallel_larger_than_the_machine_is_a_config_error(tmp_path, capsys):
    from vlab.cli.main import main

    assert main(["run", config("kl_fit"), "parallel.sweep=64", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "parallel" in err and "devices" in err
    assert not (tmp_path / "x").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


KL_FIT = ["configs/kl_fit.yaml", "n_inits=8", "train.steps=200", "estimator.kind=mc", "figures.dpi=40", "-q"]


def test_two_processes_with_a_loopback_coordinator_sweep_across_them(tmp_path):
    """Two local CPU processes (one device each, coordinator on 127.0.0.1) with the 8 members split over both
    (``parallel.sweep=2``): both finish, only process 0 writes the run, and its optima are those of the same
    config run in one process beside them."""
    out, ref = tmp_path / "run", tmp_path / "ref"
    env = dict(os.environ, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{_free_port()}", JAX_NUM_PROCESSES="2",
               XLA_FLAGS="--xla_force_host_platform_device_count=1")
    cmd = [sys.executable, "-m", "vlab", "run", *KL_FIT, "parallel.sweep=2", "--out", str(out)]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=dict(env, JAX_PROCESS_ID=str(i)), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    procs.append(subprocess.Popen([sys.executable, "-m", "vlab", "run", *KL_FIT, "--out", str(ref)], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))  # one process
    deadline = time.monotonic() + 300
    try:
        outs = [p.communicate(timeout=max(1.0, deadline - time.monotonic())) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0, 0], [e[-3000:] for _, e in outs]
    assert "wrote" in outs[0][0] and "wrote" not in outs[1][0]  # only process 0 reports and writes
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "complete" and record["mesh"] == {"data": 1, "sweep": 2}
    devices = record["environment"]["devices"]
    assert devices["processes"] == 2 and devices["process"] == 0 and devices["count"] == 2
    assert (out / "history.jsonl").stat().st_size > 0 and list(out.glob("*.png"))
    one = json.loads((ref / "metrics.json").read_text())["exclusive"]["optima"]
    two = json.loads((out / "metrics.json").read_text())["exclusive"]["optima"]
    assert len(one) == len(two) > 0
    for a, b in zip(one, two, strict=True):
        assert a["count"] == b["count"]
        assert a["fit_mu"] == pytest.approx(b["fit_mu"], abs=1e-5)
        assert a["fit_sigma"] == pytest.approx(b["fit_sigma"], abs=1e-5)
