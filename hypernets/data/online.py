"""The two data regimes of a generated target: a fixed sample, or fresh draws.

`config.data.regime`:
  fixed   a finite training set of `num_train_conditions` conditioning inputs (and
          their points), a held-out test set; test error = generalisation.
  online  every training step draws fresh conditioning inputs and points from the
          target itself, inside the jitted step, from the step's key
          fold_in(data_key(seed), step): batches are keyed by (seed, step), never
          repeat, and a resumed run draws exactly the batches it would have drawn.
          There is no finite training set to overfit, so the test error on a large
          fresh sample is the approximation error the theorems bound.

A target family goes online by giving a pure, jittable
`draw(target, key, *, num_conditions, points) -> Split` (cond [B, ...],
x [B, P, ...], y [B, P, ...]); `online_dataset` builds the Dataset. Image tasks read
a finite set of images and stay fixed (`check_regime`).
"""

import sys
from typing import Any, Callable

import flax.struct
import jax
import ml_collections

from hypernets.data.dataset import Dataset
from hypernets.data.dataset import Split
from hypernets.errors import ConfigError

REGIMES = ("fixed", "online")
# Tasks whose data is generated from a target (and so can be drawn online).
GENERATED_TASKS = ("synthetic", "structured")
# The online evaluation sample has at least this many times the points of a batch.
MIN_EVAL_BATCHES = 10


def regime_of(data_config: ml_collections.ConfigDict) -> str:
  """config.data.regime ('fixed' when the config has none); raises on another value."""
  regime = data_config.get("regime", "fixed")
  if regime not in REGIMES:
    raise ConfigError(f"config.data.regime is {regime!r}; choose one of {REGIMES}")
  return regime


def check_regime(config: ml_collections.ConfigDict) -> None:
  """The regime fits the task, the batch and the mesh; raises ConfigError (one line)."""
  regime = regime_of(config.data)
  if regime != "online":
    return
  name = config.data.name
  if name not in GENERATED_TASKS:
    raise ConfigError(
        f"config.data.regime='online' needs a generated target {GENERATED_TASKS}; the "
        f"{name!r} task reads a finite set of images, so it stays 'fixed'")
  if config.get("mesh") and config.mesh.get("shard_train_data"):
    raise ConfigError("config.mesh.shard_train_data splits fixed training rows; "
                      "config.data.regime='online' has none (it draws them fresh)")
  if config.batch.get("sampling", "random") != "random":
    raise ConfigError(f"config.batch.sampling={config.batch.sampling!r} orders fixed "
                      "training rows; config.data.regime='online' draws them fresh "
                      "(use 'random')")
  eval_points = config.data.num_test_conditions * config.data.points_per_condition
  batch_points = config.batch.conditions * config.batch.points
  if eval_points < MIN_EVAL_BATCHES * batch_points:
    raise ConfigError(
        f"config.data.num_test_conditions x points_per_condition = {eval_points} points; "
        f"the online regime evaluates on >= {MIN_EVAL_BATCHES}x a batch "
        f"({MIN_EVAL_BATCHES * batch_points} points)")


@flax.struct.dataclass
class OnlineSource:
  """The 'training data' of the online regime: the target the sampler draws from.

  `num_conditions` is unbounded: any batch size fits (Dataset.num_train_conditions).
  """

  target: Any

  @property
  def num_conditions(self) -> int:
    return sys.maxsize


def online_dataset(target: Any, draw: Callable[..., Split], *,
                   test_key: jax.Array | None, train_eval_key: jax.Array,
                   eval_conditions: int, points: int, output_dim: int,
                   task: str = "regression", test: Split | None = None) -> Dataset:
  """A Dataset whose every training batch is a fresh `draw` from `target`.

  Args:
    target: the target's parameters (a pytree; a jit argument of the step).
    draw: draw(target, key, *, num_conditions, points) -> Split, pure and jittable.
    test_key: key of the evaluation sample (`eval_conditions` x `points`): pass the
      fixed regime's test key to evaluate both regimes on the same sample. Or
      `test`: that sample, already drawn (then test_key is None).
    train_eval_key: key of a second fresh sample of the same size, reported as
      'train': both are draws from the training distribution, so train and test
      differ only by sampling noise (the fixed regime's gap is overfitting).
      Derive both from keys the step never uses: with threefry, fold_in(k, i) ==
      split(k, n)[i], so the data key of seed 0, split(key(0))[1], IS split(key(0),
      3)[1], and its batch of step 1 would be drawn from fold_in(that, 1).
  """

  def sampler(source: OnlineSource, key: jax.Array, *, num_conditions: int,
              points_per_condition: int, step: jax.Array | int = 0) -> Split:
    del step  # the key is already fold_in(data_key, step)
    return draw(source.target, key, num_conditions=num_conditions,
                points=points_per_condition)

  sample = dict(num_conditions=eval_conditions, points=points)
  if test is None:
    test = draw(target, test_key, **sample)
  return Dataset(train=OnlineSource(target), test=test,
                 train_eval=draw(target, train_eval_key, **sample), task=task,
                 output_dim=output_dim, sampler=sampler)
