"""KL-fit speed: 256 exclusive-KL fits in one vmapped call vs one fit, vs PyTorch batched eager; cold start.

Workload W2: the Monte Carlo exclusive KL(q || p) of q = N(mu, sigma^2) to p = 1/3 N(-3,1) + 2/3 N(3,1), 256
reparameterised samples a step, Adam (lr 0.05), 2000 steps. vlab runs it through its training engine
(``vlab.train.fit``, one compiled lax.scan, vmapped over initialisations); PyTorch runs the same 256 fits as one
batched eager program. Sides alternate, each timed ``--repeats`` times; the median is reported. Compilation is
timed separately and excluded from the per-call figures.

    pip install -r benchmarks/requirements.txt
    python benchmarks/kl_fit.py [--repeats 3] [--steps 2000] [--inits 256]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

from vlab.distributions import mixture_1d
from vlab.divergences import exclusive_kl_mc
from vlab.train import fit

ROOT = Path(__file__).resolve().parent.parent


def vlab_fits(n_inits: int, steps: int, samples: int, lr: float) -> tuple[float, float]:
    """(compile seconds, train seconds) of ``n_inits`` MC exclusive-KL fits in one vmapped call."""
    target = mixture_1d([1 / 3, 2 / 3], [-3.0, 3.0], [1.0, 1.0])

    def loss(params, target, key):
        kl, _ = exclusive_kl_mc(key, params["mu"], jnp.exp(params["log_sigma"]), target.log_prob, samples)
        return kl, {}

    k_mu, k_ls, k_fit = jax.random.split(jax.random.key(0), 3)
    params = {"mu": jax.random.uniform(k_mu, (n_inits,), minval=-8, maxval=8),
              "log_sigma": jax.random.uniform(k_ls, (n_inits,), minval=-1, maxval=2)}
    r = fit(loss, params, optax.adam(lr), k_fit, steps=steps, chunk_size=steps, log_every=steps, data=target,
            n_members=n_inits, progress=False)
    jax.block_until_ready(r.params)
    return r.compile_s, r.train_s


def torch_fits(n_inits: int, steps: int, samples: int, lr: float) -> float:
    """Seconds for the same fits as one batched PyTorch eager program (float32, CPU)."""
    import math

    import torch

    torch.manual_seed(0)
    mu = (torch.rand(n_inits) * 16 - 8).requires_grad_()
    log_sigma = (torch.rand(n_inits) * 3 - 1).requires_grad_()
    opt = torch.optim.Adam([mu, log_sigma], lr=lr)
    log_w = torch.log(torch.tensor([1 / 3, 2 / 3]))
    means = torch.tensor([-3.0, 3.0])
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        eps = torch.randn(n_inits, samples)
        sigma = log_sigma.exp()[:, None]
        x = mu[:, None] + sigma * eps
        log_q = -0.5 * eps**2 - torch.log(sigma) - half_log_2pi
        log_p = torch.logsumexp(log_w - 0.5 * (x[..., None] - means) ** 2 - half_log_2pi, dim=-1)
        (log_q - log_p).mean(dim=1).sum().backward()
        opt.step()
    return time.perf_counter() - t0


def cold_start(cache: bool) -> dict:
    """Wall time of ``vlab run configs/kl_fit.yaml`` in a fresh process, and its own split."""
    import tempfile

    env = dict(os.environ)
    out = Path(tempfile.mkdtemp()) / "run"
    if not cache:
        env["VLAB_COMPILE_CACHE"] = "off"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vlab", "run", str(ROOT / "configs" / "kl_fit.yaml"), "-q", "--out",
                    str(out)], check=True, env=env, capture_output=True)
    wall = time.perf_counter() - t0
    timing = json.loads((out / "metrics.json").read_text())["timing"]
    return {"wall_s": wall, **timing}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--inits", type=int, default=256)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch side")
    args = ap.parse_args()
    lr = 0.05
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} "
          f"({jax.default_backend()})")
    t_one, t_many, t_torch, compiles = [], [], [], []
    for _ in range(args.repeats):  # alternate the sides
        c1, one = vlab_fits(1, args.steps, args.samples, lr)
        cm, many = vlab_fits(args.inits, args.steps, args.samples, lr)
        t_one.append(one)
        t_many.append(many)
        compiles.append(cm)
        if not args.no_torch:
            t_torch.append(torch_fits(args.inits, args.steps, args.samples, lr))
    one, many = statistics.median(t_one), statistics.median(t_many)
    print(f"W2 exclusive KL, {args.steps} steps x {args.samples} samples, median of {args.repeats}:")
    print(f"  vlab, 1 fit                 {one:8.3f} s")
    print(f"  vlab, {args.inits} fits (one vmapped call) {many:8.3f} s   ratio to 1 fit: {many / one:.2f}x "
          "(target < 3x)")
    print(f"  vlab compile (once)         {statistics.median(compiles):8.3f} s")
    if t_torch:
        torch_s = statistics.median(t_torch)
        print(f"  PyTorch eager, {args.inits} batched {torch_s:8.3f} s   vlab / PyTorch: {many / torch_s:.2f}x "
              "(target <= 0.4x)")
    cold_start(True)  # fill the compilation cache for the warm measurement
    for cache in (False, True):
        cs = cold_start(cache)
        split = ", ".join(f"{k} {v:.2f}s" for k, v in cs.items() if k not in ("wall_s", "total"))
        print(f"  cold start `vlab run configs/kl_fit.yaml` (compile cache {'warm' if cache else 'off'}): "
              f"{cs['wall_s']:.2f} s wall ({split})")


if __name__ == "__main__":
    main()
