r"""Images as functions (beyond the paper): one conditioned model represents every digit.

I = a digit image (its observed pixels), x = a pixel coordinate in [-1, 1]^2, y = the
intensity there. Hypernetwork (f emits a coordinate MLP g, ReLU or sine), FiLM (f
modulates a shared g) and the embedding method (q on [x, e(I)], widths chosen so
N_q ~ N_g) at matched primary size, over primary widths; reconstruction PSNR on the
training images' observed pixels, their held-out pixels and held-out images; a
figure of reconstructions. The task is built only through the task extension
point (`data.name` is an import path; hypernets/data/image_functions.py).

Run everything (methods x widths, table and figures in the workdir):
  python launch/main.py --config=configs/image_functions.py:quick --workdir=/tmp/inr
The same points one by one: `launch/sweep.py --config=configs/image_functions.py:quick
--sweep=methods --workdir=/tmp/inr` (then the main.py command only tabulates).

Variants (comma-separated): small (8x8 sklearn digits, seconds: CI) | quick (mnist_5k,
CPU-sized) | paper (mnist_5k, longer, more widths and seeds).
"""

import ml_collections

from hypernets import config as config_lib
from hypernets.experiments.image_functions import METHODS


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The images-as-functions comparison; see the module docstring for `arg`."""
  options = config_lib.parse_variants(arg, known={"small", "quick", "paper"},
                                      config_name="image_functions")
  config = ml_collections.ConfigDict()
  config.experiment = "image_functions"  # each point runs as 'conditioned'
  config.seed = 0
  config.num_seeds = 2

  config.data = ml_collections.ConfigDict()
  config.data.name = "hypernets.data.image_functions:create_dataset"
  config.data.source = "mnist_5k"  # mnist_5k (28x28) | digits_8x8 (sklearn, 8x8)
  config.data.num_train_images = 0  # 0 = all (4,000 for mnist_5k)
  config.data.num_test_images = 0  # 0 = all (1,000)
  config.data.heldout_pixel_fraction = 0.25  # pixel positions never trained on
  config.data.seed = 0  # the held-out pixel mask

  config.model = ml_collections.ConfigDict()
  config.model.kind = "hypernet"
  config.model.activation = "relu"  # f / e trunks
  config.model.primary = ml_collections.ConfigDict()
  config.model.primary.name = "mlp"
  config.model.primary.widths = (32, 32)  # g (and q) hidden widths: set per point
  config.model.primary.activation = "relu"  # relu | sine: set per point
  config.model.primary.use_bias = True
  config.model.primary.channels = (8, 16)  # unused (conv primaries)
  config.model.primary.kernel_size = 3
  config.model.primary.strides = 2
  config.model.generator = "heads"  # heads | film: set per point
  config.model.f_width = 128
  config.model.f_depth = 2
  config.model.f_init = "primary"
  config.model.f_init_scale = 0.01
  config.model.generated_params = ".*"
  config.model.rank = 4
  config.model.chunk_size = 256
  config.model.chunk_embedding_dim = 8
  config.model.chunk_hidden = ()
  config.model.e_width = 128
  config.model.e_depth = 2
  config.model.embedding_dim = 32
  config.model.q_widths = (32, 32)  # set per point so that N_q ~ N_g
  config.model.q_use_bias = True
  config.model.standard_widths = (64, 64)
  config.model.param_budget = 0

  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-3
  config.optimizer.schedule = "cosine"
  config.optimizer.warmup_steps = 100
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 0.0
  config.optimizer.grad_clip_norm = 1.0

  config.batch = ml_collections.ConfigDict()
  config.batch.conditions = 32  # images per step
  config.batch.points = 64  # observed pixels per image per step

  config.num_train_steps = 4000
  config.log_every_steps = 500
  config.eval_every_steps = 4000
  config.checkpoint_every_steps = 4000
  config.max_checkpoints_to_keep = 1
  config.eval_conditions_per_chunk = 250
  config_lib.add_run_fields(config)

  config.image_functions = ml_collections.ConfigDict()
  config.image_functions.methods = METHODS
  config.image_functions.widths = (8, 16, 32, 64)  # hidden width w of g: 2 -> w -> w -> 1
  config.image_functions.figure_width = 32  # the width whose reconstructions are drawn
  config.image_functions.figure_images = 8

  if "quick" in options:
    config.num_train_steps = 2000
    config.eval_every_steps = config.checkpoint_every_steps = 2000
    config.image_functions.methods = ("hypernet_relu", "hypernet_sine", "film_sine",
                                      "embedding_relu")
    config.image_functions.widths = (8, 16, 32)
    config.image_functions.figure_width = 32
  if "paper" in options:
    config.num_seeds = 3
    config.num_train_steps = 20000
    config.eval_every_steps = config.checkpoint_every_steps = 5000
    config.image_functions.widths = (8, 16, 32, 64, 128)
  if "small" in options:
    config.num_seeds = 1
    config.data.source = "digits_8x8"
    config.data.num_train_images = 128
    config.data.num_test_images = 32
    config.model.f_width = config.model.e_width = 16
    config.model.embedding_dim = 8
    config.batch.conditions = 8
    config.batch.points = 16
    config.num_train_steps = 30
    config.log_every_steps = 10
    config.eval_every_steps = config.checkpoint_every_steps = 30
    config.optimizer.warmup_steps = 0
    config.image_functions.methods = ("hypernet_sine", "film_relu", "embedding_relu")
    config.image_functions.widths = (4, 8)
    config.image_functions.figure_width = 8
    config.image_functions.figure_images = 4
  return config


def get_sweeps(arg: str | None = None) -> dict[str, list[dict]]:
  """methods: every (method, width) point of the comparison, as the experiment runs it."""
  # pylint: disable=g-import-not-at-top
  from hypernets.experiments import image_functions
  return {"methods": image_functions.points(get_config(arg))}
