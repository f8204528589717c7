r"""Theorem 5's structured target: y(x, I) = g*(x; W h(I) + b0).

h: [-1,1]^m2 -> R^w is a random smooth map, W a fixed matrix with bounded norm, g*
a small tanh MLP (hypernets/data/structured.py). For a range of model sizes
(`model.param_budget`) each method is trained; the report takes, for every error
level, the fewest parameters that reach it and fits log N against log eps.

  python launch/sweep.py --config=configs/structured.py:quick --sweep=size \
      --workdir=/tmp/structured
  python launch/main.py --config=configs/structured.py --workdir=/tmp/structured_one

Variants (comma-separated): quick | small (CI), kind=K.
"""

import ml_collections

from hypernets import config as config_lib
from hypernets.experiments import sweeps

BUDGETS = (600, 1200, 2400, 4800, 9600, 19200)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """One size of one method on the structured target; see the module docstring."""
  options = config_lib.parse_variants(arg, known={"quick", "small", "kind"}, config_name="structured")
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.num_seeds = 2

  config.data = ml_collections.ConfigDict()
  config.data.name = "structured"
  config.data.seed = 0
  config.data.m1 = 4
  config.data.m2 = 4
  config.data.selector_width = 4  # w: the selector h(I) lives in R^w
  config.data.selector_hidden = 32
  config.data.target_primary_width = 16  # g*: m1 -> 16 -> 1, tanh
  config.data.num_train_conditions = 1024
  config.data.num_test_conditions = 256
  config.data.points_per_condition = 32
  # 'fixed': train on the num_train_conditions stored rows; 'online': every step
  # draws fresh conditioning inputs and points from the target (the approximation
  # regime the theorems speak of; hypernets/data/online.py). Both evaluate on the
  # same test sample (online: >= 10x a batch).
  config.data.regime = "fixed"

  config.model = ml_collections.ConfigDict()
  config.model.kind = options.get("kind", "hypernet")
  config.model.activation = "relu"
  # 'lecun': flax's default (lecun_normal kernels, zero biases); 'torch': PyTorch's
  # default, kernels and biases U(+-1/sqrt(fan_in)) (hypernets/nets.py).
  config.model.init_scheme = "lecun"
  config.model.primary = ml_collections.ConfigDict()
  config.model.primary.name = "mlp"
  config.model.primary.widths = (16,)  # the hypernetwork's g has g*'s shape
  config.model.primary.activation = "tanh"
  config.model.primary.use_bias = True
  config.model.primary.channels = (8, 16)
  config.model.primary.kernel_size = 3
  config.model.primary.strides = 2
  config.model.generator = "heads"
  config.model.f_width = 32
  config.model.f_depth = 2
  config.model.f_init = "primary"
  config.model.f_init_scale = 0.01
  config.model.generated_params = ".*"
  config.model.rank = 4
  config.model.chunk_size = 64
  config.model.chunk_embedding_dim = 8
  config.model.chunk_hidden = ()
  config.model.e_width = 32
  config.model.e_depth = 2
  config.model.embedding_dim = 8
  config.model.q_widths = (16,)
  config.model.q_use_bias = True
  config.model.standard_widths = (32, 32)
  config.model.param_budget = 4800  # widths chosen to meet it (0 = use the widths above)
  # Small budgets are met only coarsely by an integer width.
  config.model.param_budget_tolerance = 0.1

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 3e-3
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_steps = 100
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 0.0
  config.optimizer.grad_clip_norm = 0.0

  config.batch = ml_collections.ConfigDict()
  config.batch.conditions = 32
  config.batch.points = 32
  # 'random': distinct random rows each step; 'epoch': a fresh permutation of the
  # training rows every epoch (hypernets/data/epochs.py). Fixed regime only.
  config.batch.sampling = "random"
  config.data.sampling = config.batch.get_ref("sampling")  # read by the data pipeline

  config.num_train_steps = 6000
  config.log_every_steps = 500
  config.eval_every_steps = 2000
  config.checkpoint_every_steps = 2000
  config.max_checkpoints_to_keep = 2
  config.eval_conditions_per_chunk = 256
  config_lib.add_run_fields(config)

  if "quick" in options:
    config.num_train_steps = 3000
    config.eval_every_steps = 1000
    config.checkpoint_every_steps = 1000
  if "small" in options:
    config.data.num_train_conditions = 64
    config.data.num_test_conditions = 16
    config.data.points_per_condition = 8
    config.batch.conditions = 8
    config.batch.points = 8
    config.num_seeds = 1
    config.num_train_steps = 20
    config.log_every_steps = 10
    config.eval_every_steps = 20
    config.checkpoint_every_steps = 20
    config.optimizer.warmup_steps = 0
  return config


def get_sweeps(arg: str | None = None) -> dict[str, list[dict]]:
  """size: every method at every parameter budget."""
  del arg
  return {"size": sweeps.product(
      sweeps.sweep("model.kind", ["hypernet", "embedding", "standard"]),
      sweeps.sweep("model.param_budget", list(BUDGETS)))}
