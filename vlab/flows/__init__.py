"""Normalizing flows: bijections with log-determinants, composed into flows on R^d.

One module per family: :mod:`~vlab.flows.base` (the :class:`Bijection` contract, :func:`chain`, densities),
:mod:`~vlab.flows.affine` (elementwise affine, permutation, rotation), :mod:`~vlab.flows.coupling` (masks,
conditioners, RealNVP couplings), :mod:`~vlab.flows.spline` (rational-quadratic splines), :mod:`~vlab.flows.planar`
and :mod:`~vlab.flows.stacks` (one constructor per kind of flow: :func:`affine_flow`, :func:`spline_flow`,
:func:`planar_flow`).
"""

from vlab.flows.affine import elementwise_affine, permutation, rotation
from vlab.flows.base import (
    Bijection,
    Params,
    chain,
    invert,
    log_prob,
    sample_and_log_prob,
    shifted_softplus,
    standard_normal_log_prob,
)
from vlab.flows.coupling import (
    Conditioner,
    LogScale,
    affine_coupling,
    alternating_masks,
    conditioner_init,
    mask_indices,
    softplus_log_scale,
    tanh_log_scale,
)
from vlab.flows.planar import planar, planar_u_hat
from vlab.flows.spline import rq_spline_forward, rq_spline_inverse, rq_spline_params, spline_coupling
from vlab.flows.stacks import Coupling, affine_flow, coupling_flow, planar_flow, spline_flow, standardized_chain

__all__ = [
    "Bijection",
    "Conditioner",
    "Coupling",
    "LogScale",
    "Params",
    "affine_coupling",
    "affine_flow",
    "alternating_masks",
    "chain",
    "conditioner_init",
    "coupling_flow",
    "elementwise_affine",
    "invert",
    "log_prob",
    "mask_indices",
    "permutation",
    "planar",
    "planar_flow",
    "planar_u_hat",
    "rotation",
    "rq_spline_forward",
    "rq_spline_inverse",
    "rq_spline_params",
    "sample_and_log_prob",
    "shifted_softplus",
    "softplus_log_scale",
    "spline_coupling",
    "spline_flow",
    "standard_normal_log_prob",
    "standardized_chain",
    "tanh_log_scale",
]
