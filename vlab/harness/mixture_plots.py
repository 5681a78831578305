"""Figures of a model with a Gaussian-mixture latent prior, w | z = k ~ N(mu_k, Sigma_k) (the GM-VAE).

:func:`latent_figure`: the encoded means coloured by their component with each component's 2-sigma ellipse (on the
first two principal directions when the latent has more than two dimensions), the confusion matrix of components
against labels (component usage without labels) and the ELBO's three terms during training.
:func:`samples_figure`: decoded samples x = E[x | w], w = mu_k + L_k eps ~ N(mu_k, Sigma_k), of every component, as
image rows or as points over the data.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from vlab.harness import plots
from vlab.harness.metrics import confusion_matrix


def latent_axis_labels(z_dim: int) -> tuple[str, str]:
    """Axis names of the latent panel: w_1, w_2 themselves for z_dim <= 2, else the coordinates
    v_j . (w - mean w) along the first two principal directions v_1, v_2 of the points and component means."""
    if z_dim > 2:
        x, y = (rf"$v_{j} \cdot (w - \bar w)$ (principal direction {j})" for j in (1, 2))
        return x, y
    return r"$w_1$", (r"$w_2$" if z_dim == 2 else "")


def titled(title: str, note: str) -> str:
    """``title`` with ``note`` (which member a figure shows) on a second line, when there is one."""
    return f"{title}\n{note}" if note else title


def latent_basis(w: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(centre, B) of the latent panel's projection w -> B (w - centre): the identity for z_dim <= 2, else the first
    two right singular vectors of the centred points and component means."""
    if w.shape[1] <= 2:
        return np.zeros(w.shape[1]), np.eye(w.shape[1])
    centre = w.mean(0)
    _, _, vt = np.linalg.svd(np.concatenate([w, mu]) - centre, full_matrices=False)
    return centre, vt[:2]


def draw_confusion(ax, fig, conf: np.ndarray, row: dict) -> None:
    """Components (rows) against true labels (columns), with counts; ``row`` gives the accuracy and both NMIs."""
    im = ax.imshow(conf, cmap="Blues")
    for (i, j), v in np.ndenumerate(conf):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=6 if conf.size > 60 else 8,
                color="white" if v > conf.max() / 2 else "black")
    ax.set_xlabel("true label")
    ax.set_ylabel("component")
    ax.set_title(f"confusion: accuracy {row['accuracy']:.3f}, NMI {row['nmi']:.3f} (arithmetic "
                 f"{row['nmi_arithmetic']:.3f})")
    ax.grid(False)
    fig.colorbar(im, ax=ax, fraction=0.046)


def draw_latent(ax, w: np.ndarray, mu: np.ndarray, tril: np.ndarray, assign: np.ndarray, usage: list) -> None:
    """Encoded means ``w`` by component ``assign`` and the 2-sigma ellipse of N(mu_k, L_k L_k^T) projected, B Sigma_k
    B^T (:func:`latent_basis`).

    Args:
        ax: the matplotlib axes to draw on.
        w: the encoded means, shape (n, z_dim).
        mu: the components' means mu_k, shape (K, z_dim).
        tril: the components' Cholesky factors L_k of Sigma_k = L_k L_k^T, shape (K, z_dim, z_dim).
        assign: each point's component, shape (n,), in 0..K-1.
        usage: each component's share of the points, length K (shown in the legend).

    Returns:
        None; ``ax`` is drawn on (no ellipses when z_dim is 1).
    """
    K, z_dim = mu.shape
    centre, basis = latent_basis(w, mu)
    pw, pmu = (w - centre) @ basis.T, (mu - centre) @ basis.T
    for k in range(K):
        sel = assign == k
        c = plots.label_color(k, K)
        ax.scatter(pw[sel, 0], pw[sel, 1] if pw.shape[1] > 1 else np.zeros(sel.sum()), s=4, color=c,
                   label=f"{k} ({usage[k]:.0%})")
        if z_dim >= 2:
            t = np.linspace(0, 2 * np.pi, 100)
            chol = np.linalg.cholesky(basis @ tril[k] @ tril[k].T @ basis.T)
            ring = pmu[k][:, None] + 2 * chol @ np.stack([np.cos(t), np.sin(t)])
            ax.plot(ring[0], ring[1], color=c, lw=1.5)
    ax.set_title("w means by component, 2-sigma ellipses" + (" (projected)" if z_dim > 2 else ""))
    ax.set_xlabel(latent_axis_labels(z_dim)[0])
    ax.set_ylabel(latent_axis_labels(z_dim)[1])
    if z_dim == 1:
        ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(markerscale=3, fontsize=7, ncol=2, title="component (usage)", title_fontsize=7)


def draw_terms(ax, history: dict) -> None:
    """The ELBO and its three terms (``elbo``, ``rec``, ``w_term``, ``z_term`` columns) against ``step``."""
    h = {k: np.asarray(v).reshape(len(v), -1)[:, 0] for k, v in history.items() if k != "step"}
    steps = history["step"]
    for name, label, c in (("elbo", "ELBO", 0), ("rec", "(1) E log p(x|w)", 2), ("w_term", "(2) w term", 1),
                           ("z_term", "(3) z term", 3)):
        ax.plot(steps, h[name], color=plots.color(c), label=label)
    lo = np.percentile(np.concatenate([h["elbo"], h["w_term"]]), 3)
    hi = max(np.max(h["rec"]), np.max(h["z_term"]))
    ax.set_ylim(lo - 0.1 * abs(hi - lo), hi + 0.1 * abs(hi - lo))
    ax.set_xlabel("step")
    ax.set_title("training curves (train batches)")
    ax.legend(fontsize=8)


