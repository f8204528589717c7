"""What the assumption checks share: epoch-based configs on the one loop, stacks of
independent networks trained in one step, and the paper's image normalisation.

A "member" is one network of a stack trained side by side inside one seed: the two
students of Assumption 1, the widths of Assumption 2. Their parameters have a
leading [M] axis; each member gets its own loss, gradient and optimizer state
(`optimizers.per_member`), so the stack trains exactly as M separate networks.
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from hypernets import config as config_lib
from hypernets.config import check_int
from hypernets.errors import ConfigError
from hypernets.data import images
from hypernets.parallel import sharding
from hypernets.training import loop
from hypernets.training.optimizers import check_optimizer_config
from hypernets.training.state import TrainState

PAPER_NORMALIZATION = (0.1307, 0.3081)  # the authors normalise every set with it


def check_common(config: ml_collections.ConfigDict) -> None:
  """The fields both assumption checks read; one line naming the first bad one."""
  check_int(config, "seed", minimum=0)
  check_int(config, "num_seeds", minimum=1)
  check_int(config, "num_epochs", minimum=1)
  check_int(config, "batch_size", minimum=1)
  check_int(config, "log_every_steps", minimum=1)
  check_int(config, "eval_every_epochs", minimum=1)
  check_int(config, "checkpoint_every_epochs", minimum=1)
  check_int(config, "max_checkpoints_to_keep", minimum=1)
  check_int(config, "steps_per_call", minimum=0)
  check_int(config, "eval_chunk_size", minimum=1)
  check_int(config, "data.num_train_examples", minimum=0)
  check_int(config, "data.num_test_examples", minimum=0)
  check_optimizer_config(config)
  if sharding.mesh_config(config).get("shard_train_data", False):
    raise ConfigError("config.mesh.shard_train_data is not supported by the assumption "
                      "checks (their data sets are small); use config.mesh.shard_seeds")


def check_batch_fits(config: ml_collections.ConfigDict, num_train: int) -> None:
  config_lib.check_batch_fits("batch_size", config.batch_size, num_train, "examples")


def loop_settings(config: ml_collections.ConfigDict, *, steps_per_epoch: int
                  ) -> loop.LoopSettings:
  """The loop's settings of an epoch-based config: events at whole epochs."""
  return loop.LoopSettings(
      num_steps=steps_per_epoch * config.num_epochs, log_every=config.log_every_steps,
      eval_every=steps_per_epoch * config.eval_every_epochs,
      checkpoint_every=steps_per_epoch * config.checkpoint_every_epochs,
      max_checkpoints_to_keep=config.max_checkpoints_to_keep, seed=config.seed,
      num_seeds=config.num_seeds, steps_per_call=config.steps_per_call,
      shard_seeds=sharding.mesh_config(config).get("shard_seeds", False))


def train(spec: loop.TrainSpec, settings: loop.LoopSettings, *,
          config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains `spec` on the one loop over the config's mesh; returns results.json's dict."""
  mesh = sharding.create_mesh(sharding.mesh_config(config))
  return loop.run(spec, settings, mesh=mesh, config=config, workdir=workdir)[1]


def normalize_images(x: np.ndarray, *, source: str) -> np.ndarray:
  """uint8 images -> float32 (x / 255 - mean) / std with the paper's constants."""
  mean, std = images.NORMALIZATION.get(source, PAPER_NORMALIZATION)
  return ((x.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)


def init_members(params: Any, tx: optax.GradientTransformation) -> TrainState:
  """Step 0 of a stack of members (params leaves [M, ...]), one optimizer state each."""
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))


def members_step(state: TrainState, batch: Any, *, member_loss: Callable,
                 tx: optax.GradientTransformation, member_args: Any = None,
                 batch_per_member: bool) -> tuple[TrainState, dict]:
  """One step of every member: member_loss(params_m, member_args_m, batch_m) -> scalar.

  `batch` leaves have a leading [M] axis if `batch_per_member`, else every member
  sees the same batch. The gradient of the SUM of the members' losses is each
  member's own gradient (no member's loss depends on another's parameters), and
  `tx` must be `optimizers.per_member(...)`. Returns (state, {'loss': mean over
  members}).
  """
  in_axes = (0, None if member_args is None else 0, 0 if batch_per_member else None)

  def total(params):
    per_member = jax.vmap(member_loss, in_axes=in_axes)(params, member_args, batch)
    return jnp.sum(per_member), per_member

  grads, per_member = jax.grad(total, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  return (TrainState(step=state.step + 1, params=params, opt_state=opt_state),
          {"loss": jnp.mean(per_member)})
