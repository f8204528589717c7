"""The conditioned models: f(I) emits g's exact tree; vmap over I; parameter counts."""

import chex
import flax.linen as nn
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hypernets import generators
from hypernets import models
from hypernets import nets
from hypernets import params as params_lib
from hypernets import primary as primary_lib
from hypernets.errors import ConfigError


class NestedOddPrimary(nn.Module):
  """Nested submodules, a 3-d parameter, a bf16 leaf and a bias-free layer."""

  @nn.compact
  def __call__(self, x):
    h = nn.Dense(5, use_bias=False, name="encoder")(x)
    scale = self.param("scale", nn.initializers.ones, (1, 5, 1))
    h = (h[:, :, None] * scale[0])[..., 0]
    h = Block(name="block")(h)
    return nn.Dense(2, param_dtype=jnp.bfloat16, dtype=jnp.float32, name="out")(h)


class Block(nn.Module):

  @nn.compact
  def __call__(self, x):
    return nn.relu(nn.Dense(4, name="inner")(x)) + nn.Dense(4, name="skip")(x)


def _hypernet(primary, width=8, depth=2, init="primary"):
  return models.hypernetwork(primary, trunk_widths=(width,) * depth, init=init)


PRIMARIES = {
    "mlp": lambda: (nets.MLP((6, 1)), jnp.ones((3, 4))),
    "conv": lambda: (nets.ConvNet((4, 6), num_outputs=3), jnp.ones((3, 8, 8, 2))),
    "nested": lambda: (NestedOddPrimary(), jnp.ones((3, 4))),
}


@pytest.mark.parametrize("name", sorted(PRIMARIES))
@pytest.mark.parametrize("init", generators.INITS)
def test_generated_tree_equals_eval_shape_of_primary_init(name, init):
  module, x = PRIMARIES[name]()
  primary = primary_lib.from_linen(module, x)
  model = _hypernet(primary, init=init)
  cond = jnp.linspace(-1, 1, 7)
  variables = model.init(jax.random.key(0), cond, x)
  theta = model.apply(variables, cond, method=models.HypernetModel.generate)
  expected = jax.eval_shape(module.init, jax.random.key(0), x)["params"]
  chex.assert_trees_all_equal_shapes_and_dtypes(theta, expected)
  # g(x; f(I)) is the model's output, up to float32 sums taken in another order (the
  # conv primary at XLA -O0, conftest: 16 ulp).
  np.testing.assert_allclose(model.apply(variables, cond, x),
                             module.apply({"params": theta}, x), rtol=1e-5, atol=1e-7)


def test_nnx_primary_tree_and_output():
  module = nnx.Sequential(nnx.Linear(4, 6, rngs=nnx.Rngs(0)), nnx.relu,
                          nnx.Linear(6, 1, rngs=nnx.Rngs(1)))
  primary = primary_lib.from_nnx(module)
  model = _hypernet(primary)
  cond, x = jnp.ones((5,)), jnp.ones((3, 4))
  variables = model.init(jax.random.key(0), cond, x)
  theta = model.apply(variables, cond, method=models.HypernetModel.generate)
  chex.assert_trees_all_equal_shapes_and_dtypes(theta, primary.template)
  chex.assert_shape(model.apply(variables, cond, x), (3, 1))


def test_primary_head_init_starts_near_primary_initialisation():
  module, x = nets.MLP((32, 1)), jnp.ones((3, 16))
  primary = primary_lib.from_linen(module, x)
  model = _hypernet(primary, width=32)
  variables = model.init(jax.random.key(0), jnp.ones((4,)), x)
  theta = model.apply(variables, jnp.ones((4,)), method=models.HypernetModel.generate)
  # LeCun-normal kernel of fan-in 16: std 1/4, far from the O(1) of a plain head.
  std = float(jnp.std(theta["Dense_0"]["kernel"]))
  assert 0.15 < std < 0.35


def _all_models():
  cond_dim, x_dim, points = 5, 4, 6
  config_primary = nets.MLP((8, 2))
  primary = primary_lib.from_linen(config_primary, jnp.ones((points, x_dim)))
  return {
      "hypernet": _hypernet(primary),
      "embedding": models.EmbeddingModel(e=nets.MLP((8, 3)),
                                         q=nets.ConditionedMLP((8, 2))),
      "standard": models.StandardModel(net=nets.ConditionedMLP((8, 8, 2))),
  }, (cond_dim, x_dim, points)


