"""The one training loop: `run(spec, settings, ...)` trains whatever a `TrainSpec` holds.

The loop does not know what it trains: a conditioned model (training/conditioned.py),
a pair of students or a stack of widths (experiments/assumption*.py) all come as an
init function, a pure step and an evaluation, each for ONE seed. The loop gives them:
- seeds as a batch: `vmap` over the seeds' states and data keys, one program;
- one program over a device mesh (state replicated or split by seed, training rows
  replicated or split over 'data');
- several steps per dispatched call (`lax.scan`), by default up to the next log /
  eval / checkpoint event (`steps_per_call=0`), bit-identical to one step per call;
  step metrics are summed on device and fetched once per log event;
- a non-finite metric is caught on device at the step it happens and reported, with
  that step and seed, at the next event; a diverged state is never checkpointed;
- orbax checkpoints with restore-or-initialize (batches and keys derive from
  (seed, step), so a resumed run is bit-identical to an uninterrupted one);
- SIGTERM / SIGINT: the call in flight finishes, the step reached is checkpointed,
  metrics are flushed, and `PreemptedError` (launcher exit status 75) is raised;
- metrics.jsonl / TensorBoard, progress lines, and results.json at the end.
"""

import dataclasses
import functools
import os
import time
from typing import Any, Callable

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from hypernets import provenance
from hypernets.errors import PreemptedError
from hypernets.errors import TrainingDivergedError
from hypernets.errors import WorkdirError
from hypernets.parallel import distributed
from hypernets.parallel import sharding
from hypernets.training import checkpoints
from hypernets.training import metric_writers
from hypernets.training import preemption
from hypernets.training import workdir as workdir_lib
from hypernets.training.state import init_and_data_keys
from hypernets.training.state import summarize_seeds


@dataclasses.dataclass(frozen=True)
class TrainSpec:
  """What the loop trains. Every function is for ONE seed; the loop vmaps over seeds.

  Attributes:
    init: init_key -> the seed's initial state, a pytree with an int32 `step` leaf
      (e.g. a TrainState).
    step: (state, train_data, data_key) -> (state advanced by one step, {name:
      scalar metric}). Pure and jittable; it derives the step's randomness from
      fold_in(data_key, state.step) so that batches depend on (seed, step) only.
    evaluate: (state, eval_data) -> {name: scalar}; at eval events and at the end.
    train_data: arrays the step reads (replicated, or split over 'data' if
      `split_train_data`, rows on the leading axis).
    eval_data: arrays `evaluate` reads (replicated).
    fresh_eval_data: optional k -> the eval_data of evaluation k, read at every
      evaluation in place of `eval_data` (e.g. test images at new rotation angles).
      k comes from the step, k = ceil(step / eval_every): 0 for the initial state,
      then 1, 2, ... at the eval events; the final evaluation is the last event's.
      So a resumed run evaluates on the same data as an uninterrupted one.
    results: (per_seed, initial) -> (more per-seed values {name: [S, ...]}, more
      results.json fields), on the host, where per_seed is the final evaluation
      {name: [S, ...]} and initial that of the initial state (None unless
      `evaluate_initial`). Per-seed values are summarised like the evaluation's.
    evaluate_initial: also evaluate the initial state (for 'before vs after').
    description: one line for the log.
  """

  init: Callable[[jax.Array], Any]
  step: Callable[[Any, Any, jax.Array], tuple[Any, dict]]
  evaluate: Callable[[Any, Any], dict]
  train_data: Any
  eval_data: Any
  split_train_data: bool = False
  fresh_eval_data: Callable[[int], Any] | None = None
  results: Callable[[dict, dict | None], tuple[dict, dict]] | None = None
  evaluate_initial: bool = False
  description: str = ""


@dataclasses.dataclass(frozen=True)
class LoopSettings:
  """How long and how often: steps, events, seeds, layout over the mesh."""

  num_steps: int
  log_every: int
  eval_every: int
  checkpoint_every: int
  max_checkpoints_to_keep: int = 2
  seed: int = 0
  num_seeds: int = 1
  steps_per_call: int = 0  # 0: up to the next event (one call per log interval)
  shard_seeds: bool = False
  shard_heads: bool = False

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> "LoopSettings":
    """The settings of a step-based training config (num_train_steps, *_every_steps)."""
    mesh_cfg = sharding.mesh_config(config)
    return cls(
        num_steps=config.num_train_steps, log_every=config.log_every_steps,
        eval_every=config.eval_every_steps,
        checkpoint_every=config.checkpoint_every_steps,
        max_checkpoints_to_keep=config.max_checkpoints_to_keep, seed=config.seed,
        num_seeds=config.num_seeds, steps_per_call=config.get("steps_per_call", 0),
        shard_seeds=mesh_cfg.get("shard_seeds", False),
        shard_heads=mesh_cfg.get("shard_heads", False))


