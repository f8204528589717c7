r"""Modularity measured directly (Thms 2-4): how large must the PRIMARY be?

For f and e fixed and large, sweep the primary's hidden width: g's for the
hypernetwork (N_g = its parameter count), q's for the embedding method (N_q). For
every error level eps, N(eps) is the smallest primary that reaches it; Thm 4 says
N_g = O(eps^(-m1/r)), independent of m2, while q needs N_q = Omega(eps^(-(m1+m2)))
(Thm 2) or Omega(eps^(-min(m1+m2, 2 m1))) (Thm 3). The signature: repeat at m2 in
{2, 4, 8, 16} with m1 fixed; N_q at fixed eps grows with m2, N_g does not.

Target: Thm 5's structured target y = g*(x; W h(I) + b0) (hypernets/data/structured.py)
with a selector of width w = 16 >= every m2, so y_I varies over an m2-dimensional
family: the difficulty in I grows with m2. g has g*'s form (tanh, one hidden
layer), so g of width >= g*'s can represent every y_I exactly. Online regime: fresh
data every step, error = approximation error on a fresh test sample.

  python launch/sweep.py --config=configs/modularity.py:quick --sweep=primary \
      --workdir=/tmp/repro/modularity
  python launch/main.py --config=configs/modularity.py:small --workdir=/tmp/mod_one

Sweeps (`--sweep=NAME`):
  primary   m2 x {hypernet, embedding} x primary width (1..64, log-spaced), plus the
            bottleneck check: at the largest m2, two widths per method again with f
            and e twice as wide (if f and e are not the bottleneck, the error barely
            moves).

Variants (comma-separated): quick (REPRODUCTION.md, 3 seeds) | paper (10 seeds, longer,
widths to 128: for an accelerator) | small (CI), kind=K, m2=M,
widths=A/B/... (the primary widths swept; at least two).
"""

import ml_collections

from hypernets import config as config_lib
from hypernets.errors import ConfigError
from hypernets.experiments import sweeps

M2S = (2, 4, 8, 16)
WIDTHS = (1, 2, 4, 8, 16, 32, 64)
BOTTLENECK_WIDTHS = (4, 32)  # the 2x-f/e check, at the largest m2


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """One primary width of one method at one m2; see the module docstring."""
  options = config_lib.parse_variants(
      arg, known={"quick", "paper", "small", "kind", "m2", "widths"},
      config_name="modularity")
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.num_seeds = 3

  config.data = ml_collections.ConfigDict()
  config.data.name = "structured"
  config.data.seed = 0
  config.data.regime = "online"  # the approximation regime (hypernets/data/online.py)
  config.data.m1 = 4  # fixed
  config.data.m2 = int(options.get("m2", 8))  # swept: 2, 4, 8, 16
  config.data.selector_width = 16  # w >= every m2: y_I spans an m2-dim family
  config.data.selector_hidden = 32
  config.data.target_primary_width = 8  # g*: m1 -> 8 -> 1, tanh
  config.data.selector_scale = 1.0
  config.data.num_train_conditions = 1024  # unused online (kept for regime=fixed)
  config.data.num_test_conditions = 512  # the fresh evaluation sample: 512 x 32 points
  config.data.points_per_condition = 32

  config.model = ml_collections.ConfigDict()
  config.model.kind = options.get("kind", "hypernet")
  config.model.activation = "relu"  # f / e trunks
  config.model.init_scheme = "lecun"  # flax default (hypernets/nets.py)
  # The primary: g (hypernetwork) and q (embedding method) have the same hidden width.
  config.model.primary = ml_collections.ConfigDict()
  config.model.primary.name = "mlp"
  config.model.primary.widths = (8,)  # swept
  config.model.primary.activation = "tanh"  # g*'s
  config.model.primary.use_bias = True
  config.model.primary.channels = (8, 16)
  config.model.primary.kernel_size = 3
  config.model.primary.strides = 2
  # f and e: large and fixed (the theorems let them be as large as needed).
  config.model.generator = "heads"
  config.model.f_width = 128
  config.model.f_depth = 3
  config.model.f_init = "primary"
  config.model.f_init_scale = 0.01
  config.model.generated_params = ".*"
  config.model.rank = 4
  config.model.chunk_size = 64
  config.model.chunk_embedding_dim = 8
  config.model.chunk_hidden = ()
  config.model.e_width = config.model.get_ref("f_width")
  config.model.e_depth = config.model.get_ref("f_depth")
  config.model.embedding_dim = 32  # E >= every m2: e can pass I on whole
  config.model.q_widths = config.model.primary.get_ref("widths")
  config.model.q_use_bias = True
  config.model.standard_widths = (64, 64)
  config.model.param_budget = 0

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
  config.batch.sampling = "random"
  config.data.sampling = config.batch.get_ref("sampling")

  config.num_train_steps = 4000
  config.steps_per_call = 50
  config.log_every_steps = 500
  config.eval_every_steps = 1000
  config.checkpoint_every_steps = 1000
  config.max_checkpoints_to_keep = 1
  config.eval_conditions_per_chunk = 256
  config_lib.add_run_fields(config)
  config.steps_per_call = 50  # small models: fewer dispatches

  if "paper" in options:
    config.num_seeds = 10
    config.num_train_steps = 20000
    config.eval_every_steps = config.checkpoint_every_steps = 5000
    config.data.num_test_conditions = 2048
  if "small" in options:
    config.num_seeds = 2
    config.data.num_test_conditions = 40
    config.data.points_per_condition = 8
    config.batch.conditions = config.batch.points = 4
    config.model.f_width = 16
    config.model.f_depth = 1
    config.model.embedding_dim = 8
    config.model.primary.widths = (2,)
    config.num_train_steps = 20
    config.steps_per_call = 10
    config.log_every_steps = config.eval_every_steps = 10
    config.checkpoint_every_steps = 20
    config.optimizer.warmup_steps = 0
  return config


