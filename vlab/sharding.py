"""Laying a training state and its data on a ("data", "sweep") device mesh (jax.sharding)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax


def place(mesh, state: Any, data: Any, vmapped: bool, n_members: int | None, name: str):
    """Lay the state on a ("data", "sweep") mesh with members split over "sweep", and replicate the data."""
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from vlab.errors import ConfigError

    n_sweep = mesh.shape["sweep"]
    if n_sweep > 1 and (not vmapped or n_members % n_sweep):
        raise ConfigError(f"key 'parallel.sweep': value {n_sweep} is not valid for '{name}': expected a divisor of "
                          f"its {n_members or 1} vmapped members")
    state = jax.device_put(state, NamedSharding(mesh, P("sweep") if vmapped else P()))
    if data is not None:
        data = jax.device_put(data, NamedSharding(mesh, P()))
    return state, data


def split_batches(mesh, batch_fn: Callable) -> Callable:
    """``batch_fn`` whose batches are split over the mesh's "data" axis (leaves whose leading axis divides);
    XLA partitions the loss and all-reduces the gradient."""
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    n_data = mesh.shape["data"]
    sharding = NamedSharding(mesh, P("data"))

    def leaf(x):
        if n_data > 1 and x.ndim and x.shape[0] % n_data == 0:
            return jax.lax.with_sharding_constraint(x, sharding)
        return x

    return lambda data, key: jax.tree.map(leaf, batch_fn(data, key))


def to_host(tree: Any) -> Any:
    """Every leaf of ``tree`` as a NumPy array on this host, whole even when it is spread over devices."""
    import numpy as np

    return jax.tree.map(np.asarray, tree)
