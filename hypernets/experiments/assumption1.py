r"""Assumption 1 of the paper (uniqueness of the best approximator), Experiment 3.

A FIXED random CNN y (conv 20 ch k10 s2 -> ReLU -> conv 40 ch k10 s2 -> ReLU -> fc
10, PyTorch's default init, seed `model.target_seed`) labels inputs uniform in
[-1, 1]^(28x28x1) (`data.source='uniform'`) or normalised images. Per repeat (a
seed of the loop), two students d -> 100 -> 10 (ReLU, PyTorch init, then every
row, i.e. each unit's incoming weight vector, divided by its norm:
`model.unit_norm_rows`) are fitted to y by MSE, side by side in one step
(plain_training.members_step). With `data.fresh_samples` (uniform inputs only; the
authors' code) every batch is freshly drawn, `data.num_train_examples` per epoch;
otherwise a fixed set is visited once per epoch in a fresh order (data/epochs.py).
Student s of repeat r: init key fold_in(init_r, s); data key fold_in(data_r, s), or
data_r for both with `data.same_order_for_students`. Distances are RMS over
held-out test inputs (a separate draw, or the test split) and the K outputs:

  ||f - g|| = sqrt( 1/(N K) sum_n sum_k (f_k(x_n) - g_k(x_n))^2 ).

Its square is the number the authors' code prints (nn.MSELoss), reported as
`*_mse`. The claim: ||f1 - f2|| is small relative to ||f1 - y||.

results.json (per repeat values: the mean under the name, `<name>_std`, and
`per_seed[<name>]` a list over repeats):
  f1_f2_mse, f1_y_mse, f2_y_mse      squared distances after training
  f1_f2_rms, f1_y_rms, f2_y_rms      the distances
  f1_f2_over_f1_y                    ||f1 - f2|| / ||f1 - y|| (the claim's number)
  f1_y_over_target_std               ||f1 - y|| / target_std_rms (1 = no better than
                                     predicting y's mean)
  train_mse                          the students' mean MSE on (up to
                                     num_test_examples of) the training inputs
  init_f1_f2_rms, init_f1_y_rms, init_train_mse   the same before training
  frac_seeds_f1_f2_below_f1_y        fraction of repeats with ||f1-f2|| < ||f1-y||
  target_std_rms                     RMS of y - mean(y) on the test inputs (scale)
  param_counts {target, student}, data_source, fresh_samples, input_shape,
  num_train_examples (per epoch), num_test_examples, num_epochs, steps_per_epoch,
  steps, and the loop's fields (step, seeds, timings).

Run:
  python launch/main.py --config=configs/assumption1.py:quick --workdir=/tmp/a1
"""

import math
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from hypernets import flat_random
from hypernets import params as params_lib
from hypernets.config import check_choice
from hypernets.config import check_estimates
from hypernets.config import check_int
from hypernets.config import check_widths
from hypernets.data import epochs
from hypernets.data import images
from hypernets.errors import ConfigError
from hypernets.experiments import plain_nets
from hypernets.experiments import plain_training
from hypernets.training import loop
from hypernets.training import optimizers

