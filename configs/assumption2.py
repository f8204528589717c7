r"""Assumption 2 (adding a neuron strictly lowers the error), paper Experiment 4.

A one-hidden-layer ELU MLP d -> w -> 10 for every width w = 1..29, MSE on one-hot
labels, Adadelta (lr 1.0), batch 64. Reported: test MSE (squared error summed over
the 10 outputs, mean over examples: the authors' test loss) against width, mean and
std over repeats, and how many width increases fail to lower the mean
(hypernets/experiments/assumption2.py). All widths x repeats train in one program (a padded
max-width net with masked hidden units).

Run (embedded offline MNIST-5k, 10 repeats, 15 epochs: ~1.5 minutes on a 2-core CPU):
  python launch/main.py --config=configs/assumption2.py:quick --workdir=/tmp/a2
Paper sizes (FashionMNIST through tensorflow-datasets, 2 epochs as in the authors'
code, 100 repeats):
  python launch/main.py --config=configs/assumption2.py:paper \
      --config.data.data_dir=$HOME/tensorflow_datasets --workdir=/tmp/a2_paper
Other sets: --config.data.source=mnist | cifar10 (tfds), digits_8x8 (offline).

Variants (comma-separated): quick | paper | small (tests).
Sweeps (`launch/sweep.py --sweep=NAME`): source (mnist_5k, digits_8x8).
"""

import ml_collections

from hypernets import config as config_lib
from hypernets.experiments import sweeps


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The Assumption 2 check; see the module docstring for `arg`."""
  options = config_lib.parse_variants(arg, known={"quick", "paper", "small"},
                                      config_name="assumption2")
  config = ml_collections.ConfigDict()
  config.experiment = "assumption2"
  config.seed = 0  # repeat r: init and batch order from key(seed + r), all widths
  config.num_seeds = 10  # repeats, trained with every width in one program

  config.data = ml_collections.ConfigDict()
  # mnist_5k | digits_8x8 (offline) | fashion_mnist (the paper's) | mnist | cifar10 (tfds)
  config.data.source = "mnist_5k"
  config.data.data_dir = ""  # tfds data_dir ("" = the tfds default)
  config.data.num_train_examples = 0  # 0 = all (mnist_5k: 4,000 / 1,000)
  config.data.num_test_examples = 0
  config.data.num_classes = 10

  config.model = ml_collections.ConfigDict()
  config.model.widths = tuple(range(1, 30))  # strictly increasing
  config.model.activation = "elu"

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = "adadelta"  # rho 0.9, eps 1e-6, as torch's Adadelta
  config.optimizer.learning_rate = 1.0
  config.optimizer.momentum = 0.0
  config.optimizer.schedule = "constant"
  config.optimizer.warmup_steps = 0
  config.optimizer.weight_decay = 0.0
  config.optimizer.grad_clip_norm = 0.0

  config.batch_size = 64
  # The paper's text gives no epoch count (unsure); the authors' code defaults to 2
  # epochs of 60k images (1,875 steps). On 4,000 images, 30 epochs are as many steps.
  config.num_epochs = 30
  config.log_every_steps = 100
  config.eval_every_epochs = 5
  config.eval_chunk_size = 1000  # test examples per evaluation chunk (memory)
  config.checkpoint_every_epochs = 5  # orbax checkpoints: a rerun resumes
  config.max_checkpoints_to_keep = 2
  # steps_per_call, mesh.*, distributed.*, overwrite, debug_nans: as every run.
  config_lib.add_run_fields(config, compute_dtype=False)

  if "quick" in options:
    config.num_seeds = 10
    config.num_epochs = 15
  if "paper" in options:
    config.data.source = "fashion_mnist"
    config.num_seeds = 100
    config.num_epochs = 2
  if "small" in options:
    config.data.source = "digits_8x8"
    config.data.num_train_examples = 256
    config.data.num_test_examples = 128
    config.model.widths = (1, 2, 3, 5, 8)
    config.num_seeds = 3
    config.batch_size = 32
    config.num_epochs = 2
    config.log_every_steps = 4
    config.eval_every_epochs = 1
    config.checkpoint_every_epochs = 1
    config.eval_chunk_size = 64
  return config


def get_sweeps(arg: str | None = None) -> dict[str, list[dict]]:
  """source: the offline sets (add tfds ones with --config.data.data_dir)."""
  del arg
  return {"source": sweeps.sweep("data.source", ["mnist_5k", "digits_8x8"])}
