"""GM-VAE clustering of Fashion-MNIST against its floor, and the GM-VAE step against the plain VAE step.

In one process, on one machine:

(a) the floor: k-means on raw pixels (k-means++ seeding, Lloyd steps, restarts; :mod:`vlab.algorithms.clustering`)
fitted to the
    training images, test images assigned to the nearest centre, scored with the experiment's own accuracy (the best
    one-to-one map of clusters to labels) and NMI (:mod:`vlab.harness.metrics`); ``--kmeans-seeds`` seeds as one vmapped
    program;
(b) the GM-VAE config (``configs/gmvae_fashion_mnist.yaml``, its seeds one vmapped program) run through the CLI, for
    each q(z|w,x) named by ``--qz``: test accuracy and NMI mean +- std over seeds, and the wall-clock time;
(c) throughput: training steps per second of the GM-VAE (K = 10, both forms of q(z|w,x), and the exact one with
    full covariances) and of the plain VAE at the config's network sizes and batch, one member each, alternated
    ``--runs`` times; the ratio VAE / GM-VAE is the GM-VAE's slowdown (target <= 1.3).

    .venv/bin/python benchmarks/gmvae.py [--qz exact network] [--runs 3] [--steps 300] [--skip-train] [OVERRIDES]

Results go to ``benchmarks/results/gmvae.json`` and a table to the screen.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import optax

from vlab import data as vdata
from vlab.algorithms import clustering
from vlab.engine import fit
from vlab.harness import data_config, metrics
from vlab.harness.model_config import spec_of
from vlab.keys import stream
from vlab.models.vae import VAESpec, init_vae
from vlab.objectives import gmvae
from vlab.objectives import vae as vae_obj

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "gmvae_fashion_mnist.yaml"
RESULTS = ROOT / "benchmarks" / "results"


def kmeans_floor(ds, seeds: int, k: int = 10) -> dict:
    """k-means on raw pixels, ``seeds`` seeds vmapped; accuracy and NMI of the test images' nearest centres."""
    t0 = time.perf_counter()
    fitted = jax.jit(jax.vmap(lambda kk: clustering.kmeans(kk, ds.x_train, k, n_init=3, n_iter=100)))(
        jax.random.split(jax.random.key(0), seeds))
    test = np.asarray(jax.vmap(lambda c: clustering.nearest_center(ds.x_test, c))(fitted.centers))
    seconds = time.perf_counter() - t0
    y = np.asarray(ds.y_test)
    acc = [metrics.clustering_accuracy(y, a)[0] for a in test]
    nmi = [metrics.nmi(y, a) for a in test]
    return {"accuracy": metrics.across_members(acc), "nmi": metrics.across_members(nmi), "seconds": seconds}


def gmvae_config(qz: str, overrides: list[str]) -> dict:
    """The GM-VAE config run through the CLI (its own vmapped seeds); accuracy, NMI and the run's wall time."""
    from vlab.cli.main import main

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        t0 = time.perf_counter()
        code = main(["run", str(CONFIG), f"mixture.qz={qz}", *overrides, "--out", str(out), "--quiet"])
        seconds = time.perf_counter() - t0
        if code != 0:
            raise SystemExit(f"vlab run {CONFIG} mixture.qz={qz} failed with exit status {code}")
        m = json.loads((out / "metrics.json").read_text())
    return {"accuracy": m["test"]["accuracy"], "nmi": m["test"]["nmi"], "elbo": m["test"]["elbo"],
            "kmeans_init": m.get("kmeans_init"), "em_init": m.get("em_init"), "seconds": seconds}


