"""Distinct local optima of a function of two variables: Newton refinement lands on the closed-form minima, fits
are grouped by the optimum they reached, and fits that reached none are told apart."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from vlab.algorithms.optima import distinct_optima, newton_polish


def f(a, b):
    """(a^2 - 1)^2 + b^2 + 0.3 a: minima where 4a(a^2 - 1) + 0.3 = 0 (the outer two roots), b = 0."""
    return (a**2 - 1) ** 2 + b**2 + 0.3 * a


def minima() -> np.ndarray:
    roots = np.sort(np.roots([4.0, 0.0, -4.0, 0.3]).real)
    return roots[[0, 2]]  # the middle root is the local maximum in a


def test_newton_lands_on_the_closed_form_minimum(x64):
    z, ok = newton_polish(f, jnp.asarray([1.2, 0.4]))
    assert bool(ok)
    np.testing.assert_allclose(np.asarray(z), [minima()[1], 0.0], atol=1e-12)
    _, ok = newton_polish(f, jnp.asarray([0.05, 0.0]))  # next to the maximum in a: not a strict minimum
    assert not bool(ok)


def test_fits_are_grouped_by_the_optimum_they_reached(x64):
    points = jnp.asarray([[1.1, 0.1], [0.9, -0.1], [-1.05, 0.05], [0.0, 3.0]])
    optima, reached, value = distinct_optima(f, points, tol=0.3)
    lo, hi = minima()
    assert [o.members.tolist() for o in optima] == [[2], [0, 1]]  # the lower minimum (a < 0) first
    np.testing.assert_allclose(optima[0].point, [lo, 0.0], atol=1e-12)
    np.testing.assert_allclose(optima[1].point, [hi, 0.0], atol=1e-12)
    assert optima[0].value == pytest.approx(float(f(lo, 0.0)), abs=1e-12) and optima[0].value < optima[1].value
    assert reached.tolist() == [True, True, True, False]
    np.testing.assert_allclose(value, [float(f(*p)) for p in np.asarray(points)], rtol=1e-12)