def _call_fn(seeds_step: Callable, *, num_steps: int) -> Callable:
  """(state, acc, train, keys) -> (state, acc) after `num_steps` steps (one lax.scan).

  acc = (metric sums {name: [S]}, first bad step [S], metrics at that step), carried
  from call to call until the host reads it: the sums add up step by step in the
  same order however many steps run per call, and the first step at which a metric
  of a seed is not finite is recorded (1-based: the step count reached) with that
  step's metrics, so the host names it exactly.
  """

  # Named for what it is: XLA dumps and profiles show `jit_train_steps`.
  def train_steps(state, acc, train, keys):

    def body(carry, _):
      state, (sums, first_bad, bad_metrics) = carry
      new_state, metrics = seeds_step(state, train, keys)  # metrics {name: [S]}
      finite = functools.reduce(jnp.logical_and,
                                [jnp.isfinite(v) for v in jax.tree.leaves(metrics)])
      newly_bad = (first_bad < 0) & ~finite  # [S]
      first_bad = jnp.where(newly_bad, new_state.step, first_bad)
      bad_metrics = jax.tree.map(lambda old, new: jnp.where(newly_bad, new, old),
                                 bad_metrics, metrics)
      sums = jax.tree.map(jnp.add, sums, metrics)
      return (new_state, (sums, first_bad, bad_metrics)), None

    (state, acc), _ = jax.lax.scan(body, (state, acc), None, length=num_steps)
    return state, acc

  return train_steps


def _accumulator_factory(seeds_step: Callable, state, train, keys) -> Callable[[], tuple]:
  """A function returning zero sums, no bad step (-1) and zero metrics: the
  accumulator `_call_fn` carries. The step is traced once here, not at every log."""
  shapes = jax.eval_shape(lambda st: seeds_step(st, train, keys)[1], state)
  zeros = lambda: jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), shapes)  # pylint: disable=unnecessary-lambda-assignment
  return lambda: (zeros(), np.full(state.step.shape, -1, np.int32), zeros())


def _placed_keys(keys: jax.Array, mesh, *, split: bool) -> jax.Array:
  """Keys travel as raw uint32 data: every process holds the same values, and
  device_put onto a mesh spanning processes takes plain arrays."""
  where = sharding.batch_sharding(mesh) if split else sharding.replicated(mesh)
  return jax.random.wrap_key_data(jax.device_put(jax.random.key_data(keys), where))


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


