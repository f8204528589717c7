"""`train_and_evaluate(config, workdir)`: a conditioned model trained by the one loop.

Builds, from the config, the dataset, the model (hypernetwork, embedding method or
standard network) and the optimizer, and hands the loop a TrainSpec: init, train
step and evaluation for ONE seed (training/steps.py). Everything that can fail on
bad input (config checks, the dataset, the model, the mesh) runs before the
workdir is touched, so a failed start leaves the workdir as it was.
"""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections

from hypernets import data as data_lib
from hypernets import params as params_lib
from hypernets.config import check_training_config
from hypernets.parallel import sharding
from hypernets.training import loop
from hypernets.training import steps
from hypernets.training.state import TrainState


def make_evaluate(eval_fn, *, task: str, test_y_variance: float | None):
  """evaluate(state, splits) -> {'<split>_<metric>': scalar}, plus test_rel_mse =
  test MSE / Var(test y) for regression (the variance computed once, by the caller)."""

  def evaluate(state, splits: dict[str, data_lib.Split]):
    results = {f"{name}_{metric}": value for name, split in splits.items()
               for metric, value in eval_fn(state, split).items()}
    if task == "regression":
      results["test_rel_mse"] = results["test_mse"] / test_y_variance
    return results

  return evaluate


def model_spec(model, tx, dataset: data_lib.Dataset, *, batch_conditions: int,
               batch_points: int, mesh=None, primary=None, shard_seeds: bool = False,
               shard_data: bool = False, conditions_per_chunk: int = 256,
               results_fields: dict | None = None) -> loop.TrainSpec:
  """The TrainSpec of any conditioned model (a Linen module with apply(variables, I, x))
  trained on `dataset` with `tx`: the loop's view of it.

  `mesh` (None: no batch sharding constraint) splits each batch's conditioning
  inputs over 'data' unless `shard_seeds`; `shard_data`: the training rows are split
  over 'data' and each device samples its own. results.json gains `param_counts`
  and `results_fields`.
  """
  example = jax.tree.map(lambda a: a[0], dataset.test)
  calibration_conds = dataset.eval_splits["train"].cond[:256]

  def init(key) -> TrainState:
    return steps.create_train_state(model, tx, key, example, calibration_conds)

  counts = params_lib.parameter_counts(jax.eval_shape(init, jax.random.key(0)).params,
                                       primary)
  train_step = steps.make_train_step(
      model, tx, dataset, batch_conditions=batch_conditions, batch_points=batch_points,
      batch_sharding=(None if shard_seeds or mesh is None else sharding.batch_sharding(mesh)),
      sharded_train_data=shard_data)
  eval_fn = steps.make_eval_fn(model, dataset.task, conditions_per_chunk=conditions_per_chunk)
  variance = float(jnp.var(dataset.test.y)) if dataset.task == "regression" else None

  def results(per_seed, initial):
    del per_seed, initial
    return {}, {"param_counts": counts, **(results_fields or {})}

  return loop.TrainSpec(
      init=init, step=train_step,
      evaluate=make_evaluate(eval_fn, task=dataset.task, test_y_variance=variance),
      train_data=dataset.train, eval_data=dataset.eval_splits, split_train_data=shard_data,
      # Test data that changes per evaluation (rotation's fresh test angles).
      fresh_eval_data=getattr(dataset, "eval_splits_at", None),
      results=results, description=f"Parameter counts {counts}")


def build_spec(config: ml_collections.ConfigDict, *, mesh) -> tuple[loop.TrainSpec, dict]:
  """The TrainSpec of `config` on `mesh`, and what it was built from: {dataset, model,
  primary, model_config, budget_knob}."""
  mesh_cfg = sharding.mesh_config(config)
  shard_data = mesh_cfg.get("shard_train_data", False)
  # Per-host loading: each process reads only its share of the training rows.
  dataset = data_lib.create_dataset(
      config.data, train_shard=(jax.process_index(), jax.process_count()) if shard_data
      else None)
  steps.check_batch_fits(dataset, config.batch.conditions,
                         mesh=mesh if shard_data else None)
  sharding.check_divisible(mesh=mesh, batch_conditions=config.batch.conditions,
                           shard_seeds=mesh_cfg.shard_seeds)
  example = jax.tree.map(lambda a: a[0], dataset.test)
  model_config, budget_knob, model, primary, tx = steps.create_model_and_optimizer(
      config, example, output_dim=dataset.output_dim)
  rows = dataset.num_train_conditions
  if shard_data:  # as sharding.global_rows cuts them: a multiple of the local devices
    local = sharding.local_data_devices(mesh)
    global_rows = rows // local * local * jax.process_count()
  else:
    global_rows = rows
  spec = model_spec(
      model, tx, dataset, batch_conditions=config.batch.conditions,
      batch_points=config.batch.points, mesh=mesh, primary=primary,
      shard_seeds=mesh_cfg.shard_seeds, shard_data=shard_data,
      conditions_per_chunk=config.eval_conditions_per_chunk,
      results_fields={"method": config.model.kind,
                      "train_rows": {"per_process": int(rows), "global": int(global_rows),
                                     "split_over_devices": bool(shard_data)},
                      "budget_matched": budget_knob})
  spec = dataclasses.replace(spec, description=f"Model {config.model.kind}; "
                                               f"{spec.description.lower()}")
  built = dict(dataset=dataset, model=model, primary=primary, model_config=model_config,
               budget_knob=budget_knob)
  return spec, built


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains `config.model.kind` on `config.data`; resumes from workdir if possible.

  Writes to workdir: config.json, metrics.jsonl, tensorboard/, checkpoints/ and,
  at the end, results.json (final metrics, parameter counts, timings; see loop.run).
  `config.num_seeds` seeds (config.seed, config.seed + 1, ...) train together in
  one compiled program; results report their mean, std and per-seed values.

  Returns:
    The final TrainState; every leaf has a leading [num_seeds] axis.
  """
  check_training_config(config)
  mesh = sharding.create_mesh(sharding.mesh_config(config))
  spec, _ = build_spec(config, mesh=mesh)
  state, _ = loop.run(spec, loop.LoopSettings.from_config(config), mesh=mesh,
                      config=config, workdir=workdir)
  return state


