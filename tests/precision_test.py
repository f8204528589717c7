"""Mixed precision (config.compute_dtype='bfloat16'): bf16 matmuls, float32 everything kept."""

import json
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hypernets import data as data_lib
from hypernets import models
from hypernets import training
from hypernets.errors import ConfigError


def _model_and_batch(config, compute_dtype):
  dataset = data_lib.create_dataset(config.data)
  example = jax.tree.map(lambda a: a[0], dataset.test)
  model, _ = models.create_model(config.model, example_cond=example.cond,
                                 example_x=example.x, output_dim=dataset.output_dim,
                                 compute_dtype=compute_dtype)
  variables = model.init(jax.random.key(0), example.cond, example.x)
  return model, variables, dataset.test.cond[:8], dataset.test.x[:8]


@pytest.mark.parametrize("kind", ["hypernet", "embedding", "standard"])
def test_bfloat16_runs_every_matmul_in_bf16_and_returns_float32(small_config, kind):
  small_config.model.kind = kind
  model32, variables, cond, x = _model_and_batch(small_config, "float32")
  model16, _, _, _ = _model_and_batch(small_config, "bfloat16")

  def loss(model, v):
    return jnp.mean(jnp.square(models.apply_batched(model, v, cond, x)))

  hlo = jax.jit(jax.grad(lambda v: loss(model16, v))).lower(variables).as_text()
  dots = [line for line in hlo.splitlines() if "dot_general" in line]
  assert dots
  for line in dots:  # every operand of every matmul (forward and backward) is bf16
    operands = re.search(r":\s*\((.*)\)\s*->", line).group(1)
    assert "f32" not in operands and "bf16" in operands, line

  grads = jax.grad(lambda v: loss(model16, v))(variables)
  assert {leaf.dtype for leaf in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float32)}
  y32 = models.apply_batched(model32, variables, cond, x)
  y16 = models.apply_batched(model16, variables, cond, x)
  assert y16.dtype == jnp.float32
  # bf16 keeps 8 mantissa bits: agreement to a few parts in a hundred, not exactly.
  scale = float(jnp.max(jnp.abs(y32)))
  np.testing.assert_allclose(y16, y32, atol=0.03 * scale)
  assert not np.array_equal(y16, y32)


def test_generated_theta_is_bf16_and_parameters_stay_float32(small_config):
  model, variables, cond, _ = _model_and_batch(small_config, "bfloat16")
  theta = model.apply(variables, cond[0], method=models.HypernetModel.generate)
  assert {leaf.dtype for leaf in jax.tree.leaves(theta)} == {jnp.dtype(jnp.bfloat16)}
  assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}


def test_bfloat16_training_matches_float32_loss(small_config, tmp_path):
  small_config.num_train_steps = 300
  results = {}
  for dtype in ("float32", "bfloat16"):
    small_config.compute_dtype = dtype
    state = training.train_and_evaluate(small_config, str(tmp_path / dtype))
    assert {leaf.dtype for leaf in jax.tree.leaves(state.params)} == {jnp.dtype(jnp.float32)}
    results[dtype] = json.loads((tmp_path / dtype / "results.json").read_text())
  f32, bf16 = results["float32"]["test_mse"], results["bfloat16"]["test_mse"]
  initial = float(np.var(data_lib.create_dataset(small_config.data).test.y))
  assert f32 < 0.5 * initial  # the run learned something ...
  # ... and bf16 learned the same: measured 0.9% apart for this seed (0.7-1.4% over
  # seeds 0-2; README "Mixed precision"), so 3% leaves room without hiding a bug.
  assert abs(bf16 - f32) < 0.03 * f32, (bf16, f32)


def test_unknown_compute_dtype_names_the_field(small_config, tmp_path):
  small_config.compute_dtype = "float16"
  with pytest.raises(ConfigError, match="config.compute_dtype"):
    training.train_and_evaluate(small_config, str(tmp_path))