SOURCES = ("uniform",) + images.SOURCES
UNIT_NORM_ROWS = ("none", "first", "all")
_NORMALIZED_LAYERS = {"none": (), "first": ("Dense_0",), "all": ("Dense_0", "Dense_1")}


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError (one line naming the field) on the first bad field."""
  plain_training.check_common(config)
  check_choice(config, "data.source", SOURCES)
  if config.data.source == "uniform":
    check_widths(config, "data.image_shape")
    check_int(config, "data.seed", minimum=0)
    check_int(config, "data.num_train_examples", minimum=1)
    check_int(config, "data.num_test_examples", minimum=1)
  check_int(config, "model.target_seed", minimum=0)
  check_widths(config, "model.target_channels")
  check_int(config, "model.target_kernel_size", minimum=1)
  check_int(config, "model.target_strides", minimum=1)
  check_int(config, "model.num_outputs", minimum=1)
  check_int(config, "model.student_width", minimum=1)
  check_choice(config, "model.unit_norm_rows", UNIT_NORM_ROWS)
  check_choice(config, "data.same_order_for_students", (True, False))
  check_choice(config, "data.fresh_samples", (True, False))
  m = config.model
  # Two students per seed, each output layer with its gradient and two Adam moments.
  estimates = [(16 * 2 * config.num_seeds * (m.student_width + 1) * m.num_outputs,
                "the students' output layers", "config.model.num_outputs, "
                "student_width and config.num_seeds")]
  if config.data.source == "uniform":
    pixels = math.prod(config.data.image_shape)
    estimates += [(8 * config.data[f"num_{split}_examples"] * pixels,
                   f"{split} inputs (drawn as float64)",
                   f"config.data.num_{split}_examples and image_shape")
                  for split in ("train", "test")]
  check_estimates(estimates)


def _check_target_fits(config, input_shape: tuple[int, ...]) -> None:
  m = config.model
  sizes = [plain_nets.conv_output_size(s, kernel_size=m.target_kernel_size,
                                       strides=m.target_strides,
                                       num_layers=len(m.target_channels))
           for s in input_shape[:2]]
  if min(sizes) < 1:
    raise ConfigError(
        f"config.model.target_kernel_size={m.target_kernel_size} (strides "
        f"{m.target_strides}, {len(m.target_channels)} convs) does not fit the "
        f"{input_shape[0]}x{input_shape[1]} inputs of config.data.source="
        f"{config.data.source!r}")


def load_inputs(data: ml_collections.ConfigDict, *, skip_train: bool = False
                ) -> tuple[np.ndarray | None, np.ndarray]:
  """(train inputs or None if skip_train, test inputs), float32 [N, H, W, C].

  'uniform': U[-1, 1] of shape `data.image_shape` from numpy's
  default_rng([data.seed, 0]) (train) and default_rng([data.seed, 1]) (test).
  Image sources: normalised images (labels unused).
  """
  if data.source == "uniform":
    shape = tuple(data.image_shape)
    draw = lambda stream, n: np.random.default_rng([data.seed, stream]).uniform(  # pylint: disable=unnecessary-lambda-assignment
        -1.0, 1.0, (n, *shape)).astype(np.float32)
    x_train = None if skip_train else draw(0, data.num_train_examples)
    return x_train, draw(1, data.num_test_examples)
  return tuple(
      plain_training.normalize_images(
          images.load_images(data.source, split=split, data_dir=data.data_dir or None,
                             max_examples=n or None), source=data.source)
      for split, n in (("train", data.num_train_examples),
                       ("test", data.num_test_examples)))


def create_target(config: ml_collections.ConfigDict) -> plain_nets.TargetCNN:
  m = config.model
  return plain_nets.TargetCNN(channels=tuple(m.target_channels),
                              kernel_size=m.target_kernel_size,
                              strides=m.target_strides, num_outputs=m.num_outputs)


def init_target(target: plain_nets.TargetCNN, *, seed: int,
                input_shape: Sequence[int]) -> dict:
  """The target's params from jax.random.key(seed) for inputs [H, W, C]."""
  template = plain_nets.param_template(target, jnp.zeros((1, *input_shape)))
  return jax.jit(lambda key: plain_nets.torch_init(key, template))(jax.random.key(seed))


def init_student(key: jax.Array, *, student: plain_nets.OneHiddenMLP, input_dim: int,
                 unit_norm_rows: str) -> dict:
  """One student's params: PyTorch init, then unit-norm rows per `unit_norm_rows`."""
  params = plain_nets.torch_init(
      key, plain_nets.param_template(student, jnp.zeros((1, input_dim))))
  return plain_nets.normalize_rows(params, layers=_NORMALIZED_LAYERS[unit_norm_rows])


def student_keys(key: jax.Array, *, same: bool = False) -> jax.Array:
  """The two students' keys [2] from a repeat's key: fold_in(key, s), or key twice."""
  if same:
    return jnp.stack([key, key])
  return jax.vmap(lambda s: jax.random.fold_in(key, s))(jnp.arange(2))


def student_distances(student: plain_nets.OneHiddenMLP, params: Any, x: jax.Array,
                      y: jax.Array, *, chunk_size: int) -> dict[str, jax.Array]:
  """Mean squared distances of ONE repeat's students (params leaves [2, ...]) over test
  inputs x [N, d] and outputs, targets y [N, K]: {'f1_f2_mse', 'f1_y_mse', 'f2_y_mse'}."""

  def per_example(xy):
    x_n, y_n = xy  # [d], [K]
    f = jax.vmap(lambda p: student.apply({"params": p}, x_n))(params)  # [2, K]
    return {"f1_f2_mse": jnp.mean(jnp.square(f[0] - f[1])),
            "f1_y_mse": jnp.mean(jnp.square(f[0] - y_n)),
            "f2_y_mse": jnp.mean(jnp.square(f[1] - y_n))}

  per = jax.lax.map(per_example, (x, y), batch_size=min(chunk_size, x.shape[0]))
  return jax.tree.map(jnp.mean, per)


