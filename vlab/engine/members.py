"""The members of one vmapped training program: sweep points whose shapes agree, times seeds.

A sweep over keys that leave every array shape unchanged (a learning rate, a KL weight, a seed) need not compile one
program per point: each point becomes ``n_seeds`` members of a single ``vmap``-ed training run, the swept values
enter as per-member arrays, and each point's members start from the random keys a separate run of that point would
use. :class:`Members` is that bookkeeping: member ``i`` is seed ``i % n_seeds`` of point ``i // n_seeds``.

An experiment opts in by listing the keys it can take per member in ``Experiment.member_keys``; the base class
(:class:`vlab.Experiment`) builds its members, and ``vlab run --sweep`` runs shape-equal keys as one program.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vlab import trees

LR_KEY = "train.optimizer.lr"


def short_items(point: dict[str, Any]) -> list[str]:
    """``key=value`` for each key of a sweep point, the key shortened to its last part (``lr=0.001``)."""
    return [f"{k.split('.')[-1]}={v:g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}"
            for k, v in point.items()]


class Members:
    """Sweep points (dicts of dotted config keys to values) times ``n_seeds``, in point-major order."""

    def __init__(self, cfg: Any, points: Sequence[dict[str, Any]] | None = None, n_seeds: int | None = None):
        self.cfg = cfg
        self.points = [dict(p) for p in points] if points else [{}]
        self.n_seeds = int(n_seeds if n_seeds is not None else getattr(cfg, "n_seeds", 1))

    def expand(self, key: str, values: Sequence[Any]) -> Members:
        """Each point repeated for each of ``values`` of ``key`` (unless the point already sets ``key``): an
        experiment's own list-valued hyperparameter (a list of KL weights) becomes members the same way a sweep does."""
        points = []
        for p in self.points:
            points += [p] if key in p else [{**p, key: v} for v in values]
        return Members(self.cfg, points, self.n_seeds)

    def __len__(self) -> int:
        return len(self.points) * self.n_seeds

    @property
    def swept(self) -> bool:
        """Whether any point sets a key (a sweep, or an expanded list)."""
        return any(self.points)

    def value(self, point: dict[str, Any], key: str) -> Any:
        """``key`` at ``point``: the point's value, else the config's."""
        return point[key] if key in point else trees.get(self.cfg, key)

    def values(self, key: str, dtype: Any = None) -> np.ndarray:
        """``key`` for every member, shape ``(len(self),)``."""
        return np.repeat(np.asarray([self.value(p, key) for p in self.points], dtype=dtype), self.n_seeds)

    def lr_factors(self) -> np.ndarray | None:
        """Per-member factors on the configured learning rate when a point sets it (``hp["lr_factor"]``)."""
        if not any(LR_KEY in p for p in self.points):
            return None
        return self.values(LR_KEY, np.float64) / float(trees.get(self.cfg, LR_KEY))

    def keys(self, stream: Callable[[int], jax.Array]) -> jax.Array:
        """Per-member random keys: for each point, ``split(stream(seed), n_seeds)`` with the point's seed (or the
        config's), exactly the keys a separate run of that point splits for its ``n_seeds`` members. ``stream``
        maps a seed to the run's key for one use (initialisation, training, evaluation), e.g.
        ``lambda s: jax.random.split(jax.random.key(s), 4)[1]``."""
        seeds = [int(self.value(p, "seed")) for p in self.points]
        return jnp.concatenate([jax.random.split(stream(s), self.n_seeds) for s in seeds])

    def point_of(self, i: int) -> dict[str, Any]:
        """The point member ``i`` belongs to."""
        return self.points[i // self.n_seeds]

    def label(self, i: int) -> str:
        """Member ``i`` for a legend, a check or a log line: ``seed 1``, or ``lr=0.001, seed 1`` in a sweep."""
        return ", ".join([*short_items(self.point_of(i)), f"seed {i % self.n_seeds}"])

    def labels(self) -> list[dict[str, Any]]:
        """What tells each member apart: its point's values (dotted keys) and its seed index."""
        return [{**self.point_of(i), "seed_index": i % self.n_seeds} for i in range(len(self))]

    def groups(self) -> list[tuple[dict[str, Any], slice]]:
        """Each point with the slice of its members."""
        return [(p, slice(j * self.n_seeds, (j + 1) * self.n_seeds)) for j, p in enumerate(self.points)]

    def rows(self, per_member: dict[str, Sequence[float]]) -> list[dict[str, Any]]:
        """One table row per member: its point's values, its seed index and its metrics."""
        out = []
        for i in range(len(self)):
            row: dict[str, Any] = {**self.point_of(i), "seed_index": i % self.n_seeds}
            for k, v in per_member.items():
                x = v[i]
                row[k] = None if x is None else float(x)
            out.append(row)
        return out
