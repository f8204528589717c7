"""Primaries unlike anything in hypernets/nets.py, through every generator kind and init.

A Linen module with nested submodules under custom names, a Conv, a LayerNorm, a
DenseGeneral with a 3-d kernel, raw parameters (one named `proj_bias` beside a Dense
`proj`), bias-free layers and Dropout; an NNX module with BatchNorm and Dropout.
For each (generator, init): f(I) emits exactly eval_shape(g.init)'s tree, the output
depends on I, every trainable leaf gets a non-zero gradient and 200 Adam steps
lower the loss (one jit per case: the steps run in a lax.scan).
"""

import chex
import flax.linen as nn
from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hypernets import models
from hypernets import primary as primary_lib

NUM_CONDS, POINTS, COND_DIM = 4, 6, 3


class Stem(nn.Module):
  """Conv -> LayerNorm -> flatten: [P, 4, 4, 1] -> [P, 16]."""

  @nn.compact
  def __call__(self, x):
    h = nn.Conv(4, (3, 3), strides=2, name="conv")(x)  # [P, 2, 2, 4]
    h = nn.LayerNorm(name="norm")(h)
    return h.reshape(h.shape[0], -1)


class LinenForeign(nn.Module):
  """Nested custom names, bias-free Dense, raw params, DenseGeneral, Dropout."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = Stem(name="encoder")(x)
    h = nn.Dense(8, use_bias=False, name="proj")(h)
    h = nn.gelu(h + self.param("proj_bias", nn.initializers.zeros, (8,)))
    h = nn.Dropout(0.1, deterministic=not train)(h)
    h = nn.DenseGeneral((2, 3), name="mix")(h)  # kernel [8, 2, 3]
    h = jnp.tanh(h * self.param("temperature", nn.initializers.ones, (2, 3)))
    readout = self.param("readout", nn.initializers.lecun_normal(), (6, 1))
    return h.reshape(h.shape[0], 6) @ readout


class NnxForeign(nnx.Module):
  """Linear -> BatchNorm -> relu -> Dropout -> bias-free Linear, under custom names."""

  def __init__(self, rngs: nnx.Rngs):
    self.body = nnx.Linear(5, 8, rngs=rngs)
    self.stats = nnx.BatchNorm(8, momentum=0.9, rngs=rngs)
    self.drop = nnx.Dropout(0.1, rngs=rngs)
    self.readout = nnx.Linear(8, 1, use_bias=False, rngs=rngs)

  def __call__(self, x):
    return self.readout(self.drop(nnx.relu(self.stats(self.body(x)))))


def _linen():
  x = jax.random.normal(jax.random.key(7), (NUM_CONDS, POINTS, 4, 4, 1))
  module = LinenForeign()
  primary = primary_lib.from_linen(module, x[0], train_arg="train")
  expected = jax.eval_shape(module.init, jax.random.key(0), x[0])["params"]
  return primary, expected, x


def _nnx():
  x = jax.random.normal(jax.random.key(7), (NUM_CONDS, POINTS, 5))
  primary = primary_lib.from_nnx(NnxForeign(nnx.Rngs(0)))
  expected = jax.eval_shape(
      lambda: nnx.to_pure_dict(nnx.state(NnxForeign(nnx.Rngs(0)), nnx.Param)))
  return primary, expected, x


CASES = [(g, i) for g in ("heads", "lowrank", "chunked")
         for i in ("primary", "lecun", "hyperfan_in", "hyperfan_out")] + [("film", "primary")]


def _train(model, variables, conds, x, y, *, steps):
  """(grads at step 0, losses [steps]) of `steps` Adam steps in one jit."""
  params, model_state = models.split_variables(variables)
  tx = optax.adam(3e-3)

  def loss_fn(params, model_state, key):
    pred, updates = models.apply_batched_train(model, {"params": params, **model_state},
                                               conds, x, key)
    return jnp.mean(jnp.square(pred - y)), updates

  def step(carry, key):
    params, model_state, opt_state = carry
    (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        params, model_state, key)
    new_params = optax.apply_updates(params, tx.update(grads, opt_state, params)[0])
    opt_state = tx.update(grads, opt_state, params)[1]
    return (new_params, {**model_state, **updates}, opt_state), (loss, grads)

  @jax.jit
  def run(params, model_state):
    keys = jax.random.split(jax.random.key(3), steps)
    _, (losses, grads) = jax.lax.scan(step, (params, model_state, tx.init(params)), keys)
    return jax.tree.map(lambda g: g[0], grads), losses

  return run(params, model_state)


@pytest.mark.parametrize("make", [_linen, _nnx], ids=["linen", "nnx"])
@pytest.mark.parametrize("generator,init", CASES)
def test_foreign_primary_is_generated_depends_on_i_and_trains(make, generator, init):
  primary, expected, x = make()
  model = models.hypernetwork(primary, generator=generator, init=init, trunk_widths=(16,),
                              rank=4, chunk_size=32)
  conds = jax.random.uniform(jax.random.key(1), (NUM_CONDS, COND_DIM), minval=-1, maxval=1)
  model = models.calibrate_hyperfan(model, jax.random.key(0), conds)
  variables = model.init(jax.random.key(0), conds[0], x[0])
  theta = model.apply(variables, conds[0], method=models.HypernetModel.generate)
  assert jax.tree.structure(theta) == jax.tree.structure(expected)
  chex.assert_trees_all_equal_shapes_and_dtypes(theta, expected)

  out = models.apply_batched(model, variables, conds, x)  # eval mode
  assert out.shape == (NUM_CONDS, POINTS, 1)
  assert not np.allclose(out[0], models.apply_one(model, variables, conds[1], x[0]))

  # A target that needs both I and x.
  y = jnp.tanh(jnp.sum(conds, -1)[:, None, None] * jnp.mean(x.reshape(NUM_CONDS, POINTS, -1),
                                                            -1, keepdims=True) * 3)
  grads, losses = _train(model, variables, conds, x, y, steps=200)
  dead = [jax.tree_util.keystr(path) for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]
          if not np.any(np.asarray(g))]
  assert not dead, f"leaves with zero gradient: {dead}"
  first, last = float(np.mean(losses[:10])), float(np.mean(losses[-10:]))
  assert last < 0.7 * first, (first, last)
