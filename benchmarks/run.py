"""The benchmark suite: every reference workload beside its peers, plus the cold start of every config.

Runs each ``benchmarks/<name>.py`` in turn (their own output, ratios measured within one run, goes to the screen and
to ``benchmarks/results/<name>.txt``), then times ``vlab run CONFIG`` (with the config's ``quick:`` overrides) in a
fresh process for every config under configs/, once with JAX's compilation cache off and once warm, and writes
``benchmarks/results/summary.md``: the machine, each benchmark's closing lines and the cold-start table.

    pip install -r benchmarks/requirements.txt -r benchmarks/requirements-flows.txt -r benchmarks/requirements-vae.txt
    python benchmarks/run.py [--only kl_fit flows vae_64_seeds] [--skip-cold-start]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def machine() -> str:
    import jax

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {jax.default_backend()} backend, jax {jax.__version__}"


# workloads that are a second mode of a benchmark script: name -> (script, arguments)
VARIANTS = {"vae_64_seeds": ("vae", ["--members", "64", "--runs", "2"])}


def run_benchmark(path: Path, extra: list[str] | None = None) -> tuple[str, float, int]:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, str(path), *(extra or [])], cwd=ROOT, capture_output=True, text=True)
    text = r.stdout + (f"\n[stderr]\n{r.stderr[-2000:]}" if r.returncode else "")
    return text, time.perf_counter() - t0, r.returncode


def quick_overrides(cfg: Path) -> list[str]:
    from omegaconf import OmegaConf

    raw = OmegaConf.load(cfg)
    quick = raw.get("quick")
    if quick is None:
        return []
    flat = OmegaConf.to_container(quick)

    def walk(tree, prefix=""):
        for k, v in tree.items():
            if isinstance(v, dict):
                yield from walk(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}={json.dumps(v)}"

    return list(walk(flat))


def cold_start(cfg: Path, cache_dir: str) -> dict:
    out = Path(tempfile.mkdtemp()) / "run"
    env = dict(os.environ, VLAB_COMPILE_CACHE=cache_dir)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "vlab", "run", str(cfg), *quick_overrides(cfg), "-q", "--out", str(out)],
                       cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode:
        return {"wall_s": wall, "error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed"}
    return {"wall_s": wall, **json.loads((out / "metrics.json").read_text()).get("timing", {})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", help="benchmark names (file stems) to run")
    ap.add_argument("--skip-cold-start", action="store_true")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = ["# vlab benchmarks", "", f"Machine: {machine()}", f"Date: {stamp}", ""]
    jobs = [(p.stem, p, []) for p in sorted((ROOT / "benchmarks").glob("*.py")) if p.name != "run.py"]
    jobs += [(name, ROOT / "benchmarks" / f"{script}.py", extra) for name, (script, extra) in VARIANTS.items()]
    for name, path, extra in jobs:
        if args.only and name not in args.only:
            continue
        print(f"== {name}: {path.name} {' '.join(extra)}", flush=True)
        text, secs, rc = run_benchmark(path, extra)
        print(text, flush=True)
        (RESULTS / f"{name}.txt").write_text(text)
        status = ", FAILED" if rc else ""
        lines += [f"## {name} ({secs:.0f} s{status})", "", "```", text.strip()[-3000:], "```", ""]
    if not args.skip_cold_start:
        lines += ["## Cold start (`vlab run CONFIG` with its quick overrides, fresh process)", "",
                  "| config | cache off: wall | import | compile | train | plots | cache warm: wall |",
                  "|---|---|---|---|---|---|---|"]
        cache = tempfile.mkdtemp()
        for cfg in sorted((ROOT / "configs").glob("*.yaml")):
            off = cold_start(cfg, "off")
            cold_start(cfg, cache)  # fill the cache
            warm = cold_start(cfg, cache)
            if "error" in off:
                lines.append(f"| {cfg.name} | failed: {off['error']} | | | | | |")
                continue
            g = lambda d, k: f"{d.get(k, 0):.2f}"
            lines.append(f"| {cfg.name} | {off['wall_s']:.2f} | {g(off, 'import')} | {g(off, 'compile')} | "
                         f"{g(off, 'train')} | {g(off, 'plots')} | {warm['wall_s']:.2f} |")
            print(lines[-1], flush=True)
    (RESULTS / "summary.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'summary.md'}")


if __name__ == "__main__":
    main()
