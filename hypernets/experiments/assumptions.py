r"""The paper's checks of its two assumptions on plain networks (Experiments 3, 4).

Assumption 1 (`run_assumption1`), uniqueness of the best approximator: a FIXED
random CNN y (conv 20 ch k10 s2 -> ReLU -> conv 40 ch k10 s2 -> ReLU -> fc 10,
PyTorch's default init, seed `model.target_seed`) labels inputs uniform in
[-1, 1]^(28x28x1) (`data.source='uniform'`) or normalised images. Per repeat, two
students d -> 100 -> 10 (ReLU, PyTorch init, then every row, i.e. each unit's
incoming weight vector, divided by its norm: `model.unit_norm_rows`) are fitted to
y by MSE. With `data.fresh_samples` (uniform inputs only; the authors' code) every
batch is freshly drawn, `data.num_train_examples` per epoch; otherwise a fixed set
is reshuffled every epoch. Distances are RMS over held-out test inputs (a separate
draw, or the test split) and the K outputs:

  ||f - g|| = sqrt( 1/(N K) sum_n sum_k (f_k(x_n) - g_k(x_n))^2 ).

Its square is the number the authors' code prints (nn.MSELoss), reported as
`*_mse`. The claim: ||f1 - f2|| is small relative to ||f1 - y||.

Assumption 2 (`run_assumption2`), adding a neuron strictly lowers the error: a
one-hidden-layer ELU MLP d -> w -> 10 for every w in `model.widths` (1..29), MSE on
one-hot labels, Adadelta. The test MSE is the authors' test loss: the squared error
summed over the 10 outputs, averaged over examples (the training loss is the
elementwise mean, as torch's `mse_loss`). The claim: the mean test MSE decreases
strictly with w.

Both train every network of a run in ONE jitted program per epoch (vmap over
repeats and students / widths, `lax.scan` over the epoch's steps). An epoch over a
fixed set is one pass over a permutation drawn from fold_in(data key, epoch), in
batches of `batch_size` (the last partial batch is dropped). Repeat r uses
jax.random.key(seed + r). Nothing is checkpointed: a rerun starts again.

results.json, assumption 1 (per repeat values summarised by
`training.summarize_seeds`: the mean under the metric's name, `<name>_std`, and
`per_seed[<name>]` a list over repeats):
  f1_f2_rms, f1_y_rms, f2_y_rms      the distances above, after training
  f1_f2_over_f1_y                    ||f1 - f2|| / ||f1 - y|| (the claim's number)
  f1_f2_mse, f1_y_mse                squares of the distances (the authors' print)
  f1_y_over_target_std               ||f1 - y|| / target_std_rms (1 = no better than
                                     predicting y's mean)
  init_f1_f2_rms, init_f1_y_rms      the same before training (for scale)
  train_loss_last_epoch              mean training MSE over the last epoch's batches
                                     and both students
  frac_seeds_f1_f2_below_f1_y        fraction of repeats with ||f1-f2|| < ||f1-y||
  target_std_rms                     RMS of y - mean(y) on the test inputs (scale)
  param_counts {target, student}, num_seeds, seeds, data_source, fresh_samples,
  input_shape, num_train_examples (per epoch), num_test_examples, num_epochs,
  steps_per_epoch, steps, compile_seconds, train_seconds, wall_seconds.

results.json, assumption 2 (lists indexed like `widths`):
  widths                             [W] hidden widths
  test_mse_by_width, test_mse_by_width_std      mean / std over repeats
  train_mse_by_width, test_error_by_width (+ _std)   likewise
  num_width_increases_without_improvement   #{i: mean test MSE at widths[i+1]
                                       >= at widths[i]} (0 = the claim holds)
  num_width_increases_not_significant       #{i: mean paired difference + 2 standard
                                       errors >= 0} (None with one repeat)
  frac_width_increases_without_improvement  per repeat: the fraction of increases
                                       whose test MSE did not drop (mean, _std)
  per_seed {test_mse_by_width: [R][W], train_mse_by_width, test_error_by_width,
  frac_width_increases_without_improvement: [R]}
  param_counts {by_width: [W], padded: N at max width}, num_seeds, seeds,
  num_epochs, steps, steps_per_epoch, num_train_examples, num_test_examples,
  input_dim, compile_seconds, train_seconds, wall_seconds.

Run:
  python launch/main.py --config=configs/assumption1.py:quick --workdir=/tmp/a1
  python launch/main.py --config=configs/assumption2.py:quick --workdir=/tmp/a2
"""

import functools
import math
import os
import time
from typing import Any, Callable, Sequence

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from hypernets.parallel import distributed
from hypernets.training import metric_writers
from hypernets.training import optimizers
from hypernets import training
from hypernets.training import workdir as workdir_lib
from hypernets.config import check_choice
from hypernets.config import check_int
from hypernets.config import check_positive_float
from hypernets.config import check_widths
from hypernets.data import images
from hypernets.errors import ConfigError
from hypernets.errors import TrainingDivergedError
from hypernets.nets import ACTIVATIONS
from hypernets.nets import get_activation

