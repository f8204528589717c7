r"""Assumption 2 of the paper (adding a neuron strictly lowers the error), Experiment 4.

A one-hidden-layer ELU MLP d -> w -> 10 for every w in `model.widths` (1..29), MSE
on one-hot labels, Adadelta. Every width trains in each repeat (a seed of the
loop), side by side in one step (plain_training.members_step). The test MSE is the
authors' test loss: the squared error summed over the 10 outputs, averaged over
examples (the training loss is the elementwise mean, as torch's `mse_loss`). The
claim: the mean test MSE decreases strictly with w.

Every width is the max-width network with hidden units >= w masked to exactly zero
(OneHiddenMLP's active_width). This IS the width-w network, not an approximation:
(1) forward: the output is b2 + sum_j W2[j] h_j and the masked terms are exact
zeros; (2) backward: the mask (jnp.where) sends a zero cotangent to units >= w, so
their W1 columns, b1 entries and (h_j = 0) W2 rows get exactly zero gradient and
the unmasked units' gradients are those of the width-w net; (3) the optimizer
(Adadelta, SGD, momentum, Adam, one state per width) turns a zero gradient into a
zero update, so masked units never move; (4) init: unit j's first-layer weights
are drawn iid, and `init_for_width` rescales the output layer to PyTorch's
U(+-1/sqrt(w)). Within a repeat, all widths share the init key and the batches
(common random numbers): the width-(w+1) net at init is the width-w net plus one
unit. tests/assumptions_test.py checks the equivalence.

results.json (lists indexed like `widths`; mean / `_std` over repeats, per_seed
[R][W]):
  widths                             [W] hidden widths
  test_mse_by_width, train_mse_by_width, test_error_by_width
  init_test_mse_by_width, init_train_mse_by_width   the same before training (means)
  num_width_increases_without_improvement   #{i: mean test MSE at widths[i+1]
                                       >= at widths[i]} (0 = the claim holds)
  num_width_increases_not_significant       #{i: mean paired difference + 2 standard
                                       errors >= 0} (None with one repeat)
  frac_width_increases_without_improvement  per repeat: the fraction of increases
                                       whose test MSE did not drop (mean, _std)
  param_counts {by_width: [W], padded: N at max width}, data_source, input_dim,
  num_train_examples, num_test_examples, num_epochs, steps_per_epoch, steps, and
  the loop's fields (step, seeds, timings).

Run:
  python launch/main.py --config=configs/assumption2.py:quick --workdir=/tmp/a2
"""

import math
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

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
from hypernets.nets import ACTIVATIONS
from hypernets.training import loop
from hypernets.training import optimizers

