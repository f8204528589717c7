"""`train_and_evaluate(config, workdir)`: the one training loop.

One jitted step (vmap over conditioning inputs inside), data on device, batch order
derived from (seed, step) so a resumed run sees the same batches, periodic
evaluation, metrics through `MetricWriter`, orbax checkpoints with
restore-or-initialize, and `config.json` / `results.json` in the workdir.
"""

import functools
import os
import time
from typing import Any, Callable

from absl import logging
import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from hypernets import budget
from hypernets import checkpoints
from hypernets import data as data_lib
from hypernets import distributed
from hypernets import losses
from hypernets import metric_writers
from hypernets import models
from hypernets import optimizers
from hypernets import params as params_lib
from hypernets import sharding
from hypernets import workdir as workdir_lib
from hypernets.config_checks import check_training_config
from hypernets.errors import ConfigError
from hypernets.errors import TrainingDivergedError
from hypernets.errors import WorkdirError


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training (and is checkpointed)."""

  step: jax.Array  # int32 scalar
  params: Any
  opt_state: Any


def seed_keys(seed: int, num_seeds: int) -> jax.Array:
  """Keys of seeds seed, seed + 1, ..., seed + num_seeds - 1: [num_seeds] key array.

  Seed s of a batch gets jax.random.key(seed + s), so a batch of S seeds equals S
  single-seed runs with those seeds.
  """
  return jax.vmap(jax.random.key)(seed + jnp.arange(num_seeds))


def create_train_state(model: nn.Module, tx: optax.GradientTransformation,
                       key: jax.Array, example: data_lib.Split,
                       calibration_conds: jax.Array) -> TrainState:
  """Initial state of one seed; `example` is one row: cond [*cond_shape], x [P, ...].

  `calibration_conds` [B, *cond_shape] calibrate hyperfan inits (ignored otherwise).
  """
  model = models.calibrate_hyperfan(model, key, calibration_conds)
  params = model.init(key, example.cond, example.x)["params"]
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=tx.init(params))


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
  """loss_fn(params, batch) -> (loss, metrics) for a batch of conditioning inputs."""

  def loss_fn(params, batch: data_lib.Split):
    predictions = models.apply_batched(model, {"params": params}, batch.cond, batch.x)
    return losses.loss_and_metrics(task, predictions, batch.y)

  return loss_fn


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
                             points_per_condition=batch_points)
    if batch_sharding is not None and not sharded_train_data:
      # Every device draws the whole batch (a few rows: cheap) and keeps its share,
      # a local slice. Left alone, XLA's partitioner drew the rows on device 0 and
      # sent each device its share by collective-permutes, which deadlocked 8 CPU
      # devices on 2 cores.
      batch = jax.lax.with_sharding_constraint(batch, sharding.replicated(batch_sharding.mesh))
      batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
    grads, metrics = jax.grad(loss_fn, has_aux=True)(state.params, batch)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return TrainState(step=state.step + 1, params=params, opt_state=opt_state), metrics

  return train_step


def make_eval_fn(model: nn.Module, task: str, *, conditions_per_chunk: int):
  """eval_fn(params, split) -> mean metrics over every point of every condition.

  For ONE seed. Conditions are processed in chunks (`jax.lax.map`) to bound memory.
  """

  def per_condition(params, row):
    cond, x, y = row
    predictions = models.apply_one(model, {"params": params}, cond, x)
    return losses.loss_and_metrics(task, predictions, y)[1]

  def eval_fn(params, split: data_lib.Split):
    metrics = jax.lax.map(functools.partial(per_condition, params),
                          (split.cond, split.x, split.y),
                          batch_size=min(conditions_per_chunk, split.num_conditions))
    return jax.tree.map(jnp.mean, metrics)  # equal points per condition

  return eval_fn


def _place_train_data(train, mesh, *, split: bool):
  """The training rows on the mesh: replicated, or (split) this process's rows as its
  part of one global array split over 'data'."""
  if not split:
    return jax.device_put(train, sharding.replicated(mesh))
  placed = sharding.global_rows(train, mesh)
  logging.info("Training rows split over 'data': %d in this process, %d per device",
               len(jax.tree.leaves(train)[0]),
               jax.tree.leaves(placed)[0].addressable_shards[0].data.shape[0])
  return placed


def check_batch_fits(dataset: data_lib.Dataset, batch_conditions: int, *,
                     mesh=None) -> None:
  """Each batch draws distinct rows: from the whole training set, or with `mesh`
  (sharded training rows) batch_conditions / D from each device's N / D rows."""
  rows = dataset.num_train_conditions
  if mesh is None:
    if batch_conditions > rows:
      raise ConfigError(f"config.batch.conditions={batch_conditions} is larger than "
                        f"the training set ({rows} conditioning inputs)")
    return
  devices = sharding.data_axis_size(mesh)
  per_device = rows // sharding.local_data_devices(mesh)
  if batch_conditions % devices or batch_conditions // devices > per_device:
    raise ConfigError(
        f"config.batch.conditions={batch_conditions} with config.mesh.shard_train_data "
        f"must be a multiple of the data axis ({devices} devices) and at most "
        f"{per_device} per device (the training rows each device holds)")


