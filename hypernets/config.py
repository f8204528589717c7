"""Everything about configs, in one place.

- Variants of a config file: `--config=configs/x.py:quick,kind=embedding` (`parse_variants`).
- The fields every training config shares: devices, processes, workdir safety
  (`add_run_fields`), and which of them may change on resume (`RESUMABLE_FIELDS`).
- Checks before anything runs: each problem is one line naming the field (`check_*`).
- What the launchers share: bad input ends in one `error:` line, not a traceback
  (`parse_flags`, `config_or_exit`, `run_or_exit`); HYPERNETS_TRACEBACK=1 shows it.

Config files import this module only: it imports no jax (the choice lists of the
checks are read from the library when a check runs).
"""

import math
import numbers
import os
import re
import sys
from typing import Any, Callable

from absl import flags
import ml_collections

from hypernets.errors import ConfigError
from hypernets.errors import HypernetsError


def _get(config: ml_collections.ConfigDict, field: str):
  node = config
  for part in field.split("."):
    if part not in node:
      raise ConfigError(f"config.{field} is missing")
    node = node[part]
  return node


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(config, field: str, *, minimum: int) -> None:
  """Raises ConfigError unless config.<field> is an integer >= minimum."""
  value = _get(config, field)
  if not _is_int(value) or value < minimum:
    kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    raise ConfigError(f"config.{field} must be {kind}, got {value!r}")


def check_positive_float(config, field: str) -> None:
  """Raises ConfigError unless config.<field> is a finite number > 0."""
  value = _get(config, field)
  if (not isinstance(value, numbers.Real) or isinstance(value, bool)
      or not math.isfinite(value) or value <= 0):
    raise ConfigError(f"config.{field} must be a finite number > 0, got {value!r}")


def check_widths(config, field: str) -> None:
  """Raises ConfigError unless config.<field> is a sequence of positive integers."""
  value = _get(config, field)
  if (not isinstance(value, (tuple, list))
      or not all(_is_int(w) and w >= 1 for w in value)):
    raise ConfigError(f"config.{field} must be a tuple of positive integers, got {value!r}")


def check_choice(config, field: str, choices) -> None:
  value = _get(config, field)
  if value not in choices:
    raise ConfigError(f"config.{field} is {value!r}; choose one of {tuple(choices)}")


def check_training_config(config: ml_collections.ConfigDict) -> None:
  """Validates the fields `train_and_evaluate` reads; raises ConfigError on the first bad one."""
  # pylint: disable=g-import-not-at-top
  from hypernets.data import images
  from hypernets.generators import GENERATORS
  from hypernets.generators import INITS
  from hypernets.models import MODEL_KINDS
  from hypernets.models import PRIMARY_NAMES
  from hypernets.precision import COMPUTE_DTYPES
  from hypernets.training.optimizers import OPTIMIZERS
  from hypernets.training.optimizers import SCHEDULES
  # pylint: enable=g-import-not-at-top
  check_int(config, "seed", minimum=0)
  check_int(config, "num_seeds", minimum=1)
  check_choice(config, "model.kind", MODEL_KINDS)
  if "compute_dtype" in config:
    check_choice(config, "compute_dtype", COMPUTE_DTYPES)
  if "mesh" in config and config.mesh.get("shard_train_data") and config.mesh.shard_seeds:
    raise ConfigError("config.mesh.shard_train_data and config.mesh.shard_seeds cannot both "
                      "be set: the data axis splits either the training rows or the seeds")
  check_choice(config, "model.primary.name", PRIMARY_NAMES)
  check_widths(config, "model.primary.widths")
  if config.model.primary.name == "conv":
    check_widths(config, "model.primary.channels")
    check_int(config, "model.primary.kernel_size", minimum=1)
    check_int(config, "model.primary.strides", minimum=1)
  check_int(config, "model.param_budget", minimum=0)
  kind = config.model.kind
  if kind == "hypernet":
    check_int(config, "model.f_width", minimum=1)
    check_int(config, "model.f_depth", minimum=1)
    check_choice(config, "model.generator", GENERATORS)
    check_choice(config, "model.f_init", INITS)
    check_positive_float(config, "model.f_init_scale")
    if config.model.generator == "lowrank":
      check_int(config, "model.rank", minimum=1)
    if config.model.generator == "chunked":
      check_int(config, "model.chunk_size", minimum=1)
      check_int(config, "model.chunk_embedding_dim", minimum=1)
      check_widths(config, "model.chunk_hidden")
  elif kind == "embedding":
    check_int(config, "model.e_width", minimum=1)
    check_int(config, "model.e_depth", minimum=1)
    check_int(config, "model.embedding_dim", minimum=1)
    check_widths(config, "model.q_widths")
  else:
    check_widths(config, "model.standard_widths")

  check_choice(config, "optimizer.name", OPTIMIZERS)
  check_choice(config, "optimizer.schedule", SCHEDULES)
  check_positive_float(config, "optimizer.learning_rate")
  check_int(config, "optimizer.warmup_steps", minimum=0)

  if "steps_per_call" in config:
    check_int(config, "steps_per_call", minimum=1)
  check_int(config, "batch.conditions", minimum=1)
  check_int(config, "batch.points", minimum=1)
  for field in ("num_train_steps", "log_every_steps", "eval_every_steps",
                "checkpoint_every_steps", "max_checkpoints_to_keep",
                "eval_conditions_per_chunk"):
    check_int(config, field, minimum=1)

  if config.data.name == "rotation":
    check_choice(config, "data.source", images.SOURCES)
    check_int(config, "data.num_classes", minimum=2)
    check_int(config, "data.num_train_examples", minimum=0)
    check_int(config, "data.num_test_examples", minimum=0)
    if config.batch.points != 1:
      raise ConfigError("config.batch.points must be 1 for the rotation task (one "
                        f"rotated copy per image and step), got {config.batch.points}")
  if config.data.name in ("synthetic", "structured"):
    fields = (("m1", "m2", "target_width") if config.data.name == "synthetic" else
              ("m1", "m2", "selector_width", "selector_hidden", "target_primary_width"))
    for field in fields + ("num_train_conditions", "num_test_conditions",
                           "points_per_condition"):
      check_int(config, f"data.{field}", minimum=1)
    if config.batch.conditions > config.data.num_train_conditions:
      raise ConfigError(
          f"config.batch.conditions={config.batch.conditions} is larger than the "
          f"training set (config.data.num_train_conditions="
          f"{config.data.num_train_conditions})")


