"""Figures of normalizing-flow fits: density heat-maps, 1-D densities, the pull-back to the base, training curves.

A fit is a pair ``(flow, params)`` of one trained member (:class:`vlab.flows.Bijection` and its parameters).
Densities are ``q(x) = P_U(F^-1(x)) |det J_F^-1(x)|`` (:func:`vlab.flows.log_prob`); a target with a density
is drawn normalised, ``P_X = p~ / Z`` (:func:`vlab.distributions.densities.normalised_log_prob`). Every function
returns a Matplotlib figure; ``note`` (which member the figure shows) goes into its title.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vlab import flows
from vlab.distributions import densities
from vlab.harness import plots

Fit = tuple[flows.Bijection, Any]
_LABELS = {"forward": "forward KL (mass covering)", "reverse": "reverse KL (mode seeking)"}


def _with_note(title: str, note: str) -> str:
    return f"{title}\n{note}" if note else title


def _log_q(flow: flows.Bijection, params: Any, x: jax.Array) -> np.ndarray:
    return np.asarray(jax.jit(jax.vmap(flows.log_prob, in_axes=(None, None, 0)), static_argnums=0)(flow, params, x))


def density_maps(target: densities.Target, fits: dict[str, Fit], key: jax.Array, grid: int, note: str = "") -> Any:
    """Heat-maps of the normalised target density (or its samples) and of each fit's ``q(x)`` on a
    ``grid x grid`` grid over the target's box, on one colour scale with one colourbar, each with 400 samples.

    Args:
        target: the 2-D target.
        fits: the fits to draw, by name (``forward``, ``reverse``).
        key: the key of the samples drawn on the maps.
        grid: the heat-maps' resolution per axis.
        note: which member the figure shows (into the title).

    Returns:
        The Matplotlib figure.
    """
    n, box = grid, target.box
    extent = (box[0][0], box[0][1], box[1][0], box[1][1])
    pts, _ = densities.grid(box, n)
    panels = []
    if target.log_prob is not None:
        lp = jax.jit(jax.vmap(densities.normalised_log_prob(target)))(pts)
        panels.append(("target density", np.exp(np.asarray(lp)),
                       target.sample(key, 1000) if target.sample is not None else None))
    elif target.sample is not None:
        panels.append(("target samples", None, target.sample(key, 3000)))
    for name, (flow, p) in fits.items():
        xs = jax.jit(flows.sample_and_log_prob, static_argnums=(0, 3, 4))(flow, p, key, 1000, 2)[0]
        panels.append((_LABELS.get(name, name), np.exp(_log_q(flow, p, pts)), xs))
    fig, axes = plots.figure(1, len(panels), size=(4.2 * len(panels) + 0.9, 4.4), squeeze=False,
                             layout="constrained")
    # the 99.5th percentile: a sharp peak would otherwise leave the rest of the maps dark; above it is clipped
    vmax = max(float(np.percentile(d, 99.5)) for _, d, _ in panels if d is not None)
    image = None
    for ax, (title, dens, xs) in zip(axes[0], panels, strict=True):
        if dens is not None:
            image = ax.imshow(dens.reshape(n, n), origin="lower", extent=extent, aspect="auto", vmin=0, vmax=vmax,
                              cmap="viridis")
        if xs is not None:
            xs = np.asarray(xs)
            keep = (xs[:, 0] > box[0][0]) & (xs[:, 0] < box[0][1]) & (xs[:, 1] > box[1][0]) & (xs[:, 1] < box[1][1])
            ax.scatter(xs[keep, 0][:400], xs[keep, 1][:400], s=1.5, alpha=0.6, lw=0,
                       color="white" if dens is not None else plots.color(0))
        ax.set(title=title, xlim=box[0], ylim=box[1], xlabel="$x_1$", ylabel="$x_2$")
        ax.grid(False)
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), label="density", extend="max", shrink=0.9)
    fig.suptitle(_with_note(f"{target.name}: density heat-maps (same colour scale) with 400 samples", note))
    return fig


def density_1d(target: densities.Target, fits: dict[str, Fit], note: str = "") -> Any:
    """The normalised target density ``P_X = p~ / Z`` (filled) and each fit's ``q(x)`` on the target's interval."""
    (lo, hi), = target.box
    x = jnp.linspace(lo, hi, 800)[:, None]
    fig, ax = plots.figure(1, 1, size=(6.0, 3.5))
    if target.log_prob is not None:
        lp = jax.jit(jax.vmap(densities.normalised_log_prob(target)))(x)
        ax.fill_between(np.asarray(x[:, 0]), np.exp(np.asarray(lp)), color="0.85", label="target")
    for i, (name, (flow, p)) in enumerate(fits.items()):
        ax.plot(np.asarray(x[:, 0]), np.exp(_log_q(flow, p, x)), color=plots.color(i + 1), label=f"{name} KL fit")
    ax.set(xlabel="x", ylabel="density", title=_with_note(f"{target.name}: target and flow densities", note))
    ax.legend()
    return fig


def pullback(target: densities.Target, fit: Fit, key: jax.Array, note: str = "") -> Any:
    """Data ``x ~ P_X`` (2000 points) and its pull-back ``u = F^-1(x)`` against the base ``N(0, I)``: histograms
    in 1-D, scatter plots with the base's 1, 2, 3 sd circles in 2-D."""
    flow, p = fit
    x = target.sample(key, 2000)
    u = np.asarray(jax.jit(jax.vmap(flow.inverse, in_axes=(None, 0)))(p, x)[0])
    x = np.asarray(x)
    if target.dim == 1:
        fig, axes = plots.figure(1, 2, size=(9.0, 3.5))
        axes[0].hist(x[:, 0], bins=60, density=True, color=plots.color(0))
        grid = np.linspace(-4, 4, 200)
        axes[1].hist(u[:, 0], bins=60, density=True, color=plots.color(2), label="$F^{-1}(x)$")
        axes[1].plot(grid, np.exp(-grid**2 / 2) / math.sqrt(2 * math.pi), color="k", label="$N(0,1)$")
        axes[1].legend()
        for ax, name in zip(axes, ("x", "u"), strict=True):
            ax.set(xlabel=name, ylabel="density")
    else:
        fig, axes = plots.figure(1, 2, size=(9.0, 4.2))
        axes[0].scatter(x[:, 0], x[:, 1], s=2, c=plots.color(0), lw=0, alpha=0.6)
        axes[0].set_aspect("equal")
        axes[1].scatter(u[:, 0], u[:, 1], s=2, c=plots.color(2), lw=0, alpha=0.6)
        t = np.linspace(0, 2 * math.pi, 200)
        for r in (1, 2, 3):
            axes[1].plot(r * np.cos(t), r * np.sin(t), color="k", lw=0.7, alpha=0.6)
        axes[1].set(xlim=(-4, 4), ylim=(-4, 4))
        axes[1].set_aspect("equal")
        for ax, name in zip(axes, ("x", "u"), strict=True):
            ax.set(xlabel=f"${name}_1$", ylabel=f"${name}_2$")
    axes[0].set_title(f"data x ~ {target.name}")
    axes[1].set_title("pulled back: u = F$^{-1}$(x) (circles: N(0, I) at 1, 2, 3 sd)"
                      if target.dim == 2 else "pulled back: u = F$^{-1}$(x)")
    if note:
        fig.suptitle(f"forward KL fit, {note}")
    return fig


