"""Generator kinds, hyperfan initialisation, partial generation, budget matching."""

import chex
import flax.linen as nn
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hypernets import budget
from hypernets import generators
from hypernets import models
from hypernets import nets
from hypernets import params as params_lib
from hypernets import primary as primary_lib
from hypernets.errors import ConfigError


class Nested(nn.Module):
  """Nested submodules, a 3-d leaf, a bf16 leaf and a bias-free layer."""

  @nn.compact
  def __call__(self, x):
    h = nn.Dense(5, use_bias=False, name="encoder")(x)
    h = h * self.param("scale", nn.initializers.ones, (1, 5, 1))[0, :, 0]
    h = nn.relu(nn.Dense(4, name="inner")(h))
    return nn.Dense(2, param_dtype=jnp.bfloat16, dtype=jnp.float32, name="out")(h)


def _primary(name):
  if name == "mlp":
    return primary_lib.from_linen(nets.MLP((6, 2)), jnp.ones((3, 4)))
  if name == "conv":
    return primary_lib.from_linen(nets.ConvNet((3,), num_outputs=2), jnp.ones((3, 6, 6, 1)))
  if name == "nested":
    return primary_lib.from_linen(Nested(), jnp.ones((3, 4)))
  return primary_lib.from_nnx(nnx.Sequential(nnx.Linear(4, 6, rngs=nnx.Rngs(0)), nnx.relu,
                                             nnx.Linear(6, 2, rngs=nnx.Rngs(1))))


def _x(name):
  return jnp.ones((3, 6, 6, 1)) if name == "conv" else jnp.ones((3, 4))


KINDS = [("heads", "primary"), ("heads", "hyperfan_in"), ("lowrank", "primary"),
         ("lowrank", "hyperfan_out"), ("chunked", "hyperfan_in"), ("chunked", "lecun"),
         ("film", "primary")]


def _model(primary, generator, init, **kwargs):
  return models.hypernetwork(primary, generator=generator, init=init, trunk_widths=(8, 8),
                             chunk_size=16, **kwargs)


@pytest.mark.parametrize("primary_name", ["mlp", "conv", "nested", "nnx"])
@pytest.mark.parametrize("generator,init", KINDS)
def test_every_kind_emits_g_tree_and_vmaps(primary_name, generator, init):
  primary = _primary(primary_name)
  model = _model(primary, generator, init)
  x = _x(primary_name)
  conds = jax.random.uniform(jax.random.key(1), (4, 5), minval=-1, maxval=1)
  variables = model.init(jax.random.key(0), conds[0], x)
  theta = model.apply(variables, conds[0], method=models.HypernetModel.generate)
  chex.assert_trees_all_equal_shapes_and_dtypes(theta, primary.template)
  xs = jnp.broadcast_to(x, (4,) + x.shape)
  batched = jax.jit(lambda v, c, x_: models.apply_batched(model, v, c, x_))(variables, conds, xs)
  per_condition = jnp.stack([model.apply(variables, c, x) for c in conds])
  chex.assert_trees_all_close(batched, per_condition,
                              rtol=2e-2 if primary_name == "nested" else 1e-5, atol=1e-5)


def _variance_ratios(primary, generator, init, seeds=4):
  """Per kernel leaf: variance of generated weights over random I and f inits / target."""
  conds = jax.random.uniform(jax.random.key(1), (512, 10), minval=-1, maxval=1)
  generated = []
  for seed in range(seeds):
    model = _model(primary, generator, init, rank=16)
    model = model.clone(f=model.f.clone(trunk_widths=(64, 64)))
    key = jax.random.key(100 + seed)
    model = models.calibrate_hyperfan(model, key, conds[:256])
    variables = model.init(key, conds[0], jnp.ones((3, 32)))
    generated.append(jax.vmap(lambda c, m=model, v=variables: m.apply(
        v, c, method=models.HypernetModel.generate))(conds[256:]))
  specs = {spec.path: spec for spec in generators.leaf_specs(primary, num_samples=64)}
  ratios = {}
  for path, leaves in zip(primary.leaf_paths, zip(*[jax.tree.leaves(g) for g in generated])):
    target = specs[path].target_variance(init)
    ratios[path] = (float(np.mean([np.var(np.asarray(l)) for l in leaves])), target)
  return ratios


@pytest.mark.parametrize("generator", ["heads", "lowrank", "chunked"])
@pytest.mark.parametrize("init", ["hyperfan_in", "hyperfan_out"])
def test_hyperfan_generated_variance_matches_target(generator, init):
  primary = primary_lib.from_linen(nets.MLP((48, 24, 8)), jnp.ones((3, 32)))
  for path, (variance, target) in _variance_ratios(primary, generator, init).items():
    if target == 0.0:  # zero-initialised biases are generated as zeros
      assert variance == 0.0, path
    else:
      assert abs(variance / target - 1) < 0.15, (path, variance, target)
  if init == "hyperfan_out":  # fan-out targets: v_in * fan_in / fan_out
    spec = {s.path: s for s in generators.leaf_specs(primary)}["Dense_2/kernel"]
    np.testing.assert_allclose(spec.target_variance("hyperfan_out"),
                               spec.target_variance("hyperfan_in") * 24 / 8, rtol=1e-6)
    np.testing.assert_allclose(spec.target_variance("hyperfan_in"), 1 / 24, rtol=0.1)


