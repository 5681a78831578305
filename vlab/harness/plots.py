"""One figure style for every experiment: sizes, a colour-blind-safe palette, saving.

The palette is Okabe & Ito's (2008) eight colours, distinguishable under the common colour-vision deficiencies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

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


def figure(nrows: int = 1, ncols: int = 1, *, size: tuple[float, float] | None = None, **kwargs: Any):
    """``plt.subplots`` in vlab's style; ``size`` defaults to 4.5 x 3.5 inches per panel."""
    plt.rcParams.update(STYLE)
    if size is None:
        size = (4.5 * ncols, 3.5 * nrows)
    return plt.subplots(nrows, ncols, figsize=size, **kwargs)


def save(fig: Any, path: str | Path, formats: tuple[str, ...] = ("png",), dpi: int = 150) -> Path:
    """Save ``fig`` as ``path.<fmt>`` for each format (PNG always, first), close it and return the PNG's path.

    A figure with a layout of its own keeps it: one made with ``figure(..., layout="constrained")`` (which makes room
    for figure legends placed ``loc="outside ..."`` and for colourbars shared by several panels), or one already
    laid out by ``fig.tight_layout(rect=...)``. Any other is laid out tight here.
    """
    path = Path(path)
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    out = []
    for fmt in ("png", *[f for f in formats if f != "png"]):
        p = path.with_suffix(f".{fmt}")
        fig.savefig(p, dpi=dpi)
        out.append(p)
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
