"""Convolutions with per-example kernels as batched matrix products.

A hypernetwork generates g's conv kernels for each conditioning input, so under
`jax.vmap` a Flax `nn.Conv` convolves each example's images with that example's own
kernel. XLA lowers that to one feature-grouped convolution, whose gradient on
XLA:CPU is two orders of magnitude slower than the same network with one shared
kernel. Here the convolution is written as im2col by slicing plus ONE matrix product:

  patches [N, *out, prod(k) * C_in]  (the k_1 x ... x k_n strided slices of the
                                      padded, dilated input, stacked)
  y = patches @ kernel.reshape(prod(k) * C_in, C_out)

Under vmap the slices stay plain slices and the product becomes a batched
`dot_general` (batch = the examples), forward and backward.
`lax.conv_general_dilated_patches` builds the same patches with an identity-kernel
convolution; measured fwd+bwd it was ~7x slower than slicing on XLA:CPU.

`conv_as_matmul` is a drop-in for `lax.conv_general_dilated` in Flax's channels-last
layout (strides, explicit/SAME/VALID padding, input and kernel dilation, feature
groups, precision); any other layout falls back to the direct convolution. It equals
the direct convolution up to float rounding (the sum runs in another order).

`as_matmuls(paths)` is the hook: a Flax method interceptor under which every
`nn.Conv` whose kernel path is in `paths` (e.g. 'Conv_0/kernel') runs through
`conv_as_matmul`; the user's module is unchanged. `models.HypernetModel` applies g
under it for the kernels that vary with the conditioning input.
"""

import contextlib
import itertools
import math
from typing import Collection, Iterator, Sequence

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp


def _is_channels_last(dimension_numbers, ndim: int) -> bool:
  """Whether `dimension_numbers` are Flax's (lhs N...C, rhs ...IO, out N...C)."""
  if dimension_numbers is None:
    return False
  spatial = tuple(range(1, ndim - 1))
  expected = lax.ConvDimensionNumbers(
      lhs_spec=(0, ndim - 1) + spatial,
      rhs_spec=(ndim - 1, ndim - 2) + tuple(range(ndim - 2)),
      out_spec=(0, ndim - 1) + spatial)
  try:
    given = lax.conv_dimension_numbers((1,) * ndim, (1,) * ndim, dimension_numbers)
  except (TypeError, ValueError):
    return False
  return given == expected


def conv_as_matmul(lhs: jax.Array, rhs: jax.Array, window_strides: Sequence[int],
                   padding, lhs_dilation: Sequence[int] | None = None,
                   rhs_dilation: Sequence[int] | None = None, dimension_numbers=None,
                   feature_group_count: int = 1, batch_group_count: int = 1,
                   precision=None, preferred_element_type=None) -> jax.Array:
  """`lax.conv_general_dilated` as strided slices and one matrix product.

  lhs [N, *spatial, C_in], rhs [*k, C_in / groups, C_out] (Flax's layout),
  -> [N, *out, C_out]. Other layouts and batch groups use `lax.conv_general_dilated`.
  """
  ndim = lhs.ndim
  num_spatial = ndim - 2
  if batch_group_count != 1 or not _is_channels_last(dimension_numbers, ndim):
    return lax.conv_general_dilated(
        lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation, dimension_numbers,
        feature_group_count, batch_group_count, precision, preferred_element_type)
  lhs_dilation = tuple(lhs_dilation or (1,) * num_spatial)
  rhs_dilation = tuple(rhs_dilation or (1,) * num_spatial)
  window_strides = tuple(window_strides)
  kernel_shape = rhs.shape[:num_spatial]
  if isinstance(padding, str):
    # As lax.conv_general_dilated: the undilated input, the dilated kernel.
    dilated_kernel = [(k - 1) * d + 1 for k, d in zip(kernel_shape, rhs_dilation)]
    padding = lax.padtype_to_pads(lhs.shape[1:-1], dilated_kernel, window_strides, padding)
  # Padding and input dilation (interior zeros) in one pad: [N, *padded, C_in].
  padded = lax.pad(lhs, jnp.zeros((), lhs.dtype),
                   [(0, 0, 0)] + [(lo, hi, d - 1) for (lo, hi), d in
                                  zip(padding, lhs_dilation)] + [(0, 0, 0)])
  out_shape = [max(0, (size - ((k - 1) * d + 1)) // s + 1) for size, k, d, s in
               zip(padded.shape[1:-1], kernel_shape, rhs_dilation, window_strides)]
  slices = []
  for offset in itertools.product(*(range(k) for k in kernel_shape)):
    start = [o * d for o, d in zip(offset, rhs_dilation)]
    limit = [b + (n - 1) * s + 1 for b, n, s in zip(start, out_shape, window_strides)]
    slices.append(lax.slice(padded, (0, *start, 0), (padded.shape[0], *limit,
                                                        padded.shape[-1]),
                            (1, *window_strides, 1)))  # [N, *out, C_in]
  patches = jnp.stack(slices, axis=-2)  # [N, *out, prod(k), C_in], offsets as rhs's
  taps, c_in, c_out = math.prod(kernel_shape), lhs.shape[-1], rhs.shape[-1]
  groups = feature_group_count
  if groups == 1:
    return jnp.einsum("...k,ko->...o", patches.reshape(*patches.shape[:-2], taps * c_in),
                      rhs.reshape(taps * c_in, c_out), precision=precision,
                      preferred_element_type=preferred_element_type)
  # Feature groups: input channels [groups, C_in / groups], outputs [groups, C_out / groups].
  patches = patches.reshape(*patches.shape[:-1], groups, c_in // groups)
  kernel = rhs.reshape(taps, c_in // groups, groups, c_out // groups)
  out = jnp.einsum("...tgc,tcgo->...go", patches, kernel, precision=precision,
                   preferred_element_type=preferred_element_type)
  return out.reshape(*out.shape[:-2], c_out)


def _module_path(module: nn.Module) -> str:
  return "/".join(module.path)


@contextlib.contextmanager
def as_matmuls(kernel_paths: Collection[str]) -> Iterator[None]:
  """Within: each `nn.Conv` whose kernel is at one of `kernel_paths` uses `conv_as_matmul`.

  kernel_paths: '/'-joined parameter paths such as 'Conv_0/kernel' (Primary.leaf_paths).
  Only applies (not init): the conv's own variables are read from its bound scope
  and the same module, with `conv_general_dilated=conv_as_matmul`, is applied to
  them. Convs with a custom `conv_general_dilated` and other modules run unchanged.
  """
  conv_paths = {path.rpartition("/")[0] for path in kernel_paths
                if path.rpartition("/")[2] == "kernel"}

  def interceptor(next_fun, args, kwargs, context):
    module = context.module
    if (context.method_name != "__call__" or not isinstance(module, nn.Conv)
        or module.conv_general_dilated is not None
        or module.conv_general_dilated_cls is not None
        or _module_path(module) not in conv_paths
        or "kernel" not in module.variables.get("params", {})):
      return next_fun(*args, **kwargs)
    # Inside: the clone has conv_general_dilated set, so this interceptor passes it on.
    return module.clone(parent=None, conv_general_dilated=conv_as_matmul).apply(
        module.variables, *args, **kwargs)

  if not conv_paths:
    yield
    return
  with nn.intercept_methods(interceptor):
    yield
