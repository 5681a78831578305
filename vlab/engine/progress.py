"""Progress on long work: a tqdm bar on a terminal, tqdm's notebook bar in a Jupyter kernel, plain periodic lines
otherwise."""

from __future__ import annotations

import sys
import time


class Progress:
    """Report ``done`` out of ``total`` steps with the latest metrics.

    On a terminal this is a tqdm bar on stderr; in a Jupyter kernel tqdm's notebook widget (a text bar when
    ipywidgets is missing); anywhere else (a log file, CI) one plain line at most every ``every_s`` seconds, and
    at the end.
    """

    def __init__(self, total: int, desc: str, *, enabled: bool = True, every_s: float = 5.0, start: int = 0):
        self.total, self.desc, self.enabled, self.every_s = total, desc, enabled, every_s
        self.done = start
        self.t0 = self.last = time.perf_counter()
        self.bar = None
        if enabled and in_notebook():
            self.bar = _notebook_bar(total=total, initial=start, desc=desc, unit="step")
        elif enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, desc=desc, unit="step", dynamic_ncols=True, leave=False)

    def update(self, done: int, metrics: dict[str, float]) -> None:
        shown = {k: v if isinstance(v, str) else f"{v:.4g}" for k, v in metrics.items() if isinstance(v, float | str)}
        shown = dict(list(shown.items())[:4])
        if self.bar is not None:
            self.bar.update(done - self.done)
            self.bar.set_postfix(shown, refresh=False)
        elif self.enabled:
            now = time.perf_counter()
            if now - self.last >= self.every_s or done >= self.total:
                text = " ".join(f"{k}={v}" for k, v in shown.items())
                print(f"[{self.desc}] step {done}/{self.total} {text} ({now - self.t0:.1f}s)",
                      file=sys.stderr, flush=True)
                self.last = now
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def ipython_shell():
    """The running IPython shell (a terminal's, or a Jupyter kernel's), or None outside IPython; IPython is never
    imported here."""
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython's ZMQ shell), where stderr is no terminal but a bar
    still draws."""
    return type(ipython_shell()).__name__ == "ZMQInteractiveShell"


def _notebook_bar(**kwargs):
    """tqdm's notebook widget, or its text bar when ipywidgets is not installed."""
    try:
        from tqdm.notebook import tqdm as notebook_tqdm

        return notebook_tqdm(**kwargs, leave=True)
    except ImportError:
        from tqdm import tqdm

        return tqdm(**kwargs, leave=False, file=sys.stderr)
