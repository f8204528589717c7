"""`train_and_evaluate(config, workdir)`: the one training loop.

One jitted step (vmap over conditioning inputs inside), data on device, batch order
derived from (seed, step) so a resumed run sees the same batches, periodic
evaluation, metrics through `MetricWriter`, orbax checkpoints with
restore-or-initialize, and `config.json` / `results.json` in the workdir.
"""

import functools
import os
import time

from absl import logging
import jax
import ml_collections
import numpy as np

from hypernets.training import checkpoints
from hypernets import data as data_lib
from hypernets.parallel import distributed
from hypernets.training import metric_writers
from hypernets import params as params_lib
from hypernets.parallel import sharding
from hypernets.training import workdir as workdir_lib
from hypernets.config import check_training_config
from hypernets.errors import TrainingDivergedError
from hypernets.errors import WorkdirError
from hypernets.training.state import TrainState
from hypernets.training.state import init_and_data_keys
from hypernets.training.state import summarize_seeds
from hypernets.training.steps import check_batch_fits
from hypernets.training.steps import create_model_and_optimizer
from hypernets.training.steps import create_train_state
from hypernets.training.steps import evaluate_splits
from hypernets.training.steps import make_eval_fn
from hypernets.training.steps import make_train_step
from hypernets.training.steps import place_train_data


def _first_non_finite(history: list[tuple[int, dict[str, np.ndarray]]]
                      ) -> tuple[int, str, int, float] | None:
  """(step, metric, seed index, value) of the first non-finite train metric, or None."""
  for step, metrics in history:
    for name, values in metrics.items():
      bad = np.flatnonzero(~np.isfinite(values))
      if bad.size:
        return step, name, int(bad[0]), float(values[bad[0]])
  return None


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
  init_keys, data_keys = init_and_data_keys(config.seed, num_seeds_run)
  calibration_conds = dataset.eval_splits["train"].cond[:256]
  state = jax.jit(jax.vmap(
      lambda k: create_train_state(model, tx, k, example, calibration_conds)))(init_keys)
  # One program over the mesh: state replicated (or split by seed), training rows
  # replicated (or split, shard_train_data), each batch's conditioning inputs split
  # over the data axis.
  state_sharding = sharding.state_shardings(state, mesh, shard_seeds=mesh_cfg.shard_seeds,
                                            shard_heads=mesh_cfg.shard_heads)
  state = jax.device_put(state, state_sharding)
  train_data = place_train_data(dataset.train, mesh, split=shard_data)
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
