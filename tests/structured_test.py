"""Theorem 5's structured target: shapes, determinism, the target's form, variance."""

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
      points_per_condition=32, output_dim=2, selector_scale=1.0, target_gain=1.5))
  config.update(overrides)
  return config


@pytest.fixture(scope="module")
def dataset():
  return structured.create_dataset(_config())


def test_shapes_dtypes_and_ranges(dataset):
  config = _config()
  n, p = config.num_train_conditions, config.points_per_condition
  assert dataset.task == "regression" and dataset.output_dim == 2
  assert dataset.train.cond.shape == (n, config.m2)
  assert dataset.train.x.shape == (n, p, config.m1)
  assert dataset.train.y.shape == (n, p, 2)
  assert dataset.test.y.shape == (config.num_test_conditions, p, 2)
  for array in (dataset.train.cond, dataset.train.x, dataset.train.y):
    assert isinstance(array, jax.Array) and array.dtype == jnp.float32
  assert float(jnp.abs(dataset.train.x).max()) <= 1.0
  assert float(jnp.abs(dataset.train.cond).max()) <= 1.0
  # Each output is standardised on its own by the calibration draw.
  np.testing.assert_allclose(dataset.train.y.reshape(-1, 2).std(axis=0), 1.0, atol=0.3)
  np.testing.assert_allclose(dataset.train.y.reshape(-1, 2).mean(axis=0), 0.0, atol=0.3)


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
  m1, width, out = config.m1, config.target_primary_width, config.output_dim
  assert target.num_primary_params == m1 * width + width + width * out + out
  assert target.w_matrix.shape == (target.num_primary_params, config.selector_width)
  y = jax.jit(structured.evaluate_target)(target, dataset.train.cond, dataset.train.x)
  np.testing.assert_allclose(dataset.train.y, y, rtol=1e-5, atol=1e-5)
  # theta(I) = W h(I) + b0, and g* applied to it by hand, for one test condition.
  cond, x = dataset.test.cond[0], dataset.test.x[0]
  h = structured.selector(target, cond)
  assert h.shape == (config.selector_width,) and float(jnp.abs(h).max()) < 1.0
  theta = target.w_matrix @ h + target.b0
  k0, b0, k1, b1 = np.split(np.asarray(theta), np.cumsum(
      [m1 * width, width, width * out]))
  manual = (np.tanh(x @ k0.reshape(m1, width) + b0) @ k1.reshape(width, out) + b1)
  np.testing.assert_allclose(dataset.test.y[0], manual, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(structured.target_function(target, cond, x), manual,
                             rtol=1e-4, atol=1e-5)


def test_y_varies_substantially_with_x_and_with_i():
  target = structured.target_from_config(_config())
  cond_key, x_key = jax.random.split(jax.random.key(7))
  cond = jax.random.uniform(cond_key, (128, 2), minval=-1.0, maxval=1.0)
  x = jax.random.uniform(x_key, (128, 3), minval=-1.0, maxval=1.0)
  # The same 128 points x under each of 128 conditioning inputs: y [I, x, out].
  y = jax.jit(jax.vmap(structured.target_function, in_axes=(None, 0, None)))(
      target, cond, x)
  total = y.var(axis=(0, 1))  # [out]
  assert np.all((total > 0.5) & (total < 2.0)), total
  var_in_x = y.var(axis=1).mean(axis=0)  # E_I Var_x y, [out]
  var_in_i = y.var(axis=0).mean(axis=0)  # E_x Var_I y, [out]
  assert np.all(var_in_x > 0.2 * total), (var_in_x, total)
  assert np.all(var_in_i > 0.2 * total), (var_in_i, total)


def test_selector_matrix_rows_have_the_documented_l1_norm():
  config = _config()
  target = structured.target_from_config(config)
  n_hidden = config.m1 * config.target_primary_width + config.target_primary_width
  # g*'s first layer is untouched by the output normalisation: row j has L1 norm
  # selector_scale sqrt(w) s_j, s_j = target_gain / sqrt(m1), so |(W h)_j| <= that.
  row_l1 = jnp.abs(target.w_matrix[:n_hidden]).sum(axis=1)
  expected = (config.selector_scale * np.sqrt(config.selector_width)
              * config.target_gain / np.sqrt(config.m1))
  np.testing.assert_allclose(row_l1, expected, rtol=1e-5)
