"""Update rules for two-player games as ``(init, step)`` pairs, and the tools that analyse them.

Every rule moves ``z = (d, g)`` against the game's vector field ``F(z) = (grad_d loss_d, grad_g loss_g)``
(:func:`vlab.models.games.field`) with step size ``a``; in optax's manner a rule is a pair of pure functions with
a small NamedTuple state, composable with any :class:`vlab.models.games.Game`:

* simultaneous GDA      ``z' = z - a F(z)``  (seed 002 question 4: ``[[1, a], [-a, 1]]`` on ``V = d g``)
* alternating GDA       ``d' = d - a F_d(d, g)``, then ``g' = g - a F_g(d', g)``
* extragradient         ``z' = z - a F(z - a F(z))``                      (Korpelevich 1976)
* optimistic GDA        ``z' = z - a((alpha + beta) F(z_k) - beta F(z_{k-1}))``  (Daskalakis et al. 2018;
  the same update as ``optax.optimistic_gradient_descent``, first step included)
* consensus optimisation ``z' = z - a (F + gamma grad 1/2 ||F||^2) = z - a (F + gamma J_F^T F)``
  (Mescheder, Nowozin & Geiger 2017, "The Numerics of GANs")
* any optax transformation applied to ``F`` (:func:`from_optax`).

Analysis: :func:`simulate` runs a rule under ``jit(lax.scan)`` and stops a trajectory that leaves a ball
(reporting the step) instead of producing NaNs; :func:`update_jacobian` differentiates one step of a rule
at an equilibrium with ``jax.jacobian``; :func:`bilinear_spectral_radius` gives the closed forms for ``d^T A
g``; :func:`dmd_spectral_radius` measures the spectral radius from a simulated trajectory alone.

A :class:`RuleKind` bundles a rule's constructor with its closed forms (:data:`SIMULTANEOUS`, ...,
:data:`CONSENSUS`); :data:`RULES` names the kinds for configs.
"""

from vlab.algorithms.gda.linear import (
    ALTERNATING,
    CONSENSUS,
    EXTRAGRADIENT,
    OPTIMISTIC,
    RULES,
    SIMULTANEOUS,
    bilinear_spectral_radius,
    linear_update_matrix,
    spectral_radius,
    update_jacobian,
)
from vlab.algorithms.gda.rules import (
    Hyperparameters,
    OptaxState,
    OptimisticState,
    PointState,
    RuleKind,
    UpdateRule,
    alternating,
    consensus,
    extragradient,
    from_optax,
    make_rule,
    optimistic,
    simultaneous,
)
from vlab.algorithms.gda.simulation import (
    Trajectory,
    dmd_spectral_radius,
    norm_growth_rate,
    simulate,
    split_floats,
    state_vector,
    valid_mask,
)

__all__ = [
    "ALTERNATING",
    "CONSENSUS",
    "EXTRAGRADIENT",
    "Hyperparameters",
    "OPTIMISTIC",
    "OptaxState",
    "OptimisticState",
    "PointState",
    "RULES",
    "RuleKind",
    "SIMULTANEOUS",
    "Trajectory",
    "UpdateRule",
    "alternating",
    "bilinear_spectral_radius",
    "consensus",
    "dmd_spectral_radius",
    "extragradient",
    "from_optax",
    "linear_update_matrix",
    "make_rule",
    "norm_growth_rate",
    "optimistic",
    "simulate",
    "simultaneous",
    "spectral_radius",
    "split_floats",
    "state_vector",
    "update_jacobian",
    "valid_mask",
]
