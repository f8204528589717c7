"""The state the one loop trains, and the seeds it trains together.

Seeds as a batch: every leaf of a TrainState has a leading [num_seeds] axis and
one compiled program trains all seeds.
"""

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training (and is checkpointed).

  `model_state`: the model's variable collections other than 'params' (not
  trained by the optimizer): a stateful g's batch statistics ('g_state', updated by
  each train step), a frozen theta0 ('g_base'); {} for most models.
  """

  step: jax.Array  # int32 scalar
  params: Any
  opt_state: Any
  model_state: Any = dataclasses.field(default_factory=dict)



def seed_keys(seed: int, num_seeds: int) -> jax.Array:
  """Keys of seeds seed, seed + 1, ..., seed + num_seeds - 1: [num_seeds] key array.

  Seed s of a batch gets jax.random.key(seed + s), so a batch of S seeds equals S
  single-seed runs with those seeds.
  """
  return jax.vmap(jax.random.key)(seed + jnp.arange(num_seeds))



def init_and_data_keys(seed: int, num_seeds: int) -> tuple[jax.Array, jax.Array]:
  """(init keys, data keys), each [num_seeds]: seed s's key(seed + s) split in two."""
  keys = seed_keys(seed, num_seeds)
  init_keys, data_keys = jnp.moveaxis(jax.vmap(jax.random.split)(keys), 1, 0)
  return init_keys, data_keys


def summarize_seeds(per_seed: dict[str, np.ndarray]) -> dict[str, Any]:
  """Mean over seeds (as the metric's own name), `<metric>_std` and `per_seed` lists.

  values [S] give float mean / std; values [S, ...] (a metric per width, say) give
  lists of means / stds over the seed axis.
  """
  summary = {}
  for name, values in per_seed.items():
    values = np.asarray(values, np.float64)
    mean, std = values.mean(axis=0), values.std(axis=0)
    summary[name] = mean.tolist() if mean.ndim else float(mean)
    summary[f"{name}_std"] = std.tolist() if std.ndim else float(std)
  summary["per_seed"] = {name: np.asarray(values, np.float64).tolist()
                         for name, values in per_seed.items()}
  return summary
