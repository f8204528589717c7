"""Generator kinds, hyperfan initialisation, partial generation, budget matching."""

import chex
import flax.linen as nn
from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
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
  specs = generators.leaf_specs(primary, num_samples=64)
  by_path = {spec.path: spec for spec in specs}
  ratios = {}
  for path, leaves in zip(primary.leaf_paths, zip(*[jax.tree.leaves(g) for g in generated])):
    spec = by_path[path]
    target = (spec.target_variance(init) if spec.constant is None else
              generators.constant_noise_variance(spec, specs, 0.01))
    ratios[path] = (float(np.mean([np.var(np.asarray(l)) for l in leaves])), target,
                    float(np.mean([np.mean(np.asarray(l)) for l in leaves])))
  return ratios


@pytest.mark.parametrize("generator", ["heads", "lowrank", "chunked"])
@pytest.mark.parametrize("init", ["hyperfan_in", "hyperfan_out"])
def test_hyperfan_generated_variance_matches_target(generator, init):
  primary = primary_lib.from_linen(nets.MLP((48, 24, 8)), jnp.ones((3, 32)))
  for path, (variance, target, mean) in _variance_ratios(primary, generator, init).items():
    # Zero-initialised biases: zero plus a small I-dependent part (1% of the
    # kernels' mean variance), not exactly zero.
    tolerance = 0.15 if path.endswith("kernel") else 0.3
    assert abs(variance / target - 1) < tolerance, (path, variance, target)
    if path.endswith("bias"):
      assert abs(mean) < 3 * np.sqrt(target), (path, mean)
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
  # A Python call names its argument; create_model names the config field
  # (bad_input_test).
  with pytest.raises(ConfigError, match="generated='nothing' matches none"):
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


def _closest_by_scan(count, target, max_width):
  """The width match_budget must return: the bracket's closer end, by a scan."""
  if count(1) >= target:
    return 1
  hi = next(w for w in range(2, max_width + 1) if count(w) >= target)
  return min((hi - 1, hi), key=lambda w: abs(count(w) - target))


