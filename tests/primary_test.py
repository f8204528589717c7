"""Primaries: any Linen or NNX module as (template, pure apply, init)."""

import chex
import flax.linen as nn
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hypernets import nets
from hypernets import primary as primary_lib
from hypernets.errors import ConfigError


def test_linen_template_is_eval_shape_of_init():
  module = nets.MLP((7, 3), use_bias=False)
  x = jnp.ones((5, 4))
  primary = primary_lib.from_linen(module, x)
  expected = jax.eval_shape(module.init, jax.random.key(0), x)["params"]
  chex.assert_trees_all_equal_shapes_and_dtypes(primary.template, expected)
  assert primary.num_params == 4 * 7 + 7 * 3
  assert primary.leaf_paths == ["Dense_0/kernel", "Dense_1/kernel"]


def test_linen_apply_matches_module_apply():
  module = nets.ConvNet(channels=(4,), num_outputs=5)
  x = jax.random.normal(jax.random.key(1), (2, 8, 8, 3))
  primary = primary_lib.from_linen(module, x)
  theta = primary.init(jax.random.key(2))
  np.testing.assert_allclose(primary.apply(theta, x),
                             module.apply({"params": theta}, x), rtol=1e-6)


def test_nnx_primary_applies_given_parameters():
  module = nnx.Sequential(nnx.Linear(3, 4, rngs=nnx.Rngs(0)), nnx.relu,
                          nnx.Linear(4, 2, rngs=nnx.Rngs(1)))
  primary = primary_lib.from_nnx(module)
  x = jax.random.normal(jax.random.key(0), (6, 3))
  theta = jax.tree.map(lambda a: 2.0 * a, primary.init(None))
  doubled = nnx.to_pure_dict(nnx.state(module, nnx.Param))
  k0, b0 = doubled["layers"][0]["kernel"], doubled["layers"][0]["bias"]
  k2, b2 = doubled["layers"][2]["kernel"], doubled["layers"][2]["bias"]
  expected = jax.nn.relu(x @ (2 * k0) + 2 * b0) @ (2 * k2) + 2 * b2
  np.testing.assert_allclose(jax.jit(primary.apply)(theta, x), expected, rtol=1e-5)
  # The module itself is untouched by applying other parameters.
  np.testing.assert_allclose(module(x), jax.nn.relu(x @ k0 + b0) @ k2 + b2, rtol=1e-5)


def test_linen_batch_stats_are_state_updated_in_training_only():

  class WithBatchNorm(nn.Module):

    @nn.compact
    def __call__(self, x, train=False):
      return nn.BatchNorm(use_running_average=not train, momentum=0.5)(nn.Dense(3)(x))

  primary = primary_lib.from_linen(WithBatchNorm(), jnp.ones((2, 4)), train_arg="train")
  assert sorted(primary.state) == ["batch_stats"] and primary.rng_streams == ()
  assert sorted(primary.leaf_paths) == ["BatchNorm_0/bias", "BatchNorm_0/scale",
                                        "Dense_0/bias", "Dense_0/kernel"]
  theta = primary.init(jax.random.key(0))
  x = jax.random.normal(jax.random.key(1), (8, 4)) + 3.0
  y, state = jax.jit(lambda t, s, x_: primary.run(t, s, x_, train=True))(theta, primary.state, x)
  mean = state["batch_stats"]["BatchNorm_0"]["mean"]
  assert not np.allclose(mean, 0.0)  # the running mean moved towards the batch's
  np.testing.assert_allclose(np.mean(np.asarray(y), 0), 0.0, atol=1e-5)  # batch stats used
  _, same = primary.run(theta, state, x, train=False)
  np.testing.assert_array_equal(same["batch_stats"]["BatchNorm_0"]["mean"], mean)


def test_nnx_dropout_is_reseeded_per_call_and_jits():
  module = nnx.Sequential(nnx.Linear(4, 16, rngs=nnx.Rngs(0)),
                          nnx.Dropout(0.5, rngs=nnx.Rngs(dropout=1)))
  primary = primary_lib.from_nnx(module)
  assert primary.rng_streams == ("dropout",)
  theta, x = primary.init(None), jnp.ones((3, 4))
  run = jax.jit(lambda k: primary.run(theta, primary.state, x, train=True, rng=k)[0])
  a, b = run(jax.random.key(0)), run(jax.random.key(1))
  assert not np.array_equal(a, b)
  np.testing.assert_array_equal(a, run(jax.random.key(0)))
  # Evaluation: no dropout, and the module it was built from is untouched.
  np.testing.assert_allclose(primary.apply(theta, x), module.layers[0](x), rtol=1e-6)


def test_as_primary_needs_example_for_linen():
  with pytest.raises(ConfigError, match="example_x"):
    primary_lib.as_primary(nets.MLP((2,)))
