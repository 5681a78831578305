"""Flows of several layers of one family, base side first: one constructor per family.

:func:`affine_flow` (RealNVP couplings), :func:`spline_flow` (rational-quadratic spline couplings) and
:func:`planar_flow` share :func:`coupling_flow` / :func:`standardized_chain`: couplings with alternating masks,
optionally a fixed random rotation between them, and a last elementwise affine layer at the data's location and
scale. Their defaults are the flow benchmark's recipe (benchmarks/flows.py; its results are in
docs/performance.md): softplus-scaled couplings written in the data-to-base direction, GELU conditioners with
first-layer biases ``U(-2.5, 2.5)`` (:class:`Conditioner`), masks alternating without rotations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vlab.flows.affine import elementwise_affine, rotation
from vlab.flows.base import Bijection, chain, invert
from vlab.flows.coupling import Conditioner, LogScale, affine_coupling, alternating_masks, softplus_log_scale
from vlab.flows.planar import planar
from vlab.flows.spline import spline_coupling

Coupling = Callable[[int, np.ndarray], Bijection]


def _padded(b: Bijection) -> Bijection:
    """A 2-D coupling acting on ``(0, u)`` as a 1-D bijection of ``u``."""

    def forward(p, u):
        y, ld = b.forward(p, jnp.concatenate([jnp.zeros(1, u.dtype), u]))
        return y[1:], ld

    def inverse(p, x):
        y, ld = b.inverse(p, jnp.concatenate([jnp.zeros(1, x.dtype), x]))
        return y[1:], ld

    return Bijection(b.init, forward, inverse)


def _check_layers(layers: int) -> None:
    if layers < 1:
        raise ValueError(f"a flow needs at least one layer (got {layers})")


def standardized_chain(units: Sequence[Bijection], dim: int, loc: jax.Array | None = None,
                       scale: jax.Array | None = None) -> Bijection:
    """:func:`chain` of ``units``, followed, when ``loc`` or ``scale`` is given, by an :func:`elementwise_affine`
    layer that starts at that location and scale (the flow then starts on standardised data)."""
    if loc is not None or scale is not None:
        units = [*units, elementwise_affine(dim, loc, scale)]
    return chain(units)


def coupling_flow(
    dim: int,
    layers: int,
    coupling: Coupling,
    *,
    invert_couplings: bool = True,
    rotations: bool = False,
    loc: jax.Array | None = None,
    scale: jax.Array | None = None,
) -> Bijection:
    """``layers`` couplings ``coupling(d, mask)`` with alternating masks (:func:`alternating_masks`), base side first.

    In 1-D, where no coordinate can pass through, each coupling acts on ``(0, u)``: its conditioner sees a
    constant, so each layer is one learned elementwise map.

    Args:
        dim: the dimension ``d`` of the flow.
        layers: the number of couplings (at least 1).
        coupling: ``coupling(d, mask) -> Bijection``, a coupling on ``R^d`` whose coordinates where ``mask`` is
            True pass through.
        invert_couplings: write each coupling in the data-to-base direction (``u_B = x_B exp(s(x_A)) + t(x_A)``,
            affine in the data: the direction maximum likelihood differentiates, and the one FlowJAX defaults to);
            otherwise in the base-to-data direction.
        rotations: put a fixed random orthogonal :func:`rotation` (``log|det J| = 0``) between successive
            couplings, so they split the coordinates along different directions, not only the axes.
        loc, scale: with either, a last :func:`elementwise_affine` layer starts at this location and scale
            (:func:`standardized_chain`).

    Returns:
        The flow as one :class:`Bijection` (its parameters are a tuple of the layers' parameters).
    """
    _check_layers(layers)
    units: list[Bijection] = []
    d = dim if dim > 1 else 2
    for mask in alternating_masks(d, layers):
        if dim == 1:  # pad: a constant coordinate conditions the only real one
            mask = np.array([True, False])
        u = coupling(d, mask)
        u = _padded(u) if dim == 1 else u
        if rotations and dim > 1 and units:
            units.append(rotation(dim, jax.random.key(len(units))))
        units.append(invert(u) if invert_couplings else u)
    return standardized_chain(units, dim, loc, scale)


def affine_flow(
    dim: int,
    layers: int,
    *,
    conditioner: Conditioner | None = None,
    log_scale: LogScale = softplus_log_scale,
    invert_couplings: bool = True,
    rotations: bool = False,
    loc: jax.Array | None = None,
    scale: jax.Array | None = None,
) -> Bijection:
    """A RealNVP flow: ``layers`` :func:`affine_coupling` layers stacked by :func:`coupling_flow`.

    Args:
        dim: the dimension of the flow.
        layers: the number of couplings (at least 1).
        conditioner: the couplings' MLP settings (default ``Conditioner()``, the benchmark's recipe).
        log_scale: the map from the conditioner's raw output to the log-scale ``s``
            (:func:`softplus_log_scale` or :func:`tanh_log_scale`).
        invert_couplings, rotations, loc, scale: as in :func:`coupling_flow`.

    Returns:
        The flow as one :class:`Bijection`.
    """
    return coupling_flow(dim, layers, lambda d, mask: affine_coupling(d, mask, conditioner, log_scale),
                         invert_couplings=invert_couplings, rotations=rotations, loc=loc, scale=scale)


def spline_flow(
    dim: int,
    layers: int,
    *,
    bins: int = 8,
    bound: float = 4.0,
    conditioner: Conditioner | None = None,
    invert_couplings: bool = True,
    rotations: bool = False,
    loc: jax.Array | None = None,
    scale: jax.Array | None = None,
) -> Bijection:
    """A neural spline flow: ``layers`` :func:`spline_coupling` layers stacked by :func:`coupling_flow`.

    Args:
        dim: the dimension of the flow.
        layers: the number of couplings (at least 1).
        bins: the number of spline bins (at least 2).
        bound: the splines act on ``[-bound, bound]`` and are the identity outside.
        conditioner: the couplings' MLP settings (default ``Conditioner()``).
        invert_couplings, rotations, loc, scale: as in :func:`coupling_flow`.

    Returns:
        The flow as one :class:`Bijection`.
    """
    return coupling_flow(dim, layers, lambda d, mask: spline_coupling(d, mask, bins, bound, conditioner),
                         invert_couplings=invert_couplings, rotations=rotations, loc=loc, scale=scale)


def planar_flow(dim: int, layers: int, *, loc: jax.Array | None = None,
                scale: jax.Array | None = None) -> Bijection:
    """``layers`` :func:`planar` layers, then (with ``loc`` or ``scale``) the elementwise affine layer of
    :func:`standardized_chain`. A planar flow has no closed-form inverse: it suits reverse KL, not likelihood."""
    _check_layers(layers)
    return standardized_chain([planar(dim) for _ in range(layers)], dim, loc, scale)
