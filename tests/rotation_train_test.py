"""The rotation experiment end to end: embedded digits and tfds (mocked) MNIST."""

import json

import pytest
import tensorflow_datasets as tfds

from conftest import load_config
from hypernets import training
from hypernets.errors import ConfigError


def test_rotation_small_trains_with_paper_shapes(tmp_path):
  config = load_config("rotation_mnist", "small")
  state = training.train_and_evaluate(config, str(tmp_path))
  assert state.step.tolist() == [config.num_train_steps]
  results = json.loads((tmp_path / "results.json").read_text())
  # g = d -> 10 -> 12 without biases on 8x8 digits: N_g = 10 d + 10 * 12.
  assert results["param_counts"]["N_g"] == 10 * 64 + 120
  assert 0.0 <= results["test_error"] <= 1.0
  assert results["test_nll"] > 0


def test_rotation_on_tfds_mnist_under_mock_data(tmp_path):
  config = load_config("rotation_mnist", "small")
  config.data.source = "mnist"
  config.data.num_train_examples = 64
  config.data.num_test_examples = 32
  config.num_train_steps = 4
  with tfds.testing.mock_data(num_examples=64):
    training.train_and_evaluate(config, str(tmp_path))
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["param_counts"]["N_g"] == 10 * 784 + 120


def test_rotation_cifar10_config_under_mock_data(tmp_path):
  config = load_config("rotation_cifar10", "quick")
  assert config.model.primary.activation == "elu"
  assert config.model.embedding_dim == 10 * 3072 + 10
  config.data.num_train_examples = 32
  config.data.num_test_examples = 16
  config.batch.conditions = 8
  config.num_seeds = 1
  config.num_train_steps = 2
  with tfds.testing.mock_data(num_examples=32):
    training.train_and_evaluate(config, str(tmp_path))
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["param_counts"]["N_g"] == 10 * 3072 + 120


def test_rotation_needs_one_point_per_image(tmp_path):
  config = load_config("rotation_mnist", "small")
  config.batch.points = 4
  with pytest.raises(ConfigError, match="config.batch.points must be 1"):
    training.train_and_evaluate(config, str(tmp_path))