def test_partial_generation_shares_unmatched_leaves():
  primary = _primary("mlp")
  model = _model(primary, "heads", "primary", generated="Dense_0")
  conds = jax.random.uniform(jax.random.key(1), (2, 5), minval=-1, maxval=1)
  variables = model.init(jax.random.key(0), conds[0], _x("mlp"))
  assert sorted(variables["params"]["g_shared"]) == ["Dense_1_bias", "Dense_1_kernel"]
  assert sorted(k for k in variables["params"]["f"] if k.startswith("head_")) == [
      "head_Dense_0_bias", "head_Dense_0_kernel"]
  t0, t1 = (model.apply(variables, c, method=models.HypernetModel.generate) for c in conds)
  np.testing.assert_array_equal(t0["Dense_1"]["kernel"], t1["Dense_1"]["kernel"])
  assert not np.allclose(t0["Dense_0"]["kernel"], t1["Dense_0"]["kernel"])
  counts = params_lib.parameter_counts(variables["params"], primary)
  assert counts["N_g_shared"] == 6 * 2 + 2 and counts["N_g"] == 4 * 6 + 6 + 14
  assert counts["total"] == counts["N_f"] + counts["N_g_shared"]
  with pytest.raises(ConfigError, match="config.model.generated_params='nothing'"):
    _model(primary, "heads", "primary", generated="nothing")


def test_film_is_featurewise_modulation_of_preactivations():
  primary = primary_lib.from_linen(nets.MLP((3,)), jnp.ones((2, 4)))  # one Dense layer
  model = _model(primary, "film", "primary")
  cond = jnp.array([0.3, -0.5, 0.9, 0.1, -0.2])
  variables = model.init(jax.random.key(0), cond, jnp.ones((2, 4)))
  params = variables["params"]
  base_k = params["g_shared"]["Dense_0_kernel"]
  base_b = params["g_shared"]["Dense_0_bias"]
  (gamma, beta), = model.apply(variables, cond, method=lambda m, c: m.f(c))
  x = jax.random.normal(jax.random.key(2), (2, 4))
  np.testing.assert_allclose(model.apply(variables, cond, x),
                             (x @ base_k + base_b) * (1 + gamma) + beta, rtol=1e-5, atol=1e-6)
  assert float(jnp.abs(gamma).max()) < 0.2  # starts near the identity


def test_chunked_size_depends_on_n_g_only_through_chunks():
  def n_f(widths):
    primary = primary_lib.from_linen(nets.MLP(widths), jnp.ones((3, 4)))
    model = _model(primary, "chunked", "hyperfan_in", chunk_embedding_dim=8)
    variables = jax.eval_shape(model.init, jax.random.key(0), jnp.ones((5,)), jnp.ones((3, 4)))
    return primary.num_params, params_lib.count_params(variables["params"])

  (ng_small, nf_small), (ng_big, nf_big) = n_f((16, 1)), n_f((256, 1))
  chunks = lambda n: -(-n // 16)  # pylint: disable=unnecessary-lambda-assignment
  # Same number of leaves (gains); the only difference is the chunk embeddings.
  assert nf_big - nf_small == 8 * (chunks(ng_big) - chunks(ng_small))
  assert ng_big > 10 * ng_small


@pytest.mark.parametrize("kind", ["hypernet", "embedding", "standard"])
def test_budget_matching_within_two_percent(small_config, kind):
  config = small_config.model
  config.kind = kind
  shapes = dict(example_cond=jnp.ones((10,)), example_x=jnp.ones((3, 10)), output_dim=1)
  for target in (5_000, 20_000):
    matched, total = budget.match_budget(config, target_total=target, **shapes)
    assert abs(total - target) <= 0.02 * target
    assert budget.total_params(matched, **shapes) == total
  with pytest.raises(ConfigError, match="config.model.param_budget=50 cannot be met"):
    budget.match_budget(config, target_total=50, **shapes)


def test_shared_per_batch_mode_is_one_theta_for_all_points():
  primary = _primary("mlp")
  model = _model(primary, "heads", "primary")
  cond = jnp.linspace(-1, 1, 5)
  x = jax.random.normal(jax.random.key(0), (7, 4))
  variables = model.init(jax.random.key(0), cond, x)
  theta = model.apply(variables, cond, method=models.HypernetModel.generate)
  np.testing.assert_allclose(model.apply(variables, cond, x), primary.apply(theta, x),
                             rtol=1e-6)
