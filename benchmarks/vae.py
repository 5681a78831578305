"""Workload W1: vlab's VAE training engine against PyTorch eager on Fashion-MNIST.

784-512-256-(2x16) Gaussian encoder, mirrored decoder 16-256-512-784, ReLU, Bernoulli likelihood on grey levels,
Adam 1e-3, batch 128, float32, 5 epochs (469 steps each). The two implementations run alternately, ``--runs`` times
each, in this one process; the script prints each run's steps/s and test ELBO, the medians, and the ratio
vlab / PyTorch (the target is >= 1.6 with a test ELBO no worse than PyTorch's by more than 1 nat).

    .venv/bin/pip install -r benchmarks/requirements-vae.txt
    .venv/bin/python benchmarks/vae.py [--epochs 5] [--runs 3] [--threads 2] [--gmvae] [--root DIR]
                                       [--torch-device {auto,cpu,cuda}]

JAX runs on its default backend; PyTorch on ``--torch-device`` (auto: CUDA when torch sees a GPU, else the CPU with
``--threads`` intra-op threads). On CUDA the PyTorch timer is read after ``torch.cuda.synchronize()``.

``--members 64`` measures instead what a 64-seed sweep of W1 compiles to: one vmapped program whose FLOP rate (matrix
products of the training step, counted analytically) is set against a single seed's, alternating the two.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without the package installed
    sys.path.insert(0, str(ROOT))

from peers import devices, sync, torch_device  # noqa: E402  (benchmarks/ is the script folder)

from vlab import data as vdata  # noqa: E402
from vlab.distributions import likelihoods  # noqa: E402
from vlab.engine import fit  # noqa: E402
from vlab.harness import data_config  # noqa: E402
from vlab.models.vae import VAESpec, init_vae  # noqa: E402
from vlab.objectives import vae as objective  # noqa: E402

BATCH, Z, HIDDEN, LR = 128, 16, (512, 256), 1e-3


def load(root: str) -> tuple[np.ndarray, np.ndarray]:
    cfg = data_config.DataConfig(source="idx", root=root, n_train=0, n_test=0)
    ds = data_config.load(cfg, jax.random.key(0))
    return np.asarray(ds.x_train, np.float32), np.asarray(ds.x_test, np.float32)


def run_vlab(x_train: np.ndarray, x_test: np.ndarray, steps: int, steps_per_epoch: int, seed: int) -> dict:
    """W1 trained by vlab's engine, one compiled program per epoch.

    Args:
        x_train: the training images.
        x_test: the test images.
        steps: training steps.
        steps_per_epoch: steps per compiled chunk.
        seed: the seed of the initialisation, the batches and the evaluation.

    Returns:
        ``{"steps_per_s", "compile_s", "test_elbo"}``.
    """
    spec = VAESpec(x_dim=784, z_dim=Z, hidden=HIDDEN, likelihood=likelihoods.BERNOULLI)
    params = init_vae(jax.random.key(seed), spec)
    loss_fn = objective.make_loss(spec)
    xs = jnp.asarray(x_train)
    batch_fn = lambda x, k: vdata.sample_batch(x, k, BATCH)
    res = fit(loss_fn, params, optax.adam(LR), jax.random.key(seed + 1), steps=steps, hp={"beta": jnp.asarray(1.0)},
              data=xs, batch_fn=batch_fn, chunk_size=steps_per_epoch, log_every=steps_per_epoch)
    ev = jax.jit(lambda m, k: objective.evaluate(m, spec, jnp.asarray(x_test), k, batch_size=1000))(
        res.params, jax.random.key(seed + 2))
    return {"steps_per_s": steps / res.train_s, "compile_s": res.compile_s,
            "test_elbo": float(np.mean(np.asarray(ev["elbo"])))}


def matmul_flops_per_step() -> float:
    """FLOPs of one W1 training step in its matrix products: 2 * batch * sum(fan_in * fan_out) forward, twice that
    backward (the gradients of inputs and weights), so 6 * batch * sum(fan_in * fan_out)."""
    sizes = [784, *HIDDEN, 2 * Z]
    dec = [Z, *reversed(HIDDEN), 784]
    pairs = list(zip(sizes[:-1], sizes[1:], strict=True)) + list(zip(dec[:-1], dec[1:], strict=True))
    return 6.0 * BATCH * sum(a * b for a, b in pairs)


def run_members(x_train: np.ndarray, n: int, steps: int, seed: int) -> dict:
    """``n`` seeds of W1 as one vmapped program (what a seed sweep compiles): member-steps per second."""
    spec = VAESpec(x_dim=784, z_dim=Z, hidden=HIDDEN, likelihood=likelihoods.BERNOULLI)
    keys = jax.random.split(jax.random.key(seed), n)
    params = jax.vmap(lambda k: init_vae(k, spec))(keys)
    batch_fn = lambda x, k: vdata.sample_batch(x, k, BATCH)
    res = fit(objective.make_loss(spec), params, optax.adam(LR), jax.random.split(jax.random.key(seed + 1), n),
              steps=steps, hp={"beta": jnp.ones(n)}, data=jnp.asarray(x_train), batch_fn=batch_fn, chunk_size=steps,
              log_every=steps)
    return {"member_steps_per_s": n * steps / res.train_s, "compile_s": res.compile_s,
            "final_loss": float(np.mean(res.history["loss"][-1]))}


def members_benchmark(x_train: np.ndarray, x_test: np.ndarray, n: int, steps: int, runs: int) -> dict:
    """The vmapped n-seed sweep's FLOP rate against one seed's (W1's own unvmapped program, :func:`run_vlab`),
    alternating, ``runs`` times each.

    Args:
        x_train: the training images.
        x_test: the test images.
        n: seeds of the vmapped program.
        steps: steps of the vmapped program (the single seed runs 8 times as many).
        runs: alternated runs of each.

    Returns:
        The FLOPs per step, both median GFLOP rates, ``members`` and their ``ratio``.
    """
    flops = matmul_flops_per_step()
    single, many = [], []
    for r in range(runs):
        single.append(run_vlab(x_train, x_test, steps * 8, steps * 8, seed=r)["steps_per_s"])
        many.append(run_members(x_train, n, steps, seed=r)["member_steps_per_s"])
        print(f"run {r}: 1 seed {single[-1] * flops / 1e9:6.1f} GFLOP/s ({single[-1]:.1f} steps/s); {n} seeds "
              f"vmapped {many[-1] * flops / 1e9:6.1f} GFLOP/s ({many[-1]:.1f} member-steps/s)", flush=True)
    s1, sn = statistics.median(single), statistics.median(many)
    out = {"flops_per_step": flops, "single_gflops": s1 * flops / 1e9, "vmapped_gflops": sn * flops / 1e9,
           "members": n, "ratio": sn / s1}
    print(f"{n}-seed vmapped sweep keeps {out['ratio']:.2f}x the single-seed FLOP rate (median "
          f"{out['vmapped_gflops']:.1f} vs {out['single_gflops']:.1f} GFLOP/s in matmuls; target >= 1.0)")
    return out


def run_gmvae(x_train: np.ndarray, x_test: np.ndarray, steps: int, steps_per_epoch: int, seed: int) -> dict:
    """The GM-VAE step at the same network sizes with K = 10 (q(z|w,x) network), for the 1.3x throughput goal.

    Args:
        x_train: the training images.
        x_test: the test images.
        steps: training steps.
        steps_per_epoch: steps per compiled chunk.
        seed: the seed of the initialisation, the batches and the evaluation.

    Returns:
        ``{"steps_per_s", "test_elbo"}``.
    """
    from vlab.objectives import gmvae

    spec = VAESpec(x_dim=784, z_dim=Z, hidden=HIDDEN, likelihood=likelihoods.BERNOULLI)
    params = gmvae.init_gmvae(jax.random.key(seed), spec, 10)
    loss_fn = gmvae.make_loss(spec, warmup_steps=steps // 2)
    batch_fn = lambda x, k: vdata.sample_batch(x, k, BATCH)
    res = fit(loss_fn, params, optax.adam(LR), jax.random.key(seed + 1), steps=steps, hp={"beta": jnp.asarray(1.0)},
              data=jnp.asarray(x_train), batch_fn=batch_fn, chunk_size=steps_per_epoch, log_every=steps_per_epoch)
    t = jax.jit(lambda m, k: gmvae.gmvae_terms(m, spec, jnp.asarray(x_test), k))(res.params, jax.random.key(seed + 2))
    return {"steps_per_s": steps / res.train_s, "test_elbo": float(np.mean(np.asarray(t.elbo)))}


def run_torch(x_train: np.ndarray, x_test: np.ndarray, steps: int, steps_per_epoch: int, seed: int,
              device=None) -> dict:
    """W1 in PyTorch eager, the same networks, optimiser and batches of random permutations.

    Args:
        x_train: the training images.
        x_test: the test images.
        steps: training steps.
        steps_per_epoch: steps per pass over a permutation.
        seed: torch's seed.
        device: the torch device (None: the CPU).

    Returns:
        ``{"steps_per_s", "test_elbo"}``.
    """
    import torch

    dev = torch.device("cpu") if device is None else device
    from torch import nn

    torch.manual_seed(seed)

    class VAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                                     nn.Linear(256, 2 * Z))
            self.dec = nn.Sequential(nn.Linear(Z, 256), nn.ReLU(), nn.Linear(256, 512), nn.ReLU(),
                                     nn.Linear(512, 784))

        def elbo(self, x):
            mu, log_var = self.enc(x).chunk(2, dim=-1)
            z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
            logits = self.dec(z)
            rec = -nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
            kl = 0.5 * (torch.exp(log_var) + mu**2 - log_var - 1.0).sum(-1)
            return rec - kl

    model = VAE().to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    xt = torch.from_numpy(np.array(x_train)).to(dev)
    n = xt.shape[0]
    sync(dev)
    t0 = time.perf_counter()
    step = 0
    while step < steps:
        perm = torch.randperm(n, device=dev)
        for i in range(steps_per_epoch):
            if step >= steps:
                break
            xb = xt[perm[i * BATCH:(i + 1) * BATCH]]
            loss = -model.elbo(xb).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    sync(dev)
    train_s = time.perf_counter() - t0
    with torch.no_grad():
        elbo = float(torch.cat([model.elbo(b) for b in torch.from_numpy(np.array(x_test)).to(dev).split(1000)])
                     .mean())
    return {"steps_per_s": steps / train_s, "test_elbo": elbo}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="PyTorch intra-op threads (on the CPU only)")
    p.add_argument("--torch-device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where the PyTorch side runs (auto: cuda if torch sees a GPU, else cpu)")
    p.add_argument("--root", default=vdata.DEFAULT_ROOT)
    p.add_argument("--json", help="write the results here")
    p.add_argument("--gmvae", action="store_true", help="also time the GM-VAE step (K = 10) at the same sizes")
    p.add_argument("--members", type=int, default=0, metavar="N",
                   help="instead: the FLOP rate of N seeds as one vmapped program against one seed")
    p.add_argument("--member-steps", type=int, default=40, help="steps of the N-seed program (one seed runs 8x)")
    args = p.parse_args()
    if args.members:
        x_train, x_test = load(args.root)
        print(f"W1 seed sweep: {args.members} seeds vmapped vs 1 seed; jax {jax.__version__} on "
              f"{jax.devices()[0].device_kind} ({jax.default_backend()})", flush=True)
        out = members_benchmark(x_train, x_test, args.members, args.member_steps, args.runs)
        out["devices"] = devices()
        if args.json:
            with open(args.json, "w") as f:
                json.dump(out, f, indent=2)
        return

    import torch

    dev = torch_device(args.torch_device)
    if dev.type == "cpu":
        torch.set_num_threads(args.threads)
        where = f"cpu, {args.threads} threads"
    else:
        where = f"{dev.type}, {torch.cuda.get_device_name(dev)}"
    x_train, x_test = load(args.root)
    steps_per_epoch = x_train.shape[0] // BATCH
    steps = args.epochs * steps_per_epoch
    print(f"W1: {x_train.shape[0]} train images, {steps} steps ({args.epochs} epochs), batch {BATCH}; "
          f"jax {jax.__version__} on {jax.devices()[0].device_kind} ({jax.default_backend()}), torch "
          f"{torch.__version__} ({where})", flush=True)
    impls = [("vlab", run_vlab), ("torch", functools.partial(run_torch, device=dev))] + (
        [("gmvae", run_gmvae)] if args.gmvae else [])
    results: dict[str, list[dict]] = {name: [] for name, _ in impls}
    for r in range(args.runs):
        for name, fn in impls:
            out = fn(x_train, x_test, steps, steps_per_epoch, seed=r)
            results[name].append(out)
            print(f"run {r} {name:5s}: {out['steps_per_s']:7.1f} steps/s, test ELBO {out['test_elbo']:.2f}",
                  flush=True)
    summary = {}
    for name, rows in results.items():
        sps = [row["steps_per_s"] for row in rows]
        summary[name] = {"steps_per_s_median": statistics.median(sps), "steps_per_s_min": min(sps),
                         "steps_per_s_max": max(sps),
                         "test_elbo_median": statistics.median(row["test_elbo"] for row in rows)}
    ratio = summary["vlab"]["steps_per_s_median"] / summary["torch"]["steps_per_s_median"]
    gap = summary["vlab"]["test_elbo_median"] - summary["torch"]["test_elbo_median"]
    summary["ratio"] = ratio
    summary["elbo_difference"] = gap
    for name in results:
        s = summary[name]
        print(f"{name:5s}: median {s['steps_per_s_median']:.1f} steps/s ({s['steps_per_s_min']:.1f}-"
              f"{s['steps_per_s_max']:.1f}), median test ELBO {s['test_elbo_median']:.2f}")
    print(f"ratio vlab / torch = {ratio:.2f} (target >= 1.6); test ELBO difference {gap:+.2f} nats (target >= -1)")
    if args.gmvae:
        slow = summary["vlab"]["steps_per_s_median"] / summary["gmvae"]["steps_per_s_median"]
        summary["gmvae_slowdown"] = slow
        print(f"GM-VAE step (K = 10) takes {slow:.2f}x the VAE step's time (target <= 1.3)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "summary": summary, "devices": devices(dev)}, f, indent=2)


if __name__ == "__main__":
    main()
