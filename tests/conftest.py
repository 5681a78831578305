"""Shared fixtures: float64 where closed forms are checked to 1e-8, a clean x64 state around every test, and one
quick run per config shared by the tests that read it."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

import jax
import pytest

ROOT = Path(__file__).resolve().parent.parent

jax.config.update("jax_debug_nans", False)


@pytest.fixture(autouse=True)
def _restore_x64():
    """Commands run in-process switch float64 on or off; put it back after each test."""
    before = jax.config.jax_enable_x64
    yield
    jax.config.update("jax_enable_x64", before)


@pytest.fixture(autouse=True)
def _close_figures():
    """vlab's figures are not pyplot's, but a test may draw with pyplot itself: close every pyplot figure after each
    test, so a worker that runs many files does not pile them up."""
    yield
    import sys

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


@pytest.fixture
def x64():
    """Run the test in float64."""
    jax.config.update("jax_enable_x64", True)
    yield


def quick_run(name: str, tmp_path_factory) -> Path:
    """The folder of a completed ``vlab run configs/<name>.yaml --quick``, run once per test session and shared by
    every test (and pytest-xdist worker) that asks for it: the contract test and an experiment's own tests read the
    same run instead of training it twice."""
    from vlab.cli.main import main

    root = tmp_path_factory.getbasetemp()
    root = root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root  # shared by the workers of one session
    shared = root / "quick-runs"
    shared.mkdir(exist_ok=True)
    out = shared / name
    with open(shared / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "metrics.json").exists():
            if out.exists():
                shutil.rmtree(out)
            assert main(["run", str(ROOT / "configs" / f"{name}.yaml"), "--quick", "-q", "--out", str(out)]) == 0
    return out


@pytest.fixture
def quick(tmp_path_factory):
    """``quick(name)``: the shared quick run of ``configs/<name>.yaml`` (:func:`quick_run`)."""
    return lambda name: quick_run(name, tmp_path_factory)