def _variants(arg: str | None) -> dict[str, str]:
  return config_lib.parse_variants(
      arg, known={"quick", "paper", "small", "kind", "m2", "widths"},
      config_name="modularity")


def primary_widths(arg: str | None = None) -> tuple[int, ...]:
  """The primary widths the sweep covers: WIDTHS (paper: up to 128; small: 1 and 4),
  or the variant widths=A/B/...; fewer than two stop with one line (no curve, no fit)."""
  options = _variants(arg)
  if "widths" in options:
    try:
      widths = tuple(sorted({int(w) for w in options["widths"].split("/") if w}))
    except ValueError:
      raise ConfigError(f"configs/modularity.py variant widths={options['widths']!r}: "
                        "give positive integers separated by '/', e.g. widths=1/4/16"
                        ) from None
  elif "small" in options:
    widths = (1, 4)
  else:
    widths = WIDTHS + ((128,) if "paper" in options else ())
  if len(widths) < 2 or min(widths) < 1:
    raise ConfigError(f"configs/modularity.py sweeps the primary width: widths={widths} "
                      "gives no N(eps) curve and no fit; give at least two")
  return widths


def get_sweeps(arg: str | None = None) -> dict[str, list[dict]]:
  """primary: m2 x method x primary width, plus the 2x-f/e bottleneck check."""
  widths = primary_widths(arg)
  m2s = (2, 4) if "small" in _variants(arg) else M2S
  kinds = ["hypernet", "embedding"]
  main = sweeps.product(sweeps.sweep("data.m2", list(m2s)),
                        sweeps.sweep("model.kind", kinds),
                        sweeps.sweep("model.primary.widths", [(w,) for w in widths]))
  check_widths = [w for w in BOTTLENECK_WIDTHS if w in widths] or [widths[0], widths[-1]]
  f_width = get_config(arg).model.f_width
  # f and e twice as wide (e's width follows f's).
  check = sweeps.product(sweeps.sweep("data.m2", [max(m2s)]),
                         sweeps.sweep("model.kind", kinds),
                         sweeps.sweep("model.primary.widths", [(w,) for w in check_widths]),
                         sweeps.sweep("model.f_width", [2 * f_width]))
  return {"primary": main + check}
