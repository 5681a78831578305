"""Named random-key streams: every use of randomness in an experiment has a name, not a position.

``stream(seed, "init")`` is ``fold_in(key(seed), crc32("init"))``: a typed JAX key that depends only on the seed and
the stream's name. Adding a stream, or drawing them in another order, changes no other stream's numbers, and a
member of a vmapped sweep (:class:`vlab.engine.members.Members`) gets exactly the keys of its separate run by
construction.
"""

from __future__ import annotations

import zlib

import jax


def stream(seed: int | jax.Array, name: str) -> jax.Array:
    """The key of stream ``name`` under ``seed`` (an int, or a typed key to derive sub-streams from)."""
    base = jax.random.key(int(seed)) if isinstance(seed, int) else seed
    return jax.random.fold_in(base, zlib.crc32(name.encode()) & 0x7FFFFFFF)


def is_key_batch(keys: jax.Array) -> bool:
    """Whether ``keys`` is a batch of keys (one per member) rather than one key, for raw or typed keys."""
    typed = jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key)
    return keys.ndim == (1 if typed else 2)
