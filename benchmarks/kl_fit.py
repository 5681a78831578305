"""KL-fit speed: 256 exclusive-KL fits in one vmapped call vs one fit, vs PyTorch batched eager; cold start.

Workload W2: the Monte Carlo exclusive KL(q || p) of q = N(mu, sigma^2) to p = 1/3 N(-3,1) + 2/3 N(3,1), 256
reparameterised samples a step, Adam (lr 0.05), 2000 steps. vlab runs it through its training engine
(``vlab.engine.fit``, one compiled lax.scan, vmapped over initialisations); PyTorch runs the same 256 fits as one
batched eager program. Sides alternate, each timed ``--repeats`` times; the median is reported. Compilation is
timed separately and excluded from the per-call figures.

    pip install -r benchmarks/requirements.txt
    python benchmarks/kl_fit.py [--repeats 3] [--steps 2000] [--inits 256] [--torch-device {auto,cpu,cuda}]

JAX runs on its default backend; PyTorch on ``--torch-device`` (auto: CUDA when torch sees a GPU, else the CPU). On
CUDA the PyTorch timer is read after ``torch.cuda.synchronize()``.
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

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without the package installed
    sys.path.insert(0, str(ROOT))

from peers import devices, sync, torch_device  # noqa: E402  (benchmarks/ is the script folder)

from vlab.distributions import mixture_1d  # noqa: E402
from vlab.distributions.divergences import exclusive_kl_mc  # noqa: E402
from vlab.engine import fit  # noqa: E402
from vlab.keys import stream  # noqa: E402


def vlab_fits(n_inits: int, steps: int, samples: int, lr: float) -> tuple[float, float]:
    """(compile seconds, train seconds) of ``n_inits`` MC exclusive-KL fits in one vmapped call."""
    target = mixture_1d([1 / 3, 2 / 3], [-3.0, 3.0], [1.0, 1.0])

    def loss(params, target, key, hp):
        kl, _ = exclusive_kl_mc(key, params["mu"], jnp.exp(params["log_sigma"]), target.log_prob, samples)
        return kl, {}

    params = {"mu": jax.random.uniform(stream(0, "mu"), (n_inits,), minval=-8, maxval=8),
              "log_sigma": jax.random.uniform(stream(0, "log_sigma"), (n_inits,), minval=-1, maxval=2)}
    keys = jax.random.split(stream(0, "train"), n_inits)
    r = fit(loss, params, optax.adam(lr), keys, steps=steps, chunk_size=steps, log_every=steps, data=target)
    jax.block_until_ready(r.params)
    return r.compile_s, r.train_s


def torch_fits(n_inits: int, steps: int, samples: int, lr: float, device=None) -> float:
    """Seconds for the same fits as one batched PyTorch eager program (float32, on ``device``, the CPU if None)."""
    import math

    import torch

    dev = torch.device("cpu") if device is None else device
    torch.manual_seed(0)
    mu = (torch.rand(n_inits) * 16 - 8).to(dev).requires_grad_()
    log_sigma = (torch.rand(n_inits) * 3 - 1).to(dev).requires_grad_()
    opt = torch.optim.Adam([mu, log_sigma], lr=lr)
    log_w = torch.log(torch.tensor([1 / 3, 2 / 3])).to(dev)
    means = torch.tensor([-3.0, 3.0]).to(dev)
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        eps = torch.randn(n_inits, samples, device=dev)
        sigma = log_sigma.exp()[:, None]
        x = mu[:, None] + sigma * eps
        log_q = -0.5 * eps**2 - torch.log(sigma) - half_log_2pi
        log_p = torch.logsumexp(log_w - 0.5 * (x[..., None] - means) ** 2 - half_log_2pi, dim=-1)
        (log_q - log_p).mean(dim=1).sum().backward()
        opt.step()
    sync(dev)
    return time.perf_counter() - t0


def cold_start(cache: bool) -> dict:
    """Wall time of ``vlab run configs/kl_fit.yaml`` in a fresh process, and its own split."""
    import tempfile

    env = dict(os.environ)
    out = Path(tempfile.mkdtemp()) / "run"
    if not cache:
        env["VLAB_COMPILE_CACHE"] = "off"
    # the package need not be installed: the child finds it beside this script, as this process does
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    # on a GPU this process's JAX already holds most of the memory it preallocates; the child takes what it needs
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
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
    ap.add_argument("--torch-device", choices=["auto", "cpu", "cuda"], default="auto",
                    help="where the PyTorch side runs (auto: cuda if torch sees a GPU, else cpu)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    lr = 0.05
    dev = None if args.no_torch else torch_device(args.torch_device)
    info = devices(dev)
    torch_part = f", torch {info['torch']} on {info['torch_device_name']}" if dev is not None else ""
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} "
          f"({jax.default_backend()}, {info['jax_device']}){torch_part}", flush=True)
    t_one, t_many, t_torch, compiles = [], [], [], []
    for _ in range(args.repeats):  # alternate the sides
        c1, one = vlab_fits(1, args.steps, args.samples, lr)
        cm, many = vlab_fits(args.inits, args.steps, args.samples, lr)
        t_one.append(one)
        t_many.append(many)
        compiles.append(cm)
        if not args.no_torch:
            t_torch.append(torch_fits(args.inits, args.steps, args.samples, lr, dev))
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
    cold = {}
    for cache in (False, True):
        cs = cold[f"cache_{'warm' if cache else 'off'}"] = cold_start(cache)
        split = ", ".join(f"{k} {v:.2f}s" for k, v in cs.items() if k not in ("wall_s", "total"))
        print(f"  cold start `vlab run configs/kl_fit.yaml` (compile cache {'warm' if cache else 'off'}): "
              f"{cs['wall_s']:.2f} s wall ({split})")
    if args.json:
        out = {"devices": info, "cpus": os.cpu_count(), "jax": jax.__version__, "steps": args.steps,
               "samples": args.samples, "inits": args.inits, "repeats": args.repeats, "vlab_one_fit_s": t_one,
               "vlab_many_fits_s": t_many, "vlab_compile_s": compiles, "torch_s": t_torch, "cold_start": cold}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
