"""Generated deltas on a frozen pre-trained g: theta_I = theta0 + Delta(I)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hypernets import data as data_lib
from hypernets import models
from hypernets import nets
from hypernets import params as params_lib
from hypernets import primary as primary_lib
from hypernets import training
from hypernets.errors import ConfigError

WIDTH = 8  # f's trunk width


def _pretrained():
  """g = 2 -> 16 -> 1 and a theta0 (a sample of its init, standing in for pre-training)."""
  module = nets.MLP((16, 1))
  x = jnp.ones((5, 2))
  primary = primary_lib.from_linen(module, x)
  return primary, module.init(jax.random.key(42), x)["params"]


def _model(delta, generated=".*", rank=2):
  primary, theta0 = _pretrained()
  return models.hypernetwork(primary, trunk_widths=(WIDTH,), base_params=theta0, delta=delta,
                             generated=generated, rank=rank), primary, theta0


@pytest.mark.parametrize("delta", ["full", "lowrank"])
def test_delta_starts_at_zero_theta0_is_frozen_and_not_counted(delta):
  model, primary, theta0 = _model(delta)
  conds = jax.random.uniform(jax.random.key(1), (3, 4), minval=-1, maxval=1)
  variables = model.init(jax.random.key(0), conds[0], jnp.ones((5, 2)))
  assert sorted(variables) == ["g_base", "params"] and sorted(variables["params"]) == ["f"]
  for cond in conds:  # h_I starts as the pre-trained g, whatever I
    theta = model.apply(variables, cond, method=models.HypernetModel.generate)
    jax.tree.map(np.testing.assert_array_equal, theta, theta0)
  counts = params_lib.parameter_counts(variables["params"], primary)
  trunk = 4 * WIDTH + WIDTH
  dense = lambda n: (WIDTH + 1) * n  # pylint: disable=unnecessary-lambda-assignment
  if delta == "full":
    heads = dense(2 * 16) + dense(16) + dense(16 * 1) + dense(1)
  else:  # kernels [m, n] get A [m, 2] and B [2, n]; vectors a full delta
    heads = dense(2 * 2) + dense(2 * 16) + dense(16) + dense(16 * 2) + dense(2 * 1) + dense(1)
  assert counts == {"N_f": trunk + heads, "N_g": primary.num_params, "total": trunk + heads}


@pytest.mark.parametrize("delta", ["full", "lowrank"])
def test_training_adapts_per_condition_and_leaves_theta0_unchanged(delta):
  model, primary, theta0 = _model(delta, generated="Dense_1")  # adapt the last layer only
  keys = jax.random.split(jax.random.key(3), 2)
  cond = jax.random.uniform(keys[0], (64, 4), minval=-1, maxval=1)
  x = jax.random.uniform(keys[1], (64, 16, 2), minval=-1, maxval=1)
  y = primary.apply(theta0, x.reshape(-1, 2)).reshape(64, 16, 1) + jnp.sum(
      cond, -1)[:, None, None]  # the pre-trained g shifted by an I-dependent offset
  split = data_lib.Split(cond=cond, x=x, y=y)
  dataset = data_lib.Dataset(train=split, test=split, task="regression", output_dim=1)
  tx = optax.adam(1e-2)
  state = training.create_train_state(model, tx, jax.random.key(0),
                                      jax.tree.map(lambda a: a[0], split), cond)
  step = jax.jit(training.make_train_step(model, tx, dataset, batch_conditions=16,
                                          batch_points=16))
  eval_fn = jax.jit(training.make_eval_fn(model, "regression", conditions_per_chunk=64))
  before = float(eval_fn(state, split)["mse"])
  for _ in range(150):
    state, _ = step(state, split, jax.random.key(4))
  assert float(eval_fn(state, split)["mse"]) < 0.1 * before
  jax.tree.map(np.testing.assert_array_equal, state.model_state["g_base"]["theta0"], theta0)
  theta = model.apply({"params": state.params, **state.model_state}, cond[0],
                      method=models.HypernetModel.generate)
  np.testing.assert_array_equal(theta["Dense_0"]["kernel"], theta0["Dense_0"]["kernel"])
  assert not np.allclose(theta["Dense_1"]["bias"], theta0["Dense_1"]["bias"])


def test_bad_delta_arguments_name_the_argument():
  primary, theta0 = _pretrained()
  with pytest.raises(ConfigError, match="delta='full' needs base_params"):
    models.hypernetwork(primary, delta="full")
  with pytest.raises(ConfigError, match="delta='sparse' is unknown"):
    models.hypernetwork(primary, base_params=theta0, delta="sparse")
  bad = jax.tree.map(lambda a: a, theta0)
  bad["Dense_0"]["kernel"] = jnp.ones((3, 16))
  with pytest.raises(ConfigError, match=r"base_params=.* leaf Dense_0/kernel has shape \(3, 16\)"):
    models.hypernetwork(primary, base_params=bad)
  with pytest.raises(ConfigError, match="generator='lowrank' must be 'heads'"):
    models.hypernetwork(primary, base_params=theta0, generator="lowrank")
