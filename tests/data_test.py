"""Synthetic data and batch sampling."""

import jax
import jax.numpy as jnp
import numpy as np

from hypernets import data as data_lib
from hypernets.data import synthetic


def test_synthetic_shapes_ranges_and_target(small_config):
  config = small_config.data
  dataset = data_lib.create_dataset(config)
  n, p = config.num_train_conditions, config.points_per_condition
  assert dataset.train.cond.shape == (n, config.m2)
  assert dataset.train.x.shape == (n, p, config.m1)
  assert dataset.train.y.shape == (n, p, 1)
  assert dataset.test.cond.shape[0] == config.num_test_conditions
  assert float(jnp.abs(dataset.train.x).max()) <= 1.0
  assert float(jnp.abs(dataset.train.cond).max()) <= 1.0
  # y is linear in x for each I: y(2x) = 2 y(x), recomputed from the target.
  layers = synthetic.init_target(
      jax.random.split(jax.random.key(config.seed), 3)[0], m1=config.m1, m2=config.m2,
      width=config.target_width, gain=config.target_gain)
  h = synthetic.target_selector(layers, dataset.train.cond)  # [n, m1]
  np.testing.assert_allclose(dataset.train.y[..., 0],
                             jnp.einsum("npd,nd->np", dataset.train.x, h), rtol=1e-5)
  # The selector really depends on I.
  assert float(jnp.std(h, axis=0).mean()) > 0.05


def test_synthetic_is_deterministic_in_the_seed(small_config):
  a = data_lib.create_dataset(small_config.data)
  b = data_lib.create_dataset(small_config.data)
  np.testing.assert_array_equal(a.train.y, b.train.y)
  small_config.data.seed = 1
  c = data_lib.create_dataset(small_config.data)
  assert not np.allclose(a.train.y, c.train.y)
  n_test = a.test.cond.shape[0]
  assert not np.allclose(a.train.cond[:n_test], a.test.cond)


def test_sample_batch_rows_are_distinct_and_consistent(small_config):
  dataset = data_lib.create_dataset(small_config.data)
  batch = data_lib.sample_batch(dataset.train, jax.random.key(3), num_conditions=8,
                                points_per_condition=5)
  assert batch.cond.shape == (8, small_config.data.m2)
  assert batch.x.shape == (8, 5, small_config.data.m1)
  rows = [int(np.flatnonzero((dataset.train.cond == c).all(-1))[0]) for c in batch.cond]
  assert len(set(rows)) == 8
  for row, x, y in zip(rows, batch.x, batch.y):
    for xi, yi in zip(x, y):
      match = np.flatnonzero((dataset.train.x[row] == xi).all(-1))
      assert match.size and np.allclose(dataset.train.y[row, match[0]], yi)
  again = data_lib.sample_batch(dataset.train, jax.random.key(3), num_conditions=8,
                                points_per_condition=5)
  np.testing.assert_array_equal(batch.x, again.x)


def test_choose_rows_is_a_uniform_subset_without_repeats():
  from hypernets.data.dataset import choose_rows  # pylint: disable=g-import-not-at-top
  rows = choose_rows(jax.random.key(0), num_rows=50, num_chosen=20)
  assert rows.shape == (20,) and rows.dtype == jnp.int32
  assert len(set(np.asarray(rows).tolist())) == 20 and 0 <= rows.min() and rows.max() < 50
  np.testing.assert_array_equal(rows, choose_rows(jax.random.key(0), num_rows=50,
                                                  num_chosen=20))
  # Every row equally likely: 4,000 draws of 5 of 10 rows, each row chosen ~2,000 times.
  draws = jax.vmap(lambda k: choose_rows(k, num_rows=10, num_chosen=5))(
      jax.random.split(jax.random.key(1), 4000))
  counts = np.bincount(np.asarray(draws).ravel(), minlength=10)
  assert np.all(np.abs(counts - 2000) < 150), counts  # ~4.5 standard deviations
  assert all(len(set(d)) == 5 for d in np.asarray(draws).tolist())