def _first_non_finite(history: list[tuple[int, dict[str, np.ndarray]]]
                      ) -> tuple[int, str, int, float] | None:
  """(step, metric, seed index, value) of the first non-finite train metric, or None."""
  for step, metrics in history:
    for name, values in metrics.items():
      bad = np.flatnonzero(~np.isfinite(values))
      if bad.size:
        return step, name, int(bad[0]), float(values[bad[0]])
  return None


def evaluate_splits(eval_fn, params, dataset: data_lib.Dataset) -> dict[str, np.ndarray]:
  """{'train_<metric>': [S], 'test_<metric>': [S]} per seed; for regression also
  test_rel_mse = test MSE / Var(test y)."""
  results = {}
  for name, split in dataset.eval_splits.items():
    for metric, values in jax.device_get(eval_fn(params, split)).items():
      results[f"{name}_{metric}"] = np.asarray(values, np.float64)
  if dataset.task == "regression":
    results["test_rel_mse"] = results["test_mse"] / float(jnp.var(dataset.test.y))
  return results


def summarize_seeds(per_seed: dict[str, np.ndarray]) -> dict[str, Any]:
  """Mean (as the metric's own name), `<metric>_std` and `per_seed` lists."""
  summary = {}
  for name, values in per_seed.items():
    summary[name] = float(np.mean(values))
    summary[f"{name}_std"] = float(np.std(values))
  summary["per_seed"] = {name: [float(v) for v in values]
                         for name, values in per_seed.items()}
  return summary


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains `config.model.kind` on `config.data`; resumes from workdir if possible.

  Writes to workdir: config.json, metrics.jsonl, tensorboard/, checkpoints/ and,
  at the end, results.json (final metrics, parameter counts, timings).

  `config.num_seeds` seeds (config.seed, config.seed + 1, ...) train together in
  one compiled program; results report their mean, std and per-seed values.

  Returns:
    The final TrainState; every leaf has a leading [num_seeds] axis.
  """
  check_training_config(config)
  if config.get("debug_nans", False):
    # Every jitted op is checked and re-run un-jitted at the first NaN: slow,
    # for debugging only. By default the loss is checked at log steps.
    jax.config.update("jax_debug_nans", True)
  # Multi-process: process 0 alone writes the workdir, metrics and results.
  workdir = workdir_lib.prepare_workdir(workdir, config)

  mesh_cfg = sharding.mesh_config(config)
  mesh = sharding.create_mesh(mesh_cfg)
  shard_data = mesh_cfg.get("shard_train_data", False)
  # Per-host loading: each process reads only its share of the training rows.
  dataset = data_lib.create_dataset(
      config.data, train_shard=(jax.process_index(), jax.process_count()) if shard_data
      else None)
  check_batch_fits(dataset, config.batch.conditions, mesh=mesh if shard_data else None)
  example = jax.tree.map(lambda a: a[0], dataset.test)
  model_config, budget_knob, model, primary, tx = create_model_and_optimizer(
      config, example, output_dim=dataset.output_dim)
  sharding.check_divisible(mesh=mesh, batch_conditions=config.batch.conditions,
                           shard_seeds=mesh_cfg.shard_seeds)
  num_seeds = config.num_seeds
  num_seeds_run = sharding.padded_num_seeds(mesh=mesh, num_seeds=num_seeds,
                                            shard_seeds=mesh_cfg.shard_seeds)
  if num_seeds_run != num_seeds:
    logging.info("Seed axis padded from %d to %d to split evenly over %d devices; the "
                 "extra seeds train and are dropped from every reported figure",
                 num_seeds, num_seeds_run, sharding.data_axis_size(mesh))

  def real_seeds(per_seed):
    """Drops the padding seeds: leading axis num_seeds_run -> num_seeds."""
    return jax.tree.map(lambda a: a[:num_seeds], per_seed)

  # Seeds as a batch: every leaf of the state has a leading [num_seeds_run] axis and
  # one compiled program trains all seeds (vmap over init, data order and keys).
  keys = seed_keys(config.seed, num_seeds_run)
  init_keys, data_keys = jnp.moveaxis(jax.vmap(jax.random.split)(keys), 1, 0)
  calibration_conds = dataset.eval_splits["train"].cond[:256]
  state = jax.jit(jax.vmap(
      lambda k: create_train_state(model, tx, k, example, calibration_conds)))(init_keys)
  # One program over the mesh: state replicated (or split by seed), training rows
  # replicated (or split, shard_train_data), each batch's conditioning inputs split
  # over the data axis.
  state_sharding = sharding.state_shardings(state, mesh, shard_seeds=mesh_cfg.shard_seeds,
                                            shard_heads=mesh_cfg.shard_heads)
  state = jax.device_put(state, state_sharding)
  train_data = _place_train_data(dataset.train, mesh, split=shard_data)
  # Keys travel as raw uint32 data: every process holds the same values, and
  # device_put onto a mesh spanning processes takes plain arrays.
  data_keys = jax.random.wrap_key_data(jax.device_put(
      jax.random.key_data(data_keys),
      sharding.batch_sharding(mesh) if mesh_cfg.shard_seeds else sharding.replicated(mesh)))
  counts = params_lib.parameter_counts(jax.tree.map(lambda a: a[0], state.params), primary)
  logging.info("Model %s, parameter counts %s, %d seed(s)", config.model.kind, counts,
               config.num_seeds)

  manager = checkpoints.create_manager(workdir, max_to_keep=config.max_checkpoints_to_keep)
  try:
    state = checkpoints.restore_or_initialize(manager, state)
  except WorkdirError as e:
    if not mesh_cfg.shard_seeds:
      raise
    raise WorkdirError(f"{e}; with config.mesh.shard_seeds the seed axis is padded to a "
                       f"multiple of the data axis ({num_seeds_run} seeds on "
                       f"{sharding.data_axis_size(mesh)} devices here): resume on the "
                       "device count that wrote the checkpoint") from e
  start_step = int(state.step[0])

  train_step = make_train_step(
      model, tx, dataset, batch_conditions=config.batch.conditions,
      batch_points=config.batch.points,
      batch_sharding=None if mesh_cfg.shard_seeds else sharding.batch_sharding(mesh),
      sharded_train_data=shard_data)
  seeds_step = jax.vmap(train_step, in_axes=(0, None, 0))

  def run_steps(state, train, keys, *, num_steps):
    """`num_steps` steps in one call (lax.scan): metrics get a leading step axis."""
    return jax.lax.scan(lambda st, _: seeds_step(st, train, keys), state, None,
                        length=num_steps)

  steps_per_call = config.get("steps_per_call", 1)
  compile_start = time.perf_counter()
  # k steps per call (fewer dispatches for small models) and single steps to land
  # exactly on log/eval/checkpoint boundaries; compiled only if needed.
  compiled = {}

  def step_fn(num_steps):
    if num_steps not in compiled:
      compiled[num_steps] = jax.jit(
          functools.partial(run_steps, num_steps=num_steps), donate_argnums=0,
          # Metrics replicated: every process can read them (host syncs at log steps).
          out_shardings=(state_sharding, sharding.replicated(mesh)),
      ).lower(state, train_data, data_keys).compile()
    return compiled[num_steps]

  step_fn(steps_per_call)
  compile_seconds = time.perf_counter() - compile_start
  eval_fn = jax.jit(jax.vmap(
      make_eval_fn(model, dataset.task, conditions_per_chunk=config.eval_conditions_per_chunk),
      in_axes=(0, None)), out_shardings=sharding.replicated(mesh))

  writer = metric_writers.MetricWriter(workdir)
  if start_step == 0:
    writer.write_hparams(workdir_lib.flatten_dict(workdir_lib.config_to_json_dict(config)))
  progress = metric_writers.ReportProgress(num_train_steps=config.num_train_steps,
                                           writer=writer)
  history = []  # (first step, device metrics [steps, S]) since the last check
  last_saved = manager.latest_step()
  train_start = time.perf_counter()

  def check_history():
    nonlocal history
    if not history:
      return
    host_history = []
    for first, stacked in jax.device_get(history):
      steps = len(next(iter(stacked.values())))
      host_history += [(first + i, {k: v[i][:num_seeds] for k, v in stacked.items()})
                       for i in range(steps)]
    bad = _first_non_finite(host_history)
    if bad is not None:
      manager.wait_until_finished()
      kept = (f"last good checkpoint: step {last_saved} in {manager.directory}"
              if last_saved is not None else "no checkpoint was written")
      seed = (f" (seed {config.seed + bad[2]})" if config.num_seeds > 1 else "")
      raise TrainingDivergedError(
          f"training {bad[1]} became {bad[3]} at step {bad[0]}{seed}; stopped, {kept}")
    means = jax.tree.map(lambda *v: float(np.mean(v)), *[m for _, m in host_history])
    writer.write_scalars(host_history[-1][0], {f"train_{k}": v for k, v in means.items()})
    history = []

  def write_eval(step):
    summary = summarize_seeds(real_seeds(evaluate_splits(eval_fn, state.params, dataset)))
    summary.pop("per_seed")
    writer.write_scalars(step, {f"eval_{k}": v for k, v in summary.items()
                                if not (k.endswith("_std") and config.num_seeds == 1)})

  def steps_to_next_event(step):
    every = (config.log_every_steps, config.eval_every_steps, config.checkpoint_every_steps)
    return min([config.num_train_steps - step] + [e - step % e for e in every])

  # XLA:CPU with several devices in one process deadlocks when many calls with
  # collectives are in flight (device threads of the next call wait in a rendezvous
  # while the current one cannot get a thread: seen with 8 host devices on 2 cores).
  # Accelerators keep asynchronous dispatch.
  one_call_in_flight = jax.default_backend() == "cpu" and jax.local_device_count() > 1
  try:
    step = start_step
    while step < config.num_train_steps:
      num_steps = steps_per_call if steps_to_next_event(step) >= steps_per_call else 1
      state, metrics = step_fn(num_steps)(state, train_data, data_keys)
      if one_call_in_flight:
        jax.block_until_ready(state)
      history.append((step + 1, metrics))
      step += num_steps
      progress(step)
      is_last = step == config.num_train_steps
      if step % config.log_every_steps == 0 or is_last:
        check_history()
      if step % config.eval_every_steps == 0 or is_last:
        write_eval(step)
      if step % config.checkpoint_every_steps == 0 or is_last:
        check_history()  # never checkpoint a diverged state
        checkpoints.save(manager, step, state)
        last_saved = step
    train_seconds = time.perf_counter() - train_start
    steps_done = config.num_train_steps - start_step
    results = {
        "method": config.model.kind,
        "step": int(state.step[0]),
        "num_seeds": config.num_seeds,
        "seeds": [config.seed + s for s in range(config.num_seeds)],
        **summarize_seeds(real_seeds(evaluate_splits(eval_fn, state.params, dataset))),
        "param_counts": counts,
        "train_rows": {"per_process": int(len(jax.tree.leaves(dataset.train)[0])),
                       "global": int(jax.tree.leaves(train_data)[0].shape[0]),
                       "split_over_devices": bool(shard_data)},
        "budget_matched": budget_knob,
        "compile_seconds": compile_seconds,
        "train_seconds_this_run": train_seconds,
        "steps_this_run": steps_done,
        "steps_per_second": steps_done / train_seconds if steps_done else None,
    }
    if distributed.is_primary():
      path = os.path.join(workdir, "results.json")
      try:
        workdir_lib.write_json_atomic(path, results)
      except OSError as e:
        raise WorkdirError(f"could not write {path}: {e.strerror or e}; any previous "
                           "results.json is untouched and the checkpoints are kept, so "
                           "rerunning the command writes it") from e
    logging.info("Final results: %s", {k: v for k, v in results.items() if k != "per_seed"})
  finally:
    manager.wait_until_finished()
    manager.close()
    writer.close()
  return real_seeds(state) if num_seeds_run != num_seeds else state
