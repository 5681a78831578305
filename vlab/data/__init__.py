"""Data: the 2-D toy sets (:mod:`vlab.data.toy`), MNIST-format IDX files (:mod:`vlab.data.idx`) and the embedded
synthetic sets and batches of the latent-variable models (:mod:`vlab.data.embedded`). A config's ``data:`` section
is read by :mod:`vlab.harness.data_config`."""

from vlab.data.embedded import Dataset, blob_images, embed, embedded_points, sample_batch
from vlab.data.idx import DEFAULT_ROOT, IDX_FILES, load_idx_split, read_idx, write_idx
from vlab.data.toy import TOY_SETS, unit_points

__all__ = ["DEFAULT_ROOT", "IDX_FILES", "TOY_SETS", "Dataset", "blob_images", "embed", "embedded_points",
           "load_idx_split", "read_idx", "sample_batch", "unit_points", "write_idx"]
