"""MNIST-format IDX files (gzip or raw): reading, writing, and the train and test splits of a folder.

Fashion-MNIST ships as Debian's ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``); a user's own
MNIST-format files work the same way. Bad files raise :class:`ValueError`, missing ones :class:`FileNotFoundError`,
each saying which file and what was expected.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


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
        raise ValueError(f"file '{path}' cannot be read ({type(e).__name__}: {e}): expected an "
                          "MNIST-format IDX file (raw or .gz)") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"file '{path}' is not an IDX file (bad magic number {raw[:4].hex()}): "
                          "expected an MNIST-format file (raw or .gz)")
    ndim = raw[3]
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim]) if len(raw) >= 4 + 4 * ndim else None
    count = int(np.prod(shape)) if shape else 1
    if shape is None or len(raw) < 4 + 4 * ndim + count * dtype.itemsize:
        raise ValueError(f"file '{path}' is truncated: its header announces "
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

    Missing images are a :class:`FileNotFoundError` naming the files looked for and how to get them; a missing labels
    file gives ``labels = None`` (unlabelled data: models train, label-based metrics are skipped).
    """
    root = Path(root)
    stem_i, stem_l = IDX_FILES[split]
    f_images, f_labels = _find(root, stem_i), _find(root, stem_l)
    if f_images is None:
        where = "does not exist" if not root.exists() else ("is not a folder" if not root.is_dir() else
                                                             f"holds no {stem_i}[.gz] (nor {stem_l}[.gz])")
        get = (f"install Fashion-MNIST with 'apt-get install dataset-fashion-mnist' (files in {DEFAULT_ROOT}), or "
               "point data.root at a folder of MNIST-format files") if root == Path(DEFAULT_ROOT) else \
              (f"expected a folder holding the four MNIST-format files ({', '.join(IDX_FILES['train'])}, "
               f"{', '.join(IDX_FILES['test'])}, raw or .gz): set data.root=DIR")
        raise FileNotFoundError(f"'{root}' {where}; {get}")
    images = read_idx(f_images)
    labels = read_idx(f_labels) if f_labels is not None else None
    if images.ndim != 3 or (labels is not None and (labels.ndim != 1 or labels.shape[0] != images.shape[0])):
        raise ValueError(
            f"files in '{root}' do not hold images (n, h, w) and labels (n,): got "
            f"{images.shape} and {None if labels is None else labels.shape}"
        )
    return images, labels