def throughput(x_train: jax.Array, spec: VAESpec, batch: int, steps: int, which: str, seed: int) -> float:
    """Training steps per second of one member (compile excluded): the plain VAE or the GM-VAE (K = 10).

    Args:
        x_train: the training images.
        spec: the networks' static shape.
        batch: the batch size.
        steps: timed training steps.
        which: ``vae`` or ``gmvae_<qz>[_<covariance>]`` (the experiment's names of q(z|w,x) and of the covariance
            form).
        seed: the seed of the initialisation and the batches.

    Returns:
        Steps per second.
    """
    key = stream(seed, "init")
    if which == "vae":
        params = init_vae(key, spec)
        loss_fn = vae_obj.make_loss(spec)
    else:  # gmvae_<qz>[_<covariance>]
        _, qz, *cov = which.split("_")
        params = gmvae.init_gmvae(key, spec, 10, qz_hidden=(64,) if qz == "network" else None,
                                  covariance=clustering.COVARIANCES[cov[0] if cov else "spherical"])
        loss_fn = gmvae.make_loss(spec, qz_logits=gmvae.QZ_LOGITS[qz], warmup_steps=steps // 2)
    res = fit(loss_fn, params, optax.adam(1e-3), stream(seed, "train"), steps=steps, chunk_size=steps,
              log_every=steps, data=x_train, batch_fn=lambda x, k: vdata.sample_batch(x, k, batch))
    return steps / res.train_s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--qz", nargs="+", default=["exact", "network"], choices=["exact", "network"])
    p.add_argument("--kmeans-seeds", type=int, default=3)
    p.add_argument("--runs", type=int, default=3, help="alternated throughput runs of each model")
    p.add_argument("--steps", type=int, default=300, help="timed training steps per throughput run")
    p.add_argument("--skip-train", action="store_true", help="only (a) and (c): no GM-VAE config runs")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the GM-VAE config")
    args = p.parse_args()

    from vlab.cli.main import load

    _, cfg = load(str(CONFIG), args.overrides)
    ds = data_config.load(cfg.data)
    print(f"Fashion-MNIST: {ds.x_train.shape[0]} train, {ds.x_test.shape[0]} test images; jax {jax.__version__} on "
          f"{jax.devices()[0].device_kind}", flush=True)
    results: dict = {"machine": jax.devices()[0].device_kind}

    results["kmeans_raw_pixels"] = floor = kmeans_floor(ds, args.kmeans_seeds)
    print(f"(a) k-means on raw pixels ({args.kmeans_seeds} seeds): accuracy {floor['accuracy']['mean']:.3f} +- "
          f"{floor['accuracy']['std']:.3f}, NMI {floor['nmi']['mean']:.3f} ({floor['seconds']:.0f} s)", flush=True)

    if not args.skip_train:
        for qz in args.qz:
            r = results[f"gmvae_{qz}"] = gmvae_config(qz, args.overrides)
            print(f"(b) GM-VAE, q(z|w,x) {qz}: accuracy {r['accuracy']['mean']:.3f} +- {r['accuracy']['std']:.3f}, "
                  f"NMI {r['nmi']['mean']:.3f} +- {r['nmi']['std']:.3f} over {len(r['accuracy']['values'])} seeds "
                  f"({r['seconds']:.0f} s)", flush=True)

    m = cfg.model
    spec = spec_of(m, ds.x_train.shape[1])
    names = ["vae", "gmvae_exact", "gmvae_network", "gmvae_exact_full"]
    speed: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.runs):
        for n in names:
            speed[n].append(throughput(ds.x_train, spec, cfg.batch_size, args.steps, n, r))
    med = {n: statistics.median(v) for n, v in speed.items()}
    results["throughput"] = {"steps_per_s": speed, "median": med, "batch": cfg.batch_size,
                             "hidden": list(m.hidden), "z_dim": m.z_dim,
                             "slowdown": {n: med["vae"] / med[n] for n in names[1:]}}
    print(f"(c) steps/s at hidden {list(m.hidden)}, z_dim {m.z_dim}, batch {cfg.batch_size} (median of {args.runs}): "
          + ", ".join(f"{n} {med[n]:.0f}" for n in names), flush=True)

    rows = [("k-means, raw pixels", floor["accuracy"], floor["nmi"], floor["seconds"])]
    rows += [(f"GM-VAE, q(z|w,x) {qz}", results[f"gmvae_{qz}"]["accuracy"], results[f"gmvae_{qz}"]["nmi"],
              results[f"gmvae_{qz}"]["seconds"]) for qz in args.qz if f"gmvae_{qz}" in results]
    print("\n| method | test accuracy | test NMI | seconds |\n| --- | --- | --- | --- |")
    for name, acc, nmi, sec in rows:
        print(f"| {name} | {acc['mean']:.3f} +- {acc['std']:.3f} | {nmi['mean']:.3f} +- {nmi['std']:.3f} | "
              f"{sec:.0f} |")
    print("\n| model | steps/s | time per step vs VAE (target <= 1.3) |\n| --- | --- | --- |")
    for n in names:
        print(f"| {n} | {med[n]:.1f} | {med['vae'] / med[n]:.2f}x |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "gmvae.json").write_text(json.dumps(results, indent=2))
    print(f"\nwrote {RESULTS / 'gmvae.json'}")


if __name__ == "__main__":
    main()
