r"""Synthetic target y(x, I) = <x, h(I)> (paper Sec. 6.1): hypernetwork vs embedding.

The paper's protocol and our choices (m1 = m2 = 10): docs/paper_protocol.md.

Run one model:
  python launch/main.py --config=configs/synthetic.py --workdir=/tmp/synthetic
  python launch/main.py --config=configs/synthetic.py \
      --config.model.kind=embedding --workdir=/tmp/synthetic_embedding
Compare the kinds side by side (the README's main job):
  python launch/compare.py --config=configs/synthetic.py --workdir=/tmp/hypernets_main

Sweeps (`python launch/sweep.py --config=configs/synthetic.py --sweep=NAME --workdir=W`):
  depth      hypernetwork vs embedding method, depth of f / e in 1..8.
  embedding  embedding method as the embedding size grows (7 sizes, no hypernetwork).
  depth_lr   both methods at depths 1, 4, 8, each at learning rates 1e-3, 3e-3, 1e-2
             (pick per depth on the validation sample: the online regime's 'train'
             split, a fresh sample apart from the test one).
Each in either data regime: `--config.data.regime=online` trains on fresh draws
(the approximation error the theorems bound), 'fixed' on num_train_conditions rows.

Variants (`--config=configs/synthetic.py:ARG`, comma-separated):
  quick      3 seeds, 3,000 steps: the sweeps' CPU-sized setting (REPRODUCTION.md).
  paper      paper scale: f / e of width 100 (the paper's f), 10 seeds, 10,000 steps.
  small      a seconds-long run for tests and CI.
  kind=K     model.kind = K (hypernet | embedding | standard).
  regime=R   data.regime = R (fixed | online).
"""

import ml_collections

