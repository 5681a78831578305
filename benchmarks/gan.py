"""GAN-dynamics speed: compiled lax.scan vs a Python loop of jitted steps, a vmapped step-size sweep vs a loop,
and vlab's optimistic GDA vs optax.optimistic_gradient_descent (the same numbers; timings in docs/performance.md).

G1: the Dirac-GAN (non-saturating loss, R1 = 0.3, instance noise over 64 nodes), simultaneous GDA, a = 0.1,
``--steps`` steps: ``vlab.algorithms.gda.simulate`` (one compiled scan) against the anti-pattern of calling a jitted
step from Python once per step. G2: the stability diagram of V = d g, five rules, ``--points`` step sizes, each a
150-step trajectory plus the Jacobian spectrum: one jit(vmap) program against a Python loop over step sizes of the
same jitted per-step-size function. G3: optimistic GDA on the Dirac-GAN, vlab's rule against
``gda.from_optax(optax.optimistic_gradient_descent(a))`` under the same scan. Each timing is the median of
``--repeats`` calls after one warm-up call; compilation is timed separately.

    python benchmarks/gan.py [--repeats 5] [--steps 20000] [--points 200] [--out benchmarks/results/gan.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import optax

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without the package installed
    sys.path.insert(0, str(ROOT))

from vlab.algorithms import gda  # noqa: E402
from vlab.models import games  # noqa: E402
from vlab.objectives import gan  # noqa: E402


def timed(fn, repeats: int) -> tuple[float, float]:
    """(first call incl. compilation, median of ``repeats`` warm calls) in seconds."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    warm = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        warm.append(time.perf_counter() - t0)
    return first, statistics.median(warm)


def g1_scan_vs_loop(steps: int, repeats: int) -> dict:
    game = gan.dirac_gan(gan.NON_SATURATING, r1=0.3, noise_std=0.5)
    rule = gda.simultaneous(0.1)
    z0 = (jnp.array(0.5), jnp.array(1.0))
    key = jax.random.key(0)
    scan = jax.jit(lambda z0: gda.simulate(rule, game, z0, key, steps, record=False).dist[-1])
    step = jax.jit(lambda s, k: rule.step(game, s, jax.random.fold_in(key, k)))

    def loop():
        s = rule.init(z0)
        for k in range(steps):
            s = step(s, k)
        return s.z

    c_scan, t_scan = timed(lambda: scan(z0), repeats)
    c_loop, t_loop = timed(loop, max(1, repeats // 2))
    final_loop = float(jnp.linalg.norm(jnp.stack(loop())))
    return {"steps": steps, "scan_s": t_scan, "loop_s": t_loop, "scan_first_call_s": c_scan,
            "loop_first_call_s": c_loop, "speedup": t_loop / t_scan,
            "steps_per_s_scan": steps / t_scan, "steps_per_s_loop": steps / t_loop,
            "same_result": abs(float(scan(z0)) - final_loop) < 1e-6}


def g2_sweep(points: int, repeats: int) -> dict:
    game, z0 = games.bilinear(), (jnp.array(1.0), jnp.array(0.5))
    zero = (jnp.array(0.0), jnp.array(0.0))

    def per_a(a):
        out = {}
        for name, kind in gda.RULES.items():
            rule = gda.make_rule(kind, a)
            traj = gda.simulate(rule, game, z0, jax.random.key(0), 150, escape=1e12)
            out[name] = (gda.spectral_radius(gda.update_jacobian(rule, game, zero)), gda.dmd_spectral_radius(traj))
        return out

    grid = jnp.linspace(0.02, 2.5, points)
    vmapped = jax.jit(jax.vmap(per_a))
    single = jax.jit(per_a)
    c_v, t_v = timed(lambda: vmapped(grid), repeats)
    c_l, t_l = timed(lambda: [single(a) for a in grid], max(1, repeats // 2))
    worst = max(float(jnp.max(jnp.abs(vmapped(grid)[n][1] / jax.vmap(
        lambda a, n=n: gda.bilinear_spectral_radius(gda.RULES[n], a))(grid) - 1))) for n in gda.RULES)
    return {"points": points, "rules": len(gda.RULES), "vmapped_s": t_v, "loop_s": t_l, "vmapped_first_call_s": c_v,
            "loop_first_call_s": c_l, "speedup": t_l / t_v, "max_rel_error_measured_vs_closed_form": worst}


def g3_ogda(steps: int, repeats: int) -> dict:
    game = gan.dirac_gan(gan.NON_SATURATING, r1=0.3)
    z0 = (jnp.array(0.5), jnp.array(1.0))
    key = jax.random.key(0)
    ours = jax.jit(lambda: gda.simulate(gda.optimistic(0.1), game, z0, key, steps).z_path)
    ref = jax.jit(lambda: gda.simulate(gda.from_optax(optax.optimistic_gradient_descent(0.1)), game, z0, key,
                                       steps).z_path)
    _, t_ours = timed(ours, repeats)
    _, t_ref = timed(ref, repeats)
    return {"steps": steps, "vlab_s": t_ours, "optax_s": t_ref, "ratio_optax_over_vlab": t_ref / t_ours,
            "max_abs_difference": float(jnp.max(jnp.abs(ours() - ref())))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--points", type=int, default=200)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gan.json"))
    a = p.parse_args()
    jax.config.update("jax_enable_x64", True)
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "jax": jax.__version__,
               "backend": jax.default_backend(), "device": jax.devices()[0].device_kind}
    print(f"GAN dynamics (JAX only, float64): {a.steps} steps, {a.points} step sizes, {a.repeats} repeats; "
          f"jax {jax.__version__} on {machine['device']} ({machine['backend']}), {machine['cpus']} cores", flush=True)
    res = {
        "machine": machine,
        "G1_scan_vs_python_loop": g1_scan_vs_loop(a.steps, a.repeats),
        "G2_vmapped_step_size_sweep": g2_sweep(a.points, a.repeats),
        "G3_optimistic_vs_optax": g3_ogda(a.steps, a.repeats),
    }
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    g1, g2, g3 = res["G1_scan_vs_python_loop"], res["G2_vmapped_step_size_sweep"], res["G3_optimistic_vs_optax"]
    print(f"G1 Dirac-GAN {g1['steps']} steps: scan {g1['scan_s'] * 1e3:.1f} ms, Python loop {g1['loop_s']:.2f} s "
          f"-> {g1['speedup']:.0f}x ({g1['steps_per_s_scan']:.3g} steps/s)")
    print(f"G2 stability sweep {g2['points']} step sizes x {g2['rules']} rules: "
          f"vmapped {g2['vmapped_s'] * 1e3:.1f} ms, loop {g2['loop_s'] * 1e3:.1f} ms -> {g2['speedup']:.1f}x; "
          f"measured vs closed form {g2['max_rel_error_measured_vs_closed_form']:.1e}")
    print(f"G3 OGDA {g3['steps']} steps: vlab {g3['vlab_s'] * 1e3:.1f} ms, optax {g3['optax_s'] * 1e3:.1f} ms, "
          f"max |difference| {g3['max_abs_difference']:.1e}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