@pytest.mark.parametrize("kind", ["hypernet", "embedding", "standard"])
def test_vmap_over_conditions_equals_per_condition_application(kind):
  all_models, (cond_dim, x_dim, points) = _all_models()
  model = all_models[kind]
  batch = 4
  cond = jax.random.uniform(jax.random.key(1), (batch, cond_dim), minval=-1, maxval=1)
  x = jax.random.uniform(jax.random.key(2), (batch, points, x_dim), minval=-1, maxval=1)
  variables = model.init(jax.random.key(0), cond[0], x[0])
  batched = jax.jit(lambda v, c, xs: models.apply_batched(model, v, c, xs))(
      variables, cond, x)
  chex.assert_shape(batched, (batch, points, 2))
  per_condition = jnp.stack([model.apply(variables, c, xb) for c, xb in zip(cond, x)])
  chex.assert_trees_all_close(batched, per_condition, rtol=1e-5, atol=1e-6)
  # Different conditioning inputs really give different functions.
  assert not np.allclose(batched[0], batched[1])


def test_conditioned_mlp_equals_dense_on_concatenation():
  net = nets.ConditionedMLP((5, 3))
  x, c = jax.random.normal(jax.random.key(0), (7, 4)), jax.random.normal(
      jax.random.key(1), (6,))
  variables = net.init(jax.random.key(2), x, c)
  p = variables["params"]
  concat = jnp.concatenate([x, jnp.broadcast_to(c, (7, 6))], axis=-1)
  h = jax.nn.relu(concat @ p["first_kernel"] + p["first_bias"])
  expected = h @ p["rest"]["Dense_0"]["kernel"] + p["rest"]["Dense_0"]["bias"]
  np.testing.assert_allclose(net.apply(variables, x, c), expected, rtol=1e-5, atol=1e-6)


def _synthetic_model_config(small_config, kind):
  config = small_config
  config.model.kind = kind
  config.model.primary.widths = (16,)
  config.model.f_width = config.model.e_width = 64
  config.model.f_depth = config.model.e_depth = 3
  config.model.embedding_dim = 16
  config.model.standard_widths = (64, 64)
  return config


@pytest.mark.parametrize("kind", ["hypernet", "embedding", "standard"])
def test_exact_parameter_counts(small_config, kind):
  m1 = m2 = 10
  config = _synthetic_model_config(small_config, kind)
  model, primary = models.create_model(config.model, example_cond=jnp.ones((m2,)),
                                       example_x=jnp.ones((3, m1)), output_dim=1)
  variables = jax.eval_shape(model.init, jax.random.key(0), jnp.ones((m2,)),
                             jnp.ones((3, m1)))
  counts = params_lib.parameter_counts(variables["params"], primary)
  dense = lambda d_in, d_out: d_in * d_out + d_out  # pylint: disable=unnecessary-lambda-assignment
  n_g = dense(m1, 16) + dense(16, 1)  # 193
  trunk = dense(m2, 64) + 2 * dense(64, 64)
  if kind == "hypernet":
    expected = {"N_f": trunk + dense(64, n_g), "N_g": n_g, "total": trunk + dense(64, n_g)}
  elif kind == "embedding":
    n_e, n_q = trunk + dense(64, 16), dense(m1 + 16, 16) + dense(16, 1)
    expected = {"N_e": n_e, "N_q": n_q, "total": n_e + n_q}
  else:
    n_net = dense(m1 + m2, 64) + dense(64, 64) + dense(64, 1)
    expected = {"N_net": n_net, "total": n_net}
  assert counts == expected
  assert {"hypernet": 21569, "embedding": 10513, "standard": 5569}[kind] == counts["total"]


def test_unknown_kind_and_primary_are_rejected(small_config):
  small_config.model.kind = "transformer"
  with pytest.raises(ConfigError, match="config.model.kind"):
    models.create_model(small_config.model, example_cond=jnp.ones((2,)),
                        example_x=jnp.ones((3, 2)), output_dim=1)
  small_config.model.kind = "hypernet"
  small_config.model.primary.name = "resnet"
  with pytest.raises(ConfigError, match="config.model.primary.name"):
    models.create_model(small_config.model, example_cond=jnp.ones((2,)),
                        example_x=jnp.ones((3, 2)), output_dim=1)
  small_config.model.primary.name = "mlp"
  small_config.model.f_init = "bogus"  # create_model names the config field
  with pytest.raises(ConfigError, match="config.model.f_init is 'bogus'"):
    models.create_model(small_config.model, example_cond=jnp.ones((2,)),
                        example_x=jnp.ones((3, 2)), output_dim=1)
