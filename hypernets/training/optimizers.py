"""`create_optimizer(config.optimizer, num_train_steps)`: an optax transformation."""

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
