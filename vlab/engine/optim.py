"""A per-member learning-rate factor as an optax hyperparameter, for learning-rate sweeps in one vmapped program.

Every optax rule vlab builds is linear in its learning rate, so scaling a rule's updates by ``lr_factor`` is the rule
at learning rate ``lr_factor * lr`` (with the same schedule). :func:`lr_factor` is that scaling as an injected
hyperparameter: it sits right after the rule, so it scales the trained parameters' updates and nothing else (not a
step counter kept beside them), and :func:`set_lr_factor` gives each vmapped member its own value by name
(``optax.tree_utils.tree_set``), not by position in the optimiser state.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import optax

LR_FACTOR = "lr_factor"


def scale_by_lr_factor(lr_factor: float) -> optax.GradientTransformation:
    """Updates times ``lr_factor``."""
    return optax.scale(lr_factor)


def lr_factor() -> optax.GradientTransformation:
    """:func:`scale_by_lr_factor` with ``lr_factor`` (1 by default) held in the optimiser state as a hyperparameter."""
    return optax.inject_hyperparams(scale_by_lr_factor)(lr_factor=1.0)


def set_lr_factor(opt_state: Any, factors: Any) -> Any:
    """``opt_state`` with its ``lr_factor`` hyperparameter set to ``factors`` (one per vmapped member).

    Raises:
        ValueError: the optimiser has no ``lr_factor`` (build it with :func:`vlab.build_optimizer`, or chain
            :func:`lr_factor` after its rule).
    """
    found = optax.tree_utils.tree_get_all_with_path(opt_state, LR_FACTOR)
    if not found:
        raise ValueError("a per-member learning rate needs an optimiser with a learning-rate factor: build it with "
                         "vlab.build_optimizer, or chain vlab.engine.optim.lr_factor() after its rule")
    value = jnp.asarray(factors, dtype=found[0][1].dtype).reshape(jnp.shape(found[0][1]))
    return optax.tree_utils.tree_set(opt_state, **{LR_FACTOR: value})