def training_curves(histories: dict[str, dict[str, np.ndarray]], labels: Sequence[str], target_name: str,
                    floors: dict[str, tuple[float, str]] | None = None,
                    tempering: tuple[float, int] | None = None) -> Any:
    """One panel per fit: every member's training curve (the forward NLL; the reverse fit's ``-ELBO`` of the
    untempered target), the floor each reaches at KL = 0 (dashed), and the step where tempering ends. The first
    tenth of training is left out of the y-range.

    Args:
        histories: each fit's training history (``step``, ``loss``, and ``elbo`` / ``beta`` for a reverse fit).
        labels: the members' labels, in the order of the histories' member axis.
        target_name: the target, for the titles.
        floors: per fit, ``(value, label)`` of the loss at KL = 0.
        tempering: ``(beta0, steps)`` of a tempered reverse fit.

    Returns:
        The Matplotlib figure.
    """
    floors = floors or {}
    fig, axes = plots.figure(1, len(histories), squeeze=False)
    for ax, (name, h) in zip(axes[0], histories.items(), strict=True):
        curve = -h["elbo"] if name == "reverse" and "elbo" in h else h["loss"]
        loss = curve.reshape(len(h["step"]), -1)
        for s in range(loss.shape[1]):
            ax.plot(h["step"], loss[:, s], color=plots.color(s), lw=1, label=labels[s] if s < 4 else None)
        if name in floors:
            ax.axhline(floors[name][0], color="k", ls="--", lw=1, label=floors[name][1])
        late = loss[np.asarray(h["step"]) >= 0.1 * h["step"][-1]]
        lo = min(float(np.nanmin(late)), floors[name][0] if name in floors else np.inf)
        hi = float(np.nanmax(late))
        if np.isfinite(lo) and np.isfinite(hi) and hi > lo:
            ax.set_ylim(lo - 0.1 * (hi - lo), hi + 0.15 * (hi - lo))
        if name == "reverse" and tempering is not None and "beta" in h:
            ax.axvline(tempering[1], color="0.5", ls=":", lw=1, label=f"tempering ends (beta {tempering[0]:g} -> 1)")
        ax.set(xlabel="step", ylabel="NLL (nats)" if name == "forward" else "KL - log Z = -ELBO (nats)",
               title=f"{name} KL training, {target_name}")
        ax.legend()
    return fig
