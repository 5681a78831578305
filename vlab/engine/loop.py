"""The training engine: a pure core (init, one step, a ``lax.scan`` over a chunk of steps) and a thin host loop.

An objective is one pure function ``loss_fn(params, batch, key, hp) -> (loss, aux)``: ``params`` is what is
trained and nothing else, ``hp`` a pytree of hyperparameters (a KL weight, a temperature) to which the engine adds
``hp["step"]``, the global step (int32, counted from 0, restored on resume), and ``aux`` a dict of metrics.

Members. With ``keys`` a batch of ``n`` keys, every leaf of ``params`` and ``hp`` has a leading axis of length
``n``: the step is vmapped over members (random initialisations, seeds, sweep points) and ``data`` is shared, so many
fits are one compiled program. ``hp["lr_factor"]``, when present, is each member's factor on the optimiser's
learning rate (:mod:`vlab.engine.optim`): it scales the parameter updates only.

Randomness. Step ``t`` of a member draws from ``fold_in(member_key, t)`` (split into a batch key and an objective
key), so a member draws exactly the numbers of its separate run and a resumed fit those of an uninterrupted one.

Host loop. Steps run ``chunk_size`` at a time in one compiled program; between chunks the loop records every
``log_every``-th step's loss and scalar metrics (per member), stops on a non-finite value
(:class:`vlab.errors.TrainingDiverged`), honours SIGINT/SIGTERM at a chunk boundary (:mod:`vlab.engine.interrupts`) and
calls the :class:`Callback` s (a run folder's history, checkpoints, a progress bar). The engine knows no run folder,
no config and no device mesh: it follows the layout of its inputs (:func:`vlab.engine.sharding.shard_members`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vlab.engine import interrupts
from vlab.engine.optim import LR_FACTOR, set_lr_factor
from vlab.engine.sharding import to_host, to_local
from vlab.errors import TrainingDiverged
from vlab.keys import is_key_batch

LossFn = Callable[[Any, Any, jax.Array, Any], tuple[jax.Array, dict[str, jax.Array]]]
BatchFn = Callable[[Any, jax.Array], Any]


class TrainState(NamedTuple):
    """What changes during training, plus each member's base key (fixed)."""

    params: Any
    opt_state: Any
    step: jax.Array
    keys: jax.Array


class FitResult(NamedTuple):
    """Final parameters and optimiser state, the recorded history and the seconds spent compiling and training.

    ``history`` maps ``"step"``, ``"loss"`` and every aux name to an array whose first axis runs
    over logged steps (every ``log_every``-th and the last) and, with members, whose second axis runs over members.
    ``compile_s`` and ``train_s`` include earlier segments of a resumed fit.
    """

    params: Any
    opt_state: Any
    history: dict[str, np.ndarray]
    compile_s: float
    train_s: float
    compiles: int


class Loop:
    """The host loop's state as callbacks see it: the fit's ``steps`` and ``n_members`` (None when not vmapped),
    the current ``state`` and ``history`` (lists per column), and the seconds of earlier segments.

    :meth:`Callback.on_start` may replace ``state``, ``history`` and ``prior_train_s`` / ``prior_compile_s``
    (that is how a checkpoint resumes a fit)."""

    def __init__(self, steps: int, n_members: int | None, state: TrainState):
        self.steps, self.n_members, self.state = steps, n_members, state
        self.history: dict[str, list] = {}
        self.prior_train_s = self.prior_compile_s = 0.0
        self.compile_s = 0.0
        self._t0: float | None = None

    @property
    def done(self) -> int:
        """Steps completed."""
        return int(self.state.step)

    @property
    def train_s(self) -> float:
        """Training seconds so far, earlier segments included."""
        return self.prior_train_s + (time.perf_counter() - self._t0 if self._t0 is not None else 0.0)

    @property
    def total_compile_s(self) -> float:
        return self.prior_compile_s + self.compile_s


