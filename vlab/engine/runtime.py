"""Device, precision and JAX's persistent compilation cache."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import jax

from vlab.errors import ConfigError

CACHE_ENV = "VLAB_COMPILE_CACHE"


def compile_cache_dir() -> Path | None:
    """Where compiled programs are cached: ``$VLAB_COMPILE_CACHE`` (``off`` disables it), else
    ``$XDG_CACHE_HOME/vlab/jax`` or ``~/.cache/vlab/jax``."""
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        return None if value.strip().lower() in ("", "0", "off", "none", "false") else Path(value)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vlab" / "jax"


def enable_compile_cache() -> Path | None:
    """Switch on JAX's persistent compilation cache, so a second run of a config skips compilation."""
    path = compile_cache_dir()
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.05)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def configure(device: str, precision: str) -> jax.Device:
    """Switch float64 on or off and return the device the run should use.

    ``device`` is ``auto`` (JAX's default backend), ``cpu``, ``gpu`` or ``tpu``; asking for an accelerator the
    machine does not have is a :class:`ConfigError` naming what is available.
    """
    jax.config.update("jax_enable_x64", precision == "float64")
    if device == "auto":
        return jax.local_devices()[0]
    try:
        return jax.local_devices(backend=device)[0]
    except RuntimeError:
        have = sorted({d.platform for d in jax.devices()})
        raise ConfigError(
            f"key 'device': value '{device}' is not available on this machine: expected one of "
            f"auto, {', '.join(have)}"
        ) from None


def make_mesh(data: int, sweep: int, platform: str) -> jax.sharding.Mesh | None:
    """A ``("data", "sweep")`` mesh over ``data * sweep`` devices of ``platform`` (None for one device).

    The devices are global: after :func:`maybe_initialize_distributed` they span every process, and a mesh
    takes the same number from each process (every process runs the same program, so each must hold a part)."""
    if data * sweep == 1:
        return None
    n = data * sweep
    devices = [d for d in jax.devices() if d.platform == platform]
    n_proc = jax.process_count()
    if n_proc > 1:
        by_process: dict[int, list] = {}
        for d in devices:
            by_process.setdefault(d.process_index, []).append(d)
        per = min(len(v) for v in by_process.values()) if len(by_process) == n_proc else 0
        if n % n_proc or n > n_proc * per:
            raise ConfigError(
                f"key 'parallel': value {{data: {data}, sweep: {sweep}}} is not valid: expected data * sweep a "
                f"multiple of {n_proc} (the number of processes) and <= {n_proc * per}, the number of {platform} "
                f"devices ({per} on each of {n_proc} processes)"
            )
        devices = [d for i in sorted(by_process) for d in by_process[i][: n // n_proc]]
    elif n > len(devices):
        raise ConfigError(
            f"key 'parallel': value {{data: {data}, sweep: {sweep}}} is not valid: expected data * sweep <= "
            f"{len(devices)}, the number of {platform} devices"
        )
    import numpy as np

    grid = np.asarray(devices[:n]).reshape(data, sweep)
    return jax.sharding.Mesh(grid, ("data", "sweep"))


DISTRIBUTED_ENV = ("JAX_COORDINATOR_ADDRESS", "COORDINATOR_ADDRESS")


def maybe_initialize_distributed() -> bool:
    """Call ``jax.distributed.initialize()`` when JAX's coordinator variables are set (many hosts), or when
    ``VLAB_DISTRIBUTED=1`` asks JAX to detect a cluster (SLURM, TPU pod slices). Returns whether it did."""
    if not (any(os.environ.get(k) for k in DISTRIBUTED_ENV) or os.environ.get("VLAB_DISTRIBUTED") == "1"):
        return False
    if jax.distributed.is_initialized():
        return True
    use_gloo_on_cpu()
    kwargs = {}
    if os.environ.get("JAX_COORDINATOR_ADDRESS"):
        kwargs = {"coordinator_address": os.environ["JAX_COORDINATOR_ADDRESS"]}
        if os.environ.get("JAX_NUM_PROCESSES"):
            kwargs["num_processes"] = int(os.environ["JAX_NUM_PROCESSES"])
        if os.environ.get("JAX_PROCESS_ID"):
            kwargs["process_id"] = int(os.environ["JAX_PROCESS_ID"])
    jax.distributed.initialize(**kwargs)
    return True


CPU_COLLECTIVES_ENV = "JAX_CPU_COLLECTIVES_IMPLEMENTATION"


def use_gloo_on_cpu() -> None:
    """Collectives between the CPU devices of different processes through Gloo (current JAX's default; older
    versions had none, and a program across CPU processes failed). Set before the backends start;
    ``$JAX_CPU_COLLECTIVES_IMPLEMENTATION`` (``mpi``) takes precedence."""
    if os.environ.get(CPU_COLLECTIVES_ENV):
        return
    with contextlib.suppress(AttributeError, KeyError, ValueError):  # a JAX without the option
        jax.config.update("jax_cpu_collectives_implementation", "gloo")


def describe_devices() -> dict:
    """Backend, device kind and count, for the run's record."""
    devs = jax.devices()
    return {"backend": jax.default_backend(), "kind": devs[0].device_kind, "count": len(devs),
            "local_count": jax.local_device_count(), "process": jax.process_index(),
            "processes": jax.process_count()}
