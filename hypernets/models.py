"""The three conditioned models and `create_model(config)`.

Each is a Linen module whose `__call__(cond, x)` maps ONE conditioning input
cond [*cond_shape] and a batch of points x [points, *x_shape] to [points, out].
Batching over conditioning inputs is `apply_batched` (a `jax.vmap`), never a loop.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from hypernets import nets
from hypernets import primary as primary_lib
from hypernets.errors import ConfigError
from hypernets.generators import PerTensorHeads

MODEL_KINDS = ("hypernet", "embedding", "standard")
PRIMARY_NAMES = ("mlp", "conv")


class HypernetModel(nn.Module):
  """h_I(x) = g(x; f(I)): f emits every weight of the primary g."""

  f: nn.Module  # I -> g's parameter pytree
  primary: primary_lib.Primary

  def __call__(self, cond: jax.Array, x: jax.Array) -> jax.Array:
    return self.primary.apply(self.f(cond), x)


class EmbeddingModel(nn.Module):
  """h_I(x) = q([x, e(I)]): a fixed network q sees x next to an embedding e(I)."""

  e: nn.Module  # I -> [embedding_dim]
  q: nn.Module  # (x [points, d], e [embedding_dim]) -> [points, out]

  def __call__(self, cond: jax.Array, x: jax.Array) -> jax.Array:
    embedding = self.e(jnp.reshape(cond, (-1,)))
    return self.q(jnp.reshape(x, (x.shape[0], -1)), embedding)


class StandardModel(nn.Module):
  """h_I(x) = net([x, I]): one network on the concatenated input."""

  net: nn.Module  # (x [points, d], I [m2]) -> [points, out]

  def __call__(self, cond: jax.Array, x: jax.Array) -> jax.Array:
    return self.net(jnp.reshape(x, (x.shape[0], -1)), jnp.reshape(cond, (-1,)))


def apply_batched(model: nn.Module, variables, cond: jax.Array, x: jax.Array) -> jax.Array:
  """h_{I_b}(x_b) for a batch: cond [B, *cond_shape], x [B, points, ...] -> [B, points, out]."""
  return jax.vmap(model.apply, in_axes=(None, 0, 0))(variables, cond, x)


def _widths(width: int, depth: int) -> tuple[int, ...]:
  return (int(width),) * int(depth)


def create_primary(primary_config: ml_collections.ConfigDict, *, example_x: jax.Array,
                   output_dim: int) -> primary_lib.Primary:
  """The primary g named by `primary_config.name`, for points like example_x [points, ...]."""
  name = primary_config.name
  if name == "mlp":
    module = nets.MLP(tuple(primary_config.widths) + (output_dim,),
                      activation=primary_config.activation,
                      use_bias=primary_config.use_bias)
    example_x = jnp.reshape(example_x, (example_x.shape[0], -1))
  elif name == "conv":
    if example_x.ndim != 4:
      raise ConfigError(
          f"model.primary.name='conv' needs image points [points, H, W, C]; "
          f"the data gives points of shape {tuple(example_x.shape[1:])}")
    module = nets.ConvNet(tuple(primary_config.channels), primary_config.kernel_size,
                          primary_config.strides, output_dim,
                          activation=primary_config.activation,
                          use_bias=primary_config.use_bias)
  else:
    raise ConfigError(
        f"unknown config.model.primary.name {name!r}; choose one of {PRIMARY_NAMES}")
  primary = primary_lib.from_linen(module, example_x)
  if name == "mlp":  # accept unflattened points (e.g. images) for an MLP primary
    flat_apply = primary.apply
    primary = primary_lib.Primary(
        template=primary.template, init=primary.init, name=primary.name,
        apply=lambda theta, x: flat_apply(theta, jnp.reshape(x, (x.shape[0], -1))))
  return primary


def create_model(model_config: ml_collections.ConfigDict, *, example_cond: jax.Array,
                 example_x: jax.Array, output_dim: int):
  """Builds the conditioned model named by `model_config.kind`.

  Args:
    model_config: `config.model`.
    example_cond: one conditioning input [*cond_shape].
    example_x: points for one conditioning input [points, *x_shape].
    output_dim: size of each point's output.

  Returns:
    (model, primary): the Linen module and, for a hypernetwork, its Primary
    (else None). `model.apply(variables, cond, x)` -> [points, output_dim].
  """
  kind = model_config.kind
  if kind == "hypernet":
    primary = create_primary(model_config.primary, example_x=example_x,
                             output_dim=output_dim)
    f = PerTensorHeads(primary, _widths(model_config.f_width, model_config.f_depth),
                       activation=model_config.activation,
                       head_init=model_config.head_init,
                       head_init_scale=model_config.head_init_scale)
    return HypernetModel(f=f, primary=primary), primary
  if kind == "embedding":
    e = nets.MLP(_widths(model_config.e_width, model_config.e_depth)
                 + (int(model_config.embedding_dim),),
                 activation=model_config.activation)
    q = nets.ConditionedMLP(tuple(model_config.q_widths) + (output_dim,),
                            activation=model_config.primary.activation,
                            use_bias=model_config.primary.use_bias)
    return EmbeddingModel(e=e, q=q), None
  if kind == "standard":
    net = nets.ConditionedMLP(tuple(model_config.standard_widths) + (output_dim,),
                              activation=model_config.activation)
    return StandardModel(net=net), None
  raise ConfigError(f"unknown config.model.kind {kind!r}; choose one of {MODEL_KINDS}")
