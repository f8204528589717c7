"""per_example_conv: convolutions as slices + one matmul equal the direct convolution,
values and gradients, for every option of Flax's nn.Conv; the hook reaches g's convs."""

import functools

import chex
import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import pytest

from hypernets import models
from hypernets import nets
from hypernets import per_example_conv
from hypernets import primary as primary_lib

# (input spatial shape, kernel shape, conv keyword arguments)
CASES = {
    "2d same stride 1": ((7, 6), (3, 3), dict(window_strides=(1, 1), padding="SAME")),
    "2d same stride 2": ((7, 6), (3, 3), dict(window_strides=(2, 2), padding="SAME")),
    "2d valid strides 2x3": ((8, 9), (3, 2), dict(window_strides=(2, 3), padding="VALID")),
    "2d explicit asymmetric": ((6, 6), (3, 3), dict(window_strides=(1, 2),
                                                   padding=((2, 0), (1, 3)))),
    "2d kernel dilation": ((9, 8), (3, 2), dict(window_strides=(1, 1), padding="SAME",
                                               rhs_dilation=(2, 3))),
    "2d input dilation": ((5, 4), (3, 3), dict(window_strides=(2, 1), padding=((1, 1), (2, 0)),
                                              lhs_dilation=(2, 3))),
    "2d groups": ((6, 5), (3, 3), dict(window_strides=(1, 1), padding="SAME",
                                      feature_group_count=2)),
    "2d depthwise, all options": ((7, 7), (3, 2), dict(
        window_strides=(2, 1), padding=((1, 2), (0, 1)), lhs_dilation=(1, 2),
        rhs_dilation=(2, 1), feature_group_count=4)),
    "1d": ((11,), (4,), dict(window_strides=(3,), padding="SAME", rhs_dilation=(2,))),
    "3d": ((3, 4, 3), (2, 2, 2), dict(window_strides=(1, 2, 1), padding="SAME")),
}
C_IN, C_OUT = 4, 8


def _dimension_numbers(num_spatial):
  spatial = "DHW"[-num_spatial:] if num_spatial <= 3 else None
  return (f"N{spatial}C", f"{spatial}IO", f"N{spatial}C")


