"""Laying a training state and its data on a ("data", "sweep") device mesh (jax.sharding), on one process or
many (a mesh across processes holds global arrays: each process fills and reads only its own devices' shards)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax


def put(tree: Any, sharding) -> Any:
    """Every leaf of ``tree`` (whole on this process) as an array laid out by ``sharding``: ``jax.device_put``
    when this process addresses all of its devices, else a global array of which this process supplies the
    shards on its own devices."""
    if sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)
    import numpy as np

    def leaf(x):
        x = x if isinstance(x, (jax.Array, np.ndarray)) else np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(leaf, tree)


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
    """Every leaf of ``tree`` as a NumPy array on this host, whole even when it is spread over devices.

    A global array that this process addresses only in part is gathered from all processes (a collective: every
    process calls this at the same point); a replicated one is read from this process's own copy."""
    import numpy as np

    def leaf(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            if x.is_fully_replicated:
                return np.asarray(x.addressable_data(0))
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree.map(leaf, tree)


def to_local(tree: Any) -> Any:
    """``tree`` with every global array that this process addresses only in part replaced by its whole value
    on this process's default device (gathered, a collective as in :func:`to_host`); other leaves unchanged.

    For a trained state handed back to code that reads it on one host (``np.asarray``, plain ``jax.jit``):
    after a run across processes each process holds the same whole state, as after a run on one."""
    import jax.numpy as jnp

    def leaf(x):
        if not (isinstance(x, jax.Array) and not x.is_fully_addressable):
            return x
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(jnp.asarray(to_host(jax.random.key_data(x))), impl=jax.random.key_impl(x))
        return jnp.asarray(to_host(x))

    return jax.tree.map(leaf, tree)


def shard_members(mesh, params: Any, keys: jax.Array, hp: Any, data: Any, batch_fn: Callable | None):
    """``(params, keys, hp, data, batch_fn)`` laid out on a ("data", "sweep") mesh for :func:`vlab.engine.loop.fit`,
    which follows its inputs' layout: members (the leading axis of ``params``, ``keys`` and ``hp``) split over
    "sweep", ``data`` replicated, and every batch ``batch_fn`` draws split over "data". Unchanged without a mesh.

    Args:
        mesh: a ``jax.sharding.Mesh`` with axes "data" and "sweep", or None.
        params: the trained parameters; with a batch of keys, every leaf's leading axis is the members'.
        keys: one PRNG key per member, shape (members,), or a single key for a fit without members.
        hp: the per-member hyperparameters (leading axis the members', as for ``params``).
        data: the data set ``batch_fn`` draws from, or None.
        batch_fn: ``(data, key) -> batch``, or None.

    Returns:
        ``(params, keys, hp, data, batch_fn)`` in that order, the arrays placed on the mesh and ``batch_fn``
        wrapped to constrain its batches' leading axis to "data" (where the axis divides); the inputs themselves
        when ``mesh`` is None.

    Raises:
        ValueError: "sweep" does not divide the number of members.
    """
    if mesh is None:
        return params, keys, hp, data, batch_fn
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from vlab.keys import is_key_batch

    vmapped = is_key_batch(keys)
    n_sweep, n = mesh.shape["sweep"], (keys.shape[0] if vmapped else 1)
    if n_sweep > 1 and (not vmapped or n % n_sweep):
        raise ValueError(f"{n_sweep} sweep devices do not divide the fit's {n} vmapped members")
    members = NamedSharding(mesh, P("sweep") if vmapped else P())
    params, keys, hp = put(params, members), put(keys, members), put(hp, members)
    if data is not None:
        data = put(data, NamedSharding(mesh, P()))
    return params, keys, hp, data, (split_batches(mesh, batch_fn) if batch_fn is not None else None)
