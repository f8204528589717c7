"""The paper's synthetic target y(x, I) = <x, h(I)>.

h is a random 3-layer MLP with sigmoid activations (m2 -> w -> w -> m1),
x ~ U[-1, 1]^m1 and I ~ U[-1, 1]^m2. Everything is generated from `data.seed`.
`data.regime` (online.py): 'fixed' trains on `num_train_conditions` stored rows,
'online' draws every batch fresh from h; both evaluate on the same test sample.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections

from hypernets import flat_random
from hypernets.data import epochs
from hypernets.data import online
from hypernets.data.dataset import Dataset
from hypernets.data.dataset import Split
from hypernets.data.tasks import register_task


def init_target(key: jax.Array, *, m1: int, m2: int, width: int, gain: float):
  """Weights of h: a list of (W [d_in, d_out], b [d_out]) for m2 -> width -> width -> m1.

  Entries are N(0, gain^2 / d_in) so the sigmoids are neither flat nor saturated.
  """
  sizes = [m2, width, width, m1]
  layers = []
  for key, d_in, d_out in zip(jax.random.split(key, 3), sizes[:-1], sizes[1:]):
    w_key, b_key = jax.random.split(key)
    layers.append((gain * flat_random.normal(w_key, (d_in, d_out)) / jnp.sqrt(d_in),
                   0.1 * gain * flat_random.normal(b_key, (d_out,))))
  return layers


def target_selector(layers, cond: jax.Array) -> jax.Array:
  """h(I): cond [..., m2] -> [..., m1] (sigmoid after the first two layers)."""
  h = cond
  for i, (w, b) in enumerate(layers):
    h = h @ w + b
    if i < len(layers) - 1:
      h = jax.nn.sigmoid(h)
  return h


@functools.partial(jax.jit, static_argnames=("num_conditions", "points", "m1", "m2"))
def make_split(key: jax.Array, layers, *, num_conditions: int, points: int,
               m1: int, m2: int) -> Split:
  """cond [N, m2], x [N, P, m1] uniform on [-1, 1]; y [N, P, 1] = <x, h(I)>."""
  cond_key, x_key = jax.random.split(key)
  cond = flat_random.uniform(cond_key, (num_conditions, m2), minval=-1.0, maxval=1.0)
  x = flat_random.uniform(x_key, (num_conditions, points, m1), minval=-1.0, maxval=1.0)
  y = jnp.einsum("npd,nd->np", x, target_selector(layers, cond))[..., None]
  return Split(cond=cond, x=x, y=y)


def draw(layers, key: jax.Array, *, num_conditions: int, points: int) -> Split:
  """A fresh sample (the online regime's draw): m1, m2 read from h's layers."""
  return make_split(key, layers, num_conditions=num_conditions, points=points,
                    m1=layers[-1][0].shape[1], m2=layers[0][0].shape[0])


@register_task("synthetic")
def create_dataset(data_config: ml_collections.ConfigDict) -> Dataset:
  """Train and test splits with disjoint random conditioning inputs and points;
  online (data.regime): fresh training batches, the same test split."""
  target_key, train_key, test_key = jax.random.split(jax.random.key(data_config.seed), 3)
  layers = init_target(target_key, m1=data_config.m1, m2=data_config.m2,
                       width=data_config.target_width, gain=data_config.target_gain)
  if online.regime_of(data_config) == "online":
    return online.online_dataset(
        layers, draw, test_key=test_key, train_eval_key=jax.random.fold_in(test_key, 1),
        eval_conditions=data_config.num_test_conditions,
        points=data_config.points_per_condition, output_dim=1)
  common = dict(points=data_config.points_per_condition, m1=data_config.m1,
                m2=data_config.m2)
  return Dataset(
      train=make_split(train_key, layers,
                       num_conditions=data_config.num_train_conditions, **common),
      test=make_split(test_key, layers,
                      num_conditions=data_config.num_test_conditions, **common),
      task="regression", output_dim=1, sampler=epochs.split_sampler(data_config))
