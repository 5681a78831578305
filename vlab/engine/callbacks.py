"""Callbacks that connect the engine's host loop (:mod:`vlab.engine.loop`) to a run folder and a person watching:
per-member history rows, checkpoints that resume, a progress bar, the run's timings."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from vlab.engine import interrupts
from vlab.engine.checkpoints import CheckpointMismatch, named_leaves, restore_named
from vlab.engine.loop import Callback, Loop, TrainState
from vlab.engine.progress import Progress
from vlab.engine.sharding import to_host
from vlab.errors import ConfigError


class History(Callback):
    """Rows of ``history.jsonl``: one per logged step and member, ``{"fit", "step", "member", <labels>, "loss",
    metric...}`` with the member's ``labels`` (its swept values and seed index) and every scalar metric.

    Without members (one fit, not vmapped) a row has no member column."""

    def __init__(self, run: Any, name: str, labels: Sequence[dict] | None = None):
        self.run, self.name, self.labels = run, name, labels

    def on_chunk(self, loop: Loop, rows: list[dict]) -> None:
        out = []
        n = loop.n_members
        for row in rows:
            head = {"fit": self.name, "step": int(row["step"])}
            columns = _scalar_columns(row, n)
            if n is None:
                out.append({**head, **{k: v[0] for k, v in columns.items()}})
                continue
            for m in range(n):
                label = self.labels[m] if self.labels else {}
                out.append({**head, "member": m, **label, **{k: v[m] for k, v in columns.items()}})
        if out:
            self.run.append_history(out)


def _scalar_columns(row: dict, n: int | None) -> dict[str, list]:
    """Each metric of the row that is one number per member (one number without members), as a list."""
    out: dict[str, list] = {}
    for k, v in row.items():
        x = np.asarray(v)
        if k != "step" and x.ndim == (0 if n is None else 1):
            out[k] = x.reshape(-1).tolist()
    return out


class Checkpoint(Callback):
    """Checkpoints of one fit, ``checkpoints/<name>.npz``: every ``every`` steps, every ``seconds`` of wall time,
    at the end and when the fit stops early; a run opened to resume restores the last one (checked leaf by leaf)
    and drops the fit's history rows after it (they are written again).

    The checkpoint holds the state's leaves under their key paths, the history so far and the seconds spent."""

    def __init__(self, run: Any, name: str, every: int = 0, seconds: float = 0.0):
        self.run, self.name, self.every, self.seconds = run, name, int(every), float(seconds)
        self._last_step, self._last_t = 0, time.perf_counter()

    def on_start(self, loop: Loop) -> None:
        if not self.run.resume:
            return
        ckpt = self.run.load_checkpoint(self.name)
        if ckpt is None:  # the history rows of the lost segment are written again
            dropped = self.run.truncate_history(self.name, -1)
            self.run.log(f"[{self.name}] no checkpoint to resume from: training from step 0"
                         + (f" ({dropped} history rows of the lost segment dropped)" if dropped else ""))
            return
        like = {"params": loop.state.params, "opt_state": loop.state.opt_state, "step": loop.state.step}
        try:
            restored = restore_named(ckpt, like, self.run.checkpoint_file(self.name))
        except CheckpointMismatch as e:
            raise ConfigError(str(e)) from None
        loop.state = TrainState(restored["params"], restored["opt_state"], restored["step"], loop.state.keys)
        loop.history = {k[5:]: list(ckpt[k]) for k in ckpt if k.startswith("hist/")}
        loop.prior_train_s = float(ckpt.get("meta/train_s", 0.0))
        loop.prior_compile_s = float(ckpt.get("meta/compile_s", 0.0))
        self._last_step = loop.done
        self.run.truncate_history(self.name, loop.done - 1)  # rows after the checkpoint are written again
        self.run.log(f"[{self.name}] resumed at step {loop.done}/{loop.steps}")

    def save(self, loop: Loop) -> None:
        st = loop.state
        arrays = named_leaves(to_host({"params": st.params, "opt_state": st.opt_state, "step": st.step}))
        arrays["meta/train_s"] = np.asarray(loop.train_s)
        arrays["meta/compile_s"] = np.asarray(loop.total_compile_s)
        arrays.update({f"hist/{k}": np.asarray(v) for k, v in loop.history.items()})
        self.run.save_checkpoint(self.name, arrays)
        self._last_step, self._last_t = loop.done, time.perf_counter()

    def on_chunk(self, loop: Loop, rows: list[dict]) -> None:
        if loop.done >= loop.steps:
            return
        by_steps = self.every and loop.done // self.every > self._last_step // self.every
        by_time = self.seconds > 0 and time.perf_counter() - self._last_t >= self.seconds
        if by_steps or by_time or interrupts.pending():
            self.save(loop)

    def on_end(self, loop: Loop) -> None:
        self.save(loop)

    def on_stop(self, loop: Loop, error: BaseException) -> None:
        self.save(loop)


class ProgressBar(Callback):
    """A tqdm bar (plain lines off a terminal) with the loss, or its range over members; silent unless
    ``enabled``."""

    def __init__(self, name: str, enabled: bool = True):
        self.name, self.enabled = name, enabled
        self.bar: Progress | None = None  # opened on start, after a checkpoint's restore

    def on_start(self, loop: Loop) -> None:
        self.bar = Progress(loop.steps, self.name, enabled=self.enabled, start=loop.done)

    def on_chunk(self, loop: Loop, rows: list[dict]) -> None:
        self.bar.update(loop.done, progress_metrics(rows[-1], loop.n_members) if rows else {})

    def on_close(self, loop: Loop) -> None:
        if self.bar is not None:
            self.bar.close()


def progress_metrics(row: dict, n_members: int | None) -> dict:
    """What the progress line shows: the scalar metrics, or with members the loss's range over members
    (``loss min..max``) and the other metrics' means, named as such."""
    scalars = {k: float(np.asarray(v)) for k, v in row.items() if k != "step" and np.ndim(v) == 0}
    if n_members is None:
        return scalars
    loss = np.asarray(row["loss"]).reshape(-1)
    out: dict = {"loss": f"{loss.min():.4g}..{loss.max():.4g}" if loss.size > 1 else float(loss[0])}
    out.update({f"mean {k}": float(np.mean(v)) for k, v in row.items()
                if k not in ("step", "loss") and np.ndim(v) == 1})
    return out


class Timings(Callback):
    """Adds the fit's compile and train seconds (earlier segments included) to ``run.timings``."""

    def __init__(self, run: Any):
        self.run = run

    def on_close(self, loop: Loop) -> None:
        t = self.run.timings
        t["compile"] = t.get("compile", 0.0) + loop.total_compile_s
        t["train"] = t.get("train", 0.0) + loop.train_s
