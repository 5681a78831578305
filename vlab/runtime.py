"""Device and precision: the two keys every experiment understands."""

from __future__ import annotations

import jax

from vlab.errors import ConfigError


def configure(device: str, precision: str) -> jax.Device:
    """Switch float64 on or off and return the device the run should use.

    ``device`` is ``auto`` (JAX's default backend), ``cpu``, ``gpu`` or ``tpu``; asking for an accelerator the
    machine does not have is a :class:`ConfigError` naming what is available.
    """
    jax.config.update("jax_enable_x64", precision == "float64")
    if device == "auto":
        return jax.devices()[0]
    try:
        return jax.devices(device)[0]
    except RuntimeError:
        have = sorted({d.platform for d in jax.devices()})
        raise ConfigError(
            f"key 'device': value '{device}' is not available on this machine: expected one of "
            f"auto, {', '.join(have)}"
        ) from None


def describe_devices() -> dict:
    """Backend, device kind and count, for the run's record."""
    devs = jax.devices()
    return {"backend": jax.default_backend(), "kind": devs[0].device_kind, "count": len(devs)}
