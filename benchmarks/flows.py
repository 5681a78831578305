"""Normalizing-flow speed and quality: vlab against FlowJAX and normflows (PyTorch), side by side in one run.

W3 (forward KL): two moons (noise 0.05), 8 affine coupling layers, conditioner MLP width 64 depth 2, batch 256,
2000 steps, test NLL on 10k fresh points (the data's entropy on them is the floor). Peers train with Adam
1e-3 (their usual recipe); each sees 2000 * 256 fresh points, FlowJAX as one epoch of ``fit_to_data``.
W4 (reverse KL): Rezende & Mohamed's U1 ring, the same flow shape, 256 samples a step, 2000 steps; the reverse KL
is ``log Z - ELBO`` with the grid ``log Z``, estimated on 10k samples of each trained flow.

vlab's recipe (what the README describes; flow_kl's defaults, spelled out in configs/flow_kl.yaml, and the
defaults of ``vlab.flows.affine_flow`` and ``vlab.flows.Conditioner``; this script builds vlab's flow from flow_kl's
defaults):
* couplings affine in the data-to-base direction (``u_B = x_B * scale(x_A) + shift(x_A)``) with FlowJAX's softplus
  scale, and a last elementwise affine layer started at the data's mean and standard deviation;
* conditioner MLPs with GELU units whose first-layer biases start ``U(-2.5, 2.5)``: a 2-D coupling's conditioner
  sees one standardised coordinate, and with zero biases every unit's kink sits at 0, so the conditioner starts
  as a function with one kink; spread kinks are the largest single gain of the recipe (measured in
  docs/performance.md; PyTorch and Equinox draw such biases ``U(-1, 1)``); the output layer still starts at zero
  (identity);
* Adam warmed up linearly over 200 steps to 5e-3, then cosine-decayed to 0, gradients clipped at global norm 1.
Tried on six seeds and not kept: Polyak/EMA parameter averages (no gain once the learning rate decays to 0), a
fixed random rotation between couplings, peak rates 2e-3 to 2e-2, Adam b1 0.8, b2 0.99, tanh/ELU/SiLU units, the
bounded ``exp(c tanh(s / c))`` scale, the base-to-data direction.
For U1 the affine row is the same flow and optimiser with the sticking-the-landing gradient; a second vlab row
uses rational-quadratic spline couplings (ReLU conditioners, zero biases, cosine from 2e-3, as configs/flow_u1.yaml).

Sides alternate in order seed by seed (vlab, FlowJAX, normflows; then FlowJAX, normflows, vlab; ...), and each
ratio is taken within this run on this machine. FlowJAX's warm speed is its second ``fit_to_data`` call (compiled
step cached); vlab's is the training time of ``vlab.engine.fit`` after its one compilation.

    pip install -r benchmarks/requirements-flows.txt   (run by this script for the peers that are missing)
    python benchmarks/flows.py [--seeds 3] [--steps 2000] [--out runs/benchmarks/flows.json]
                               [--torch-device {auto,cpu,cuda}]

JAX (vlab, FlowJAX) runs on its default backend; normflows on ``--torch-device`` (auto: CUDA when torch sees a GPU,
else the CPU with one thread). On CUDA the normflows timer is read after ``torch.cuda.synchronize()``. A peer that
is missing and cannot be installed (no network) is left out of the run, with a line saying so.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without the package installed (vlab, experiments)
    sys.path.insert(0, str(ROOT))

from peers import devices, sync, torch_device  # noqa: E402  (benchmarks/ is the script folder)

from vlab.data import toy as toy_data  # noqa: E402
from vlab.distributions import densities  # noqa: E402
from vlab.engine import fit  # noqa: E402
from vlab.harness.config import build_optimizer  # noqa: E402
from vlab.harness.flow_config import make_flow  # noqa: E402
from vlab.objectives import flow as fo  # noqa: E402

BATCH, WIDTH, DEPTH, LAYERS, N_TEST = 256, 64, 2, 8, 10_000


PEERS = ("flowjax", "normflows", "torch")


def ensure_peers() -> set[str]:
    """Install those of FlowJAX, normflows and torch that are missing, at the versions requirements-flows.txt pins
    (a torch already there, a CUDA build say, is left alone); returns the names still missing afterwards."""
    missing = {m for m in PEERS if importlib.util.find_spec(m) is None}
    if not missing:
        return missing
    req = ROOT / "benchmarks" / "requirements-flows.txt"
    pins = [ln.strip() for ln in req.read_text().splitlines()
            if ln.strip() and not ln.startswith("#") and ln.split("==")[0].strip() in missing]
    print(f"installing missing peers {' '.join(sorted(pins))} (from {req}) ...", flush=True)
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--retries", "1", "--timeout", "10", *pins],
                       capture_output=True, text=True)
    importlib.invalidate_caches()
    missing = {m for m in PEERS if importlib.util.find_spec(m) is None}
    if r.returncode or missing:
        print(f"could not install {', '.join(sorted(missing)) or 'the peers'} (pip exit {r.returncode}); "
              "running without them", flush=True)
    return missing




def moons(seed: int, n: int) -> np.ndarray:
    return np.asarray(toy_data.two_moons(jax.random.key(seed), n, 0.05)[0])


# ------------------------------------------------------------------------------------------------ vlab


def vlab_config():
    """flow_kl's default configuration (the one configs/flow_kl.yaml spells out): vlab's recipe for W3."""
    from vlab.experiments.flow_kl import Config

    cfg = Config()
    f = cfg.flow
    assert (f.kind, f.layers, f.hidden, f.depth, cfg.batch_size) == ("affine", LAYERS, WIDTH, DEPTH, BATCH), cfg
    return cfg


def vlab_forward_recipe(ref: jax.Array, steps: int):
    """W3's flow and optimiser exactly as ``vlab run configs/flow_kl.yaml`` builds them (flow_kl's defaults); the
    last layer starts at the mean and scale of ``ref``."""
    cfg = vlab_config()
    return make_flow(cfg.flow, 2, ref.mean(0), ref.std(0)), build_optimizer(cfg.train.optimizer, steps)


def vlab_forward(seed: int, steps: int, x_test: np.ndarray) -> dict:
    target = densities.get("two_moons")
    ref = target.sample(jax.random.key(10_000 + seed), 10_000)
    flow, opt = vlab_forward_recipe(ref, steps)
    r = fit(fo.forward_kl_loss(flow), flow.init(jax.random.key(seed)), opt, jax.random.key(100 + seed),
            steps=steps, chunk_size=steps, log_every=steps, batch_fn=lambda d, k: target.sample(k, BATCH))
    nll = float(jax.jit(lambda p: fo.forward_kl(flow, p, jnp.asarray(x_test)))(r.params))
    return {"steps_per_s": steps / r.train_s, "steps_per_s_with_compile": steps / (r.train_s + r.compile_s),
            "compile_s": r.compile_s, "test_nll": nll}


def vlab_forward_seeds(n: int, steps: int, x_test: np.ndarray) -> dict:
    """All seeds as one vmapped program (vlab's seeds-as-an-axis): seed-steps per second."""
    target = densities.get("two_moons")
    ref = target.sample(jax.random.key(10_000), 10_000)
    flow, opt = vlab_forward_recipe(ref, steps)
    p0 = jax.vmap(flow.init)(jax.random.split(jax.random.key(0), n))
    r = fit(fo.forward_kl_loss(flow), p0, opt, jax.random.split(jax.random.key(1), n), steps=steps,
            chunk_size=steps, log_every=steps, batch_fn=lambda d, k: target.sample(k, BATCH))
    nll = jax.jit(jax.vmap(lambda p: fo.forward_kl(flow, p, jnp.asarray(x_test))))(r.params)
    return {"seed_steps_per_s": n * steps / r.train_s, "test_nll": np.asarray(nll).tolist()}


def vlab_reverse(seed: int, steps: int, log_z: float, kind: str = "affine") -> dict:
    """U1 by reverse KL with the sticking-the-landing gradient; affine: the forward recipe (softplus scale, warm-up
    to 5e-3, cosine), spline: 8 bins on [-4, 4], cosine from 2e-3. The last layer starts at scale 4/3 (box / 6)."""
    target = densities.get("u1")
    cfg = vlab_config()
    cfg.flow.kind, cfg.flow.bins, cfg.flow.bound = kind, 8, 4.0
    if kind == "spline":  # configs/flow_u1.yaml: ReLU conditioners with zero biases, cosine from 2e-3
        cfg.flow.activation, cfg.flow.bias_init = "relu", 0.0
    flow = make_flow(cfg.flow, 2, jnp.zeros(2), jnp.full(2, 4 / 3))
    if kind == "affine":
        opt = build_optimizer(cfg.train.optimizer, steps)
    else:
        opt = optax.chain(optax.clip_by_global_norm(5.0), optax.adam(optax.cosine_decay_schedule(2e-3, steps)))
    r = fit(fo.reverse_kl_loss(flow, target.log_prob, BATCH, 2, stick_the_landing=True),
            flow.init(jax.random.key(seed)), opt, jax.random.key(200 + seed), steps=steps, chunk_size=steps,
            log_every=steps)
    key = jax.random.key(300 + seed)
    _, log_w = jax.jit(lambda p: fo.sample_log_weights(flow, p, key, target.log_prob, N_TEST, 2))(r.params)
    return {"steps_per_s": steps / r.train_s, "kl": log_z - float(jnp.mean(log_w))}


def vlab_reverse_spline(seed: int, steps: int, log_z: float) -> dict:
    """The same workload with 8 rational-quadratic spline couplings (8 bins on [-4, 4]) in place of affine ones."""
    return vlab_reverse(seed, steps, log_z, "spline")


# ------------------------------------------------------------------------------------------------ FlowJAX


def flowjax_flow(seed: int, invert: bool):
    from flowjax.distributions import Normal
    from flowjax.flows import coupling_flow

    return coupling_flow(jax.random.key(seed), base_dist=Normal(jnp.zeros(2)), flow_layers=LAYERS,
                         nn_width=WIDTH, nn_depth=DEPTH, invert=invert)


def flowjax_forward(seed: int, steps: int, x_test: np.ndarray) -> dict:
    from flowjax.train import fit_to_data

    val_prop = 0.1
    n = math.ceil(steps * BATCH / (1 - val_prop)) + BATCH
    x = jnp.asarray(moons(20_000 + seed, n))
    kw = dict(learning_rate=1e-3, max_epochs=1, batch_size=BATCH, val_prop=val_prop, show_progress=False)
    t0 = time.perf_counter()
    dist, _ = fit_to_data(jax.random.key(seed), flowjax_flow(seed, True), x, **kw)
    jax.block_until_ready(jax.tree.leaves(dist))
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    dist, _ = fit_to_data(jax.random.key(seed), flowjax_flow(seed, True), x, **kw)
    jax.block_until_ready(jax.tree.leaves(dist))
    warm = time.perf_counter() - t0
    nll = -float(jnp.mean(dist.log_prob(jnp.asarray(x_test))))
    return {"steps_per_s": steps / warm, "steps_per_s_with_compile": steps / cold, "test_nll": nll}


def flowjax_reverse(seed: int, steps: int, log_z: float) -> dict:
    from flowjax.train import fit_to_key_based_loss
    from flowjax.train.losses import ElboLoss

    target = densities.get("u1")
    loss = ElboLoss(target.log_prob, num_samples=BATCH)
    dist = flowjax_flow(seed, False)
    t0 = time.perf_counter()
    dist, _ = fit_to_key_based_loss(jax.random.key(seed), dist, loss_fn=loss, steps=steps, learning_rate=1e-3,
                                    show_progress=False)
    jax.block_until_ready(jax.tree.leaves(dist))
    dt = time.perf_counter() - t0
    x, log_q = dist.sample_and_log_prob(jax.random.key(300 + seed), (N_TEST,))
    log_w = jax.vmap(target.log_prob)(x) - log_q
    return {"steps_per_s_with_compile": steps / dt, "kl": log_z - float(jnp.mean(log_w))}


# ------------------------------------------------------------------------------------------------ normflows


def normflows_model(seed: int, target=None, device=None):
    import normflows as nf
    import torch

    dev = torch.device("cpu") if device is None else device
    torch.manual_seed(seed)
    if dev.type == "cpu":
        torch.set_num_threads(1)  # tiny matmuls: one thread is fastest, and immune to oversubscription
    layers = []
    for _ in range(LAYERS):
        net = nf.nets.MLP([1, *([WIDTH] * DEPTH), 2], init_zeros=True)
        layers += [nf.flows.AffineCouplingBlock(net), nf.flows.Permute(2, mode="swap")]
    return nf.NormalizingFlow(nf.distributions.DiagGaussian(2, trainable=False), layers, p=target).to(dev)


def normflows_forward(seed: int, steps: int, x_test: np.ndarray, device=None) -> dict:
    import torch

    dev = torch.device("cpu") if device is None else device
    model = normflows_model(seed, device=dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.tensor(moons(30_000 + seed, steps * BATCH), dtype=torch.float32).reshape(steps, BATCH, 2).to(dev)
    sync(dev)
    t0 = time.perf_counter()
    for i in range(steps):
        opt.zero_grad()
        loss = model.forward_kld(x[i])
        loss.backward()
        opt.step()
    sync(dev)
    dt = time.perf_counter() - t0
    with torch.no_grad():
        nll = -float(model.log_prob(torch.tensor(x_test, dtype=torch.float32).to(dev)).mean())
    return {"steps_per_s": steps / dt, "test_nll": nll}


def normflows_reverse(seed: int, steps: int, log_z: float, device=None) -> dict:
    import normflows as nf
    import torch

    dev = torch.device("cpu") if device is None else device

    class U1(nf.distributions.Target):
        def log_prob(self, z):
            r = torch.linalg.norm(z, dim=1)
            lobes = torch.logaddexp(-0.5 * ((z[:, 0] - 2) / 0.6) ** 2, -0.5 * ((z[:, 0] + 2) / 0.6) ** 2)
            return -(0.5 * ((r - 2) / 0.4) ** 2 - lobes)

    model = normflows_model(seed, U1(), device=dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        loss = model.reverse_kld(BATCH)
        loss.backward()
        opt.step()
    sync(dev)
    dt = time.perf_counter() - t0
    with torch.no_grad():
        z, log_q = model.sample(N_TEST)
        log_w = model.p.log_prob(z) - log_q
        finite = torch.isfinite(log_w)
    return {"steps_per_s": steps / dt, "kl": log_z - float(log_w[finite].mean())}


# ------------------------------------------------------------------------------------------------ main

FORWARD = {"vlab": vlab_forward, "flowjax": flowjax_forward, "normflows": normflows_forward}
REVERSE = {"vlab": vlab_reverse, "flowjax": flowjax_reverse, "normflows": normflows_reverse,
           "vlab_spline": vlab_reverse_spline}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--skip", nargs="*", default=[], choices=["forward", "reverse", "vmapped"])
    ap.add_argument("--out", default=str(ROOT / "runs" / "benchmarks" / "flows.json"))
    ap.add_argument("--plot", metavar="JSON", help="only draw the figure of an earlier run's JSON")
    ap.add_argument("--torch-device", choices=["auto", "cpu", "cuda"], default="auto",
                    help="where normflows (PyTorch) runs (auto: cuda if torch sees a GPU, else cpu)")
    args = ap.parse_args(argv)
    if args.plot:
        print(f"wrote {figure(json.loads(Path(args.plot).read_text()), Path(args.plot).with_suffix('.png'))}")
        return 0
    missing = ensure_peers()
    forward, reverse = dict(FORWARD), dict(REVERSE)
    dev = None
    if "torch" in missing or "normflows" in missing:
        forward.pop("normflows")
        reverse.pop("normflows")
    else:
        dev = torch_device(args.torch_device)
        forward["normflows"] = partial(normflows_forward, device=dev)
        reverse["normflows"] = partial(normflows_reverse, device=dev)
    info = devices(dev)
    if "flowjax" in missing:
        forward.pop("flowjax")
        reverse.pop("flowjax")
    torch_part = (f", normflows on torch {info['torch']} ({info['torch_device']}, "
                  f"{info['torch_device_name']})" if "torch_device" in info else "")
    print(f"flows: {args.seeds} seeds x {args.steps} steps; sides {', '.join(dict.fromkeys([*forward, *reverse]))}; "
          f"jax {jax.__version__} on {info['jax_device']} ({info['jax_backend']}){torch_part}", flush=True)
    x_test = moons(999, N_TEST)
    h_moons = -float(jnp.mean(jax.jit(jax.vmap(densities.two_moons_log_prob))(jnp.asarray(x_test))))
    t = densities.get("u1")
    log_z = float(densities.grid_log_z(t.log_prob, t.box, 1000))
    results: dict = {"forward": {s: [] for s in forward}, "reverse": {s: [] for s in reverse}}
    for seed in range(args.seeds):
        for kind, table in (("forward", forward), ("reverse", reverse)):
            if kind in args.skip:
                continue
            sides = list(table)
            for side in sides[seed % len(sides):] + sides[:seed % len(sides)]:
                arg = x_test if kind == "forward" else log_z
                r = table[side](seed, args.steps, arg)
                results[kind][side].append(r)
                print(f"seed {seed} {kind:7s} {side:9s} " + "  ".join(f"{k} {v:.4g}" for k, v in r.items()),
                      flush=True)
    if "vmapped" not in args.skip and "forward" not in args.skip:
        results["vlab_vmapped_seeds"] = vlab_forward_seeds(args.seeds, args.steps, x_test)
    summary = summarise(results, h_moons)
    results.update(summary=summary, data_entropy=h_moons, u1_log_z=log_z,
                   machine={"platform": platform.platform(), "cpus": os.cpu_count(), "jax": jax.__version__,
                            "devices": info})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out} and {figure(results, Path(args.out).with_suffix('.png'))}")
    return 0


def figure(results: dict, path: Path) -> Path:
    """Per-seed dots and medians: W3 warm steps/s, W3 test NLL (data entropy dashed), U1 reverse KL."""
    from vlab.harness import plots

    fig, axes = plots.figure(1, 3, size=(13.5, 3.8))
    panels = [("forward", "steps_per_s", "W3 training speed (warm steps/s)"),
              ("forward", "test_nll", "W3 test NLL on 10k points (nats)"),
              ("reverse", "kl", "U1 reverse KL = log Z - ELBO (nats)")]
    for ax, (kind, key, title) in zip(axes, panels, strict=True):
        sides = [s for s, rows in results[kind].items() if rows and key in rows[0]]
        for i, side in enumerate(sides):
            v = [r[key] for r in results[kind][side]]
            ax.scatter([i] * len(v), v, color=plots.color(i), s=18, zorder=3)
            ax.hlines(statistics.median(v), i - 0.3, i + 0.3, color=plots.color(i), lw=2)
        ax.set_xticks(range(len(sides)), sides)
        ax.set_title(title)
        if key == "test_nll":
            ax.axhline(results["data_entropy"], color="k", ls="--", lw=1, label="data entropy")
            ax.legend()
        if key == "kl":
            ax.set_yscale("log")
    m = results["machine"]
    where = f"{m['cpus']}-core CPU"
    if m.get("devices", {}).get("jax_backend", "cpu") != "cpu" or m.get("devices", {}).get("torch_device") == "cuda":
        d = m["devices"]
        where = f"JAX on {d['jax_device']}" + (f", torch on {d['torch_device_name']}" if "torch_device" in d else "")
    fig.suptitle(f"flows: vlab vs FlowJAX vs normflows, {where}, one run (dots: seeds, bars: medians)", y=1.0)
    return plots.save(fig, path)


def summarise(results: dict, h_moons: float) -> dict:
    med = lambda rows, k: statistics.median(r[k] for r in rows) if rows and k in rows[0] else float("nan")
    out: dict = {"data_entropy": h_moons}
    fwd, rev = results["forward"], results["reverse"]
    for side in fwd:
        out[side] = {"forward_steps_per_s": med(fwd[side], "steps_per_s"),
                     "forward_steps_per_s_with_compile": med(fwd[side], "steps_per_s_with_compile"),
                     "test_nll_median": med(fwd[side], "test_nll"),
                     "test_nll_range": [min((r["test_nll"] for r in fwd[side]), default=float("nan")),
                                        max((r["test_nll"] for r in fwd[side]), default=float("nan"))]}
    for side in rev:
        out.setdefault(side, {}).update({
            "u1_reverse_kl_median": med(rev[side], "kl"),
            "u1_reverse_kl_range": [min((r["kl"] for r in rev[side]), default=float("nan")),
                                    max((r["kl"] for r in rev[side]), default=float("nan"))],
            "u1_reverse_steps_per_s": med(rev[side], "steps_per_s")})
    if fwd["vlab"] and fwd.get("flowjax"):
        ratios = [a["steps_per_s"] / b["steps_per_s"] for a, b in zip(fwd["vlab"], fwd["flowjax"], strict=True)]
        out["vlab_over_flowjax_warm_steps_per_s"] = {"per_seed": ratios, "median": statistics.median(ratios)}
    if fwd["vlab"] and fwd.get("normflows"):
        ratios = [a["steps_per_s"] / b["steps_per_s"] for a, b in zip(fwd["vlab"], fwd["normflows"], strict=True)]
        out["vlab_over_normflows_steps_per_s"] = {"per_seed": ratios, "median": statistics.median(ratios)}
    if "vlab_vmapped_seeds" in results:
        out["vlab_vmapped_seed_steps_per_s"] = results["vlab_vmapped_seeds"]["seed_steps_per_s"]
    return out


if __name__ == "__main__":
    sys.exit(main())
