"""FiLM: f(I) modulates the layers of a shared g, feature-wise (functa-style).

A *layer* of g is a group of sibling leaves (same parent path) with a
multiplicative leaf named 'kernel' (Dense, Conv, DenseGeneral), 'scale'
(LayerNorm, BatchNorm, GroupNorm, a raw scale) or 'embedding' (Embed), and/or an
additive leaf named 'bias'. Its output axes, the ones FiLM modulates, are
identified as:
  * the bias's shape, when the multiplicative leaf ends with it (Dense and Conv:
    the last axis; DenseGeneral with features (4, 3): the last two);
  * without a bias: the last axis of a kernel or embedding; every axis of a scale;
  * a bias with no multiplicative sibling: its own shape (shift only).
Then scaling the multiplicative leaf and the bias by (1 + gamma) over those axes
and adding beta to the bias is exactly FiLM of the layer's output:
layer(x) (1 + gamma) + beta. gamma exists only where there is a multiplicative
leaf and beta only where there is a bias (a bias-free layer gets no beta).
Every other leaf (raw parameters under other names) stays shared and
unmodulated: `unmodulated_paths` lists them.
"""

import dataclasses
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hypernets.errors import ConfigError
from hypernets.nets import MLP
from hypernets.primary import Primary
from hypernets.primary import unique_leaf_names

MULTIPLICATIVE = ("kernel", "scale", "embedding")


@dataclasses.dataclass(frozen=True)
class FilmLayer:
  """A layer of g that FiLM modulates.

  scale_index / bias_index: positions of its multiplicative / bias leaf among g's
  leaves (None if absent); out_shape: the modulated output axes; name: unique.
  """

  scale_index: int | None
  bias_index: int | None
  out_shape: tuple[int, ...]
  name: str

  @property
  def features(self) -> int:
    return int(np.prod(self.out_shape, dtype=int))

  @property
  def num_gamma(self) -> int:
    return self.features if self.scale_index is not None else 0

  @property
  def num_beta(self) -> int:
    return self.features if self.bias_index is not None else 0


def film_layers(primary: Primary) -> tuple[FilmLayer, ...]:
  """The layers of g FiLM modulates (module docstring), in leaf order."""
  paths, leaves = primary.leaf_paths, primary.leaves
  groups: dict[str, dict[str, int]] = {}
  for i, path in enumerate(paths):
    parent, _, leaf_name = path.rpartition("/")
    groups.setdefault(parent, {})[leaf_name] = i
  found = []  # (first leaf index, scale index, bias index, out_shape, parent)
  for parent, members in groups.items():
    scale = next((members[n] for n in MULTIPLICATIVE if n in members), None)
    bias = members.get("bias")
    if scale is not None:
      shape = tuple(leaves[scale].shape)
      own = shape if paths[scale].endswith("scale") else shape[-1:]
      if bias is not None:
        bias_shape = tuple(leaves[bias].shape)
        if bias_shape and shape[len(shape) - len(bias_shape):] == bias_shape:
          found.append((scale, scale, bias, bias_shape, parent))
          continue
        found.append((bias, None, bias, bias_shape, parent + "_bias"))
      found.append((scale, scale, None, own, parent))
    elif bias is not None:
      found.append((bias, None, bias, tuple(leaves[bias].shape), parent))
  found = [f for f in found if int(np.prod(f[3], dtype=int)) > 0]
  if not found:
    raise ConfigError("generator 'film' needs a primary with layers (leaves named "
                      f"{MULTIPLICATIVE} or 'bias'); this one has {paths}")
  found.sort()
  names = unique_leaf_names([f[4] for f in found])
  return tuple(FilmLayer(scale, bias, shape, name)
               for (_, scale, bias, shape, _), name in zip(found, names))


def unmodulated_paths(primary: Primary) -> list[str]:
  """Paths of g's leaves FiLM leaves shared and unmodulated."""
  used = {i for layer in film_layers(primary) for i in (layer.scale_index, layer.bias_index)}
  return [p for i, p in enumerate(primary.leaf_paths) if i not in used]


class FilmGenerator(nn.Module):
  """f(I) -> per-layer (gamma or None, beta or None), each [*out_shape].

  Starts near the identity (gamma, beta ~ 0). Maps I [*cond_shape] -> a tuple with
  one (gamma, beta) per FilmLayer.
  """

  layers: tuple[FilmLayer, ...]
  trunk_widths: Sequence[int]
  activation: str = "relu"
  init_scale: float = 0.01
  init_scheme: str = "lecun"  # trunk layers (nets.INIT_SCHEMES)

  @nn.compact
  def __call__(self, cond: jax.Array):
    h = MLP(self.trunk_widths, self.activation, activate_final=True,
            init_scheme=self.init_scheme, name="trunk")(jnp.reshape(cond, (-1,)))
    init = nn.initializers.variance_scaling(self.init_scale, "fan_in", "truncated_normal")
    out = []
    for layer in self.layers:
      gamma_beta = nn.Dense(layer.num_gamma + layer.num_beta, kernel_init=init,
                            name=f"film_{layer.name}")(h)
      gamma = gamma_beta[:layer.num_gamma].reshape(layer.out_shape) if layer.num_gamma else None
      beta = gamma_beta[layer.num_gamma:].reshape(layer.out_shape) if layer.num_beta else None
      out.append((gamma, beta))
    return tuple(out)


def apply_film(leaves: list[jax.Array], layers: tuple[FilmLayer, ...],
               modulations) -> list[jax.Array]:
  """g's leaves with each layer's multiplicative leaf and bias scaled by (1 + gamma)
  over its output axes, and beta added to the bias."""
  leaves = list(leaves)
  for layer, (gamma, beta) in zip(layers, modulations):
    if layer.scale_index is not None:
      scale = leaves[layer.scale_index]
      leaves[layer.scale_index] = (scale * (1.0 + gamma)).astype(scale.dtype)
    if layer.bias_index is not None:
      bias = leaves[layer.bias_index]
      new = bias * (1.0 + gamma) if gamma is not None else bias
      leaves[layer.bias_index] = (new + beta).astype(bias.dtype)
  return leaves
