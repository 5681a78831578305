"""One training engine for every experiment: optax updates inside ``jit(lax.scan)`` over chunks of steps.

An objective is a pure function ``loss_fn(params, batch, key) -> (loss, aux)`` where ``aux`` is a dict of metrics.
:func:`fit` minimises it with an optax transformation. Steps run in chunks of ``chunk_size`` inside one compiled
``lax.scan``; between chunks the host updates progress, appends the metrics history, checks for NaN/inf and writes
checkpoints. ``n_members`` vmaps the whole step over a leading axis of the parameters (random initialisations,
seeds): many fits are one compiled program. The step's key is ``fold_in(member_key, step)``, so a resumed run
draws exactly the random numbers an uninterrupted one would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vlab import interrupts
from vlab.errors import TrainingDiverged
from vlab.optim import set_lr_factor
from vlab.progress import Progress
from vlab.sharding import place, split_batches, to_host, to_local

LossFn = Callable[[Any, Any, jax.Array], tuple[jax.Array, dict[str, jax.Array]]]


class TrainState(NamedTuple):
    """Everything that changes during training (``keys`` stays fixed: one base key per member)."""

    params: Any
    opt_state: Any
    keys: jax.Array


class FitResult(NamedTuple):
    """Final parameters and optimiser state, the recorded history and the time spent compiling and training.

    ``history`` maps ``"step"``, ``"loss"`` and every aux name to an array whose first axis runs over logged
    steps (every ``log_every``-th and the last) and, with ``n_members``, whose second axis runs over members.
    """

    params: Any
    opt_state: Any
    history: dict[str, np.ndarray]
    compile_s: float
    train_s: float
    compiles: int


def _where(pred, new, old):
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), new, old)


def make_step(loss_fn: LossFn, optimizer: optax.GradientTransformation, batch_fn: Callable | None,
              with_step: bool = False):
    """One optimisation step of one member.

    ``(params, opt_state, key, step, data) -> (params, opt_state, loss, aux)`` with the step's randomness drawn
    from ``fold_in(key, step)``: one key for the batch, one for the objective. With ``with_step`` the objective is
    called as ``loss_fn(params, batch, key, step)`` (annealed or tempered objectives).
    """

    def step_fn(params, opt_state, key, step, data):
        k_batch, k_loss = jax.random.split(jax.random.fold_in(key, step))
        batch = batch_fn(data, k_batch) if batch_fn is not None else data
        extra = (step,) if with_step else ()
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, k_loss, *extra)
        updates, new_opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_opt_state, loss, aux

    return step_fn


def _scalar_means(loss: np.ndarray, aux: dict[str, np.ndarray], n_lead: int) -> dict[str, float]:
    axes = tuple(range(n_lead))
    out = {"loss": float(np.mean(loss, axis=axes)) if loss.ndim else float(loss)}
    for k, v in aux.items():
        if v.ndim == n_lead:
            out[k] = float(np.mean(v)) if n_lead else float(v)
    return out


def fit(
    loss_fn: LossFn,
    params: Any,
    optimizer: optax.GradientTransformation,
    key: jax.Array,
    *,
    steps: int,
    chunk_size: int = 500,
    log_every: int = 10,
    data: Any = None,
    batch_fn: Callable[[Any, jax.Array], Any] | None = None,
    n_members: int | None = None,
    run: Any = None,
    name: str = "fit",
    checkpoint_every: int = 0,
    progress: bool = True,
    with_step: bool = False,
    lr_scale: Any = None,
) -> FitResult:
    """Minimise ``loss_fn`` for ``steps`` optax steps, compiled once, in chunks of ``chunk_size``.

    ``data`` is a pytree of device arrays passed to every chunk (never baked into the program as constants);
    ``batch_fn(data, key)`` draws a batch inside the compiled loop (without it the batch is ``data``).
    With ``n_members = n`` every leaf of ``params`` has a leading axis of length ``n`` and each member gets its own
    key, split from ``key`` or given as a batch of ``n`` keys (:meth:`vlab.members.Members.keys`); the step is
    vmapped over members with ``data`` shared.

    With a :class:`vlab.runs.Run`, metrics rows go to its history, checkpoints named ``name`` are written every
    ``checkpoint_every`` steps and at the end, and a run opened with ``resume=True`` continues from its
    checkpoint. A non-finite loss or metric raises :class:`TrainingDiverged` naming the step, member and metric;
    the parameters of the last finite chunk are checkpointed first.

    ``with_step=True`` passes the global step (an int32 scalar, counted from 0 and restored on resume) as a fourth
    argument, ``loss_fn(params, batch, key, step)``, for objectives that change over training (KL warm-up, a
    tempered target). ``lr_scale``, one positive number per member, is each member's learning-rate factor
    (:mod:`vlab.optim`: the optimiser must carry one, as :func:`vlab.build_optimizer`'s do): it scales the rule's
    updates only, so member ``i`` trains with learning rate ``lr_scale[i] * lr`` (and its schedule) while anything
    else the optimiser updates (a step counter beside the parameters) is untouched -- a learning-rate sweep in one
    vmapped program, each member equal to its separate run.
    """
    chunk = int(min(chunk_size, steps))
    mesh = getattr(run, "mesh", None)
    if mesh is not None and batch_fn is not None:
        batch_fn = split_batches(mesh, batch_fn)
    vmapped = n_members is not None
    if lr_scale is not None:
        if not vmapped:
            raise ValueError("lr_scale needs n_members: one learning-rate factor per vmapped member")
        lr_scale = np.asarray(lr_scale, dtype=np.float64).reshape(n_members)
    step_fn = make_step(loss_fn, optimizer, batch_fn, with_step)
    if vmapped:
        def init_members(p, k):
            opt_state = jax.vmap(optimizer.init)(p)
            if lr_scale is not None:
                opt_state = set_lr_factor(opt_state, lr_scale)
            return TrainState(p, opt_state, k if _is_key_batch(k) else jax.random.split(k, n_members))

        init = jax.jit(init_members)
        member_step = jax.vmap(step_fn, in_axes=(0, 0, 0, None, None))
    else:
        init = jax.jit(lambda p, k: TrainState(p, optimizer.init(p), k))
        member_step = step_fn
    state = init(params, key)
    traces = [0]

    def run_chunk(state: TrainState, start: jax.Array, data: Any):
        traces[0] += 1

        def body(st: TrainState, step):
            p, o, loss, aux = member_step(st.params, st.opt_state, st.keys, step, data)
            if reserved := {"step", "loss"} & set(aux):
                raise ValueError(f"[{name}] the objective's metric {sorted(reserved)[0]!r} shadows a history column "
                                 "of fit: rename it")
            active = step < steps
            return TrainState(_where(active, p, st.params), _where(active, o, st.opt_state), st.keys), (loss, aux)

        return jax.lax.scan(body, state, start + jnp.arange(chunk))

    start = 0
    history: dict[str, list] = {}
    prior = {"train_s": 0.0, "compile_s": 0.0}  # seconds spent on this fit by earlier segments of the run
    ckpt = run.load_checkpoint(name) if (run is not None and run.resume) else None
    if ckpt is not None:
        restored = restore_named(ckpt, {"params": state.params, "opt_state": state.opt_state},
                                 run.checkpoint_file(name))
        state = TrainState(restored["params"], restored["opt_state"], state.keys)
        start = int(ckpt["step"])
        history = {k[5:]: list(ckpt[k]) for k in ckpt if k.startswith("hist/")}
        prior = {k: float(ckpt[f"meta/{k}"]) for k in prior if f"meta/{k}" in ckpt}
        run.truncate_history(name, start - 1)
        run.log(f"[{name}] resumed at step {start}/{steps}")
    elif run is not None and run.resume:
        dropped = run.truncate_history(name, -1)
        run.log(f"[{name}] no checkpoint to resume from: training from step 0"
                + (f" ({dropped} history rows of the lost segment dropped)" if dropped else ""))
    if mesh is not None:  # after a restore, so that restored state is laid on the mesh too
        state, data = place(mesh, state, data, vmapped, n_members, name)

    t0 = time.perf_counter()
    compiled = jax.jit(run_chunk).lower(state, jnp.asarray(start, jnp.int32), data).compile()
    compile_s = time.perf_counter() - t0
    t1 = time.perf_counter()

    def save(st: TrainState, done: int) -> None:
        if run is None:
            return
        arrays = named_leaves(to_host({"params": st.params, "opt_state": st.opt_state}))
        arrays["step"] = np.asarray(done)
        arrays["meta/train_s"] = np.asarray(prior["train_s"] + time.perf_counter() - t1)
        arrays["meta/compile_s"] = np.asarray(prior["compile_s"] + compile_s)
        arrays.update({f"hist/{k}": np.asarray(v) for k, v in history.items()})
        run.save_checkpoint(name, arrays)

    bar = Progress(steps, name, enabled=progress and not (run is not None and run.quiet), start=start)
    n_lead = 1 if vmapped else 0
    every_s = run.checkpoint_seconds if run is not None else 0.0
    last_ckpt, last_ckpt_t = start, time.perf_counter()
    try:
        with interrupts.deferred():
            while start < steps:
                new_state, (loss, aux) = compiled(state, jnp.asarray(start, jnp.int32), data)
                loss, aux = to_host((loss, aux))
                n_valid = min(chunk, steps - start)
                _check_finite(loss[:n_valid], {k: v[:n_valid] for k, v in aux.items()}, start, name, vmapped,
                              on_fail=lambda st=state, s0=start: save(st, s0))
                rows = []
                for i in range(n_valid):
                    s = start + i
                    if s % log_every == 0 or s == steps - 1:
                        history.setdefault("step", []).append(s)
                        history.setdefault("loss", []).append(loss[i])
                        for k, v in aux.items():
                            history.setdefault(k, []).append(v[i])
                        rows.append({"fit": name, "step": s,
                                     **_scalar_means(loss[i], {k: v[i] for k, v in aux.items()}, n_lead)})
                state, start = new_state, start + n_valid
                if run is not None and rows:
                    run.append_history(rows)
                bar.update(start, _progress_metrics(rows[-1], loss[n_valid - 1], vmapped) if rows else {})
                by_steps = checkpoint_every and start // checkpoint_every > last_ckpt // checkpoint_every
                by_time = every_s > 0 and time.perf_counter() - last_ckpt_t >= every_s
                if run is not None and start < steps and (by_steps or by_time or interrupts.pending()):
                    save(state, start)
                    last_ckpt, last_ckpt_t = start, time.perf_counter()
                interrupts.check()
            save(state, start)
        interrupts.check()
    except KeyboardInterrupt:
        save(state, start)
        raise
    finally:
        bar.close()
        if run is not None:  # every segment of a resumed run counts: earlier ones come from the checkpoint
            seg = time.perf_counter() - t1
            run.timings["compile"] = run.timings.get("compile", 0.0) + prior["compile_s"] + compile_s
            run.timings["train"] = run.timings.get("train", 0.0) + prior["train_s"] + seg
    train_s = prior["train_s"] + time.perf_counter() - t1
    hist = {k: np.stack([np.asarray(x) for x in v]) for k, v in history.items()}
    return FitResult(to_local(state.params), to_local(state.opt_state), hist, prior["compile_s"] + compile_s, train_s,
                     traces[0])


def named_leaves(tree: Any) -> dict[str, np.ndarray]:
    """Every leaf of ``tree`` under its key path, ``params['encoder']['w']`` or ``opt_state[0].mu['w']``: a
    checkpoint whose entries say what they are, so a renamed or reshaped parameter is caught on resume."""
    return {_leaf_name(path): np.asarray(leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _leaf_name(path: tuple) -> str:
    """``params['w']`` for the key path ``(DictKey('params'), DictKey('w'))``: the top key bare, the rest as JAX
    spells key paths."""
    return f"{path[0].key}{jax.tree_util.keystr(tuple(path[1:]))}"


def restore_named(ckpt: dict[str, np.ndarray], like: Any, path: Any) -> Any:
    """The pytree ``like`` with every leaf read from the checkpoint entry of its key path (:func:`named_leaves`).

    The checkpoint must hold exactly these leaves with these shapes and dtypes; anything else (a renamed or removed
    parameter, a changed size, another precision) is a :class:`ConfigError` naming the first leaf that differs.
    """
    from vlab.errors import ConfigError

    again = "expected a checkpoint of this run's model and config; delete it to train that fit again"
    leaves = jax.tree_util.tree_flatten_with_path(like)[0]
    names = [_leaf_name(p) for p, _ in leaves]
    saved = {k for k in ckpt if k.startswith(("params", "opt_state"))}
    params_first = lambda n: (not n.startswith("params"), n)  # noqa: E731
    missing = sorted((n for n in names if n not in saved), key=params_first)
    extra = sorted(saved - set(names), key=params_first)
    if missing or extra:
        what = (f"has no {missing[0]}" if missing else "") + (" and " if missing and extra else "") + \
            (f"holds {extra[0]}, which the model does not have" if extra else "")
        raise ConfigError(f"checkpoint '{path}' {what} ({len(missing)} leaves missing, {len(extra)} unexpected): "
                          f"{again}")
    like_of = {n: x for n, (_, x) in zip(names, leaves, strict=True)}
    for name in sorted(names, key=params_first):
        a, x = ckpt[name], like_of[name]
        if tuple(a.shape) != tuple(x.shape) or a.dtype != np.dtype(x.dtype):
            raise ConfigError(f"checkpoint '{path}': {name} is {a.dtype}{list(a.shape)} but the model's is "
                              f"{np.dtype(x.dtype)}{list(x.shape)}: {again}")
    out = [jnp.asarray(ckpt[n]) for n in names]
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(like), out)


def _progress_metrics(row: dict, loss: np.ndarray, vmapped: bool) -> dict:
    """What the progress line shows: the row's metrics, or with vmapped members the loss's spread over members
    (``loss min..max``) and the other metrics named as means."""
    if not vmapped:
        return {k: v for k, v in row.items() if k not in ("fit", "step")}
    loss = np.asarray(loss).reshape(-1)
    out: dict = {"loss": f"{np.min(loss):.4g}..{np.max(loss):.4g}" if loss.size > 1 else float(loss[0])}
    out.update({f"mean {k}": v for k, v in row.items() if k not in ("fit", "step", "loss")})
    return out


def _is_key_batch(key: jax.Array) -> bool:
    """Whether ``key`` is a batch of keys (one per member) rather than one key, for raw or typed keys."""
    typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    return key.ndim == (1 if typed else 2)


def _check_finite(loss, aux, start, name, vmapped, on_fail) -> None:
    items = {"loss": loss, **aux}
    bad = {k: ~np.isfinite(v) for k, v in items.items() if np.issubdtype(v.dtype, np.floating)}
    if not any(b.any() for b in bad.values()):
        return
    first = min((np.argwhere(b)[0].tolist(), k) for k, b in bad.items() if b.any())
    idx, metric = first
    where = f" (member {idx[1]})" if vmapped and len(idx) > 1 else ""
    on_fail()
    raise TrainingDiverged(
        f"[{name}] {metric} became non-finite at step {start + idx[0]}{where}; training stopped, the parameters "
        f"of step {start} (the last finite ones) are kept in the checkpoint"
    )