def _problem(name, examples=3, images=2):
  spatial, kernel, kwargs = CASES[name]
  groups = kwargs.get("feature_group_count", 1)
  key1, key2 = jax.random.split(jax.random.key(0))
  x = jax.random.normal(key1, (examples, images, *spatial, C_IN))
  k = jax.random.normal(key2, (examples, *kernel, C_IN // groups, C_OUT))
  kwargs = dict(kwargs, dimension_numbers=_dimension_numbers(len(spatial)))
  return x, k, kwargs


def _loss(conv, kwargs, x, k):
  """Per-example kernels under vmap, as a hypernetwork's g sees them."""
  out = jax.vmap(lambda xb, kb: conv(xb, kb, **kwargs))(x, k)
  return jnp.sum(jnp.sin(out)), out


def _loss_unbatched(kwargs, x, k):
  """The reference: the direct conv of each example alone (a feature-grouped conv
  under vmap would be the same numbers, but its gradient compiles and runs slowly)."""
  out = jnp.stack([lax.conv_general_dilated(x[b], k[b], **kwargs) for b in range(len(x))])
  return jnp.sum(jnp.sin(out)), out


@pytest.mark.parametrize("name", sorted(CASES))
def test_conv_as_matmul_equals_the_direct_conv(name):
  x, k, kwargs = _problem(name)
  (_, out), grads = jax.jit(jax.value_and_grad(functools.partial(
      _loss, per_example_conv.conv_as_matmul, kwargs), argnums=(0, 1), has_aux=True))(x, k)
  (_, ref_out), ref_grads = jax.jit(jax.value_and_grad(functools.partial(
      _loss_unbatched, kwargs), argnums=(0, 1), has_aux=True))(x, k)
  assert out.shape == ref_out.shape and out.size > 0
  chex.assert_trees_all_close(out, ref_out, rtol=1e-5, atol=1e-4)
  chex.assert_trees_all_close(grads, ref_grads, rtol=1e-5, atol=1e-4)


def test_negative_padding_crops():
  """Negative padding drops input rows, as lax documents. (XLA:CPU's own convolution
  returned values near 1e35 for this case, so the reference is the cropped input.)"""
  x, k, kwargs = _problem("2d same stride 1")
  kwargs = dict(kwargs, padding=((-1, 1), (0, -2)))
  out = jax.vmap(lambda xb, kb: per_example_conv.conv_as_matmul(xb, kb, **kwargs))(x, k)
  cropped = dict(kwargs, padding=((0, 1), (0, 0)))
  ref = _loss_unbatched(cropped, x[:, :, 1:, :-2], k)[1]
  chex.assert_trees_all_close(out, ref, rtol=1e-5, atol=1e-4)


def test_conv_as_matmul_lowers_to_no_convolution():
  x, k, kwargs = _problem("2d depthwise, all options")
  jaxpr = jax.make_jaxpr(jax.grad(lambda x, k: _loss(per_example_conv.conv_as_matmul,
                                                     kwargs, x, k)[0], argnums=(0, 1)))(x, k)
  assert "conv_general_dilated" not in str(jaxpr)
  assert "dot_general" in str(jaxpr)


class _Convs(nn.Module):
  """Every option of nn.Conv, three layers (XLA:CPU compiles dilated convs slowly)."""

  @nn.compact
  def __call__(self, x):  # [images, 7, 6, 4]
    x = nn.Conv(8, (3, 3), strides=2, padding="CIRCULAR", kernel_dilation=(2, 1),
                feature_group_count=2)(x)
    x = nn.Conv(6, (3, 2), padding=((0, 1), (2, 0)), input_dilation=2, use_bias=False,
                mask=jnp.ones((3, 2, 8, 6)).at[1, 1].set(0.0))(x)
    y = nn.Conv(5, (3,), padding="CAUSAL", kernel_dilation=2)(x.reshape(x.shape[0], -1, 6))
    return nn.Dense(3)(y.reshape(y.shape[0], -1))


def _per_example_params(module, example_x, examples):
  """Random per-example parameters of the module's shapes (no forward pass run)."""
  shapes = jax.eval_shape(module.init, jax.random.key(0), example_x)["params"]
  leaves, treedef = jax.tree.flatten(shapes)
  keys = jax.random.split(jax.random.key(1), len(leaves))
  return jax.tree.unflatten(treedef, [0.3 * jax.random.normal(k, (examples, *leaf.shape))
                                      for k, leaf in zip(keys, leaves)])


def _stack_loop(apply, *args):
  """apply of each example alone, stacked: the direct convs, without vmap's grouped conv."""
  outs = []
  for b in range(len(jax.tree.leaves(args[-1])[0])):
    outs.append(apply(*(jax.tree.map(lambda a, b=b: a[b], arg) for arg in args)))
  return jnp.stack(outs)


def test_flax_convs_under_the_hook_equal_the_direct_convs():
  module = _Convs()
  x = jax.random.normal(jax.random.key(2), (2, 1, 7, 6, 4))  # [examples, images, ...]
  params = _per_example_params(module, x[0], 2)
  paths = primary_lib.from_linen(module, x[0]).leaf_paths
  kernel_paths = [p for p in paths if p.endswith("kernel") and p.startswith("Conv")]
  assert len(kernel_paths) == 3

  def apply(p, xb):
    return module.apply({"params": p}, xb)

  def hooked_apply(p, xb):
    with per_example_conv.as_matmuls(kernel_paths):
      return apply(p, xb)

  def loss(out):
    return jnp.sum(jnp.sin(out)), out

  hooked = jax.value_and_grad(lambda p, x: loss(jax.vmap(hooked_apply)(p, x)),
                              argnums=(0, 1), has_aux=True)
  direct = jax.value_and_grad(lambda p, x: loss(_stack_loop(apply, p, x)),
                              argnums=(0, 1), has_aux=True)
  (_, out), grads = jax.jit(hooked)(params, x)
  (_, ref_out), ref_grads = jax.jit(direct)(params, x)
  chex.assert_trees_all_close(out, ref_out, rtol=1e-5, atol=1e-4)
  chex.assert_trees_all_close(grads, ref_grads, rtol=1e-5, atol=1e-4)
  assert "conv_general_dilated" not in str(jax.make_jaxpr(hooked)(params, x))
  assert "conv_general_dilated" in str(jax.make_jaxpr(direct)(params, x))


def test_only_the_named_convs_are_replaced():
  module = nets.ConvNet(channels=(4, 4), kernel_size=3, strides=1, num_outputs=2)
  x = jnp.ones((2, 5, 5, 3))
  params = module.init(jax.random.key(0), x)["params"]
  with per_example_conv.as_matmuls(["Conv_1/kernel", "Dense_0/kernel"]):
    jaxpr = str(jax.make_jaxpr(lambda p: module.apply({"params": p}, x))(params))
  assert jaxpr.count("conv_general_dilated") == 1  # Conv_0 only


@pytest.mark.parametrize("generator", ["heads", "film"])
def test_hypernet_conv_primary_equals_the_direct_convs(generator):
  x = jax.random.normal(jax.random.key(3), (2, 2, 6, 6, 2))  # [conditions, images, ...]
  cond = jax.random.normal(jax.random.key(4), (2, 5))
  g = primary_lib.from_linen(nets.ConvNet(channels=(4, 8), strides=2, num_outputs=3), x[0])
  model = models.hypernetwork(g, generator=generator, trunk_widths=(16,))
  variables = model.init(jax.random.key(5), cond[0], x[0])

  def direct_one(v, cond, x):  # g applied without the hook
    theta = model.apply(v, cond, method=models.HypernetModel.generate)
    return g.apply(theta, x)

  def loss(out):
    return jnp.sum(jnp.sin(out)), out

  library = jax.value_and_grad(
      lambda v: loss(jax.vmap(functools.partial(model.apply, v))(cond, x)), has_aux=True)
  direct = jax.value_and_grad(
      lambda v: loss(_stack_loop(functools.partial(direct_one, v), cond, x)), has_aux=True)
  (_, out), grads = jax.jit(library)(variables)
  (_, ref_out), ref_grads = jax.jit(direct)(variables)
  chex.assert_trees_all_close(out, ref_out, rtol=1e-5, atol=1e-4)
  chex.assert_trees_all_close(grads, ref_grads, rtol=1e-5, atol=1e-4)
  assert "conv_general_dilated" not in str(jax.make_jaxpr(library)(variables))
  np.testing.assert_array_less(0, np.abs(np.asarray(out)).max())
