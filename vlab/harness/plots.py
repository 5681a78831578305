"""One figure style for every experiment: sizes, a colour-blind-safe palette, saving.

The palette is Okabe & Ito's (2008) eight colours, distinguishable under the common colour-vision deficiencies.

Importing this module changes nothing of the user's matplotlib: no backend is chosen (the figures are not pyplot's
and need none) and the style is applied through :func:`style`, a :func:`matplotlib.rc_context`, never by writing the
global ``rcParams``. Figures are :class:`matplotlib.figure.Figure` objects that pyplot does not manage: a notebook
shows one when it is displayed, nothing pops up or piles up behind the user's back, and a figure lives as long as
something refers to it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure

PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "image.cmap": "viridis",
}

_SUBPLOTS_KEYS = ("sharex", "sharey", "squeeze", "width_ratios", "height_ratios", "subplot_kw", "gridspec_kw")


@contextlib.contextmanager
def style() -> Iterator[None]:
    """vlab's figure style for the block (``matplotlib.rc_context(STYLE)``); the user's ``rcParams`` are as they
    were afterwards. The harness draws and saves every experiment's figures inside it."""
    with matplotlib.rc_context(STYLE):
        yield


def figure(nrows: int = 1, ncols: int = 1, *, size: tuple[float, float] | None = None, **kwargs: Any):
    """``(fig, axes)`` as ``plt.subplots`` gives, in vlab's style, as a :class:`~matplotlib.figure.Figure` that
    pyplot does not manage; ``size`` defaults to 4.5 x 3.5 inches per panel. ``kwargs`` go to
    :meth:`Figure.subplots` (``sharex``, ``squeeze``, ``gridspec_kw``, ...) or to the figure (``layout``, ...)."""
    if size is None:
        size = (4.5 * ncols, 3.5 * nrows)
    grid = {k: kwargs.pop(k) for k in _SUBPLOTS_KEYS if k in kwargs}
    with style():
        fig = Figure(figsize=size, **kwargs)
        return fig, fig.subplots(nrows, ncols, **grid)


def save(fig: Any, path: str | Path, formats: tuple[str, ...] = ("png",), dpi: int = 150, *,
         close: bool = True) -> Path:
    """Save ``fig`` as ``path.<fmt>`` for each format (PNG always, first), in vlab's style.

    A figure with a layout of its own keeps it: one made with ``figure(..., layout="constrained")`` (which makes room
    for figure legends placed ``loc="outside ..."`` and for colourbars shared by several panels), or one already
    laid out by ``fig.tight_layout(rect=...)``. Any other is laid out tight here.

    Args:
        fig: a matplotlib figure.
        path: the file's path; its suffix is replaced by each format's.
        formats: the formats besides PNG (any of ``png``, ``pdf``, ``svg``).
        dpi: the raster resolution.
        close: whether to close the figure afterwards when pyplot manages it (figures of :func:`figure` need no
            closing: they live as long as something refers to them).

    Returns:
        The PNG's path.
    """
    path = Path(path)
    out = []
    with style():
        if fig.get_layout_engine() is None:
            fig.tight_layout()
        for fmt in ("png", *[f for f in formats if f != "png"]):
            p = path.with_suffix(f".{fmt}")
            fig.savefig(p, dpi=dpi)
            out.append(p)
    if close and getattr(fig.canvas, "manager", None) is not None:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return out[0]


def color(i: int) -> str:
    """The ``i``-th palette colour (cycling)."""
    return PALETTE[i % len(PALETTE)]


def member_title(members: Any, i: int = 0) -> str:
    """Which member of a vmapped run a one-member figure shows, for its title: ``member: lr=0.001, seed 0`` when
    the run has sweep members, ``seed 0 of 3`` for several seeds, ``""`` for a single one (``members``: a
    :class:`vlab.engine.members.Members`)."""
    if members.swept:
        return f"member: {members.label(i)}"
    return f"seed {i} of {members.n_seeds}" if members.n_seeds > 1 else ""


def image_grid(images: np.ndarray, shape: tuple[int, int], ncols: int, pad: int = 1) -> np.ndarray:
    """Tile flattened images ``(n, h*w)`` into one array with ``ncols`` columns and ``pad`` pixels between."""
    h, w = shape
    n = images.shape[0]
    nrows = -(-n // ncols)
    grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad), 0.12)
    for i in range(n):
        r, c = divmod(i, ncols)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = (
            images[i].reshape(h, w))
    return grid


def show_images(ax: Any, grid: np.ndarray, title: str) -> None:
    """Draw an :func:`image_grid` on ``ax`` in grey levels (0 white, 1 black), without axes."""
    ax.imshow(grid, cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for side in ax.spines.values():
        side.set_visible(False)


def label_color(i: int, n: int) -> Any:
    """The palette's colours for up to 8 classes, matplotlib's tab20 beyond (so 10 classes stay distinct)."""
    return color(i) if n <= 8 else matplotlib.colormaps["tab20"](i % 20)
