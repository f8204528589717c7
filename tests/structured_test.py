"""Theorem 5's structured target: shapes, determinism, the target's form, variance."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from hypernets.data import structured


def _config(**overrides) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict(dict(
      name="structured", seed=0, m1=3, m2=2, selector_width=4, selector_hidden=16,
      target_primary_width=8, num_train_conditions=64, num_test_conditions=16,
      points_per_condition=32, output_dim=1, selector_scale=1.0, target_gain=1.5))
  config.update(overrides)
  return config


@pytest.fixture(scope="module")
def dataset():
  return structured.create_dataset(_config())


def test_shapes_dtypes_and_ranges(dataset):
  config = _config()
  n, p = config.num_train_conditions, config.points_per_condition
  assert dataset.task == "regression" and dataset.output_dim == 1
  assert dataset.train.cond.shape == (n, config.m2)
  assert dataset.train.x.shape == (n, p, config.m1)
  assert dataset.train.y.shape == (n, p, 1)
  assert dataset.test.y.shape == (config.num_test_conditions, p, 1)
  for array in (dataset.train.cond, dataset.train.x, dataset.train.y):
    assert isinstance(array, jax.Array) and array.dtype == jnp.float32
  assert float(jnp.abs(dataset.train.x).max()) <= 1.0
  assert float(jnp.abs(dataset.train.cond).max()) <= 1.0


def test_multi_output_shapes():
  data = structured.create_dataset(_config(output_dim=3, num_train_conditions=8))
  assert data.output_dim == 3 and data.train.y.shape == (8, 32, 3)
  # Each output is normalised on its own.
  np.testing.assert_allclose(data.train.y.reshape(-1, 3).std(axis=0), 1.0, atol=0.3)


def test_deterministic_in_the_seed_and_train_test_disjoint(dataset):
  again = structured.create_dataset(_config())
  np.testing.assert_array_equal(dataset.train.y, again.train.y)
  np.testing.assert_array_equal(dataset.test.cond, again.test.cond)
  other = structured.create_dataset(_config(seed=1))
  assert not np.allclose(dataset.train.y, other.train.y)
  # No test conditioning input appears among the training ones.
  dist = jnp.abs(dataset.test.cond[:, None] - dataset.train.cond[None]).max(-1)
  assert float(dist.min()) > 1e-3


def test_y_is_the_target_function_in_its_theorem_5_form(dataset):
  config = _config()
  target = structured.target_from_config(config)
  assert target.num_primary_params == 3 * 8 + 8 + 8 * 1 + 1
  assert target.w_matrix.shape == (target.num_primary_params, config.selector_width)
  one = functools.partial(structured.target_function, target)
  y = jax.vmap(one)(dataset.train.cond, dataset.train.x)
  np.testing.assert_allclose(dataset.train.y, y, rtol=1e-5, atol=1e-6)
  # theta(I) = W h(I) + b0, and g* applied to it by hand.
  cond, x = dataset.test.cond[0], dataset.test.x[0]
  h = structured.selector(target, cond)
  assert h.shape == (config.selector_width,) and float(jnp.abs(h).max()) < 1.0
  theta = target.w_matrix @ h + target.b0
  m1, width = config.m1, config.target_primary_width
  k0 = theta[:m1 * width].reshape(m1, width)
  b0 = theta[m1 * width:m1 * width + width]
  k1 = theta[m1 * width + width:-1].reshape(width, 1)
  manual = jnp.tanh(x @ k0 + b0) @ k1 + theta[-1]
  np.testing.assert_allclose(dataset.test.y[0], manual, rtol=1e-4, atol=1e-5)


def test_variance_is_order_one_and_substantial_in_x_and_in_i():
  target = structured.target_from_config(_config())
  cond_key, x_key = jax.random.split(jax.random.key(7))
  cond = jax.random.uniform(cond_key, (128, 2), minval=-1.0, maxval=1.0)
  x = jax.random.uniform(x_key, (128, 3), minval=-1.0, maxval=1.0)
  # The same 128 points x under each of 128 conditioning inputs: y [I, x].
  y = jax.vmap(lambda c: structured.target_function(target, c, x))(cond)[..., 0]
  total = float(y.var())
  assert 0.5 < total < 2.0
  assert abs(float(y.mean())) < 0.5
  var_in_x = float(y.var(axis=1).mean())  # E_I Var_x y
  var_in_i = float(y.var(axis=0).mean())  # E_x Var_I y
  assert var_in_x > 0.2 * total, (var_in_x, total)
  assert var_in_i > 0.2 * total, (var_in_i, total)
