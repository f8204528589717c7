"""The dataset container (`Dataset`, `Split`), batch sampling and per-host shards.

Tasks (functions `config.data -> Dataset`) are found by `tasks.create_dataset`.
"""

import dataclasses
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from hypernets import flat_random


@flax.struct.dataclass
class Split:
  """cond [N, *cond_shape], x [N, P, *x_shape], y [N, P, *y_shape]."""

  cond: jax.Array
  x: jax.Array
  y: jax.Array

  @property
  def num_conditions(self) -> int:
    return self.cond.shape[0]

  @property
  def points_per_condition(self) -> int:
    return self.x.shape[1]


@dataclasses.dataclass(frozen=True)
class Dataset:
  """What training needs from a task.

  Attributes:
    train: the training arrays, leading axis = conditioning inputs: a Split for
      fixed data, or raw arrays (e.g. uint8 images) that `sampler` turns into one.
    test: the evaluation split, materialised (fixed points, labels, angles).
    task: 'regression' (MSE) or 'classification' (integer labels, NLL).
    output_dim: size of each point's output (classes for classification).
    sampler: sampler(train, key, *, num_conditions, points_per_condition, step)
      -> Split; pure and jittable (it runs inside the train step). `step` is the
      int32 step being taken (0 for the first): samplers that need no step (all
      but epoch-ordered ones) ignore it; `key` already depends on it.
    train_eval: a materialised Split of training data to report train metrics on
      (defaults to `train`, which must then be a Split).
    extra_eval: more materialised Splits to report metrics on, by name (e.g.
      'heldout_pixels': metrics `heldout_pixels_<metric>`).
  """

  train: Any
  test: Split
  task: str
  output_dim: int
  sampler: Callable[..., Split] = None  # default: sample_batch
  train_eval: Split | None = None
  extra_eval: dict[str, Split] | None = None

  def sample(self, train, key: jax.Array, *, num_conditions: int,
             points_per_condition: int, step: jax.Array | int = 0) -> Split:
    """A training batch from `train` (pass the arrays in, so they are jit arguments)."""
    sampler = self.sampler or sample_batch
    return sampler(train, key, num_conditions=num_conditions,
                   points_per_condition=points_per_condition, step=step)

  @property
  def eval_splits(self) -> dict[str, Split]:
    return {"train": self.train if self.train_eval is None else self.train_eval,
            "test": self.test, **(self.extra_eval or {})}

  @property
  def num_train_conditions(self) -> int:
    """Rows of `train` (a source may say it has more: online.OnlineSource)."""
    return (getattr(self.train, "num_conditions", None)
            or jax.tree_util.tree_leaves(self.train)[0].shape[0])


def choose_rows(key: jax.Array, *, num_rows: int, num_chosen: int) -> jax.Array:
  """A uniformly random `num_chosen`-subset of range(num_rows), in random order.

  The indices of the `num_chosen` largest of `num_rows` i.i.d. uniforms: always
  distinct, and every subset and order equally likely (up to ties between float32
  uniforms). `jax.lax.top_k` finds them without sorting all `num_rows` keys, which
  `jax.random.choice(..., replace=False)` does (a full shuffle, per seed): up to 30%
  of the rotation task's train step, and most of the step's sampling cost when seeds
  are batched (benchmarks/OPTIMISATIONS.md).
  Returns int32 [num_chosen].
  """
  return jax.lax.top_k(jax.random.uniform(key, (num_rows,)), num_chosen)[1]


def sample_batch(split: Split, key: jax.Array, *, num_conditions: int,
                 points_per_condition: int, step: jax.Array | int = 0) -> Split:
  """A random batch: `num_conditions` distinct rows, each with random points.

  Conditions are drawn without replacement (`choose_rows`); points with
  replacement (independently per condition). Pure and jittable: the same key gives
  the same batch. Returns a Split with cond [B, ...], x [B, p, ...], y [B, p, ...].
  `step` is unused (the key already depends on it).
  """
  del step
  cond_key, point_key = jax.random.split(key)
  rows = choose_rows(cond_key, num_rows=split.num_conditions, num_chosen=num_conditions)
  return take_rows(split, rows, point_key, points_per_condition=points_per_condition)


def take_rows(split: Split, rows: jax.Array, key: jax.Array, *,
              points_per_condition: int) -> Split:
  """The batch of `rows` [B]: all of each row's points, or `points_per_condition`
  drawn with replacement from `key`. Returns cond [B, ...], x [B, p, ...], y [B, p, ...].
  """
  num_conditions = rows.shape[0]
  if points_per_condition == split.points_per_condition:
    points = jnp.broadcast_to(jnp.arange(points_per_condition),
                              (num_conditions, points_per_condition))
  else:
    points = flat_random.randint(key, (num_conditions, points_per_condition),
                                0, split.points_per_condition)
  take_points = jax.vmap(lambda a, idx: a[idx])
  return Split(cond=split.cond[rows], x=take_points(split.x[rows], points),
               y=take_points(split.y[rows], points))


def shard_indices(count: int, shard: tuple[int, int] | None) -> np.ndarray:
  """Rows index, index + n, ... of range(count) for shard (index, n), count // n of them.

  Every shard gets the same number of rows (the last count % n are dropped), so the
  shards of several processes form one evenly split global array. None: all rows.
  """
  if shard is None:
    return np.arange(count)
  index, num_shards = shard
  if not 0 <= index < num_shards:
    raise ValueError(f"shard index {index} is not in [0, {num_shards})")
  return np.arange(index, count, num_shards)[:count // num_shards]


def shard_train(dataset: Dataset, shard: tuple[int, int] | None) -> Dataset:
  """`dataset` with only `shard`'s rows of `train` (shard_indices); train metrics
  are still reported on the whole training set (or `train_eval`), as unsharded."""
  if shard is None:
    return dataset
  rows = shard_indices(dataset.num_train_conditions, shard)
  return dataclasses.replace(dataset, train=jax.tree.map(lambda a: a[rows], dataset.train),
                             train_eval=dataset.eval_splits["train"])
