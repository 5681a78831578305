"""What the benchmarks share about their PyTorch peers: which device they run on, and when a timer may be read."""

from __future__ import annotations

import sys


def torch_device(choice: str):
    """The torch device ``--torch-device`` names (auto: cuda when torch sees a GPU, else cpu); asking for cuda
    where torch sees none ends the program with one line."""
    import torch

    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        sys.exit(f"error: --torch-device cuda: torch {torch.__version__} sees no CUDA device")
    return torch.device(choice)


def sync(dev) -> None:
    """Wait for queued CUDA work before a timer is read (nothing on the CPU)."""
    if dev.type == "cuda":
        import torch

        torch.cuda.synchronize(dev)


def devices(dev=None) -> dict:
    """Each side's device, for the header and the JSON: JAX's backend and device, and (given a torch device) torch's
    version, device type and device name."""
    import jax

    out = {"jax_backend": jax.default_backend(), "jax_device": jax.devices()[0].device_kind}
    if dev is not None:
        import torch

        out.update(torch=torch.__version__, torch_device=dev.type,
                   torch_device_name=torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu")
    return out
