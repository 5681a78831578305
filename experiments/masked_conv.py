"""Receptive fields of two masked 3 x 3 convolutions on a 5 x 5 map (seed 002, question 2).

For each combination of PixelCNN masks (first layer, second layer) in {A, B}^2 the receptive field of output pixel
(3, 3) is the support of jax.grad of that output with respect to the input, checked against a walk back through the
masks. The answers go into metrics.json as lists of (row, column) pairs, 1-indexed like the seed, and the figure
uses the seed's template layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vlab.errors import ConfigError
from vlab.harness.config import BaseConfig, spec
from vlab.harness.experiment import Experiment as _Experiment
from vlab.harness.plots import PALETTE, figure
from vlab.models import masked_conv as mc


@dataclass
class Config(BaseConfig):
    size: int = spec(5, ge=1, le=64, help="height and width of the feature map")
    kernel: int = spec(3, ge=1, le=15, help="kernel size (odd)")
    pixel: list[int] = spec([3, 3], ge=1, help="output pixel (row, column), 1-indexed")
    cases: list[str] = spec(["AA", "AB", "BA", "BB"], help="mask per layer, first layer first, e.g. AB")

    def check(self, prefix: str) -> None:
        if self.kernel % 2 == 0:
            raise ConfigError(f"key '{prefix}kernel': value {self.kernel} is not valid: expected an odd size")
        if len(self.pixel) != 2 or max(self.pixel) > self.size:
            raise ConfigError(
                f"key '{prefix}pixel': value {self.pixel} is not valid: expected [row, column] in 1..{self.size}"
            )
        if not self.cases:
            raise ConfigError(f"key '{prefix}cases': value {self.cases} is not valid: expected at least one case")
        for c in self.cases:
            if not c or set(c) - {"A", "B"}:
                raise ConfigError(
                    f"key '{prefix}cases': value '{c}' is not valid: expected a string of mask letters A/B, e.g. AB"
                )


def as_pairs(field: np.ndarray) -> list[list[int]]:
    """Pixels of a boolean map as [row, column] pairs, 1-indexed, in raster order."""
    return [[int(i) + 1, int(j) + 1] for i, j in zip(*np.nonzero(field), strict=True)]


class Experiment(_Experiment):
    description = "PixelCNN masks A/B: receptive field of pixel (3,3) after two masked 3x3 convolutions, by jax.grad"
    source = "seed 002, question 2"
    Config = Config
    headline = ("AA.size", "AB.size", "BA.size", "BB.size")

    def setup(self, cfg: Config) -> None:
        self.shape = (cfg.size, cfg.size)
        self.pixel = (cfg.pixel[0] - 1, cfg.pixel[1] - 1)

    def train(self, cfg: Config) -> dict:
        """Nothing is trained: the receptive fields are gradients of fixed all-ones networks."""
        return {}

    def summarise(self, cfg: Config, fits: dict, evals: dict) -> dict:
        """Every case's field by jax.grad against the walk back through the masks, its blind spot and causality."""
        shape, pixel = self.shape, self.pixel
        before = mc.raster_before(shape, pixel)
        out, self.fields = {}, {}
        for case in cfg.cases:
            masks = [mc.pixelcnn_mask(kind, cfg.kernel) for kind in case]
            field = mc.receptive_field(masks, shape, pixel)
            walk = mc.receptive_field_by_propagation([np.asarray(m) for m in masks], shape, pixel)
            self.fields[case] = field
            causal = bool(np.all(before[field]))
            # Blind spot: earlier pixels the stack could reach with full kernels but does not see.
            full = mc.receptive_field_by_propagation([np.ones((cfg.kernel, cfg.kernel))] * len(case), shape, pixel)
            blind = full & before & ~field
            out[case] = {
                "layers": " then ".join(f"M^{k}" for k in case),
                "receptive_field": as_pairs(field),
                "size": int(field.sum()),
                "includes_own_pixel": bool(field[pixel]),
                "autoregressive": causal,
                "blind_spot": as_pairs(blind),
            }
            self.check(f"{case}: jax.grad field = walk through the masks (differing pixels)",
                       float(np.sum(field != walk)), 0.0, 0.0)
            # Every tap of A, and every tap of B but its centre, moves strictly back in raster order, so a path
            # returns to the pixel itself only through centre taps: the own pixel is seen iff every mask is B.
            all_b = set(case) == {"B"}
            self.check(f"{case}: own pixel in the field iff every mask is B", float(field[pixel] != all_b), 0.0, 0.0)
            self.check(f"{case}: only earlier pixels in raster order iff some mask is A", float(causal == all_b),
                       0.0, 0.0)
        out["masks"] = {k: np.asarray(mc.pixelcnn_mask(k, cfg.kernel)).astype(int).tolist() for k in ("A", "B")}
        return out

    def figures(self, cfg: Config, fits: dict, evals: dict, metrics: dict) -> None:
        """Every case's field shaded on the seed's template of row-column labels, the output pixel outlined."""
        self.save_figure(_figure(self.fields, self.pixel, cfg.size), "masked_conv")


def _figure(fields: dict[str, np.ndarray], pixel: tuple[int, int], size: int) -> Any:
    """The panels of :meth:`Experiment.figures`."""
    n = len(fields)
    fig, axes = figure(1, n, size=(3.2 * n, 3.6))
    axes = np.atleast_1d(axes)
    for num, (ax, (case, field)) in enumerate(zip(axes, fields.items(), strict=True), 1):
        for i in range(size):
            for j in range(size):
                on = field[i, j]
                face = PALETTE[5] if on else "white"
                ax.add_patch(_rect(j, size - 1 - i, face))
                ax.text(j + 0.5, size - 0.5 - i, f"{i + 1}{j + 1}", ha="center", va="center", fontsize=9,
                        color="k", fontweight="bold" if on else "normal")
        ax.add_patch(_rect(pixel[1], size - 1 - pixel[0], "none", edge=PALETTE[1], lw=2.5))
        ax.set_xlim(0, size)
        ax.set_ylim(0, size)
        ax.set_aspect("equal")
        ax.axis("off")
        layers = " then ".join("$M^" + k + "$" for k in case)
        ax.set_title(f"{num}. {layers}: {int(field.sum())} pixels", fontsize=10)
    fig.suptitle(f"receptive field of output pixel {pixel[0] + 1}{pixel[1] + 1} (outlined), shaded",
                 fontsize=11)
    return fig


def _rect(x, y, face, edge="0.4", lw=0.8):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), 1, 1, facecolor=face, edgecolor=edge, lw=lw)