def run(spec: TrainSpec, settings: LoopSettings, *, mesh, config: ml_collections.ConfigDict,
        workdir: str) -> tuple[Any, dict]:
  """Trains `spec` for settings.num_steps steps into workdir (resuming if possible).

  Writes config.json, metrics.jsonl, tensorboard/, checkpoints/ and results.json:
  {step, num_seeds, seeds, <metric> mean / <metric>_std / per_seed over seeds,
  **spec.results(...), compile_seconds, train_seconds_this_run, steps_this_run,
  steps_per_second}. A rerun of a finished run returns its results without training.

  Returns:
    (final state with a leading [num_seeds] axis on every leaf, results dict).
  """
  s = settings
  if config.get("debug_nans", False):
    jax.config.update("jax_debug_nans", True)  # every op checked: slow, for debugging
  workdir = workdir_lib.prepare_workdir(workdir, config)
  num_seeds_run = sharding.padded_num_seeds(mesh=mesh, num_seeds=s.num_seeds,
                                            shard_seeds=s.shard_seeds)
  if num_seeds_run != s.num_seeds:
    logging.info("Seed axis padded from %d to %d to split evenly over %d devices; the "
                 "extra seeds train and are dropped from every reported figure",
                 s.num_seeds, num_seeds_run, sharding.data_axis_size(mesh))

  def real_seeds(per_seed):
    """Drops the padding seeds: leading axis num_seeds_run -> num_seeds."""
    return jax.tree.map(lambda a: a[:s.num_seeds], per_seed)

  init_keys, data_keys = init_and_data_keys(s.seed, num_seeds_run)
  state = jax.jit(jax.vmap(spec.init))(init_keys)
  state_sharding = sharding.state_shardings(state, mesh, shard_seeds=s.shard_seeds,
                                            shard_heads=s.shard_heads)
  state = jax.device_put(state, state_sharding)
  train_data = _place_train_data(spec.train_data, mesh, split=spec.split_train_data)
  eval_data = jax.device_put(spec.eval_data, sharding.replicated(mesh))

  def eval_data_at(step: int):
    """The data of the evaluation at `step` (see TrainSpec.fresh_eval_data)."""
    if spec.fresh_eval_data is None:
      return eval_data
    return jax.device_put(spec.fresh_eval_data(-(-step // s.eval_every)),
                          sharding.replicated(mesh))

  data_keys = _placed_keys(data_keys, mesh, split=s.shard_seeds)
  eval_fn = jax.jit(jax.vmap(spec.evaluate, in_axes=(0, None)),
                    out_shardings=sharding.replicated(mesh))
  initial_eval = (real_seeds(jax.device_get(eval_fn(state, eval_data_at(0))))
                  if spec.evaluate_initial else None)
  logging.info("%s; %d seed(s), %d steps", spec.description or "Training",
               s.num_seeds, s.num_steps)

  manager = checkpoints.create_manager(workdir, max_to_keep=s.max_checkpoints_to_keep)
  try:
    state = checkpoints.restore_or_initialize(manager, state)
  except WorkdirError as e:
    manager.close()
    if not s.shard_seeds:
      raise
    raise WorkdirError(f"{e}; with config.mesh.shard_seeds the seed axis is padded to a "
                       f"multiple of the data axis ({num_seeds_run} seeds on "
                       f"{sharding.data_axis_size(mesh)} devices here): resume on the "
                       "device count that wrote the checkpoint") from e
  start_step = int(jax.device_get(state.step)[0])
  if start_step == s.num_steps:
    finished = workdir_lib.results_at_step(workdir, start_step)
    if finished is not None:
      manager.close()
      logging.info("%s already finished at step %d: results.json kept", workdir, start_step)
      return real_seeds(state), finished

  seeds_step = jax.vmap(spec.step, in_axes=(0, None, 0))
  replicated = sharding.replicated(mesh)

  empty_accumulator = _accumulator_factory(seeds_step, state, train_data, data_keys)

  def new_accumulator():
    return jax.device_put(empty_accumulator(), replicated)

  acc = new_accumulator()  # on device, since the last log event
  acc_steps = 0
  compiled = {}

  def call_fn(num_steps):
    """The compiled program for `num_steps` steps (one per distinct length)."""
    if num_steps not in compiled:
      compiled[num_steps] = jax.jit(
          _call_fn(seeds_step, num_steps=num_steps), donate_argnums=(0, 1),
          # The accumulator replicated: every process can read it.
          out_shardings=(state_sharding, replicated),
      ).lower(state, acc, train_data, data_keys).compile()
    return compiled[num_steps]

  def steps_to_next_event(step):
    every = (s.log_every, s.eval_every, s.checkpoint_every)
    return min([s.num_steps - step] + [e - step % e for e in every])

  def steps_this_call(step):
    to_event = steps_to_next_event(step)
    return to_event if s.steps_per_call <= 0 else min(s.steps_per_call, to_event)

  compile_start = time.perf_counter()
  if start_step < s.num_steps:
    call_fn(steps_this_call(start_step))
  compile_seconds = time.perf_counter() - compile_start

  writer = metric_writers.MetricWriter(workdir)
  if start_step == 0:
    writer.write_hparams(workdir_lib.flatten_dict(workdir_lib.config_to_json_dict(config)))
  progress = metric_writers.ReportProgress(num_train_steps=s.num_steps, writer=writer)
  last_saved = manager.latest_step()

  def check_finite():
    """Raises TrainingDivergedError at the first non-finite metric since the last log."""
    first_bad, bad_metrics = jax.device_get(acc[1:])
    first_bad = first_bad[:s.num_seeds]
    seeds = np.flatnonzero(first_bad >= 0)
    if not seeds.size:
      return
    seed_index = int(seeds[np.argmin(first_bad[seeds])])
    name, value = next((k, float(v[seed_index])) for k, v in bad_metrics.items()
                       if not np.isfinite(v[seed_index]))
    manager.wait_until_finished()
    kept = (f"last good checkpoint: step {last_saved} in {manager.directory}"
            if last_saved is not None else "no checkpoint was written")
    seed = f" (seed {s.seed + seed_index})" if s.num_seeds > 1 else ""
    raise TrainingDivergedError(
        f"training {name} became {value} at step {int(first_bad[seed_index])}{seed}; "
        f"stopped, {kept}")

  def write_train_metrics(step):
    nonlocal acc, acc_steps
    check_finite()
    if not acc_steps:
      return
    sums = jax.device_get(acc[0])
    writer.write_scalars(step, {f"train_{k}": float(np.mean(v[:s.num_seeds])) / acc_steps
                                for k, v in sums.items()})
    acc, acc_steps = new_accumulator(), 0

  def write_eval(step):
    summary = summarize_seeds(real_seeds(jax.device_get(eval_fn(state, eval_data_at(step)))))
    summary.pop("per_seed")
    scalars = {}
    for name, value in summary.items():
      if name.endswith("_std") and s.num_seeds == 1:
        continue
      if isinstance(value, list):  # a vector metric: one scalar per entry
        scalars.update({f"eval_{name}_{i}": v for i, v in enumerate(value)})
      else:
        scalars[f"eval_{name}"] = value
    writer.write_scalars(step, scalars)

  # XLA:CPU with several devices in one process deadlocks when many calls with
  # collectives are in flight (device threads of the next call wait in a rendezvous
  # while the current one cannot get a thread: seen with 8 host devices on 2 cores).
  # Accelerators keep asynchronous dispatch.
  one_call_in_flight = jax.default_backend() == "cpu" and jax.local_device_count() > 1
  train_start = time.perf_counter()
  # Signals stop the run at the next call boundary until the run has ended (results
  # written, files closed): a late SIGTERM no longer kills it halfway through.
  with preemption.StopRequests() as stop:
    try:
      step = start_step
      while step < s.num_steps:
        num_steps = steps_this_call(step)
        state, acc = call_fn(num_steps)(state, acc, train_data, data_keys)
        if one_call_in_flight:
          jax.block_until_ready(state)
        acc_steps += num_steps
        step += num_steps
        progress(step)
        stopping = stop.should_stop() and step < s.num_steps
        is_last = step == s.num_steps
        if step % s.log_every == 0 or is_last or stopping:
          write_train_metrics(step)
          writer.flush()  # metrics.jsonl readable while the run goes on
        if step % s.eval_every == 0 or is_last:
          write_eval(step)
        if step % s.checkpoint_every == 0 or is_last or stopping:
          check_finite()  # never checkpoint a diverged state
          checkpoints.save(manager, step, state)
          last_saved = step
        if stopping:
          manager.wait_until_finished()
          writer.flush()
          raise PreemptedError(f"stopped by a signal at step {step} of {s.num_steps}; "
                               f"checkpoint written to {manager.directory}: rerun the "
                               "same command to resume")
      train_seconds = time.perf_counter() - train_start
      steps_done = s.num_steps - start_step
      per_seed = real_seeds(jax.device_get(eval_fn(state, eval_data_at(s.num_steps))))
      per_seed = {k: np.asarray(v, np.float64) for k, v in per_seed.items()}
      more_per_seed, fields = (spec.results(per_seed, initial_eval) if spec.results
                               else ({}, {}))
      results = {
          "step": int(jax.device_get(state.step)[0]),
          "num_seeds": s.num_seeds,
          "seeds": [s.seed + i for i in range(s.num_seeds)],
          **summarize_seeds({**per_seed, **more_per_seed}),
          **fields,
          "compile_seconds": compile_seconds,
          "train_seconds_this_run": train_seconds,
          "steps_this_run": steps_done,
          "steps_per_second": steps_done / train_seconds if steps_done else None,
          # The code of the process that finished the run (a resumed one may have
          # started at another commit) and its jax.
          "code_version": provenance.code_version(),
          "jax_version": jax.__version__,
      }
      if distributed.is_primary():
        path = os.path.join(workdir, "results.json")
        try:
          workdir_lib.write_json_atomic(path, results)
        except OSError as e:
          raise WorkdirError(f"could not write {path}: {e.strerror or e}; any previous "
                             "results.json is untouched and the checkpoints are kept, so "
                             "rerunning the command writes it") from e
      logging.info("Final results: %s",
                   {k: v for k, v in results.items() if k != "per_seed"})
    finally:
      manager.wait_until_finished()
      manager.close()
      writer.close()
  return real_seeds(state), results
