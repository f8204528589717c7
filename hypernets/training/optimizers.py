"""`create_optimizer(config.optimizer, num_train_steps)`: an optax transformation."""

import math

import jax
import ml_collections
import optax

from hypernets.errors import ConfigError

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw", "adadelta")
SCHEDULES = ("constant", "cosine")


def create_learning_rate(opt_config: ml_collections.ConfigDict,
                         num_train_steps: int) -> optax.Schedule:
  """Linear warm-up over `warmup_steps`, then constant or cosine decay to 0."""
  peak, warmup = opt_config.learning_rate, opt_config.warmup_steps
  if opt_config.schedule == "constant":
    after = optax.constant_schedule(peak)
  elif opt_config.schedule == "cosine":
    after = optax.cosine_decay_schedule(peak, max(num_train_steps - warmup, 1))
  else:
    raise ConfigError(f"unknown config.optimizer.schedule {opt_config.schedule!r}; "
                      f"choose one of {SCHEDULES}")
  if warmup == 0:
    return after
  return optax.join_schedules(
      [optax.linear_schedule(0.0, peak, warmup), after], [warmup])


def create_optimizer(opt_config: ml_collections.ConfigDict,
                     num_train_steps: int) -> optax.GradientTransformation:
  """The optax optimizer named by `opt_config.name`, with optional grad clipping."""
  lr = create_learning_rate(opt_config, num_train_steps)
  name = opt_config.name
  if name == "sgd":
    tx = optax.sgd(lr)
  elif name == "momentum":
    tx = optax.sgd(lr, momentum=opt_config.momentum)
  elif name == "adam":
    tx = optax.adam(lr)
  elif name == "adamw":
    tx = optax.adamw(lr, weight_decay=opt_config.weight_decay)
  elif name == "adadelta":
    tx = optax.adadelta(lr)
  else:
    raise ConfigError(f"unknown config.optimizer.name {name!r}; choose one of {OPTIMIZERS}")
  if opt_config.grad_clip_norm > 0:
    tx = optax.chain(optax.clip_by_global_norm(opt_config.grad_clip_norm), tx)
  return tx


def per_member(tx: optax.GradientTransformation) -> optax.GradientTransformation:
  """`tx` applied to each member of a stack of networks on its own.

  Params (and grads) whose leaves have a leading [M] axis of M independent networks
  (two students, a stack of widths) get M optimizer states: for elementwise
  optimizers this is `tx` itself, but a global-norm gradient clip or any statistic
  over all leaves would otherwise couple the members.
  """
  return optax.GradientTransformation(init=jax.vmap(tx.init), update=jax.vmap(tx.update))


def check_optimizer_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError (one line naming the field) on a bad config.optimizer field."""
  from hypernets.config import check_choice  # pylint: disable=g-import-not-at-top
  from hypernets.config import check_int  # pylint: disable=g-import-not-at-top
  from hypernets.config import check_positive_float  # pylint: disable=g-import-not-at-top
  check_choice(config, "optimizer.name", OPTIMIZERS)
  check_choice(config, "optimizer.schedule", SCHEDULES)
  check_positive_float(config, "optimizer.learning_rate")
  check_int(config, "optimizer.warmup_steps", minimum=0)
  for field in ("momentum", "weight_decay", "grad_clip_norm"):
    value = config.optimizer[field] if field in config.optimizer else None
    if (not isinstance(value, (int, float)) or isinstance(value, bool)
        or not (math.isfinite(value) and value >= 0)):
      raise ConfigError(f"config.optimizer.{field} must be a finite number >= 0, "
                        f"got {value!r}")
