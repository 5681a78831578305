"""IDX reading and writing, missing-file and shape errors, embedded synthetic sets; the real files when installed."""

from __future__ import annotations

import gzip
from pathlib import Path

import jax
import numpy as np
import pytest

from vlab import data
from vlab.data import idx
from vlab.errors import ConfigError, DataNotFound
from vlab.harness import data_config


def _write_set(root: Path, n_train: int = 12, n_test: int = 6, shape=(4, 5), gz: bool = True) -> dict:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        img = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
        lab = rng.integers(0, 10, size=(n,), dtype=np.uint8)
        stem_i, stem_l = data.IDX_FILES[split]
        suffix = ".gz" if gz else ""
        data.write_idx(root / f"{stem_i}{suffix}", img)
        data.write_idx(root / f"{stem_l}{suffix}", lab)
        arrays[split] = (img, lab)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    arrays = _write_set(tmp_path, gz=gz)
    img, lab = data.load_idx_split(tmp_path, "train")
    np.testing.assert_array_equal(img, arrays["train"][0])
    np.testing.assert_array_equal(lab, arrays["train"][1])


def test_idx_header_parsed_by_hand(tmp_path):
    # magic 0x00000803 (uint8, 3 dims), sizes 2 x 2 x 3 big-endian, then 12 bytes
    raw = bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(12))
    with gzip.open(tmp_path / "a.gz", "wb") as f:
        f.write(raw)
    out = data.read_idx(tmp_path / "a.gz")
    assert out.shape == (2, 2, 3) and out[1, 1, 2] == 11


def test_not_an_idx_file(tmp_path):
    (tmp_path / "bad").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="not an IDX file"):
        data.read_idx(tmp_path / "bad")


def test_missing_files_error_names_files_and_remedy(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError):
        data.load_idx_split(tmp_path, "train")
    cfg = data_config.DataConfig(source="idx", root=str(tmp_path))
    with pytest.raises(DataNotFound) as e:  # the config layer names the key
        data_config.check(cfg)
    msg = str(e.value)
    assert msg.startswith("key 'data.root': ")
    assert "train-images-idx3-ubyte" in msg and "train-labels-idx1-ubyte" in msg and "data.root" in msg
    assert "fashion" not in msg.lower()  # a folder of the user's own (MNIST) files: no Fashion-MNIST advice
    assert "\n" not in msg
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_idx_split(tmp_path / "nowhere", "train")
    monkeypatch.setattr(idx, "DEFAULT_ROOT", str(tmp_path / "default"))
    with pytest.raises(FileNotFoundError) as e:
        data.load_idx_split(tmp_path / "default", "train")
    assert "apt-get install dataset-fashion-mnist" in str(e.value) and "data.root" in str(e.value)


def test_load_idx_scales_and_limits(tmp_path):
    arrays = _write_set(tmp_path)
    cfg = data_config.DataConfig(source="idx", root=str(tmp_path), image_shape=[4, 5], n_train=10, n_test=6)
    ds = data_config.load(cfg, jax.random.key(0))
    assert ds.x_train.shape == (10, 20) and ds.x_test.shape == (6, 20) and ds.image_shape == (4, 5)
    np.testing.assert_allclose(ds.x_train[3], arrays["train"][0][3].reshape(-1) / 255.0, rtol=1e-6)
    assert float(ds.x_train.max()) <= 1.0


def test_image_shape_mismatch_is_a_config_error(tmp_path):
    _write_set(tmp_path)
    cfg = data_config.DataConfig(source="idx", root=str(tmp_path), image_shape=[28, 28])
    with pytest.raises(ConfigError, match=r"data.image_shape.*\[4, 5\]"):
        data_config.load(cfg, jax.random.key(0))


def test_static_binarisation(tmp_path):
    _write_set(tmp_path)
    cfg = data_config.DataConfig(source="idx", root=str(tmp_path), image_shape=[4, 5], binarize="static")
    ds = data_config.load(cfg, jax.random.key(0))
    assert set(np.unique(np.asarray(ds.x_train)).tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("name,embedding,dim", [(n, "images", 64) for n in data.TOY_SETS]
                         + [("pinwheel", "mlp", 10), ("gaussians", "linear", 5)])
def test_embedded_sets(name, embedding, dim):
    cfg = data_config.DataConfig(name=name, embedding=embedding, dim=dim, n_train=50, n_test=20)
    ds = data_config.load(cfg, jax.random.key(0))
    assert ds.x_train.shape == (50, dim) and ds.x_test.shape == (20, dim)
    assert ds.y_train.shape == (50,) and np.all(np.isfinite(np.asarray(ds.x_train)))
    if embedding == "images":
        assert ds.image_shape == (8, 8) and float(ds.x_train.min()) >= 0.0 and float(ds.x_train.max()) <= 1.0


def test_linear_embedding_keeps_distances():
    p, _ = data.unit_points(jax.random.key(0), "pinwheel", 30)
    x = data.embed(p, "linear", 7, jax.random.key(1))
    d_p = np.linalg.norm(p[:, None] - p[None], axis=-1)
    d_x = np.linalg.norm(x[:, None] - x[None], axis=-1)
    np.testing.assert_allclose(d_x, d_p, atol=1e-5)


def test_blob_image_peaks_at_the_point():
    img = data.blob_images(np.array([[1.2, 1.2], [-1.2, -1.2]]), 9).reshape(2, 9, 9)
    assert np.unravel_index(np.argmax(img[0]), (9, 9)) == (0, 8)  # top right
    assert np.unravel_index(np.argmax(img[1]), (9, 9)) == (8, 0)  # bottom left


def test_images_need_a_square_dim():
    from vlab.harness.config import validate

    with pytest.raises(ConfigError, match="data.dim"):
        validate(data_config.DataConfig(dim=60), prefix="data.")


def test_sample_batch_dynamic_binarisation():
    x = jax.numpy.full((10, 4), 0.5)
    b = data.sample_batch(x, jax.random.key(0), 64, "dynamic")
    assert b.shape == (64, 4) and set(np.unique(np.asarray(b)).tolist()) == {0.0, 1.0}


@pytest.mark.data
@pytest.mark.skipif(not Path(data.DEFAULT_ROOT).is_dir(), reason="dataset-fashion-mnist is not installed")
def test_real_fashion_mnist():
    cfg = data_config.DataConfig(source="idx", n_train=0, n_test=0)
    ds = data_config.load(cfg, jax.random.key(0))
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert sorted(np.unique(np.asarray(ds.y_test)).tolist()) == list(range(10))
    assert np.bincount(np.asarray(ds.y_train)).tolist() == [6000] * 10


def test_missing_labels_file_gives_unlabelled_data(tmp_path):
    _write_set(tmp_path)
    for split in ("train", "test"):
        (tmp_path / f"{data.IDX_FILES[split][1]}.gz").unlink()
    cfg = data_config.DataConfig(source="idx", root=str(tmp_path), image_shape=[4, 5])
    ds = data_config.load(cfg, jax.random.key(0))
    assert ds.y_train is None and ds.y_test is None and ds.x_train.shape == (12, 20)