@pytest.mark.parametrize("name,count", [
    ("mlp quadratic", lambda w: 3 * w * w + 40 * w + 7),
    ("linear", lambda w: 50 * w + 3),
    ("cubic", lambda w: w ** 3 + 10),  # the quadratic guess is off; the search is not
    ("plateaus", lambda w: 100 * (w // 4) + w),
    ("saturating", lambda w: int(5000 * w / (w + 40)) + 1),
])
def test_budget_search_finds_the_closest_width_whatever_the_count(monkeypatch, name, count):
  calls = []

  def fake_total(model_config, **unused_shapes):
    calls.append(model_config.f_width)
    return count(model_config.f_width)

  monkeypatch.setattr(budget, "total_params", fake_total)
  config = ml_collections.ConfigDict(dict(kind="hypernet", f_width=8))
  max_width = 300
  targets = {count(w) + d for w in (1, 2, 3, 7, 50, 299) for d in (-1, 0, 1)}
  for target in sorted(t for t in targets | {count(1) // 2} if t > 0):
    want = _closest_by_scan(count, target, max_width)
    calls.clear()
    matched, total = budget.match_budget(config, target_total=target, tolerance=100.0,
                                         max_width=max_width, example_cond=None,
                                         example_x=None, output_dim=1)
    assert (matched.f_width, total) == (want, count(want)), (name, target)
    assert len(calls) == len(set(calls))  # each width traced once
  with pytest.raises(ConfigError, match="needs f_width > 300"):
    budget.match_budget(config, target_total=count(max_width) + 1, max_width=max_width,
                        example_cond=None, example_x=None, output_dim=1)


def test_an_mlp_budget_takes_few_model_traces(small_config, monkeypatch):
  traced = []
  total_params = budget.total_params
  monkeypatch.setattr(budget, "total_params",
                      lambda config, **kw: traced.append(config) or total_params(config, **kw))
  config = small_config.model
  config.kind = "standard"
  shapes = dict(example_cond=jnp.ones((10,)), example_x=jnp.ones((3, 10)), output_dim=1)
  budget.match_budget(config, target_total=20_000, **shapes)
  assert len(traced) <= 6, len(traced)  # widths 1-3 fit the quadratic, then its root +- 1


def test_shared_per_batch_mode_is_one_theta_for_all_points():
  primary = _primary("mlp")
  model = _model(primary, "heads", "primary")
  cond = jnp.linspace(-1, 1, 5)
  x = jax.random.normal(jax.random.key(0), (7, 4))
  variables = model.init(jax.random.key(0), cond, x)
  theta = model.apply(variables, cond, method=models.HypernetModel.generate)
  np.testing.assert_allclose(model.apply(variables, cond, x), primary.apply(theta, x),
                             rtol=1e-6)


class LayerNormed(nn.Module):
  """A Dense, a LayerNorm (scale 1, bias 0 at init), a raw `proj_bias` beside the
  Dense `proj` (both map to the name 'proj_bias'), a DenseGeneral with a 3-d kernel."""

  @nn.compact
  def __call__(self, x):
    h = nn.Dense(8, name="proj")(x) + self.param("proj_bias", nn.initializers.zeros, (8,))
    h = nn.relu(nn.LayerNorm(name="norm")(h))
    return nn.DenseGeneral((2, 3), name="dg")(h).reshape(x.shape[0], 6)


def _layer_normed():
  return primary_lib.from_linen(LayerNormed(), jnp.ones((3, 4)))


def _generate(model, conds, x):
  variables = model.init(jax.random.key(0), conds[0], x)
  return variables, jax.vmap(lambda c: model.apply(
      variables, c, method=models.HypernetModel.generate))(conds)


def test_chunked_works_with_the_default_init():
  primary, x = _layer_normed(), jnp.ones((3, 4))
  model = models.hypernetwork(primary, generator="chunked", trunk_widths=(8,), chunk_size=16)
  conds = jax.random.uniform(jax.random.key(1), (2, 5), minval=-1, maxval=1)
  variables = model.init(jax.random.key(0), conds[0], x)
  assert not np.allclose(model.apply(variables, conds[0], x), model.apply(variables, conds[1], x))


@pytest.mark.parametrize("generator", ["heads", "lowrank", "chunked"])
@pytest.mark.parametrize("init", ["hyperfan_in", "hyperfan_out"])
def test_hyperfan_keeps_constant_leaves_near_their_constant(generator, init):
  primary, x = _layer_normed(), jnp.ones((3, 4))
  conds = jax.random.uniform(jax.random.key(1), (64, 5), minval=-1, maxval=1)
  model = models.hypernetwork(primary, generator=generator, init=init, trunk_widths=(16,),
                              chunk_size=16, rank=8)
  model = models.calibrate_hyperfan(model, jax.random.key(0), conds)
  _, theta = _generate(model, conds, x)
  scale, bias = np.asarray(theta["norm"]["scale"]), np.asarray(theta["norm"]["bias"])
  # LayerNorm scale: g's 1 plus a small I-dependent part (std ~ sqrt(0.01) = 0.1).
  assert abs(scale.mean() - 1.0) < 0.1 and 0.02 < scale.std() < 0.3, (scale.mean(), scale.std())
  assert np.std(scale, axis=0).mean() > 0.01  # it depends on I
  assert abs(bias.mean()) < 0.1 and bias.std() < 0.3
  assert abs(np.asarray(theta["proj_bias"]).mean()) < 0.1


@pytest.mark.parametrize("generator", ["heads", "lowrank", "chunked", "film"])
def test_leaf_paths_that_flatten_to_one_name_get_unique_names(generator):
  primary, x = _layer_normed(), jnp.ones((3, 4))
  assert primary.leaf_names.count("proj_bias") == 1 and "proj_bias_1" in primary.leaf_names
  for generated in (".*", "proj"):  # all leaves, and partial generation
    model = models.hypernetwork(primary, generator=generator, generated=generated,
                                trunk_widths=(8,), chunk_size=16)
    variables, theta = _generate(model, jnp.ones((2, 5)), x)
    chex.assert_trees_all_equal_shapes_and_dtypes(jax.tree.map(lambda a: a[0], theta),
                                                  primary.template)
  if generator != "film":
    assert sorted(variables["params"]["g_shared"]) == [
        "dg_bias", "dg_kernel", "norm_bias", "norm_scale"]


def test_film_modulates_every_identifiable_layer_over_its_output_axes():
  primary = _layer_normed()
  layers = {layer.name: layer for layer in generators.film_layers(primary)}
  paths = primary.leaf_paths
  shapes = {name: layer.out_shape for name, layer in layers.items()}
  # DenseGeneral (2, 3): both output axes (its bias's shape); LayerNorm: scale and bias.
  assert shapes == {"dg": (2, 3), "norm": (8,), "proj": (8,)}
  assert paths[layers["norm"].scale_index] == "norm/scale"
  assert paths[layers["norm"].bias_index] == "norm/bias"
  from hypernets import film  # pylint: disable=g-import-not-at-top
  assert film.unmodulated_paths(primary) == ["proj_bias"]  # a raw leaf: shared


def test_film_of_a_dense_general_and_layer_norm_is_output_modulation():
  x = jax.random.normal(jax.random.key(3), (5, 4))

  class Block(nn.Module):

    @nn.compact
    def __call__(self, x):
      return nn.LayerNorm(name="norm")(nn.DenseGeneral((2, 3), name="dg")(x))

  module = Block()
  primary = primary_lib.from_linen(module, x)
  model = models.hypernetwork(primary, generator="film", trunk_widths=(8,), init_scale=1.0)
  cond = jnp.array([0.3, -0.5, 0.9])
  variables = model.init(jax.random.key(0), cond, x)
  (g_dg, b_dg), (g_norm, b_norm) = model.apply(variables, cond, method=lambda m, c: m.f(c))
  assert g_dg.shape == b_dg.shape == (2, 3) and g_norm.shape == b_norm.shape == (3,)
  base = {"dg": {"kernel": variables["params"]["g_shared"]["dg_kernel"],
                 "bias": variables["params"]["g_shared"]["dg_bias"]},
          "norm": {"scale": variables["params"]["g_shared"]["norm_scale"],
                   "bias": variables["params"]["g_shared"]["norm_bias"]}}
  h = nn.DenseGeneral((2, 3)).apply({"params": base["dg"]}, x) * (1 + g_dg) + b_dg
  expected = nn.LayerNorm().apply({"params": base["norm"]}, h) * (1 + g_norm) + b_norm
  np.testing.assert_allclose(model.apply(variables, cond, x), expected, rtol=1e-4, atol=1e-5)


def test_film_creates_no_beta_for_a_bias_free_layer():
  primary = primary_lib.from_linen(nets.MLP((6, 2), use_bias=False), jnp.ones((3, 4)))
  model = models.hypernetwork(primary, generator="film", trunk_widths=(8,))
  variables = model.init(jax.random.key(0), jnp.ones((5,)), jnp.ones((3, 4)))
  heads = {k: v["kernel"].shape for k, v in variables["params"]["f"].items()
           if k.startswith("film_")}
  assert heads == {"film_Dense_0": (8, 6), "film_Dense_1": (8, 2)}  # gamma only


BAD_ARGUMENTS = [
    ({"init": "bogus"}, "init='bogus' is unknown"),
    ({"generator": "diffusion"}, "generator='diffusion' is unknown"),
    ({"activation": "swishy"}, "activation='swishy' is unknown"),
    ({"rank": 0}, "rank=0 must be a positive integer"),
    ({"trunk_widths": (8, 0)}, "trunk_widths=0 must be a positive integer"),
    ({"compute_dtype": "float16"}, "compute_dtype='float16' is unknown"),
    ({"init_scale": -1.0}, "init_scale=-1.0 must be"),
    ({"generated": "("}, "generated='\\(' is not a regular expression"),
]


@pytest.mark.parametrize("kwargs,message", BAD_ARGUMENTS)
def test_python_arguments_fail_when_the_model_is_built_naming_the_argument(kwargs, message):
  with pytest.raises(ConfigError, match=message) as e:
    models.hypernetwork(_primary("mlp"), **kwargs)
  assert "config." not in str(e.value)


def test_compute_dtype_is_an_argument():
  primary = _primary("mlp")
  model = models.hypernetwork(primary, trunk_widths=(8,), compute_dtype="bfloat16")
  cond, x = jnp.linspace(-1, 1, 5), jnp.ones((3, 4))
  variables = model.init(jax.random.key(0), cond, x)
  theta = model.apply(variables, cond, method=models.HypernetModel.generate)
  assert {a.dtype for a in jax.tree.leaves(theta)} == {jnp.dtype(jnp.bfloat16)}
  full = models.hypernetwork(primary, trunk_widths=(8,))
  y16 = models.apply_one(model, variables, cond, x)
  assert y16.dtype == jnp.float32
  np.testing.assert_allclose(y16, models.apply_one(full, variables, cond, x), rtol=0.05, atol=0.02)


def test_apply_batched_asserts_matching_batches():
  primary = _primary("mlp")
  model = _model(primary, "heads", "primary")
  variables = model.init(jax.random.key(0), jnp.ones((5,)), jnp.ones((3, 4)))
  with pytest.raises(AssertionError):
    models.apply_batched(model, variables, jnp.ones((4, 5)), jnp.ones((3, 3, 4)))
