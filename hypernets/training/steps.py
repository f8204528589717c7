"""The conditioned models' pieces of the loop: model and optimizer from the config,
loss, train step and evaluation, each for ONE seed (the loop vmaps over seeds).
"""

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from hypernets import budget
from hypernets import config as config_lib
from hypernets import data as data_lib
from hypernets import models
from hypernets.errors import ConfigError
from hypernets.parallel import sharding
from hypernets.training import losses
from hypernets.training import optimizers
from hypernets.training.state import TrainState


def create_train_state(model: nn.Module, tx: optax.GradientTransformation,
                       key: jax.Array, example: data_lib.Split,
                       calibration_conds: jax.Array) -> TrainState:
  """Initial state of one seed; `example` is one row: cond [*cond_shape], x [P, ...].

  `calibration_conds` [B, *cond_shape] calibrate hyperfan inits (ignored otherwise).
  """
  model = models.calibrate_hyperfan(model, key, calibration_conds)
  params, model_state = models.split_variables(model.init(key, example.cond, example.x))
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=tx.init(params), model_state=model_state)



def create_model_and_optimizer(config: ml_collections.ConfigDict, example: data_lib.Split,
                               *, output_dim: int):
  """What training builds from the config: (model_config after budget matching, the
  budget knob it set or None, model, primary or None, optimizer).

  `example` is one row of the data: cond [*cond_shape], x [P, ...].
  """
  shapes = dict(example_cond=example.cond, example_x=example.x, output_dim=output_dim)
  model_config, budget_knob = budget.apply_param_budget(config.model, **shapes)
  model, primary = models.create_model(model_config, **shapes,
                                       compute_dtype=config.get("compute_dtype", "float32"))
  tx = optimizers.create_optimizer(config.optimizer, config.num_train_steps)
  return model_config, budget_knob, model, primary, tx



def make_loss_fn(model: nn.Module, task: str) -> Callable:
  """loss_fn(params, batch, model_state=None, rng=None) -> (loss, metrics).

  For a batch of conditioning inputs. `model_state` holds the model's other
  collections (TrainState.model_state). A model with training behaviour (a g with
  batch statistics or dropout: models.has_train_mode) runs in training mode with
  dropout keys from `rng`, and its metrics then carry the updated state under
  'model_state' (the train step moves it into the TrainState).
  """
  train_mode = models.has_train_mode(model)

  def loss_fn(params, batch: data_lib.Split, model_state=None, rng=None):
    variables = {"params": params, **(model_state or {})}
    if not train_mode:
      predictions = models.apply_batched(model, variables, batch.cond, batch.x)
      return losses.loss_and_metrics(task, predictions, batch.y)
    predictions, updates = models.apply_batched_train(
        model, variables, batch.cond, batch.x, jax.random.key(0) if rng is None else rng)
    loss, metrics = losses.loss_and_metrics(task, predictions, batch.y)
    return loss, {**metrics, "model_state": {**(model_state or {}), **updates}}

  return loss_fn



# fold_in constant separating the dropout keys from the batch's key ('drop').
_DROPOUT_STREAM = 0x64726F70


def make_train_step(model: nn.Module, tx: optax.GradientTransformation,
                    dataset: data_lib.Dataset, *, batch_conditions: int,
                    batch_points: int, batch_sharding=None, sharded_train_data: bool = False):
  """train_step(state, train, data_key) -> (state, metrics) for ONE seed; pure.

  The batch is drawn from fold_in(data_key, step): it depends on the step only,
  never on how often the process was restarted. With `batch_sharding`, its
  conditioning inputs are split over the devices of the mesh's data axis; with
  `sharded_train_data` as well, `train` is split over that axis and each device
  draws its share from its own rows (sharding.sample_on_each_device).
  """
  loss_fn = make_loss_fn(model, dataset.task)

  def train_step(state: TrainState, train, data_key: jax.Array):
    step_key = jax.random.fold_in(data_key, state.step)
    if sharded_train_data:
      batch = sharding.sample_on_each_device(
          dataset.sample, train, step_key, mesh=batch_sharding.mesh,
          num_conditions=batch_conditions, points_per_condition=batch_points)
    else:
      batch = dataset.sample(train, step_key, num_conditions=batch_conditions,
                             points_per_condition=batch_points, step=state.step)
    if batch_sharding is not None and not sharded_train_data:
      # Every device draws the whole batch (a few rows: cheap) and keeps its share,
      # a local slice. Left alone, XLA's partitioner drew the rows on device 0 and
      # sent each device its share by collective-permutes, which deadlocked 8 CPU
      # devices on 2 cores.
      batch = jax.lax.with_sharding_constraint(batch, sharding.replicated(batch_sharding.mesh))
      batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
    # Dropout keys: per step (from step_key), per example (apply_batched_train
    # splits them); folded apart from the batch's key, which stays as it was.
    dropout_key = jax.random.fold_in(step_key, _DROPOUT_STREAM)
    grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params, batch, state.model_state,
                                                     dropout_key)
    model_state = metrics.pop("model_state", state.model_state)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state,
                      model_state=model_state), metrics

  return train_step



def make_eval_fn(model: nn.Module, task: str, *, conditions_per_chunk: int):
  """eval_fn(state, split) -> mean metrics over every point of every condition.

  For ONE seed; `state` is a TrainState (params and model_state: a stateful g is
  evaluated with its running statistics) or, for models without other
  collections, the params alone. Evaluation mode: no dropout. Conditions are
  processed in chunks (`jax.lax.map`) to bound memory.
  """

  def per_condition(variables, row):
    cond, x, y = row
    predictions = models.apply_one(model, variables, cond, x)
    return losses.loss_and_metrics(task, predictions, y)[1]

  def eval_fn(state, split: data_lib.Split):
    variables = ({"params": state.params, **state.model_state}
                 if isinstance(state, TrainState) else {"params": state})
    metrics = jax.lax.map(functools.partial(per_condition, variables),
                          (split.cond, split.x, split.y),
                          batch_size=min(conditions_per_chunk, split.num_conditions))
    return jax.tree.map(jnp.mean, metrics)  # equal points per condition

  return eval_fn



def check_batch_fits(dataset: data_lib.Dataset, batch_conditions: int, *,
                     mesh=None) -> None:
  """Each batch draws distinct rows: from the whole training set, or with `mesh`
  (sharded training rows) batch_conditions / D from each device's N / D rows."""
  rows = dataset.num_train_conditions
  if mesh is None:
    config_lib.check_batch_fits("batch.conditions", batch_conditions, rows,
                                "conditioning inputs")
    return
  devices = sharding.data_axis_size(mesh)
  per_device = rows // sharding.local_data_devices(mesh)
  if batch_conditions % devices or batch_conditions // devices > per_device:
    raise ConfigError(
        f"config.batch.conditions={batch_conditions} with config.mesh.shard_train_data "
        f"must be a multiple of the data axis ({devices} devices) and at most "
        f"{per_device} per device (the training rows each device holds)")
