r"""A user's task in its own file: y = a sin(w x + b), one function per I = (a, w, b).

  python launch/main.py --config=configs/synthetic.py:small --workdir=/tmp/sine \
      --config.data.name=examples.sine_task:make_dataset
"""

import jax
import jax.numpy as jnp

from hypernets.data import Dataset, Split

LOW, HIGH = jnp.array([0.5, 0.5, -3.0]), jnp.array([2.0, 2.0, 3.0])  # ranges of (a, w, b)


def draw(key, *, num_conditions, points_per_condition, step=0):
  """A fresh Split: cond [N, 3], x [N, P, 1] in [-3, 3], y [N, P, 1]."""
  del step  # the key already depends on it
  cond_key, x_key = jax.random.split(key)
  cond = jax.random.uniform(cond_key, (num_conditions, 3), minval=LOW, maxval=HIGH)
  x = jax.random.uniform(x_key, (num_conditions, points_per_condition, 1), minval=-3, maxval=3)
  a, w, b = (cond[:, None, i:i + 1] for i in range(3))
  return Split(cond=cond, x=x, y=a * jnp.sin(w * x + b))


def make_dataset(data_config):
  """config.data -> Dataset; training draws new functions every step (online)."""
  size = dict(points_per_condition=data_config.points_per_condition)
  train_key, test_key = jax.random.split(jax.random.key(data_config.seed))
  return Dataset(
      train=draw(train_key, num_conditions=data_config.num_train_conditions, **size),
      test=draw(test_key, num_conditions=data_config.num_test_conditions, **size),
      task="regression", output_dim=1,
      sampler=lambda train, key, **batch: draw(key, **batch))
