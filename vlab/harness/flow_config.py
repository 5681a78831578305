"""A normalizing flow from its configuration: the schema :class:`FlowConfig` and :func:`make_flow`.

The flow is ``x = F(u) = A(f_L(... f_1(u)))``, ``u ~ N(0, I)``: ``layers`` coupling (or planar) units built by the
kind's constructor (:func:`vlab.flows.affine_flow`, :func:`vlab.flows.spline_flow`, :func:`vlab.flows.planar_flow`),
and, with ``standardize``, a last elementwise affine map ``A(z) = z * scale + loc`` that starts at the data's
location and scale, so the couplings start on standardised data. The config's names (kind, activation, affine
scale, direction, mixing) are resolved here, once, into the constructors, callables and flags the library takes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp

from vlab import flows
from vlab.harness.config import spec
from vlab.nn import ACTIVATIONS


@dataclass
class FlowConfig:
    """The bijection stack: ``layers`` units of one ``kind``, base side first."""

    kind: Literal["affine", "spline", "planar"] = "affine"
    layers: int = spec(8, ge=1, help="coupling or planar layers")
    hidden: int = spec(64, ge=1, help="conditioner MLP width")
    depth: int = spec(2, ge=1, help="conditioner MLP hidden layers")
    activation: Literal["relu", "tanh", "elu", "gelu", "silu"] = "gelu"
    affine_scale: Literal["exp", "softplus"] = spec("softplus", help="coupling scale: exp(c tanh(s/c)) or softplus")
    bins: int = spec(8, ge=2, help="spline bins (kind: spline)")
    bound: float = spec(4.0, gt=0, help="splines act on [-bound, bound], identity outside")
    direction: Literal["data_to_base", "base_to_data"] = spec(
        "data_to_base", help="the direction in which each coupling is affine (or a spline)")
    mixing: Literal["alternate", "rotation"] = spec(
        "alternate", help="between couplings: masks alternate only, or also a fixed random rotation")
    bias_init: float = spec(2.5, ge=0, help="conditioner hidden biases start U(-b, b), spreading the units' kinks")
    standardize: bool = spec(True, help="a last elementwise affine layer starts at the data's mean and std")


# The config's names for the coupling's log-scale map (``affine_scale``).
AFFINE_SCALES: dict[str, flows.LogScale] = {"exp": flows.tanh_log_scale, "softplus": flows.softplus_log_scale}


def conditioner(f: FlowConfig) -> flows.Conditioner:
    """The couplings' conditioner settings of ``f``, its activation name resolved in :data:`vlab.nn.ACTIVATIONS`."""
    return flows.Conditioner(hidden=f.hidden, depth=f.depth, activation=ACTIVATIONS[f.activation],
                             bias_init=f.bias_init)


def _coupling_options(f: FlowConfig, loc, scale) -> dict:
    return {"conditioner": conditioner(f), "invert_couplings": f.direction == "data_to_base",
            "rotations": f.mixing == "rotation", "loc": loc, "scale": scale}


def _affine(f: FlowConfig, dim: int, loc, scale) -> flows.Bijection:
    return flows.affine_flow(dim, f.layers, log_scale=AFFINE_SCALES[f.affine_scale],
                             **_coupling_options(f, loc, scale))


def _spline(f: FlowConfig, dim: int, loc, scale) -> flows.Bijection:
    return flows.spline_flow(dim, f.layers, bins=f.bins, bound=f.bound, **_coupling_options(f, loc, scale))


def _planar(f: FlowConfig, dim: int, loc, scale) -> flows.Bijection:
    return flows.planar_flow(dim, f.layers, loc=loc, scale=scale)


# ``FlowConfig.kind`` -> the constructor of that kind, called as ``build(f, dim, loc, scale)``.
KINDS: dict[str, Callable[..., flows.Bijection]] = {"affine": _affine, "spline": _spline, "planar": _planar}


def make_flow(f: FlowConfig, dim: int, loc: jax.Array | None = None,
              scale: jax.Array | None = None) -> flows.Bijection:
    """The flow ``f`` describes on ``R^dim`` (the constructor :data:`KINDS` names for ``f.kind``); with
    ``f.standardize`` its last layer starts at location ``loc`` and scale ``scale`` (without them, or without
    ``standardize``, there is no such layer)."""
    if not f.standardize:
        loc = scale = None
    return KINDS[f.kind](f, dim, loc, scale)


def standardized_init(flow: flows.Bijection, key: jax.Array, loc: jax.Array, scale: jax.Array) -> flows.Params:
    """``make_flow(f, dim, loc, scale).init(key)`` for ``flow = make_flow(f, dim, loc0, scale0)`` built
    with any ``loc0, scale0``: the couplings' parameters from ``key``, the last elementwise layer at
    ``exp(log_scale) = scale``, ``shift = loc``. Jittable in ``loc`` and ``scale``, so members of one vmapped
    program can start at their own data's location and scale from one flow."""
    params = flow.init(key)
    last = params[-1]
    if not (isinstance(last, dict) and set(last) == {"log_scale", "shift"}):
        raise ValueError("standardized_init needs a flow whose last layer is elementwise_affine (standardize: true "
                         "with loc and scale)")
    return (*params[:-1], {"log_scale": jnp.log(jnp.asarray(scale, last["log_scale"].dtype)),
                           "shift": jnp.asarray(loc, last["shift"].dtype)})
