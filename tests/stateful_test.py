"""Stateful primaries in training: BatchNorm statistics (shared across I, updated by
the train step, checkpointed, used in evaluation) and dropout keys (per example, per
step, reproducible)."""

import chex
import flax.linen as nn
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hypernets import data as data_lib
from hypernets import models
from hypernets import primary as primary_lib
from hypernets import training
from hypernets.training import checkpoints

NUM_CONDS, POINTS = 32, 8


class NormedMLP(nn.Module):

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = nn.Dense(16, name="hidden")(x)
    h = nn.BatchNorm(use_running_average=not train, momentum=0.8, name="norm")(h)
    return nn.Dense(1, name="out")(nn.relu(h))


class NnxNormedMLP(nnx.Module):

  def __init__(self, rngs):
    self.hidden = nnx.Linear(2, 16, rngs=rngs)
    self.norm = nnx.BatchNorm(16, momentum=0.8, rngs=rngs)
    self.out = nnx.Linear(16, 1, rngs=rngs)

  def __call__(self, x):
    return self.out(nnx.relu(self.norm(self.hidden(x))))


def _dataset():
  """y = <x, I> + 3 on x, I in [-1, 1]^2 (the offset moves the batch statistics)."""
  keys = jax.random.split(jax.random.key(0), 4)
  cond = jax.random.uniform(keys[0], (NUM_CONDS, 2), minval=-1, maxval=1)
  x = jax.random.uniform(keys[1], (NUM_CONDS, POINTS, 2), minval=-1, maxval=1) + 2.0
  split = data_lib.Split(cond=cond, x=x, y=jnp.einsum("npd,nd->np", x, cond)[..., None] + 3)
  return data_lib.Dataset(train=split, test=split, task="regression", output_dim=1)


def _batch_stats(state):
  return state.model_state["g_state"]["state"]


@pytest.mark.parametrize("flavour", ["linen", "nnx"])
def test_batchnorm_primary_trains_updates_statistics_and_restores_them(flavour, tmp_path):
  dataset = _dataset()
  primary = (primary_lib.from_linen(NormedMLP(), dataset.test.x[0], train_arg="train")
             if flavour == "linen" else primary_lib.from_nnx(NnxNormedMLP(nnx.Rngs(0))))
  model = models.hypernetwork(primary, trunk_widths=(16,))
  tx = optax.adam(1e-2)
  example = jax.tree.map(lambda a: a[0], dataset.test)
  init = lambda: training.create_train_state(model, tx, jax.random.key(1), example,  # pylint: disable=unnecessary-lambda-assignment
                                             dataset.test.cond)
  state = init()
  initial_stats = _batch_stats(state)
  step = jax.jit(training.make_train_step(model, tx, dataset, batch_conditions=8,
                                          batch_points=POINTS))
  eval_fn = jax.jit(training.make_eval_fn(model, "regression", conditions_per_chunk=32))
  first = float(eval_fn(state, dataset.test)["mse"])
  for _ in range(60):
    state, metrics = step(state, dataset.train, jax.random.key(2))
  assert "model_state" not in metrics
  moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), _batch_stats(state),
                       initial_stats)
  assert min(jax.tree.leaves(moved)) > 1e-3, moved  # every statistic moved
  # Evaluation uses the running statistics: with the initial ones it differs.
  trained = float(eval_fn(state, dataset.test)["mse"])
  assert trained < 0.5 * first, (first, trained)
  assert trained != float(eval_fn(state.replace(model_state={"g_state": {"state": initial_stats}}),
                                  dataset.test)["mse"])
  # Checkpointed and restored with the run.
  manager = checkpoints.create_manager(str(tmp_path), max_to_keep=1)
  checkpoints.save(manager, 60, state)
  manager.wait_until_finished()
  restored = checkpoints.restore_or_initialize(manager, init())
  manager.close()
  jax.tree.map(np.testing.assert_array_equal, _batch_stats(restored), _batch_stats(state))
  a, _ = step(state, dataset.train, jax.random.key(2))
  b, _ = step(restored, dataset.train, jax.random.key(2))
  jax.tree.map(np.testing.assert_array_equal, a.model_state, b.model_state)