def latent_figure(w: np.ndarray, mu: np.ndarray, tril: np.ndarray, assign: np.ndarray, row: dict,
                  history: dict, labels: np.ndarray | None, note: str = ""):
    """Latent means by component, the confusion matrix (or the usage of each component without ``labels``) and
    the training curves; ``row`` holds ``usage`` and, with labels, ``accuracy``, ``nmi``, ``nmi_arithmetic``.

    Args:
        w: the encoded means, shape (n, z_dim).
        mu: the components' means mu_k, shape (K, z_dim).
        tril: the components' Cholesky factors L_k, shape (K, z_dim, z_dim).
        assign: each point's component, shape (n,), in 0..K-1.
        row: the clustering scores: ``usage`` (length K) and, with ``labels``, ``accuracy``, ``nmi`` and
            ``nmi_arithmetic``.
        history: the training curves, columns ``step``, ``elbo``, ``rec``, ``w_term`` and ``z_term``.
        labels: each point's true label, shape (n,), or None for data without labels.
        note: a line naming which member the figure shows, as its title; none by default.

    Returns:
        The matplotlib figure, three panels in a row.
    """
    K = mu.shape[0]
    fig, axes = plots.figure(1, 3, size=(15, 4.6))
    draw_latent(axes[0], w, mu, tril, assign, row["usage"])
    if labels is None:
        axes[1].bar(np.arange(K), row["usage"], color=[plots.label_color(k, K) for k in range(K)])
        axes[1].set_xlabel("component")
        axes[1].set_ylabel("fraction of test points")
        axes[1].set_title("component usage (no labels: no confusion matrix)")
    else:
        draw_confusion(axes[1], fig, confusion_matrix(labels, assign, n_clusters=K), row)
    draw_terms(axes[2], history)
    if note:
        fig.suptitle(note)
    return fig


def component_draws(key: jax.Array, mu: jax.Array, tril: jax.Array, n_per: int) -> jax.Array:
    """``n_per`` draws w = mu_k + L_k eps, eps ~ N(0, I), of each component, component-major: (K n_per, d)."""
    K, d = mu.shape
    eps = jax.random.normal(key, (K, n_per, d))
    return (jnp.asarray(mu)[:, None] + jnp.einsum("kij,knj->kni", jnp.asarray(tril), eps)).reshape(K * n_per, d)


def samples_figure(key: jax.Array, decode: Callable[[jax.Array], jax.Array], mu: np.ndarray, tril: np.ndarray,
                   x_test: np.ndarray, image_shape: tuple[int, int] | None, note: str = ""):
    """Decoded samples ``decode(w)`` of each component: one row of 10 images per component, or for vector data 200
    points per component over the test data (first two dimensions).

    Args:
        key: the randomness of the latent draws w = mu_k + L_k eps.
        decode: maps latents, shape (m, z_dim), to the decoder's means E[x | w], shape (m, x_dim).
        mu: the components' means mu_k, shape (K, z_dim).
        tril: the components' Cholesky factors L_k, shape (K, z_dim, z_dim).
        x_test: the test data drawn beneath the samples of vector data, shape (n, x_dim); unused for images.
        image_shape: (height, width) of an image, or None for vector data.
        note: a line naming which member the figure shows, added to the title; none by default.

    Returns:
        The matplotlib figure.
    """
    K = mu.shape[0]
    if image_shape is not None:
        n_per = 10
        xs = np.asarray(decode(component_draws(key, mu, tril, n_per)))
        fig, ax = plots.figure(1, 1, size=(7, 0.7 * K + 1.3))
        plots.show_images(ax, plots.image_grid(xs, image_shape, n_per),
                          titled("samples of each component (rows)", note))
        rows_px = image_shape[0]  # grid row k: one pixel of padding, then rows_px pixels of images
        ax.set_yticks(1 + (rows_px + 1) * np.arange(K) + (rows_px - 1) / 2, [str(k) for k in range(K)], fontsize=7)
        ax.tick_params(axis="y", length=0)
        ax.set_ylabel("component k")
        ax.set_xlabel(r"$x = \mathrm{E}[x \mid w]$, $w \sim N(\mu_k, \Sigma_k)$, one per column")
        return fig
    n_per = 200
    many = np.asarray(decode(component_draws(key, mu, tril, n_per)))
    fig, ax = plots.figure(1, 1, size=(5.5, 5))
    xd = np.asarray(x_test)
    second = lambda a: a[:, 1] if a.shape[1] > 1 else np.zeros(len(a))  # noqa: E731
    ax.scatter(xd[:, 0], second(xd), s=3, color="0.8", label="test data")
    for k in range(K):
        part = many[k * n_per:(k + 1) * n_per]
        ax.scatter(part[:, 0], second(part), s=4, color=plots.label_color(k, K), label=f"component {k}")
    ax.set_title(titled("samples E[x | w], w ~ N(mu_k, Sigma_k)" + (" (first 2 dims)" if xd.shape[1] > 2 else ""),
                        note))
    ax.set_xlabel(r"$x_1$")
    ax.set_ylabel(r"$x_2$" if xd.shape[1] > 1 else "")
    ax.legend(markerscale=3, fontsize=7)
    return fig
