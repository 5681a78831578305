"""Stopping a run cleanly on Ctrl-C (SIGINT) and on SIGTERM (``kill``, ``timeout``, SLURM, ``docker stop``).

While :func:`handle_signals` is active, either signal raises :class:`Interrupted`, a ``KeyboardInterrupt`` that
remembers its signal. Inside :func:`deferred` (the training loop) the first signal is only noted, and
:func:`check` raises it at the next safe point (a chunk boundary, after its checkpoint); a second signal raises at
once. A process killed with SIGKILL cannot be told: the periodic checkpoints bound what it loses.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A run stopped by a signal; ``exit_status`` is the shell's 128 + signal number (130 for SIGINT, 143 for
    SIGTERM)."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)

    @property
    def exit_status(self) -> int:
        return 128 + self.signum

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name


_pending: int | None = None
_deferring = 0


def _handler(signum: int, frame: object) -> None:
    global _pending
    if _deferring and _pending is None:
        _pending = signum
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` inside the block (main thread only; elsewhere a no-op)."""
    global _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _pending = None


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A block in which the first signal waits for :func:`check` instead of raising mid-step."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1


def pending() -> bool:
    """Whether a signal is waiting for :func:`check`."""
    return _pending is not None


def check() -> None:
    """Raise the signal that arrived inside :func:`deferred`, if any."""
    global _pending
    if _pending is not None:
        signum, _pending = _pending, None
        raise Interrupted(signum)