class Callback:
    """Hooks of the host loop; every method is optional.

    ``rows`` passed to :meth:`on_chunk` are the chunk's logged steps: ``{"step": s, "loss": array, name: array}``
    with host arrays whose leading axis runs over members (scalars without members)."""

    def on_start(self, loop: Loop) -> None:
        """Before compiling: may restore ``loop.state`` and ``loop.history``."""

    def on_chunk(self, loop: Loop, rows: list[dict[str, Any]]) -> None:
        """After each chunk, ``loop.state`` advanced past it."""

    def on_end(self, loop: Loop) -> None:
        """After the last step."""

    def on_stop(self, loop: Loop, error: BaseException) -> None:
        """When the fit stops early (interrupted, or diverged): ``loop.state`` is the last finite state."""

    def on_close(self, loop: Loop) -> None:
        """Always, last."""


def make_step(loss_fn: LossFn, optimizer: optax.GradientTransformation, batch_fn: BatchFn | None):
    """One optimisation step of one member, ``(params, opt_state, key, step, hp, data) -> (params, opt_state,
    loss, aux)``, drawing the batch and the objective's randomness from ``fold_in(key, step)``."""

    def step_fn(params, opt_state, key, step, hp, data):
        k_batch, k_loss = jax.random.split(jax.random.fold_in(key, step))
        batch = batch_fn(data, k_batch) if batch_fn is not None else data
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, k_loss, {**hp, "step": step})
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, aux

    return step_fn


def init_state(params: Any, optimizer: optax.GradientTransformation, keys: jax.Array, hp: dict) -> TrainState:
    """The state at step 0: the optimiser's state of ``params`` (per member when ``keys`` is a batch), with each
    member's ``hp["lr_factor"]`` set in it."""
    opt_state = jax.vmap(optimizer.init)(params) if is_key_batch(keys) else optimizer.init(params)
    if LR_FACTOR in hp:
        opt_state = set_lr_factor(opt_state, hp[LR_FACTOR])
    return TrainState(params, opt_state, jnp.zeros((), jnp.int32), keys)


def make_chunk(step_fn: Callable, steps: int, chunk: int, vmapped: bool) -> Callable:
    """``(state, hp, data) -> (state, (loss, aux))``: ``chunk`` steps in one ``lax.scan``, steps past ``steps``
    leaving the state unchanged (the last chunk is as long as the others: one compiled program)."""
    member_step = jax.vmap(step_fn, in_axes=(0, 0, 0, None, 0, None)) if vmapped else step_fn

    def run_chunk(state: TrainState, hp: Any, data: Any):
        def body(st: TrainState, _):
            p, o, loss, aux = member_step(st.params, st.opt_state, st.keys, st.step, hp, data)
            if reserved := {"step", "loss"} & set(aux):
                raise ValueError(f"the objective's metric {sorted(reserved)[0]!r} shadows a history column: "
                                 "rename it")
            active = st.step < steps
            keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(active, a, b), new, old)  # noqa: E731
            return TrainState(keep(p, st.params), keep(o, st.opt_state), st.step + active, st.keys), (loss, aux)

        return jax.lax.scan(body, state, length=chunk)

    return run_chunk


def _check_members(params: Any, hp: dict, n: int) -> None:
    for what, tree in (("params", params), ("hp", hp)):
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            if jnp.ndim(leaf) == 0 or jnp.shape(leaf)[0] != n:
                raise ValueError(f"{what}{jax.tree_util.keystr(path)} has shape {list(jnp.shape(leaf))}: with {n} "
                                 f"member keys every leaf of params and hp needs a leading axis of {n}")


