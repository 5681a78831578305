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
