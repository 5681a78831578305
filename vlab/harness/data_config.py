r"""A data set from its configuration: the schema :class:`DataConfig`, its checks before a run folder exists
(:func:`check`) and the :class:`vlab.data.Dataset` it names (:func:`load`).

Two sources share one schema: ``source: idx`` reads MNIST-format IDX files from ``root`` (:mod:`vlab.data.idx`);
``source: embedded`` needs no file (:mod:`vlab.data.embedded`). Problems with the files become one-line
:class:`ConfigError`\ s naming ``data.root`` (a missing folder is :class:`DataNotFound`, which ``vlab reproduce``
reports as skipped).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from vlab.data.embedded import Dataset, embedded_points
from vlab.data.idx import DEFAULT_ROOT, IDX_FILES, load_idx_split
from vlab.data.toy import TOY_SETS
from vlab.errors import ConfigError, DataNotFound
from vlab.harness.fields import spec
from vlab.keys import stream


@dataclass
class DataConfig:
    """Where the data comes from, and how it is prepared."""

    source: Literal["embedded", "idx"] = "embedded"
    name: str = spec("pinwheel", help="embedded: the 2-D toy set (vlab.data.toy.TOY_SETS): pinwheel, gaussians, "
                     "two_moons, rings, checkerboard")
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
        if self.name not in TOY_SETS:
            raise ConfigError(f"key '{prefix}name': value '{self.name}' is not valid: expected one of "
                              f"{', '.join(TOY_SETS)}")
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


def _read_split(root: str, split: str) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`vlab.data.idx.load_idx_split` with its errors as the config errors of ``data.root``."""
    try:
        return load_idx_split(root, split)
    except FileNotFoundError as e:
        raise DataNotFound(f"key 'data.root': {e}") from None
    except ValueError as e:
        raise ConfigError(f"key 'data.root': {e}") from None


def _checked_split(cfg: DataConfig, split: str) -> tuple[np.ndarray, np.ndarray | None]:
    images, labels = _read_split(cfg.root, split)
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