class Dropped(nn.Module):

  @nn.compact
  def __call__(self, x, train: bool = False):
    return nn.Dropout(0.5, deterministic=not train)(nn.Dense(16, name="hidden")(x))


def test_dropout_masks_differ_across_examples_and_steps_and_repeat():
  split = data_lib.Split(cond=jnp.ones((4, 3)), x=jnp.ones((4, 5, 2)), y=jnp.zeros((4, 5, 16)))
  # Every step draws this same batch, so only dropout changes the loss.
  dataset = data_lib.Dataset(train=split, test=split, task="regression", output_dim=16,
                             sampler=lambda train, key, **_: train)
  primary = primary_lib.from_linen(Dropped(), split.x[0], train_arg="train")
  assert primary.rng_streams == ("dropout",)
  model = models.hypernetwork(primary, trunk_widths=(8,))
  tx = optax.sgd(0.0)
  state = training.create_train_state(model, tx, jax.random.key(0),
                                      jax.tree.map(lambda a: a[0], split), split.cond)
  variables = {"params": state.params}
  out = models.apply_batched_train(model, variables, split.cond, split.x, jax.random.key(5))[0]
  masks = np.asarray(out) == 0
  assert masks.any() and not all(np.array_equal(masks[0], m) for m in masks[1:])  # per example
  again = models.apply_batched_train(model, variables, split.cond, split.x, jax.random.key(5))[0]
  np.testing.assert_array_equal(out, again)
  # Evaluation: no dropout.
  assert not np.any(np.asarray(models.apply_batched(model, variables, split.cond, split.x)) == 0)
  step = jax.jit(training.make_train_step(model, tx, dataset, batch_conditions=4, batch_points=5))
  loss = lambda s: float(step(s, split, jax.random.key(9))[1]["mse"])  # pylint: disable=unnecessary-lambda-assignment
  at_0, at_1 = loss(state), loss(state.replace(step=jnp.ones((), jnp.int32)))
  assert at_0 != at_1  # other masks at another step
  assert loss(state) == at_0  # the same masks on a rerun


@pytest.mark.parametrize("optimizer", ["dict", "sgd_schedule", "adam"])
def test_checkpoint_written_before_model_state_existed_still_restores(tmp_path, optimizer):
  """A run checkpointed by the code before TrainState had model_state resumes: the
  optimizer states are optax's own (tuples of NamedTuples, EmptyState), as in a real run
  (rotation's SGD with a schedule, synthetic's Adam)."""
  import flax.struct  # pylint: disable=g-import-not-at-top

  @flax.struct.dataclass
  class OldTrainState:  # TrainState as it was: no model_state
    step: jax.Array
    params: dict
    opt_state: dict

  params = {"w": jnp.ones(3)}
  if optimizer == "dict":
    opt_state = {"m": jnp.full(3, 2.0)}
  else:
    tx = (optax.sgd(optax.linear_schedule(0.1, 0.0, 10)) if optimizer == "sgd_schedule"
          else optax.adam(1e-3))
    grads = {"w": jnp.full(3, 0.5)}
    opt_state = tx.init(params)
    for _ in range(5):  # counts and moments away from their initial values
      _, opt_state = tx.update(grads, opt_state, params)
  manager = checkpoints.create_manager(str(tmp_path), max_to_keep=1)
  checkpoints.save(manager, 5, OldTrainState(step=jnp.int32(5), params=params,
                                             opt_state=opt_state))
  manager.wait_until_finished()
  zeros = lambda tree: jax.tree.map(jnp.zeros_like, tree)  # pylint: disable=unnecessary-lambda-assignment
  fresh = training.TrainState(step=jnp.int32(0), params=zeros(params),
                              opt_state=zeros(opt_state))
  restored = checkpoints.restore_or_initialize(manager, fresh)
  manager.close()
  assert int(restored.step) == 5 and restored.model_state == {}
  chex.assert_trees_all_equal(restored.params, params)
  chex.assert_trees_all_equal(restored.opt_state, opt_state)  # same types, same values
