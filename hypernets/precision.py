"""Mixed precision: float32 parameters and optimizer, matmuls in a narrower dtype.

`config.compute_dtype='bfloat16'` (for GPUs and TPUs, whose matrix units run bf16
several times faster than fp32) casts, at the model boundary, the conditioning
inputs, the points and every trainable parameter to bf16; a hypernetwork's
generated theta_I is cast too, so g's per-example matmuls run in bf16. Outputs come
back as float32, so losses, gradients, the optimizer state and the checkpointed
parameters stay float32 (the casts are differentiable; gradients arrive in fp32).
"""

from typing import Any

import jax
import jax.numpy as jnp

COMPUTE_DTYPES = ("float32", "bfloat16")


def compute_dtype_of(name: str | None) -> jnp.dtype | None:
  """The dtype to compute in, or None for plain float32 (no casts at all)."""
  if name is None or name == "float32":
    return None
  return jnp.dtype(name)


def cast_floats(tree: Any, dtype: jnp.dtype | None) -> Any:
  """`tree` with every floating-point leaf cast to `dtype` (others untouched)."""
  if dtype is None:
    return tree
  return jax.tree.map(
      lambda a: a.astype(dtype) if jnp.issubdtype(jnp.result_type(a), jnp.floating) else a,
      tree)