def build_spec(config: ml_collections.ConfigDict) -> tuple[loop.TrainSpec,
                                                           loop.LoopSettings]:
  """Data, target, students and optimizer of the check, as the loop's TrainSpec."""
  wall_start = time.perf_counter()
  check_config(config)
  # Fresh samples (uniform only): every batch is new inputs, as the authors' code
  # (its Uniform dataset redraws on every fetch); no training set is stored.
  fresh = config.data.source == "uniform" and config.data.fresh_samples
  x_train, x_test = load_inputs(config.data, skip_train=fresh)
  input_shape = x_test.shape[1:]  # [H, W, C]
  num_train = config.data.num_train_examples if fresh else x_train.shape[0]
  _check_target_fits(config, input_shape)
  plain_training.check_batch_fits(config, num_train)

  target = create_target(config)
  target_params = init_target(target, seed=config.model.target_seed,
                              input_shape=input_shape)
  label = jax.jit(lambda p, x: jax.lax.map(
      lambda xb: target.apply({"params": p}, xb[None])[0], x,
      batch_size=min(config.eval_chunk_size, x.shape[0])))
  flat = lambda x: jnp.asarray(x.reshape(x.shape[0], -1))  # [N, d]  # pylint: disable=unnecessary-lambda-assignment
  y_test = label(target_params, x_test)  # [N, K]
  x_test = flat(x_test)
  if fresh:
    train_data, train_probe = target_params, (x_test, y_test)
  else:
    y_train = label(target_params, x_train)
    train_data = (flat(x_train), y_train)
    probe = min(x_test.shape[0], x_train.shape[0])
    train_probe = (train_data[0][:probe], y_train[:probe])
  input_dim = x_test.shape[1]
  target_std = float(np.sqrt(np.mean(np.square(y_test - np.mean(y_test, axis=0)))))

  student = plain_nets.OneHiddenMLP(width=config.model.student_width,
                                    num_outputs=config.model.num_outputs,
                                    activation="relu")
  batch_size = config.batch_size
  steps_per_epoch = num_train // batch_size
  settings = plain_training.loop_settings(config, steps_per_epoch=steps_per_epoch)
  tx = optimizers.per_member(
      optimizers.create_optimizer(config.optimizer, settings.num_steps))

  def init(key):
    params = jax.vmap(lambda k: init_student(
        k, student=student, input_dim=input_dim,
        unit_norm_rows=config.model.unit_norm_rows))(student_keys(key))
    return plain_training.init_members(params, tx)

  def student_batch(train_data, data_key, step):
    """Student batch of `step`: (x [B, d], y [B, K])."""
    if fresh:  # the authors' Uniform dataset: new inputs on every fetch
      epoch, index = step // steps_per_epoch, step % steps_per_epoch
      key = jax.random.fold_in(jax.random.fold_in(data_key, epoch), index)
      xb = flat_random.uniform(key, (batch_size, *input_shape), minval=-1.0, maxval=1.0)
      return (xb.reshape(batch_size, -1),
              target.apply({"params": train_data}, xb))
    x, y = train_data
    rows = epochs.epoch_rows_dropping_last(data_key, step, num_rows=x.shape[0], batch_size=batch_size)
    return x[rows], y[rows]

  def member_loss(params, _, batch):
    xb, yb = batch
    return jnp.mean(jnp.square(student.apply({"params": params}, xb) - yb))

  def step(state, train_data, data_key):
    keys = student_keys(data_key, same=config.data.same_order_for_students)
    batch = jax.vmap(student_batch, in_axes=(None, 0, None))(train_data, keys, state.step)
    return plain_training.members_step(state, batch, member_loss=member_loss, tx=tx,
                                       batch_per_member=True)

  def evaluate(state, eval_data):
    (x, y), (x_probe, y_probe) = eval_data
    distances = student_distances(student, state.params, x, y,
                                  chunk_size=config.eval_chunk_size)
    outputs = jax.vmap(lambda p: student.apply({"params": p}, x_probe))(state.params)
    return {**distances, "train_mse": jnp.mean(jnp.square(outputs - y_probe))}

  def results(per_seed, initial):
    rms = {k.replace("_mse", "_rms"): np.sqrt(per_seed[k])
           for k in ("f1_f2_mse", "f1_y_mse", "f2_y_mse")}
    more = {**rms,
            "f1_f2_over_f1_y": rms["f1_f2_rms"] / rms["f1_y_rms"],
            "f1_y_over_target_std": rms["f1_y_rms"] / target_std,
            "init_f1_f2_rms": np.sqrt(initial["f1_f2_mse"]),
            "init_f1_y_rms": np.sqrt(initial["f1_y_mse"]),
            "init_train_mse": initial["train_mse"]}
    fields = {
        "experiment": "assumption1",
        "frac_seeds_f1_f2_below_f1_y": float(np.mean(rms["f1_f2_rms"] < rms["f1_y_rms"])),
        "target_std_rms": target_std,
        "param_counts": {
            "target": params_lib.count_params(target_params),
            "student": params_lib.count_params(plain_nets.param_template(
                student, jnp.zeros((1, input_dim))))},
        "data_source": config.data.source,
        "input_shape": list(input_shape),
        "fresh_samples": bool(fresh),
        "num_train_examples": int(num_train),
        "num_test_examples": int(x_test.shape[0]),
        "num_epochs": config.num_epochs,
        "steps_per_epoch": steps_per_epoch,
        "steps": settings.num_steps,
        "wall_seconds": time.perf_counter() - wall_start,
    }
    return more, fields

  spec = loop.TrainSpec(
      init=init, step=step, evaluate=evaluate, train_data=train_data,
      eval_data=((x_test, y_test), train_probe), results=results, evaluate_initial=True,
      description=(f"Assumption 1: 2 students per repeat, {config.num_epochs} epochs of "
                   f"{steps_per_epoch} steps, inputs {tuple(input_shape)}"))
  return spec, settings


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains two students per repeat on the fixed random CNN; writes results.json.

  Returns the results dict (as written).
  """
  spec, settings = build_spec(config)
  return plain_training.train(spec, settings, config=config, workdir=workdir)
