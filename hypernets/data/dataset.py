"""The dataset container, batch sampling and `create_dataset(config.data)`."""

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections

from hypernets.errors import ConfigError

DATASET_NAMES = ("synthetic",)


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
  """Train and test splits plus what a model needs to know about the task."""

  train: Split
  test: Split
  task: str  # 'regression' (MSE) or 'classification' (integer labels, NLL)
  output_dim: int


def sample_batch(split: Split, key: jax.Array, *, num_conditions: int,
                 points_per_condition: int) -> Split:
  """A random batch: `num_conditions` distinct rows, each with random points.

  Conditions are drawn without replacement; points with replacement (independently
  per condition). Pure and jittable: the same key gives the same batch.
  Returns a Split with cond [B, ...], x [B, p, ...], y [B, p, ...].
  """
  cond_key, point_key = jax.random.split(key)
  rows = jax.random.choice(cond_key, split.num_conditions, (num_conditions,),
                           replace=False)
  if points_per_condition == split.points_per_condition:
    points = jnp.broadcast_to(jnp.arange(points_per_condition),
                              (num_conditions, points_per_condition))
  else:
    points = jax.random.randint(point_key, (num_conditions, points_per_condition),
                                0, split.points_per_condition)
  take_points = jax.vmap(lambda a, idx: a[idx])
  return Split(cond=split.cond[rows], x=take_points(split.x[rows], points),
               y=take_points(split.y[rows], points))


def create_dataset(data_config: ml_collections.ConfigDict) -> Dataset:
  """Builds the dataset named by `data_config.name`."""
  if data_config.name == "synthetic":
    from hypernets.data import synthetic  # pylint: disable=g-import-not-at-top
    return synthetic.create_dataset(data_config)
  raise ConfigError(
      f"unknown config.data.name {data_config.name!r}; choose one of {DATASET_NAMES}")