def fit(
    loss_fn: LossFn,
    params: Any,
    optimizer: optax.GradientTransformation,
    keys: jax.Array,
    *,
    steps: int,
    hp: dict | None = None,
    data: Any = None,
    batch_fn: BatchFn | None = None,
    chunk_size: int = 500,
    log_every: int = 10,
    callbacks: Sequence[Callback] = (),
) -> FitResult:
    """Minimise ``loss_fn(params, batch, key, hp)`` for ``steps`` optax steps, compiled once, in chunks.

    Args:
        loss_fn: the objective, ``(params, batch, key, hp) -> (loss, aux)``.
        params: the initial parameters (with members: every leaf stacked over a leading member axis).
        optimizer: an optax transformation (with ``hp["lr_factor"]``, one carrying :func:`vlab.engine.optim.lr_factor`).
        keys: one key, or a batch of ``n`` keys for ``n`` vmapped members.
        steps: optimisation steps.
        hp: hyperparameters passed to the objective (per member with a leading axis); the engine adds ``"step"``.
        data: a pytree of arrays passed to every chunk (never baked into the program as constants).
        batch_fn: ``batch_fn(data, key)`` draws a batch inside the compiled loop (without it the batch is ``data``).
        chunk_size: steps per compiled ``lax.scan``.
        log_every: steps between recorded history rows (the last step is always recorded).
        callbacks: host-side hooks between chunks (:class:`Callback`).

    Returns:
        A :class:`FitResult`; its arrays are local to this process.

    Raises:
        TrainingDiverged: the loss or a metric became non-finite (callbacks' ``on_stop`` see the last finite state).
        KeyboardInterrupt: SIGINT or SIGTERM, honoured after the chunk under way (``on_stop`` runs first).
    """
    hp = dict(hp or {})
    if "step" in hp:
        raise ValueError("hp['step'] is the engine's: the objective receives the global step under that name")
    vmapped = is_key_batch(keys)
    n_members = int(keys.shape[0]) if vmapped else None
    if vmapped:
        _check_members(params, hp, n_members)
    chunk = int(min(chunk_size, steps))
    traces = [0]
    run_chunk = make_chunk(make_step(loss_fn, optimizer, batch_fn), steps, chunk, vmapped)

    def counted(state, hp_, data_):
        traces[0] += 1
        return run_chunk(state, hp_, data_)

    state = jax.jit(lambda p, k, h: init_state(p, optimizer, k, h))(params, keys, hp)
    loop = Loop(steps, n_members, state)
    try:
        for cb in callbacks:
            cb.on_start(loop)
        t0 = time.perf_counter()
        compiled = jax.jit(counted).lower(loop.state, hp, data).compile()
        loop.compile_s = time.perf_counter() - t0
        loop._t0 = time.perf_counter()
        with interrupts.deferred():
            while loop.done < steps:
                start = loop.done
                new_state, (loss, aux) = compiled(loop.state, hp, data)
                loss, aux = to_host((loss, aux))
                n_valid = min(chunk, steps - start)
                _check_finite(loss[:n_valid], {k: v[:n_valid] for k, v in aux.items()}, start, vmapped)
                loop.state = new_state
                rows = _logged_rows(loss, aux, start, n_valid, steps, log_every)
                for row in rows:
                    for k, v in row.items():
                        loop.history.setdefault(k, []).append(v)
                for cb in callbacks:
                    cb.on_chunk(loop, rows)
                interrupts.check()
        for cb in callbacks:
            cb.on_end(loop)
        interrupts.check()
    except (KeyboardInterrupt, TrainingDiverged) as e:
        for cb in callbacks:
            cb.on_stop(loop, e)
        raise
    finally:
        for cb in callbacks:
            cb.on_close(loop)
    history = {k: np.stack([np.asarray(x) for x in v]) for k, v in loop.history.items()}
    return FitResult(to_local(loop.state.params), to_local(loop.state.opt_state), history, loop.total_compile_s,
                     loop.train_s, traces[0])


def _logged_rows(loss, aux, start: int, n_valid: int, steps: int, log_every: int) -> list[dict]:
    """The chunk's logged steps (every ``log_every``-th and the last): step, loss and every aux value."""
    rows = []
    for i in range(n_valid):
        s = start + i
        if s % log_every == 0 or s == steps - 1:
            row = {"step": s, "loss": loss[i]}
            row.update({k: v[i] for k, v in aux.items()})
            rows.append(row)
    return rows


def _check_finite(loss, aux, start: int, vmapped: bool) -> None:
    items = {"loss": loss, **aux}
    bad = {k: ~np.isfinite(v) for k, v in items.items() if np.issubdtype(v.dtype, np.floating)}
    if not any(b.any() for b in bad.values()):
        return
    idx, metric = min((np.argwhere(b)[0].tolist(), k) for k, b in bad.items() if b.any())
    where = f" (member {idx[1]})" if vmapped and len(idx) > 1 else ""
    raise TrainingDiverged(f"{metric} became non-finite at step {start + idx[0]}{where}; training stopped at step "
                           f"{start}, the last finite state")
