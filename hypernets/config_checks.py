"""Checks a config before anything runs: each problem is one line naming the field."""

import math
import numbers

import ml_collections

from hypernets.data import images
from hypernets.errors import ConfigError
from hypernets.generators import GENERATORS
from hypernets.generators import INITS
from hypernets.models import MODEL_KINDS
from hypernets.models import PRIMARY_NAMES
from hypernets.optimizers import OPTIMIZERS
from hypernets.optimizers import SCHEDULES
from hypernets.precision import COMPUTE_DTYPES


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
      if config.model.f_init == "primary":
        raise ConfigError("config.model.f_init='primary' cannot be used with "
                          "config.model.generator='chunked' (its generator is shared "
                          "across leaves); use hyperfan_in, hyperfan_out or lecun")
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
