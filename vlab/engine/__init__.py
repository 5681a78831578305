"""The training engine: ``jit(lax.scan)`` chunks of optax steps over vmapped members, callbacks between chunks,
named checkpoints, progress, devices and sharding. It knows no config, run folder or experiment."""

from vlab.engine.loop import (
    BatchFn,
    Callback,
    FitResult,
    Loop,
    LossFn,
    TrainState,
    fit,
    init_state,
    make_chunk,
    make_step,
)

__all__ = ["BatchFn", "Callback", "FitResult", "Loop", "LossFn", "TrainState", "fit", "init_state", "make_chunk",
           "make_step"]
