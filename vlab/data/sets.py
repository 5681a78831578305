"""Data for the latent-variable experiments: MNIST-format IDX files and embedded synthetic sets.

Two sources share one schema, :class:`DataConfig`:

- ``source: idx`` reads MNIST-format IDX files (gzip or raw) from ``root``: ``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``. Fashion-MNIST ships as
  Debian's ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``); a user's own MNIST files work the same
  way through ``data.root``.
- ``source: embedded`` needs no file: a 2-D set of :mod:`vlab.data.toy` (pinwheel, Gaussian mixture, ...) lifted
  into higher dimension, either as small grey-level images of a blob whose position is the 2-D point
  (``embedding: images``) or through a fixed random network (``embedding: mlp``) or matrix (``linear``). The true
  latent is then 2-D and the labels are the toy set's components.

:func:`load` returns a :class:`Dataset` of device arrays; :func:`sample_batch` draws a batch inside compiled code.
"""

from __future__ import annotations

import functools
import gzip
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from vlab.data import toy as toy_data
from vlab.errors import ConfigError, DataNotFound
from vlab.harness.config import spec
from vlab.keys import stream

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
TOY_SETS = ("pinwheel", "gaussians", "two_moons", "rings", "checkerboard")


@dataclass
class DataConfig:
    """Where the data comes from, and how it is prepared."""

    source: Literal["embedded", "idx"] = "embedded"
    name: Literal["pinwheel", "gaussians", "two_moons", "rings", "checkerboard"] = "pinwheel"
    embedding: Literal["images", "mlp", "linear"] = "images"
    dim: int = spec(64, gt=0, help="embedded: data dimension (mlp, linear) or image side (images: dim = side^2)")
    noise: float = spec(0.02, ge=0, help="embedded: std of Gaussian noise added after the embedding")
    n_train: int = spec(4000, ge=0, help="training points (idx: at most this many, 0 = all)")
    n_test: int = spec(1000, ge=0, help="test points (idx: at most this many, 0 = all)")
    root: str = spec(DEFAULT_ROOT, help="idx: folder holding the four MNIST-format files (.gz or raw)")
    image_shape: list[int] = spec([28, 28], gt=0, help="idx: expected image shape (height, width)")
    binarize: Literal["none", "dynamic", "static"] = "none"
    embedding_seed: int = spec(1234, ge=0, help="seed of the data set: the embedding map and the points drawn "
                               "through it (and a static binarisation); the run's seed does not change the data")

    def check(self, prefix: str) -> None:
        for name in ("n_train", "n_test"):
            if self.source == "embedded" and getattr(self, name) == 0:
                raise ConfigError(f"key '{prefix}{name}': value 0 is not valid: expected a number > 0 "
                                  "(0 means all the files' points, only with source: idx)")
        if len(self.image_shape) != 2:
            raise ConfigError(
                f"key '{prefix}image_shape': value {self.image_shape} is not valid: expected [height, width]"
            )
        if self.source == "embedded" and self.embedding == "images" and math.isqrt(self.dim) ** 2 != self.dim:
            raise ConfigError(
                f"key '{prefix}dim': value {self.dim} is not valid: expected a square number of pixels "
                "(e.g. 64 for 8x8 images) with embedding: images"
            )


class Dataset(NamedTuple):
    """Training and test arrays (``x`` flattened to ``(n, d)``, float in the default dtype) and integer labels
    (``None`` for unlabelled IDX data)."""

    x_train: jax.Array
    y_train: jax.Array | None
    x_test: jax.Array
    y_test: jax.Array | None
    image_shape: tuple[int, int] | None
    description: str


# --------------------------------------------------------------------------------------------- IDX files


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (MNIST format, gzip or raw) as a numpy array.

    Layout: two zero bytes, a type byte (0x08 uint8 ... 0x0E float64), the number of dimensions ``n``, ``n``
    big-endian uint32 sizes, then the data in C order.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:  # unreadable, or a damaged gzip stream
        raise ConfigError(f"key 'data.root': file '{path}' cannot be read ({type(e).__name__}: {e}): expected an "
                          "MNIST-format IDX file (raw or .gz)") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ConfigError(f"key 'data.root': file '{path}' is not an IDX file (bad magic number {raw[:4].hex()}): "
                          "expected an MNIST-format file (raw or .gz)")
    ndim = raw[3]
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim]) if len(raw) >= 4 + 4 * ndim else None
    count = int(np.prod(shape)) if shape else 1
    if shape is None or len(raw) < 4 + 4 * ndim + count * dtype.itemsize:
        raise ConfigError(f"key 'data.root': file '{path}' is truncated: its header announces "
                          f"{'an unreadable shape' if shape is None else list(shape)} but it holds "
                          f"{len(raw)} bytes: expected a complete MNIST-format file")
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=4 + 4 * ndim)
    return data.reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (gzip when ``path`` ends in .gz); the inverse of :func:`read_idx`."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def _find(root: Path, stem: str) -> Path | None:
    for name in (stem, f"{stem}.gz"):
        if (root / name).is_file():
            return root / name
    return None