ASSUMPTION1_SOURCES = ("uniform",) + images.SOURCES
# fashion_mnist (the paper's set) is read from TFDS by this module's own loader.
ASSUMPTION2_SOURCES = images.SOURCES + ("fashion_mnist",)
UNIT_NORM_ROWS = ("none", "first", "all")
PAPER_NORMALIZATION = (0.1307, 0.3081)  # the authors normalise every set with it


# ----------------------------------------------------------------------------
# Networks.


def torch_uniform(fan_in: int) -> Callable:
  """PyTorch's default init of Linear/Conv weights and biases: U(+-1/sqrt(fan_in))."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def param_template(module: nn.Module, *example: jax.Array) -> Any:
  """The params pytree of module.init(key, *example) as ShapeDtypeStructs."""
  return jax.eval_shape(lambda: module.init(jax.random.key(0), *example))["params"]


def torch_init(key: jax.Array, template: Any) -> Any:
  """PyTorch's default init of a {layer: {'kernel', 'bias'}} params pytree.

  Every kernel and bias of a layer is U(+-1/sqrt(fan_in)), fan_in = the product of
  the kernel's shape except its last (output) axis: the distribution that this
  module's networks' own `init` gives, drawn in ONE random call (each threefry
  draw costs its own XLA compile, seconds per leaf on a small CPU).
  """
  leaves, treedef = jax.tree.flatten(template)
  sizes = [int(np.prod(leaf.shape)) for leaf in leaves]
  u = jax.random.uniform(key, (sum(sizes),), minval=-1.0, maxval=1.0)
  pieces = jnp.split(u, np.cumsum(sizes)[:-1])
  unit = jax.tree.unflatten(treedef, [p.reshape(l.shape) for p, l in zip(pieces, leaves)])
  params = {}
  for name, layer in unit.items():
    bound = 1.0 / math.sqrt(np.prod(template[name]["kernel"].shape[:-1]))
    params[name] = {leaf_name: a * bound for leaf_name, a in layer.items()}
  return params


class TargetCNN(nn.Module):
  """The fixed random target: [convs (VALID, stride) -> ReLU] -> flatten -> Dense.

  Maps images [batch, H, W, C] -> [batch, num_outputs]; 28x28x1 with the defaults
  gives 10x10x20 then 1x1x40 features.
  """

  channels: Sequence[int] = (20, 40)
  kernel_size: int = 10
  strides: int = 2
  num_outputs: int = 10

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel_size
    for channels in self.channels:
      fan_in = k * k * x.shape[-1]
      x = nn.Conv(channels, (k, k), strides=self.strides, padding="VALID",
                  kernel_init=torch_uniform(fan_in), bias_init=torch_uniform(fan_in))(x)
      x = nn.relu(x)
    x = x.reshape(x.shape[0], -1)
    fan_in = x.shape[-1]
    return nn.Dense(self.num_outputs, kernel_init=torch_uniform(fan_in),
                    bias_init=torch_uniform(fan_in))(x)


class OneHiddenMLP(nn.Module):
  """Dense(width) -> activation -> Dense(num_outputs), PyTorch's default init.

  Maps [..., d] -> [..., num_outputs]. With `active_width` w, hidden units >= w
  output exactly 0: the width-w network inside a padded one (see run_assumption2).
  """

  width: int
  num_outputs: int = 10
  activation: str = "relu"

  @nn.compact
  def __call__(self, x: jax.Array, active_width: jax.Array | int | None = None
               ) -> jax.Array:
    d = x.shape[-1]
    h = nn.Dense(self.width, kernel_init=torch_uniform(d), bias_init=torch_uniform(d),
                 name="Dense_0")(x)
    h = get_activation(self.activation)(h)  # [..., width]
    if active_width is not None:
      h = jnp.where(jnp.arange(self.width) < active_width, h, 0.0)
    return nn.Dense(self.num_outputs, kernel_init=torch_uniform(self.width),
                    bias_init=torch_uniform(self.width), name="Dense_1")(h)


def normalize_rows(params: dict, *, layers: Sequence[str]) -> dict:
  """Divides each unit's incoming weight vector (a kernel column [d_in]) by its norm.

  `params` is one network's {'Dense_i': {'kernel': [d_in, d_out], 'bias'}}; the
  authors' code does this to PyTorch's weight rows, the same vectors.
  """
  params = dict(params)
  for name in layers:
    kernel = params[name]["kernel"]
    params[name] = {**params[name],
                    "kernel": kernel / jnp.linalg.norm(kernel, axis=0, keepdims=True)}
  return params


def init_for_width(params: dict, *, width: jax.Array | int, max_width: int) -> dict:
  """PyTorch's init of the width-`width` net inside a `max_width` OneHiddenMLP.

  Dense_1 was drawn U(+-1/sqrt(max_width)); scaling it by sqrt(max_width / width)
  makes it U(+-1/sqrt(width)), the fan-in of the width-`width` net's output layer.
  """
  scale = jnp.sqrt(max_width / jnp.asarray(width, jnp.float32))
  return {**params, "Dense_1": jax.tree.map(lambda a: a * scale, params["Dense_1"])}


def conv_output_size(size: int, *, kernel_size: int, strides: int,
                     num_layers: int) -> int:
  """Spatial size after `num_layers` VALID convolutions (<= 0: the input is too small)."""
  for _ in range(num_layers):
    size = (size - kernel_size) // strides + 1 if size >= kernel_size else 0
  return size


def count_params(params: Any, *, batch_dims: int = 0) -> int:
  """Number of parameters of one network; leaves have `batch_dims` leading axes."""
  return int(sum(np.prod(a.shape[batch_dims:]) for a in jax.tree.leaves(params)))


# ----------------------------------------------------------------------------
# Data.


def normalize_images(x: np.ndarray, *, source: str) -> np.ndarray:
  """uint8 images -> float32 (x / 255 - mean) / std with the paper's constants."""
  mean, std = images.NORMALIZATION.get(source, PAPER_NORMALIZATION)
  return ((x.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)


def _max_examples(n: int) -> int | None:
  return n or None


def load_assumption1_inputs(data: ml_collections.ConfigDict, *, skip_train: bool = False
                            ) -> tuple[np.ndarray | None, np.ndarray]:
  """(train inputs or None if skip_train, test inputs), float32 [N, H, W, C].

  'uniform': U[-1, 1] of shape `data.image_shape` from numpy's
  default_rng([data.seed, 0]) (train) and default_rng([data.seed, 1]) (test).
  Image sources: normalised images (labels unused).
  """
  if data.source == "uniform":
    shape = tuple(data.image_shape)
    draw = lambda stream, n: np.random.default_rng([data.seed, stream]).uniform(
        -1.0, 1.0, (n, *shape)).astype(np.float32)
    x_train = None if skip_train else draw(0, data.num_train_examples)
    return x_train, draw(1, data.num_test_examples)
  data_dir = data.data_dir or None
  return tuple(
      normalize_images(images.load_images(data.source, split=split, data_dir=data_dir,
                                          max_examples=_max_examples(n)),
                       source=data.source)
      for split, n in (("train", data.num_train_examples),
                       ("test", data.num_test_examples)))


# ----------------------------------------------------------------------------
# Training: one network's epoch (vmapped by the callers).


def epoch_batches(key: jax.Array, *, epoch: jax.Array | int, num_examples: int,
                  batch_size: int) -> jax.Array:
  """Example indices of one epoch: [num_examples // batch_size, batch_size] int32."""
  perm = jax.random.permutation(jax.random.fold_in(key, epoch), num_examples)
  steps = num_examples // batch_size
  return perm[:steps * batch_size].reshape(steps, batch_size)


def train_epoch(state: training.TrainState, *, batch_fn: Callable, num_steps: int,
                loss_fn: Callable, tx: optax.GradientTransformation
                ) -> tuple[training.TrainState, jax.Array]:
  """One network, `num_steps` steps on batches batch_fn(i) -> (x_batch, y_batch).

  loss_fn(params, x_batch, y_batch) -> scalar. Returns (state, losses [num_steps]).
  """

  def step(state, i):
    loss, grads = jax.value_and_grad(loss_fn)(state.params, *batch_fn(i))
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return training.TrainState(step=state.step + 1, params=params,
                                opt_state=opt_state), loss

  return jax.lax.scan(step, state, jnp.arange(num_steps))


def _check_finite(losses: np.ndarray, *, first_step: int, seed: int) -> None:
  """losses [steps, R, ...]: raises TrainingDivergedError at the first non-finite."""
  bad = np.argwhere(~np.isfinite(losses))
  if bad.size:
    step, repeat = int(bad[0][0]), int(bad[0][1])
    raise TrainingDivergedError(
        f"training loss became {losses[tuple(bad[0])]} at step {first_step + step} "
        f"(seed {seed + repeat}); stopped (nothing is checkpointed)")


def _write_train_losses(writer, losses: np.ndarray, *, first_step: int,
                        every: int) -> None:
  """Writes train_loss (mean over networks) at the steps that are multiples of `every`."""
  for i, step_losses in enumerate(losses):
    step = first_step + i
    if step % every == 0:
      writer.write_scalars(step, {"train_loss": float(np.mean(step_losses))})


def _check_common(config: ml_collections.ConfigDict) -> None:
  check_int(config, "seed", minimum=0)
  check_int(config, "num_seeds", minimum=1)
  check_int(config, "num_epochs", minimum=1)
  check_int(config, "batch_size", minimum=1)
  check_int(config, "log_every_steps", minimum=1)
  check_int(config, "eval_every_epochs", minimum=1)
  check_int(config, "eval_chunk_size", minimum=1)
  check_int(config, "data.num_train_examples", minimum=0)
  check_int(config, "data.num_test_examples", minimum=0)
  check_choice(config, "optimizer.name", optimizers.OPTIMIZERS)
  check_choice(config, "optimizer.schedule", optimizers.SCHEDULES)
  check_positive_float(config, "optimizer.learning_rate")
  check_int(config, "optimizer.warmup_steps", minimum=0)
  for field in ("momentum", "weight_decay", "grad_clip_norm"):
    value = config.optimizer[field] if field in config.optimizer else None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not (
        math.isfinite(value) and value >= 0):
      raise ConfigError(f"config.optimizer.{field} must be a finite number >= 0, "
                        f"got {value!r}")


def _check_batch_fits(config, num_train: int) -> None:
  if config.batch_size > num_train:
    raise ConfigError(f"config.batch_size={config.batch_size} is larger than the "
                      f"training set ({num_train} examples)")


def _timings(compile_seconds, train_seconds, wall_start) -> dict[str, float]:
  return {"compile_seconds": compile_seconds, "train_seconds": train_seconds,
          "wall_seconds": time.perf_counter() - wall_start}


# ----------------------------------------------------------------------------
# Assumption 1.


def check_assumption1_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError (one line naming the field) on the first bad field."""
  _check_common(config)
  check_choice(config, "data.source", ASSUMPTION1_SOURCES)
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


def _check_target_fits(config, input_shape: tuple[int, ...]) -> None:
  m = config.model
  sizes = [conv_output_size(s, kernel_size=m.target_kernel_size, strides=m.target_strides,
                            num_layers=len(m.target_channels)) for s in input_shape[:2]]
  if min(sizes) < 1:
    raise ConfigError(
        f"config.model.target_kernel_size={m.target_kernel_size} (strides "
        f"{m.target_strides}, {len(m.target_channels)} convs) does not fit the "
        f"{input_shape[0]}x{input_shape[1]} inputs of config.data.source="
        f"{config.data.source!r}")


def create_target(config: ml_collections.ConfigDict) -> TargetCNN:
  m = config.model
  return TargetCNN(channels=tuple(m.target_channels), kernel_size=m.target_kernel_size,
                   strides=m.target_strides, num_outputs=m.num_outputs)


def init_target(target: TargetCNN, *, seed: int, input_shape: Sequence[int]) -> dict:
  """The target's params from jax.random.key(seed) for inputs [H, W, C]."""
  template = param_template(target, jnp.zeros((1, *input_shape)))
  return jax.jit(lambda key: torch_init(key, template))(jax.random.key(seed))


def init_student(key: jax.Array, *, student: OneHiddenMLP, input_dim: int,
                 unit_norm_rows: str) -> dict:
  """One student's params: PyTorch init, then unit-norm rows per `unit_norm_rows`."""
  params = torch_init(key, param_template(student, jnp.zeros((1, input_dim))))
  layers = {"none": (), "first": ("Dense_0",), "all": ("Dense_0", "Dense_1")}
  return normalize_rows(params, layers=layers[unit_norm_rows])


def student_keys(*, seed: int, num_seeds: int, same_order: bool
                 ) -> tuple[jax.Array, jax.Array]:
  """(init keys, data keys), each [num_seeds, 2] (repeat, student).

  Repeat r: key(seed + r) split into (init, data); student s: fold_in(., s). With
  `same_order` both students of a repeat share the data key (the same batches,
  as in the authors' code); otherwise their inits AND data orders differ.
  """
  keys = training.seed_keys(seed, num_seeds)  # [R]
  init_keys, data_keys = jnp.moveaxis(jax.vmap(jax.random.split)(keys), 1, 0)
  per_student = jax.vmap(lambda k: jax.vmap(lambda s: jax.random.fold_in(k, s))(
      jnp.arange(2)))
  data_keys = (jnp.stack([data_keys, data_keys], axis=1) if same_order
               else per_student(data_keys))
  return per_student(init_keys), data_keys


def student_distances(student: OneHiddenMLP, params: Any, x: jax.Array, y: jax.Array,
                      *, chunk_size: int) -> dict[str, jax.Array]:
  """Mean squared distances over test inputs x [N, d] and outputs, targets y [N, K].

  params: leaves [R, 2, ...] (repeat, student). Returns {'f1_f2', 'f1_y', 'f2_y'}:
  [R] mean squared differences (squares of the RMS distances), and 'y_dev' (a
  scalar: the mean squared deviation of y from its mean).
  """

  def per_example(xy):
    x_n, y_n = xy  # [d], [K]
    f = jax.vmap(jax.vmap(lambda p: student.apply({"params": p}, x_n)))(params)  # [R,2,K]
    return {"f1_f2": jnp.mean(jnp.square(f[:, 0] - f[:, 1]), -1),
            "f1_y": jnp.mean(jnp.square(f[:, 0] - y_n), -1),
            "f2_y": jnp.mean(jnp.square(f[:, 1] - y_n), -1)}

  sums = jax.lax.map(per_example, (x, y), batch_size=min(chunk_size, x.shape[0]))
  out = jax.tree.map(lambda a: jnp.mean(a, axis=0), sums)
  out["y_dev"] = jnp.mean(jnp.square(y - jnp.mean(y, axis=0)))
  return out


def run_assumption1(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains two students per repeat on the fixed random CNN; writes results.json.

  Returns the results dict (as written).
  """
  wall_start = time.perf_counter()
  check_assumption1_config(config)
  # Fresh samples (uniform only): every batch is new inputs, as the authors' code
  # (its Uniform dataset redraws on every fetch); no training set is stored.
  fresh = config.data.source == "uniform" and config.data.fresh_samples
  x_train, x_test = load_assumption1_inputs(config.data, skip_train=fresh)
  input_shape = x_test.shape[1:]  # [H, W, C]
  num_train = config.data.num_train_examples if fresh else x_train.shape[0]
  _check_target_fits(config, input_shape)
  _check_batch_fits(config, num_train)
  workdir = workdir_lib.prepare_workdir(workdir, config)

  target = create_target(config)
  target_params = init_target(target, seed=config.model.target_seed,
                              input_shape=input_shape)
  label = jax.jit(lambda p, x: jax.lax.map(
      lambda xb: target.apply({"params": p}, xb[None])[0], x,
      batch_size=min(config.eval_chunk_size, x.shape[0])))
  flat = lambda x: jnp.asarray(x.reshape(x.shape[0], -1))  # [N, d]
  y_test = label(target_params, x_test)  # [N, K]
  x_test = flat(x_test)
  train_data = None if fresh else (flat(x_train), label(target_params, x_train))
  input_dim = x_test.shape[1]

  student = OneHiddenMLP(width=config.model.student_width,
                         num_outputs=config.model.num_outputs, activation="relu")
  batch_size = config.batch_size
  steps_per_epoch = num_train // batch_size
  num_steps = steps_per_epoch * config.num_epochs
  tx = optimizers.create_optimizer(config.optimizer, num_steps)

  def init_one(key):
    params = init_student(key, student=student, input_dim=input_dim,
                          unit_norm_rows=config.model.unit_norm_rows)
    return training.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                                opt_state=tx.init(params))

  def init_all():
    init_keys, data_keys = student_keys(
        seed=config.seed, num_seeds=config.num_seeds,
        same_order=config.data.same_order_for_students)
    return jax.vmap(jax.vmap(init_one))(init_keys), data_keys

  state, data_keys = jax.jit(init_all)()  # leaves [R, 2, ...]; keys [R, 2]

  def loss_fn(params, xb, yb):
    return jnp.mean(jnp.square(student.apply({"params": params}, xb) - yb))

  def one_student_epoch(state, data_key, train_data, target_params, epoch):
    if fresh:
      epoch_key = jax.random.fold_in(data_key, epoch)

      def batch_fn(i):
        xb = jax.random.uniform(jax.random.fold_in(epoch_key, i),
                                (batch_size, *input_shape), minval=-1.0, maxval=1.0)
        return xb.reshape(batch_size, -1), target.apply({"params": target_params}, xb)
    else:
      x, y = train_data
      batches = epoch_batches(data_key, epoch=epoch, num_examples=x.shape[0],
                              batch_size=batch_size)
      batch_fn = lambda i: (x[batches[i]], y[batches[i]])
    return train_epoch(state, batch_fn=batch_fn, num_steps=steps_per_epoch,
                       loss_fn=loss_fn, tx=tx)

  # All repeats x both students in one program: vmap over repeats, then students.
  over_students = jax.vmap(one_student_epoch, in_axes=(0, 0, None, None, None))
  epoch_fn = jax.jit(jax.vmap(over_students, in_axes=(0, 0, None, None, None)),
                     donate_argnums=0)
  compile_start = time.perf_counter()
  epoch_fn = epoch_fn.lower(state, data_keys, train_data, target_params, 0).compile()
  compile_seconds = time.perf_counter() - compile_start
  distances = jax.jit(functools.partial(student_distances, student,
                                        chunk_size=config.eval_chunk_size))

  def summary(params, x, y) -> dict[str, np.ndarray]:
    d = jax.device_get(distances(params, x, y))
    return {"f1_f2_rms": np.sqrt(d["f1_f2"]), "f1_y_rms": np.sqrt(d["f1_y"]),
            "f2_y_rms": np.sqrt(d["f2_y"]), "f1_f2_mse": d["f1_f2"],
            "f1_y_mse": d["f1_y"], "y_dev": d["y_dev"]}

  init_summary = summary(state.params, x_test, y_test)
  logging.info("Assumption 1: %d repeat(s) x 2 students, %d epochs of %d steps, "
               "inputs %s", config.num_seeds, config.num_epochs, steps_per_epoch,
               input_shape)
  writer = metric_writers.MetricWriter(workdir)
  writer.write_hparams(workdir_lib.flatten_dict(workdir_lib.config_to_json_dict(config)))
  progress = metric_writers.ReportProgress(num_train_steps=num_steps, writer=writer)
  train_start = time.perf_counter()
  try:
    for epoch in range(config.num_epochs):
      state, losses = epoch_fn(state, data_keys, train_data, target_params, epoch)
      losses = np.asarray(jax.device_get(losses))  # [R, 2, steps]
      losses = np.moveaxis(losses, -1, 0)  # [steps, R, 2]
      first_step = epoch * steps_per_epoch + 1
      _check_finite(losses, first_step=first_step, seed=config.seed)
      _write_train_losses(writer, losses, first_step=first_step,
                          every=config.log_every_steps)
      step = (epoch + 1) * steps_per_epoch
      progress(step)
      if (epoch + 1) % config.eval_every_epochs == 0 or epoch + 1 == config.num_epochs:
        s = summary(state.params, x_test, y_test)
        writer.write_scalars(step, {
            f"eval_{k}": float(np.mean(v)) for k, v in s.items() if k != "y_dev"})
    train_seconds = time.perf_counter() - train_start
    final = summary(state.params, x_test, y_test)
    per_seed = {k: v for k, v in final.items() if k != "y_dev"}
    per_seed["f1_f2_over_f1_y"] = final["f1_f2_rms"] / final["f1_y_rms"]
    per_seed["f1_y_over_target_std"] = final["f1_y_rms"] / np.sqrt(final["y_dev"])
    per_seed["init_f1_f2_rms"] = init_summary["f1_f2_rms"]
    per_seed["init_f1_y_rms"] = init_summary["f1_y_rms"]
    per_seed["train_loss_last_epoch"] = np.mean(losses, axis=(0, 2))  # [R]
    results = {
        "experiment": "assumption1",
        "num_seeds": config.num_seeds,
        "seeds": [config.seed + s for s in range(config.num_seeds)],
        **training.summarize_seeds(per_seed),
        "frac_seeds_f1_f2_below_f1_y": float(np.mean(
            final["f1_f2_rms"] < final["f1_y_rms"])),
        "target_std_rms": float(np.sqrt(final["y_dev"])),
        "param_counts": {
            "target": count_params(target_params),
            "student": count_params(state.params, batch_dims=2)},
        "data_source": config.data.source,
        "input_shape": list(input_shape),
        "fresh_samples": bool(fresh),
        "num_train_examples": int(num_train),
        "num_test_examples": int(x_test.shape[0]),
        "num_epochs": config.num_epochs,
        "steps_per_epoch": steps_per_epoch,
        "steps": num_steps,
        **_timings(compile_seconds, train_seconds, wall_start),
    }
    if distributed.is_primary():
      workdir_lib.write_json_atomic(os.path.join(workdir, "results.json"), results)
    logging.info("Assumption 1: ||f1-f2|| = %.4g +- %.3g, ||f1-y|| = %.4g +- %.3g, "
                 "ratio %.3g (RMS over test inputs and outputs)",
                 results["f1_f2_rms"], results["f1_f2_rms_std"], results["f1_y_rms"],
                 results["f1_y_rms_std"], results["f1_f2_over_f1_y"])
  finally:
    writer.close()
  return results


# ----------------------------------------------------------------------------
# Assumption 2.


def check_assumption2_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError (one line naming the field) on the first bad field."""
  _check_common(config)
  check_choice(config, "data.source", ASSUMPTION2_SOURCES)
  check_int(config, "data.num_classes", minimum=2)
  check_widths(config, "model.widths")
  widths = tuple(config.model.widths)
  if not widths or any(b <= a for a, b in zip(widths, widths[1:])):
    raise ConfigError(f"config.model.widths must be non-empty and strictly increasing, "
                      f"got {widths!r}")
  check_choice(config, "model.activation", tuple(ACTIVATIONS))


def width_metrics(model: OneHiddenMLP, params: Any, widths: jax.Array, x: jax.Array,
                  labels: jax.Array, *, num_classes: int, chunk_size: int
                  ) -> dict[str, jax.Array]:
  """Test metrics of every (repeat, width) network on x [N, d], labels [N].

  params: leaves [R, W, ...]; widths [W]. Returns {'mse': [R, W] mean over examples
  of the squared error summed over the outputs, 'error': [R, W] error rate}.
  """

  def per_example(xl):
    x_n, label = xl
    apply = lambda p, w: model.apply({"params": p}, x_n, active_width=w)  # [K]
    out = jax.vmap(jax.vmap(apply, in_axes=(0, 0)), in_axes=(0, None))(params, widths)
    target = jax.nn.one_hot(label, num_classes)
    return {"mse": jnp.sum(jnp.square(out - target), -1),
            "error": (jnp.argmax(out, -1) != label).astype(jnp.float32)}

  per = jax.lax.map(per_example, (x, labels), batch_size=min(chunk_size, x.shape[0]))
  return jax.tree.map(lambda a: jnp.mean(a, axis=0), per)


def _by_width(values: np.ndarray) -> dict[str, list[float]]:
  """values [R, W] -> {'': mean list, '_std': std list} over repeats."""
  return {"": [float(v) for v in values.mean(0)],
          "_std": [float(v) for v in values.std(0)]}


def run_assumption2(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains the ELU MLP at every width, all repeats, in one program; writes results.json.

  Returns the results dict (as written).
  """
  wall_start = time.perf_counter()
  check_assumption2_config(config)
  data_dir = config.data.data_dir or None
  x_train, labels_train = images.load_labeled_images(
      config.data.source, split="train", data_dir=data_dir,
      max_examples=_max_examples(config.data.num_train_examples))
  x_test, labels_test = images.load_labeled_images(
      config.data.source, split="test", data_dir=data_dir,
      max_examples=_max_examples(config.data.num_test_examples))
  num_classes = config.data.num_classes
  if max(labels_train.max(), labels_test.max()) >= num_classes:
    raise ConfigError(f"config.data.num_classes={num_classes} is too small for the "
                      f"labels of {config.data.source!r} (max label "
                      f"{max(labels_train.max(), labels_test.max())})")
  _check_batch_fits(config, x_train.shape[0])
  workdir = workdir_lib.prepare_workdir(workdir, config)
  flat = lambda a: jnp.asarray(normalize_images(a, source=config.data.source)
                               .reshape(a.shape[0], -1))
  x_train, x_test = flat(x_train), flat(x_test)  # [N, d]
  labels_train, labels_test = jnp.asarray(labels_train), jnp.asarray(labels_test)
  input_dim = x_train.shape[1]

  # Every width is the max-width network with hidden units >= w masked to exactly
  # zero (OneHiddenMLP's active_width). This IS the width-w network, not an
  # approximation: (1) forward: the output is b2 + sum_j W2[j] h_j, and the masked
  # terms are exact zeros, so it equals the width-w sum; (2) backward: the mask
  # (jnp.where) sends a zero cotangent to units >= w, so their W1 columns, b1
  # entries and (h_j = 0) W2 rows get exactly zero gradient, and the unmasked
  # units' gradients are those of the width-w net; (3) the optimizer: Adadelta (and
  # SGD, momentum, Adam) turns a zero gradient into a zero update and leaves its
  # state at zero, so masked units never move and never touch the output; (4) init:
  # unit j's first-layer weights are drawn iid, and `init_for_width` rescales the
  # output layer to PyTorch's U(+-1/sqrt(w)). So training the padded net trains the
  # width-w net, with the same loss, updates and init distribution (up to the
  # order of float summation in the matmuls). tests/assumptions_test.py checks it.
  widths = jnp.asarray(config.model.widths, jnp.int32)  # [W]
  max_width = int(max(config.model.widths))
  model = OneHiddenMLP(width=max_width, num_outputs=num_classes,
                       activation=config.model.activation)
  steps_per_epoch = x_train.shape[0] // config.batch_size
  num_steps = steps_per_epoch * config.num_epochs
  tx = optimizers.create_optimizer(config.optimizer, num_steps)

  # Repeat r: key(seed + r) -> (init, data), SHARED by all widths (common random
  # numbers): within a repeat, the width-(w+1) net at init is the width-w net plus
  # one unit (output layer rescaled), and every width sees the same batches.
  def init_one(key, width):
    params = torch_init(key, param_template(model, jnp.zeros((1, input_dim))))
    params = init_for_width(params, width=width, max_width=max_width)
    return training.TrainState(step=jnp.zeros((), jnp.int32), params=params,
                                opt_state=tx.init(params))

  def init_all(widths):
    keys = training.seed_keys(config.seed, config.num_seeds)  # [R]
    init_keys, data_keys = jnp.moveaxis(jax.vmap(jax.random.split)(keys), 1, 0)
    init = jax.vmap(jax.vmap(init_one, in_axes=(None, 0)), in_axes=(0, None))
    return init(init_keys, widths), data_keys

  state, data_keys = jax.jit(init_all)(widths)  # leaves [R, W, ...]; keys [R]

  def one_net_epoch(state, width, data_key, x, labels, epoch):
    batches = epoch_batches(data_key, epoch=epoch, num_examples=x.shape[0],
                            batch_size=config.batch_size)

    def loss_fn(params, xb, lb):
      out = model.apply({"params": params}, xb, active_width=width)  # [B, K]
      return jnp.mean(jnp.square(out - jax.nn.one_hot(lb, num_classes)))

    return train_epoch(state, batch_fn=lambda i: (x[batches[i]], labels[batches[i]]),
                       num_steps=steps_per_epoch, loss_fn=loss_fn, tx=tx)

  # vmap over repeats (data key per repeat), then widths (data key shared).
  over_widths = jax.vmap(one_net_epoch, in_axes=(0, 0, None, None, None, None))
  epoch_fn = jax.jit(jax.vmap(over_widths, in_axes=(0, None, 0, None, None, None)),
                     donate_argnums=0)
  compile_start = time.perf_counter()
  epoch_fn = epoch_fn.lower(state, widths, data_keys, x_train, labels_train, 0).compile()
  compile_seconds = time.perf_counter() - compile_start
  metrics_fn = jax.jit(functools.partial(width_metrics, model, num_classes=num_classes,
                                         chunk_size=config.eval_chunk_size))

  logging.info("Assumption 2: %d repeat(s) x widths %s, %d epochs of %d steps, d = %d",
               config.num_seeds, list(config.model.widths), config.num_epochs,
               steps_per_epoch, input_dim)
  writer = metric_writers.MetricWriter(workdir)
  writer.write_hparams(workdir_lib.flatten_dict(workdir_lib.config_to_json_dict(config)))
  progress = metric_writers.ReportProgress(num_train_steps=num_steps, writer=writer)
  train_start = time.perf_counter()
  try:
    for epoch in range(config.num_epochs):
      state, losses = epoch_fn(state, widths, data_keys, x_train, labels_train, epoch)
      losses = np.moveaxis(np.asarray(jax.device_get(losses)), -1, 0)  # [steps, R, W]
      first_step = epoch * steps_per_epoch + 1
      _check_finite(losses, first_step=first_step, seed=config.seed)
      _write_train_losses(writer, losses, first_step=first_step,
                          every=config.log_every_steps)
      step = (epoch + 1) * steps_per_epoch
      progress(step)
      if (epoch + 1) % config.eval_every_epochs == 0 or epoch + 1 == config.num_epochs:
        test_mse = np.asarray(
            metrics_fn(state.params, widths, x_test, labels_test)["mse"])
        writer.write_scalars(step, {f"eval_test_mse_width_{w}": float(v) for w, v in
                                    zip(config.model.widths, test_mse.mean(0))})
    train_seconds = time.perf_counter() - train_start
    test = jax.device_get(metrics_fn(state.params, widths, x_test, labels_test))
    train = jax.device_get(metrics_fn(state.params, widths, x_train, labels_train))
    test_mse = np.asarray(test["mse"], np.float64)  # [R, W]
    mean = test_mse.mean(0)
    diffs = test_mse[:, 1:] - test_mse[:, :-1]  # [R, W - 1]: change when widening
    if config.num_seeds > 1:
      sem = diffs.std(0, ddof=1) / math.sqrt(config.num_seeds)
      not_significant = int(np.sum(diffs.mean(0) + 2.0 * sem >= 0))
    else:
      not_significant = None
    frac_no_gain = (np.mean(diffs >= 0, axis=1) if diffs.shape[1]
                    else np.zeros(config.num_seeds))  # [R]
    frac_summary = training.summarize_seeds(
        {"frac_width_increases_without_improvement": frac_no_gain})
    by_width = {"test_mse_by_width": test_mse,
                "train_mse_by_width": np.asarray(train["mse"], np.float64),
                "test_error_by_width": np.asarray(test["error"], np.float64)}
    results = {
        "experiment": "assumption2",
        "num_seeds": config.num_seeds,
        "seeds": [config.seed + s for s in range(config.num_seeds)],
        "widths": [int(w) for w in config.model.widths],
        **{f"{name}{suffix}": v for name, values in by_width.items()
           for suffix, v in _by_width(values).items()},
        "num_width_increases_without_improvement": int(np.sum(mean[1:] >= mean[:-1])),
        "num_width_increases_not_significant": not_significant,
        **{k: v for k, v in frac_summary.items() if k != "per_seed"},
        "per_seed": {**{name: values.tolist() for name, values in by_width.items()},
                     **frac_summary["per_seed"]},
        "param_counts": {
            "by_width": [input_dim * w + w + w * num_classes + num_classes
                         for w in config.model.widths],
            "padded": count_params(state.params, batch_dims=2)},
        "data_source": config.data.source,
        "input_dim": int(input_dim),
        "num_train_examples": int(x_train.shape[0]),
        "num_test_examples": int(x_test.shape[0]),
        "num_epochs": config.num_epochs,
        "steps_per_epoch": steps_per_epoch,
        "steps": num_steps,
        **_timings(compile_seconds, train_seconds, wall_start),
    }
    if distributed.is_primary():
      workdir_lib.write_json_atomic(os.path.join(workdir, "results.json"), results)
    logging.info("Assumption 2: test MSE by width %s; %d of %d width increases "
                 "without improvement of the mean",
                 np.round(mean, 4).tolist(),
                 results["num_width_increases_without_improvement"],
                 len(config.model.widths) - 1)
  finally:
    writer.close()
  return results