from hypernets import config as config_lib
from hypernets.experiments import sweeps


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The default synthetic experiment; see the module docstring for `arg`."""
  options = config_lib.parse_variants(arg, known={"quick", "paper", "small", "kind", "regime"}, config_name="synthetic")
  config = ml_collections.ConfigDict()
  config.seed = 0  # model init and batch order of the first seed
  config.num_seeds = 1  # seeds seed, seed+1, ... trained together in one program

  config.data = ml_collections.ConfigDict()
  config.data.name = "synthetic"
  config.data.seed = 0  # the target h and the train/test samples
  config.data.m1 = 10  # dim of x
  config.data.m2 = 10  # dim of I
  config.data.target_width = 32  # hidden width of the target selector h
  config.data.target_gain = 3.0  # h's weights are N(0, gain^2 / fan_in)
  config.data.num_train_conditions = 2000
  config.data.num_test_conditions = 500
  config.data.points_per_condition = 64
  # 'fixed': train on the num_train_conditions stored rows; 'online': every step
  # draws fresh conditioning inputs and points from the target (the approximation
  # regime the theorems speak of; hypernets/data/online.py). Both evaluate on the
  # same test sample (online: >= 10x a batch).
  config.data.regime = options.get("regime", "fixed")

  config.model = ml_collections.ConfigDict()
  config.model.kind = options.get("kind", "hypernet")  # hypernet | embedding | standard
  config.model.activation = "relu"  # of the f / e trunks and of the standard net
  # 'lecun': flax's default (lecun_normal kernels, zero biases); 'torch': PyTorch's
  # default, kernels and biases U(+-1/sqrt(fan_in)) (hypernets/nets.py).
  config.model.init_scheme = "lecun"
  # Primary g (hypernetwork) and, at the same hidden widths, q (embedding method).
  config.model.primary = ml_collections.ConfigDict()
  config.model.primary.name = "mlp"  # mlp | conv
  config.model.primary.widths = (16,)  # hidden widths; the output size comes from the data
  config.model.primary.activation = "relu"
  config.model.primary.use_bias = True
  config.model.primary.channels = (8, 16)  # conv primary only
  config.model.primary.kernel_size = 3
  config.model.primary.strides = 2
  # Hypernetwork f: a trunk of `f_depth` hidden layers of `f_width`, then the
  # generator kind's output layer (README: "Generator kinds").
  config.model.generator = "heads"  # heads | lowrank | chunked | film
  config.model.f_width = 64
  config.model.f_depth = 3
  config.model.f_init = "primary"  # primary | lecun | hyperfan_in | hyperfan_out
  config.model.f_init_scale = 0.01  # 'primary' init and film: scale of the I-dependent part
  config.model.generated_params = ".*"  # regex over g's leaf paths; the rest are shared
  config.model.rank = 4  # lowrank: width of the bottleneck h(I)
  config.model.chunk_size = 64  # chunked: numbers emitted per chunk
  config.model.chunk_embedding_dim = 8  # chunked: size of the learned chunk embeddings
  config.model.chunk_hidden = ()  # chunked: hidden widths of the shared chunk generator
  # Embedding method: e has `e_depth` hidden layers of `e_width`, output
  # `embedding_dim`; q has hidden widths `q_widths` (default: g's).
  config.model.e_width = 64
  config.model.e_depth = 3
  config.model.embedding_dim = 16
  config.model.q_widths = config.model.primary.get_ref("widths")
  config.model.q_use_bias = config.model.primary.get_ref("use_bias")
  # Standard network on [x, I].
  config.model.standard_widths = (64, 64)
  # If > 0: each kind's width (f_width / e_width / standard_widths) is chosen so its
  # total trainable parameters are within 2% of this number.
  config.model.param_budget = 0

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = "adam"  # sgd | momentum | adam | adamw | adadelta
  config.optimizer.learning_rate = 3e-3
  config.optimizer.schedule = "cosine"  # constant | cosine
  config.optimizer.warmup_steps = 100
  config.optimizer.momentum = 0.9  # momentum only
  config.optimizer.weight_decay = 0.0  # adamw only
  config.optimizer.grad_clip_norm = 0.0  # 0 disables clipping

  config.batch = ml_collections.ConfigDict()
  config.batch.conditions = 32  # conditioning inputs per step
  config.batch.points = 32  # points per conditioning input per step
  # 'random': distinct random rows each step; 'epoch': a fresh permutation of the
  # training rows every epoch (hypernets/data/epochs.py). Fixed regime only.
  config.batch.sampling = "random"
  config.data.sampling = config.batch.get_ref("sampling")  # read by the data pipeline

  config.num_train_steps = 6000
  config.log_every_steps = 200
  config.eval_every_steps = 2000
  config.checkpoint_every_steps = 2000
  config.max_checkpoints_to_keep = 2
  config.eval_conditions_per_chunk = 256
  config_lib.add_run_fields(config)

  if "quick" in options:
    config.num_seeds = 3
    config.num_train_steps = 3000
    config.eval_every_steps = 1000
    config.checkpoint_every_steps = 1000
  if "paper" in options:
    config.num_seeds = 10
    config.model.f_width = config.model.e_width = 100
    config.num_train_steps = 10000
    config.steps_per_call = 50
    config.eval_every_steps = config.checkpoint_every_steps = 1000
  if "small" in options:
    config.data.num_train_conditions = 64
    config.data.num_test_conditions = 32
    config.data.points_per_condition = 16
    config.model.f_width = config.model.e_width = 16
    config.model.f_depth = config.model.e_depth = 2
    config.model.standard_widths = (16,)
    config.batch.conditions = 8
    config.batch.points = 8
    config.num_train_steps = 40
    config.log_every_steps = 10
    config.eval_every_steps = 20
    config.checkpoint_every_steps = 20
    config.optimizer.warmup_steps = 0
  return config



def get_sweeps(arg: str | None = None) -> dict[str, list[dict]]:
  """The paper's synthetic sweeps: error vs depth of f / e, error vs embedding size."""
  del arg
  depths = list(range(1, 9))
  return {
      "depth": sweeps.product(
          sweeps.sweep("model.kind", ["hypernet", "embedding"]),
          sweeps.zipit(sweeps.sweep("model.f_depth", depths),
                       sweeps.sweep("model.e_depth", depths))),
      "embedding": sweeps.product(
          sweeps.sweep("model.kind", ["embedding"]),
          sweeps.sweep("model.embedding_dim", [4, 8, 16, 32, 64, 128, 256])),
      "depth_lr": sweeps.product(
          sweeps.sweep("model.kind", ["hypernet", "embedding"]),
          sweeps.zipit(sweeps.sweep("model.f_depth", [1, 4, 8]),
                       sweeps.sweep("model.e_depth", [1, 4, 8])),
          sweeps.sweep("optimizer.learning_rate", [1e-3, 3e-3, 1e-2])),
  }