# ----------------------------------------------------------------------------
# Variants of a config file.


def parse_variants(arg: str | None, *, known: set[str], config_name: str) -> dict[str, str]:
  """'quick,kind=embedding' -> {'quick': '', 'kind': 'embedding'}.

  Raises ValueError naming the config file and the known variants for any other key.
  """
  options = {}
  for item in filter(None, (arg or "").split(",")):
    key, _, value = item.partition("=")
    options[key.strip()] = value.strip()
  unknown = set(options) - set(known)
  if unknown:
    raise ValueError(f"unknown configs/{config_name}.py variant(s) {sorted(unknown)}; "
                     f"known: {', '.join(sorted(known))}")
  return options


# ----------------------------------------------------------------------------
# Fields every training config shares.

# Fields that may change when a run is resumed: they change how often things are
# reported or how the run is driven, not what is computed.
RESUMABLE_FIELDS = frozenset({
    "log_every_steps", "eval_every_steps", "checkpoint_every_steps",
    "max_checkpoints_to_keep", "eval_conditions_per_chunk", "overwrite", "debug_nans",
    "steps_per_call",
    # Resuming on other hardware: the same computation, laid out differently.
    "mesh.shape", "mesh.axis_names", "mesh.shard_seeds", "mesh.shard_heads",
    "distributed.enabled", "distributed.coordinator_address", "distributed.num_processes",
    "distributed.process_id",
})


def add_run_fields(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Adds compute_dtype, steps_per_call, mesh.*, distributed.*, overwrite and debug_nans; returns config."""
  # 'bfloat16': mixed precision for GPUs/TPUs (hypernets/precision.py): float32
  # parameters, optimizer and losses; inputs, weights and theta_I in bf16 for the matmuls.
  config.compute_dtype = "float32"
  config.steps_per_call = 1  # train steps per dispatched call (lax.scan); >1 helps tiny models
  # Devices: one program over a mesh (README "Scaling out").
  config.mesh = ml_collections.ConfigDict()
  config.mesh.shape = (-1, 1)  # -1: all remaining devices
  config.mesh.axis_names = ("data", "model")
  config.mesh.shard_seeds = False  # split the seed axis (not each batch) over 'data'
  config.mesh.shard_heads = False  # split large generator heads over 'model'
  # Per-host data: each process loads only its share of the training rows, split over
  # 'data'; each device draws its share of every batch from its own rows.
  config.mesh.shard_train_data = False
  # Processes: jax.distributed.initialize (hypernets/parallel/distributed.py). 'auto' joins
  # when the environment says this is one process of several (TPU pod, launcher).
  config.distributed = ml_collections.ConfigDict()
  config.distributed.enabled = "auto"  # 'auto' | True | False
  config.distributed.coordinator_address = ""  # 'host:port' of process 0; '' = autodetect
  config.distributed.num_processes = -1  # -1: from the environment
  config.distributed.process_id = -1  # -1: from the environment
  config.overwrite = False  # a workdir of another config: move it aside (never deleted)
  config.debug_nans = False  # jax_debug_nans: find the op that made the first NaN (slow)
  return config


# ----------------------------------------------------------------------------
# Launchers: bad input ends in one line.


def _show_traceback() -> bool:
  return os.environ.get("HYPERNETS_TRACEBACK", "") not in ("", "0")


def parse_flags(argv: list[str]) -> list[str]:
  """absl flags parser for `app.run(..., flags_parser=parse_flags)`.

  Config overrides that name no field, or a config file whose get_config() raises,
  otherwise end in a traceback from inside ml_collections; here they end in one line
  naming the override.
  """
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    # ml_collections folds the config file's own traceback into the message.
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    sys.exit(f"error: {lines[-1] if lines else e}")
  except (AttributeError, KeyError, ValueError, TypeError, OSError) as e:
    if _show_traceback():
      raise
    name = str(e).strip("'\"")
    culprits = [a for a in argv[1:] if a.startswith("--config.")
                and re.search(rf"[.=]{re.escape(name)}(=|\.|$)", a.split("=")[0] + "=")]
    if culprits:
      sys.exit(f"error: {culprits[0].split('=')[0]} names no field of the config")
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    sys.exit(f"error: could not load the config: {lines[-1] if lines else e}")


def run_or_exit(fn: Callable[..., Any], *args, **kwargs) -> Any:
  """fn(*args, **kwargs); a HypernetsError exits with 'error: <message>' (status 1)."""
  try:
    return fn(*args, **kwargs)
  except HypernetsError as e:
    if _show_traceback():
      raise
    sys.exit(f"error: {e}")


def config_or_exit(config_flag):
  """The value of a config flag; a config file that failed to load exits with one line."""
  try:
    value = config_flag.value
    value.to_dict  # a config that failed to load raises on any attribute  # pylint: disable=pointless-statement
    return value
  except OSError as e:
    if _show_traceback():
      raise
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    sys.exit(f"error: could not load the config file: {lines[-1] if lines else e}")
