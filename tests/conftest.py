"""Shared fixtures: float64 where closed forms are checked to 1e-8, and a clean x64 state around every test."""

from __future__ import annotations

import jax
import pytest

jax.config.update("jax_debug_nans", False)


@pytest.fixture(autouse=True)
def _restore_x64():
    """Commands run in-process switch float64 on or off; put it back after each test."""
    before = jax.config.jax_enable_x64
    yield
    jax.config.update("jax_enable_x64", before)


@pytest.fixture
def x64():
    """Run the test in float64."""
    jax.config.update("jax_enable_x64", True)
    yield
