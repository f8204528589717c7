"""The rotation experiment end to end: embedded digits and tfds (mocked) MNIST."""

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

from conftest import load_config
from hypernets import training
from hypernets.errors import ConfigError


def test_rotation_small_learns_with_paper_shapes(tmp_path):
  # The small variant (8x8 digits, 256 training images, f of width 16, batch 16) with
  # the experiment's own plain SGD at lr 0.1 instead of 1e-3 and 100 steps instead of
  # 30, evaluated on all 359 test digits: a few seconds. Measured (2-core CPU): test
  # error 0.65 with seed 0; untrained (optimizer update removed) 0.89, near chance.
  config = load_config("rotation_mnist", "small")
  config.optimizer.learning_rate = 0.1
  config.num_train_steps = 100
  config.eval_every_steps = config.checkpoint_every_steps = 100
  config.data.num_test_examples = 0
  state = training.train_and_evaluate(config, str(tmp_path))
  assert state.step.tolist() == [config.num_train_steps]
  results = json.loads((tmp_path / "results.json").read_text())
  # g = d -> 10 -> 12 without biases on 8x8 digits: N_g = 10 d + 10 * 12.
  assert results["param_counts"]["N_g"] == 10 * 64 + 120
  chance = 1 - 1 / 12  # 0.917: 12 angle classes
  assert results["test_error"] < chance - 0.1, results["test_error"]
  assert results["train_error"] < chance - 0.1, results["train_error"]
  assert 0 < results["test_nll"] < np.log(12)  # below the uniform guess's loss


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
