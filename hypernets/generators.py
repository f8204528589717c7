"""Hypernetworks f: conditioning input I -> the full parameter pytree of a primary g."""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hypernets.errors import ConfigError
from hypernets.nets import MLP
from hypernets.primary import Primary

HEAD_INITS = ("primary", "lecun")


def _leaf_bias_init(primary: Primary, index: int):
  """Bias initialiser for head `index`: that leaf of a fresh sample of g's own init."""

  def init(key, shape, dtype=jnp.float32):
    leaf = jax.tree_util.tree_leaves(primary.init(key))[index]
    return jnp.reshape(leaf, shape).astype(dtype)

  return init


class PerTensorHeads(nn.Module):
  """f(I) = heads(trunk(I)): an MLP trunk, then one linear head per leaf of g.

  This is the paper's hypernetwork: a linear projection of a lower-dimensional
  bottleneck (the trunk's last layer) onto every weight of g. Splitting that
  projection per leaf changes nothing mathematically; it lets each leaf keep its
  own shape, dtype and initialisation.

  Attributes:
    primary: the primary network g whose parameters are generated.
    trunk_widths: hidden widths of the trunk (its depth is len(trunk_widths)).
    activation: trunk activation.
    head_init: 'primary' starts each head's bias at a sample of g's own
      initialiser and its kernel at `head_init_scale` times LeCun normal, so f(I)
      starts near a good initialisation of g and moves with I; 'lecun' is a
      plain Dense (LeCun normal kernel, zero bias), as in the paper's code.
    head_init_scale: variance scale of the head kernels when head_init='primary'.

  Maps I [*cond_shape] -> pytree with g's structure, shapes and dtypes.
  """

  primary: Primary
  trunk_widths: Sequence[int]
  activation: str = "relu"
  head_init: str = "primary"
  head_init_scale: float = 0.01

  @nn.compact
  def __call__(self, cond: jax.Array):
    if self.head_init not in HEAD_INITS:
      raise ConfigError(f"unknown head_init {self.head_init!r}; choose one of {HEAD_INITS}")
    h = MLP(self.trunk_widths, self.activation, activate_final=True,
            name="trunk")(jnp.reshape(cond, (-1,)))  # [trunk_widths[-1]]
    leaves = []
    for i, (path, leaf) in enumerate(zip(self.primary.leaf_paths, self.primary.leaves)):
      size = int(np.prod(leaf.shape, dtype=int))
      if self.head_init == "primary":
        head = nn.Dense(size, name=f"head_{path.replace('/', '_')}",
                        kernel_init=nn.initializers.variance_scaling(
                            self.head_init_scale, "fan_in", "truncated_normal"),
                        bias_init=_leaf_bias_init(self.primary, i))
      else:
        head = nn.Dense(size, name=f"head_{path.replace('/', '_')}")
      leaves.append(jnp.reshape(head(h), leaf.shape).astype(leaf.dtype))
    return jax.tree_util.tree_unflatten(self.primary.treedef, leaves)
