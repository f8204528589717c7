r"""Rotation prediction on CIFAR-10 (paper Sec. 6.2): the MNIST protocol with d = 3072
and an ELU primary (see configs/rotation_mnist.py for the task and the models).

CIFAR-10 is read through tensorflow-datasets (`tfds.data_source`, no TensorFlow
needed) from a prepared data_dir; no CIFAR-10 ships offline, so this experiment
needs the data:
  tfds build cifar10 --file_format=array_record --data_dir=DIR   # where there is internet
  python launch/main.py --config=configs/rotation_cifar10.py:quick \
      --config.data.data_dir=DIR --workdir=/tmp/rot_cifar
Sweeps: `launch/sweep.py --config=configs/rotation_cifar10.py:quick --sweep=depth|lr`.

Variants (comma-separated): quick | paper, kind=K, depth=D.
"""

import os

import ml_collections

from hypernets import config as config_lib


def _mnist_module():
  return config_lib.load_config_module(
      os.path.join(os.path.dirname(os.path.abspath(__file__)), "rotation_mnist.py"))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The CIFAR-10 rotation experiment (the MNIST one with d = 3072 and ELU)."""
  mnist = _mnist_module()
  options = [o for o in (arg or "").split(",") if o and o not in ("paper", "quick", "small")]
  config = mnist.get_config(",".join(options) or None)
  config.data.source = "cifar10"
  config.model.primary.activation = "elu"
  config.model.embedding_dim = 10 * mnist.IMAGE_DIMS["cifar10"] + 10
  if "quick" in (arg or ""):
    config.data.num_train_examples = 5000
    config.data.num_test_examples = 1000
    config.optimizer.learning_rate = 1e-2
    config.num_epochs = 20
    config.num_seeds = 3
  if "paper" in (arg or ""):
    config.num_seeds = 100
  config.num_train_steps = mnist._steps(config)  # pylint: disable=protected-access
  return config


def get_sweeps(arg: str | None = None) -> dict[str, list[dict]]:
  """The same depth and learning-rate sweeps as MNIST."""
  return _mnist_module().get_sweeps(arg)