SOURCES = images.SOURCES + ("fashion_mnist",)


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError (one line naming the field) on the first bad field."""
  plain_training.check_common(config)
  check_choice(config, "data.source", SOURCES)
  check_int(config, "data.num_classes", minimum=2)
  check_widths(config, "model.widths")
  widths = tuple(config.model.widths)
  if not widths or any(b <= a for a, b in zip(widths, widths[1:])):
    raise ConfigError(f"config.model.widths must be non-empty and strictly increasing, "
                      f"got {widths!r}")
  check_choice(config, "model.activation", tuple(ACTIVATIONS))
  # The widest network's output layer, per repeat, with its gradient and Adam moments.
  check_estimates([(16 * config.num_seeds * (widths[-1] + 1) * config.data.num_classes,
                    "the widest network's output layer", "config.data.num_classes, "
                    "model.widths and config.num_seeds")])


def width_metrics(model: plain_nets.OneHiddenMLP, params, widths: jax.Array,
                  x: jax.Array, labels: jax.Array, *, num_classes: int,
                  chunk_size: int) -> dict[str, jax.Array]:
  """Metrics of ONE repeat's width stack (params leaves [W, ...]) on x [N, d],
  labels [N]: {'mse': [W] mean over examples of the squared error summed over the
  outputs, 'error': [W] error rate}."""

  def per_example(xl):
    x_n, label = xl
    out = jax.vmap(lambda p, w: model.apply({"params": p}, x_n, active_width=w))(
        params, widths)  # [W, K]
    target = jax.nn.one_hot(label, num_classes)
    return {"mse": jnp.sum(jnp.square(out - target), -1),
            "error": (jnp.argmax(out, -1) != label).astype(jnp.float32)}

  per = jax.lax.map(per_example, (x, labels), batch_size=min(chunk_size, x.shape[0]))
  return jax.tree.map(lambda a: jnp.mean(a, axis=0), per)


def _width_summary(test_mse: np.ndarray, num_seeds: int) -> tuple[dict, dict]:
  """test_mse [R, W] -> (per-repeat fraction of widenings without gain, the counts)."""
  mean = test_mse.mean(0)
  diffs = test_mse[:, 1:] - test_mse[:, :-1]  # [R, W - 1]: change when widening
  if num_seeds > 1:
    sem = diffs.std(0, ddof=1) / math.sqrt(num_seeds)
    not_significant = int(np.sum(diffs.mean(0) + 2.0 * sem >= 0))
  else:
    not_significant = None
  frac = np.mean(diffs >= 0, axis=1) if diffs.shape[1] else np.zeros(num_seeds)
  return ({"frac_width_increases_without_improvement": frac},
          {"num_width_increases_without_improvement": int(np.sum(mean[1:] >= mean[:-1])),
           "num_width_increases_not_significant": not_significant})


def build_spec(config: ml_collections.ConfigDict) -> tuple[loop.TrainSpec,
                                                           loop.LoopSettings]:
  """Data, width stack and optimizer of the check, as the loop's TrainSpec."""
  wall_start = time.perf_counter()
  check_config(config)
  data_dir = config.data.data_dir or None
  x_train, labels_train = images.load_labeled_images(
      config.data.source, split="train", data_dir=data_dir,
      max_examples=config.data.num_train_examples or None)
  x_test, labels_test = images.load_labeled_images(
      config.data.source, split="test", data_dir=data_dir,
      max_examples=config.data.num_test_examples or None)
  num_classes = config.data.num_classes
  max_label = max(labels_train.max(), labels_test.max())
  if max_label >= num_classes:
    raise ConfigError(f"config.data.num_classes={num_classes} is too small for the "
                      f"labels of {config.data.source!r} (max label {max_label})")
  plain_training.check_batch_fits(config, x_train.shape[0])
  flat = lambda a: jnp.asarray(plain_training.normalize_images(  # pylint: disable=unnecessary-lambda-assignment
      a, source=config.data.source).reshape(a.shape[0], -1))
  x_train, x_test = flat(x_train), flat(x_test)  # [N, d]
  labels_train, labels_test = jnp.asarray(labels_train), jnp.asarray(labels_test)
  input_dim = x_train.shape[1]

  widths = jnp.asarray(config.model.widths, jnp.int32)  # [W]
  max_width = int(max(config.model.widths))
  model = plain_nets.OneHiddenMLP(width=max_width, num_outputs=num_classes,
                                  activation=config.model.activation)
  batch_size = config.batch_size
  steps_per_epoch = x_train.shape[0] // batch_size
  settings = plain_training.loop_settings(config, steps_per_epoch=steps_per_epoch)
  tx = optimizers.per_member(
      optimizers.create_optimizer(config.optimizer, settings.num_steps))
  template = plain_nets.param_template(model, jnp.zeros((1, input_dim)))

  def init(key):
    # One draw per repeat, shared by all widths (common random numbers).
    params = plain_nets.torch_init(key, template)
    stack = jax.vmap(lambda w: plain_nets.init_for_width(params, width=w,
                                                         max_width=max_width))(widths)
    return plain_training.init_members(stack, tx)

  def member_loss(params, width, batch):
    xb, lb = batch
    out = model.apply({"params": params}, xb, active_width=width)  # [B, K]
    return jnp.mean(jnp.square(out - jax.nn.one_hot(lb, num_classes)))

  def step(state, train_data, data_key):
    x, labels = train_data
    rows = epochs.epoch_rows_dropping_last(data_key, state.step, num_rows=x.shape[0],
                             batch_size=batch_size)
    return plain_training.members_step(state, (x[rows], labels[rows]),
                                       member_loss=member_loss, tx=tx,
                                       member_args=widths, batch_per_member=False)

  def evaluate(state, eval_data):
    out = {}
    for split, (x, labels) in eval_data.items():
      metrics = width_metrics(model, state.params, widths, x, labels,
                              num_classes=num_classes, chunk_size=config.eval_chunk_size)
      out[f"{split}_mse_by_width"] = metrics["mse"]
      if split == "test":
        out["test_error_by_width"] = metrics["error"]
    return out

  def results(per_seed, initial):
    more, counts = _width_summary(per_seed["test_mse_by_width"], config.num_seeds)
    fields = {
        "experiment": "assumption2",
        "widths": [int(w) for w in config.model.widths],
        **counts,
        "init_test_mse_by_width": np.mean(initial["test_mse_by_width"], 0).tolist(),
        "init_train_mse_by_width": np.mean(initial["train_mse_by_width"], 0).tolist(),
        "param_counts": {
            "by_width": [input_dim * w + w + w * num_classes + num_classes
                         for w in config.model.widths],
            "padded": params_lib.count_params(template)},
        "data_source": config.data.source,
        "input_dim": int(input_dim),
        "num_train_examples": int(x_train.shape[0]),
        "num_test_examples": int(x_test.shape[0]),
        "num_epochs": config.num_epochs,
        "steps_per_epoch": steps_per_epoch,
        "steps": settings.num_steps,
        "wall_seconds": time.perf_counter() - wall_start,
    }
    return more, fields

  spec = loop.TrainSpec(
      init=init, step=step, evaluate=evaluate, train_data=(x_train, labels_train),
      eval_data={"test": (x_test, labels_test), "train": (x_train, labels_train)},
      results=results, evaluate_initial=True,
      description=(f"Assumption 2: widths {list(config.model.widths)}, "
                   f"{config.num_epochs} epochs of {steps_per_epoch} steps, d = {input_dim}"))
  return spec, settings


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains the ELU MLP at every width, all repeats, in one program; writes results.json.

  Returns the results dict (as written).
  """
  spec, settings = build_spec(config)
  return plain_training.train(spec, settings, config=config, workdir=workdir)