def load_idx_split(root: str | Path, split: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Images ``(n, h, w)`` uint8 and labels ``(n,)`` of the ``train`` or ``test`` split under ``root``.

    Missing images are a :class:`ConfigError` naming every file looked for and how to get them; a missing labels
    file gives ``labels = None`` (unlabelled data: models train, label-based metrics are skipped).
    """
    root = Path(root)
    stem_i, stem_l = IDX_FILES[split]
    f_images, f_labels = _find(root, stem_i), _find(root, stem_l)
    if f_images is None:
        where = "does not exist" if not root.exists() else ("is not a folder" if not root.is_dir() else
                                                             f"holds no {stem_i}[.gz] (nor {stem_l}[.gz])")
        get = (f"install Fashion-MNIST with 'apt-get install dataset-fashion-mnist' (files in {DEFAULT_ROOT}), or "
               "set data.root=DIR to a folder of MNIST-format files") if root == Path(DEFAULT_ROOT) else \
              (f"expected a folder holding the four MNIST-format files ({', '.join(IDX_FILES['train'])}, "
               f"{', '.join(IDX_FILES['test'])}, raw or .gz): set data.root=DIR")
        raise DataNotFound(f"key 'data.root': '{root}' {where}; {get}")
    images = read_idx(f_images)
    labels = read_idx(f_labels) if f_labels is not None else None
    if images.ndim != 3 or (labels is not None and (labels.ndim != 1 or labels.shape[0] != images.shape[0])):
        raise ConfigError(
            f"key 'data.root': files in '{root}' do not hold images (n, h, w) and labels (n,): got "
            f"{images.shape} and {None if labels is None else labels.shape}"
        )
    return images, labels


def _checked_split(cfg: DataConfig, split: str) -> tuple[np.ndarray, np.ndarray | None]:
    images, labels = load_idx_split(cfg.root, split)
    if list(images.shape[1:]) != list(cfg.image_shape):
        raise ConfigError(
            f"key 'data.image_shape': value {list(cfg.image_shape)} does not match the files in '{cfg.root}' "
            f"(images of shape {list(images.shape[1:])}): expected data.image_shape={list(images.shape[1:])}"
        )
    if images.shape[0] == 0:
        raise ConfigError(f"key 'data.root': the {split} images in '{cfg.root}' hold no image: expected at least one")
    return images, labels


def check(cfg: DataConfig) -> None:
    """Raise the :class:`ConfigError` (or :class:`DataNotFound`) that :func:`load` would, without building the
    data set: files present, readable, complete and of the configured image shape. Called before a run folder
    exists, so bad data never leaves one behind."""
    if cfg.source == "idx":
        for split in IDX_FILES:
            _checked_split(cfg, split)


def _load_idx(cfg: DataConfig, key: jax.Array) -> Dataset:
    parts = {}
    for split, limit in (("train", cfg.n_train), ("test", cfg.n_test)):
        images, labels = _checked_split(cfg, split)
        n = min(limit, images.shape[0]) if limit else images.shape[0]
        x = images[:n].reshape(n, -1).astype(np.float32) / 255.0
        parts[split] = (x, None if labels is None else labels[:n].astype(np.int32))
    (x_tr, y_tr), (x_te, y_te) = parts["train"], parts["test"]
    if cfg.binarize == "static":
        k1, k2 = jax.random.split(key)
        x_tr = np.asarray(jax.random.bernoulli(k1, x_tr)).astype(np.float32)
        x_te = np.asarray(jax.random.bernoulli(k2, x_te)).astype(np.float32)
    h, w = cfg.image_shape
    as_labels = lambda y: None if y is None else jnp.asarray(y)
    return Dataset(jnp.asarray(x_tr), as_labels(y_tr), jnp.asarray(x_te), as_labels(y_te), (h, w),
                   f"IDX files in {cfg.root} ({x_tr.shape[0]} train, {x_te.shape[0]} test, {h}x{w})")


# --------------------------------------------------------------------------------------------- embedded sets


def toy_points(key: jax.Array, name: str, n: int) -> tuple[jax.Array, jax.Array]:
    """``n`` points of the named 2-D set of :mod:`vlab.data.toy`, scaled to roughly [-1, 1]^2, and labels."""
    if name == "pinwheel":
        x, y = toy_data.pinwheel(key, n)
        return x / 3.0, y
    if name == "gaussians":
        x, y = toy_data.eight_gaussians(key, n)
        return x / 2.5, y
    if name == "two_moons":
        x, y = toy_data.two_moons(key, n)
        return (x - jnp.array([0.5, 0.25])) / 1.5, y
    if name == "rings":
        x, y = toy_data.concentric_rings(key, n)
        return x / 3.3, y
    if name == "checkerboard":
        x, y = toy_data.checkerboard(key, n)
        return x / 2.0, y
    raise ConfigError(f"key 'data.name': value '{name}' is not valid: expected one of {', '.join(TOY_SETS)}")


def blob_images(points: jax.Array, side: int, width: float = 0.3) -> jax.Array:
    """Grey-level ``side x side`` images in [0, 1] of a Gaussian blob centred at each 2-D point of [-1, 1]^2.

    Pixel (i, j) at position (u_j, v_i) on a regular grid of [-1.2, 1.2]^2 has intensity
    exp(-|p - (u_j, v_i)|^2 / (2 width^2)); rows run downwards, so the picture shows the point where a plot would.
    """
    grid = jnp.linspace(-1.2, 1.2, side)
    u, v = jnp.meshgrid(grid, grid[::-1])
    d2 = (points[:, 0, None, None] - u) ** 2 + (points[:, 1, None, None] - v) ** 2
    return jnp.exp(-0.5 * d2 / width**2).reshape(points.shape[0], side * side)


def embed(points: jax.Array, embedding: str, dim: int, key: jax.Array) -> jax.Array:
    """The fixed map from 2-D points to ``dim`` dimensions: blob images, a random tanh network, or a matrix.

    ``mlp``: x = W2 tanh(W1 p + b1) with W1 (2 x 32), W2 (32 x dim) Gaussian and fixed by ``key``; ``linear``:
    x = W p with orthonormal rows, so distances are kept.
    """
    if embedding == "images":
        return blob_images(points, math.isqrt(dim))
    k1, k2, k3 = jax.random.split(key, 3)
    if embedding == "linear":
        q, _ = jnp.linalg.qr(jax.random.normal(k1, (dim, 2)))
        return points @ q[:, :2].T if dim >= 2 else points[:, :dim]
    w1 = 2.0 * jax.random.normal(k1, (2, 32))
    b1 = jax.random.normal(k2, (32,))
    w2 = jax.random.normal(k3, (32, dim)) / math.sqrt(32)
    return jnp.tanh(points @ w1 + b1) @ w2


@functools.partial(jax.jit, static_argnames=("name", "embedding", "dim", "n"))
def embedded_points(key: jax.Array, embed_key: jax.Array, noise: jax.Array, *, name: str, embedding: str, dim: int,
                    n: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``n`` embedded points: the 2-D points p, their embedding x = embed(p) + noise * N(0, I), and labels."""
    k_pts, k_noise = jax.random.split(key)
    p, y = toy_points(k_pts, name, n)
    x = embed(p, embedding, dim, embed_key)
    x = x + noise * jax.random.normal(k_noise, x.shape)
    if embedding == "images":
        x = jnp.clip(x, 0.0, 1.0)
    return x, y.astype(jnp.int32), p


def _load_embedded(cfg: DataConfig, key: jax.Array) -> Dataset:
    k_tr, k_te = jax.random.split(key)
    k_embed = jax.random.key(cfg.embedding_seed)
    out = []
    for k, n in ((k_tr, cfg.n_train), (k_te, cfg.n_test)):
        x, y, _ = embedded_points(k, k_embed, jnp.asarray(cfg.noise), name=cfg.name, embedding=cfg.embedding,
                                  dim=cfg.dim, n=n)
        out += [x, y]
    side = math.isqrt(cfg.dim)
    shape = (side, side) if cfg.embedding == "images" else None
    return Dataset(*out, shape, f"{cfg.name} embedded as {cfg.embedding} in {cfg.dim} dimensions")


def load(cfg: DataConfig, key: jax.Array | None = None) -> Dataset:
    """The data set a :class:`DataConfig` names.

    The data set is part of the data config, not of the run's seed: ``key`` (which draws the embedded points and
    any static binarisation) defaults to the stream ``"data"`` of ``embedding_seed``. So runs that differ only in
    ``seed`` (the members of a seed sweep) train and test on the same data, as they would on files."""
    if key is None:
        key = stream(cfg.embedding_seed, "data")
    return _load_idx(cfg, key) if cfg.source == "idx" else _load_embedded(cfg, key)


def sample_batch(x: jax.Array, key: jax.Array, batch_size: int, binarize: str = "none") -> jax.Array:
    """A batch drawn uniformly with replacement, inside compiled code; ``dynamic`` binarisation redraws
    x_b ~ Bernoulli(x) for every batch (the IWAE paper's dynamically binarised MNIST)."""
    k_idx, k_bin = jax.random.split(key)
    batch = x[jax.random.randint(k_idx, (batch_size,), 0, x.shape[0])]
    if binarize == "dynamic":
        batch = jax.random.bernoulli(k_bin, batch).astype(batch.dtype)
    return batch
