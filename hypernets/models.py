"""The three conditioned models and `create_model(config)`.

The hypernetwork itself (`HypernetModel`, `hypernetwork(...)`) is defined in
hypernet_model.py and importable from here; the embedding method and the standard
network are defined here.

Each is a Linen module whose `__call__(cond, x, train=False)` maps ONE conditioning
input cond [*cond_shape] and a batch of points x [points, *x_shape] to
[points, out]. Batching over conditioning inputs is `apply_batched` (a
`jax.vmap`), never a loop.

Variable collections of a HypernetModel: 'params' (trainable: 'f', and 'g_shared'
for g's leaves that are ordinary parameters), 'g_state' (g's non-parameter state,
e.g. batch statistics: shared by every I, updated by `apply_batched_train`) and
'g_base' (the frozen pre-trained theta0 of generated deltas; never updated).
"""

import functools
from typing import Any

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from hypernets import generators
from hypernets import nets
from hypernets import precision
from hypernets import primary as primary_lib
from hypernets.errors import ConfigError
# The hypernetwork lives in hypernet_model.py; these names stay importable from here.
from hypernets.hypernet_model import FrozenTree  # pylint: disable=unused-import
from hypernets.hypernet_model import HypernetModel
from hypernets.hypernet_model import SharedLeaves  # pylint: disable=unused-import
from hypernets.hypernet_model import calibrate_hyperfan  # pylint: disable=unused-import
from hypernets.hypernet_model import hypernetwork
from hypernets.hypernet_model import select_leaves

MODEL_KINDS = ("hypernet", "embedding", "standard")
PRIMARY_NAMES = ("mlp", "conv")
# Collections a training step may update (the rest of the non-'params' ones are fixed).
MUTABLE_COLLECTIONS = ("g_state",)


class EmbeddingModel(nn.Module):
  """h_I(x) = q([x, e(I)]): a fixed network q sees x next to an embedding e(I)."""

  e: nn.Module  # I -> [embedding_dim]
  q: nn.Module  # (x [points, d], e [embedding_dim]) -> [points, out]
  compute_dtype: str = "float32"  # see precision.py

  def __call__(self, cond: jax.Array, x: jax.Array, train: bool = False) -> jax.Array:
    del train  # stateless
    embedding = self.e(jnp.reshape(cond, (-1,)))
    return self.q(jnp.reshape(x, (x.shape[0], -1)), embedding)


class StandardModel(nn.Module):
  """h_I(x) = net([x, I]): one network on the concatenated input."""

  net: nn.Module  # (x [points, d], I [m2]) -> [points, out]
  compute_dtype: str = "float32"  # see precision.py

  def __call__(self, cond: jax.Array, x: jax.Array, train: bool = False) -> jax.Array:
    del train  # stateless
    return self.net(jnp.reshape(x, (x.shape[0], -1)), jnp.reshape(cond, (-1,)))


def _cast_inputs(model, variables, cond, x):
  """(variables, cond, x) in the model's compute dtype; 'g_state' stays as it is."""
  dtype = precision.compute_dtype_of(getattr(model, "compute_dtype", "float32"))
  cast = functools.partial(precision.cast_floats, dtype=dtype)
  variables = {k: (v if k in MUTABLE_COLLECTIONS else cast(v)) for k, v in variables.items()}
  return variables, cast(cond), cast(x)


def apply_one(model: nn.Module, variables, cond: jax.Array, x: jax.Array) -> jax.Array:
  """h_I(x) for one conditioning input: cond [*cond_shape], x [points, ...] -> [points, out].

  Evaluation mode (g's running statistics, no dropout). In the model's
  `compute_dtype` (inputs and parameters cast at this boundary); the output is
  float32 either way.
  """
  variables, cond, x = _cast_inputs(model, variables, cond, x)
  return model.apply(variables, cond, x).astype(jnp.float32)


def apply_batched(model: nn.Module, variables, cond: jax.Array, x: jax.Array) -> jax.Array:
  """h_{I_b}(x_b) for a batch: cond [B, *cond_shape], x [B, points, ...] -> [B, points, out]."""
  chex.assert_equal_shape_prefix([cond, x], 1)
  return jax.vmap(functools.partial(apply_one, model), in_axes=(None, 0, 0))(
      variables, cond, x)


def apply_batched_train(model: nn.Module, variables, cond: jax.Array, x: jax.Array,
                        rng: jax.Array) -> tuple[jax.Array, dict]:
  """Training-mode h_{I_b}(x_b): (outputs [B, points, out], updated collections).

  g runs in training mode for every example; example b draws its dropout masks
  from split(rng, B)[b] (so they differ across examples and, with a per-step rng,
  across steps, and repeat for the same rng). g's state ('g_state') is shared by
  every I: the updated collections are the mean of the B examples' updates (float
  leaves; others from example 0). Without state they are {}.
  """
  chex.assert_equal_shape_prefix([cond, x], 1)
  keys = jax.random.split(rng, cond.shape[0])

  def one(variables, c, xb, key):
    variables, c, xb = _cast_inputs(model, variables, c, xb)
    y, updates = model.apply(variables, c, xb, train=True, rngs={"dropout": key},
                             mutable=list(MUTABLE_COLLECTIONS))
    return y.astype(jnp.float32), updates

  y, updates = jax.vmap(one, in_axes=(None, 0, 0, 0))(variables, cond, x, keys)
  mean = lambda a: (jnp.mean(a, axis=0).astype(a.dtype)  # pylint: disable=unnecessary-lambda-assignment
                    if jnp.issubdtype(a.dtype, jnp.floating) else a[0])
  return y, jax.tree.map(mean, dict(updates))


def split_variables(variables) -> tuple[Any, dict]:
  """(params, model_state): the trainable 'params' and every other collection."""
  variables = dict(variables)
  return variables.pop("params"), variables


def _widths(width: int, depth: int) -> tuple[int, ...]:
  return (int(width),) * int(depth)


def create_primary(primary_config: ml_collections.ConfigDict, *, example_x: jax.Array,
                   output_dim: int, init_scheme: str = "lecun") -> primary_lib.Primary:
  """The primary g named by `primary_config.name`, for points like example_x [points, ...];
  its layers start as `init_scheme` says (nets.INIT_SCHEMES)."""
  name = primary_config.name
  if name == "mlp":
    module = nets.MLP(tuple(primary_config.widths) + (output_dim,),
                      activation=primary_config.activation,
                      use_bias=primary_config.use_bias, init_scheme=init_scheme)
    example_x = jnp.reshape(example_x, (example_x.shape[0], -1))
  elif name == "conv":
    if example_x.ndim != 4:
      raise ConfigError(
          f"config.model.primary.name='conv' needs image points [points, H, W, C]; "
          f"the data gives points of shape {tuple(example_x.shape[1:])}")
    module = nets.ConvNet(tuple(primary_config.channels), primary_config.kernel_size,
                          primary_config.strides, output_dim,
                          activation=primary_config.activation,
                          use_bias=primary_config.use_bias, init_scheme=init_scheme)
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


def _check_hypernet_fields(model_config: ml_collections.ConfigDict,
                           primary: primary_lib.Primary) -> None:
  """The checks `hypernetwork` makes, naming config fields instead of its arguments."""
  from hypernets import config as config_lib  # pylint: disable=g-import-not-at-top
  root = {"model": model_config}
  config_lib.check_choice(root, "model.generator", generators.GENERATORS)
  config_lib.check_choice(root, "model.f_init", generators.INITS)
  config_lib.check_choice(root, "model.activation", sorted(nets.ACTIVATIONS))
  config_lib.check_int(root, "model.f_width", minimum=1)
  config_lib.check_int(root, "model.f_depth", minimum=1)
  config_lib.check_positive_float(root, "model.f_init_scale")
  if model_config.generator != "film":
    select_leaves(primary, model_config.generated_params,
                  argument="config.model.generated_params")


def create_model(model_config: ml_collections.ConfigDict, *, example_cond: jax.Array,
                 example_x: jax.Array, output_dim: int, compute_dtype: str = "float32"):
  """Builds the conditioned model named by `model_config.kind`.

  Args:
    model_config: `config.model`.
    example_cond: one conditioning input [*cond_shape].
    example_x: points for one conditioning input [points, *x_shape].
    output_dim: size of each point's output.
    compute_dtype: `config.compute_dtype` (precision.py); parameters stay float32.

  Returns:
    (model, primary): the Linen module and, for a hypernetwork, its Primary
    (else None). `model.apply(variables, cond, x)` -> [points, output_dim].
  """
  kind = model_config.kind
  # Every Dense/Conv of f's trunk, e, q, g and the standard net (and f's plain
  # output layer) starts as model.init_scheme says: 'lecun' (flax) or 'torch'.
  init_scheme = model_config.get("init_scheme", "lecun")
  if kind == "hypernet":
    primary = create_primary(model_config.primary, example_x=example_x,
                             output_dim=output_dim, init_scheme=init_scheme)
    _check_hypernet_fields(model_config, primary)
    model = hypernetwork(
        primary, generator=model_config.generator,
        trunk_widths=_widths(model_config.f_width, model_config.f_depth),
        activation=model_config.activation, generated=model_config.generated_params,
        init=model_config.f_init, init_scale=model_config.f_init_scale,
        rank=model_config.rank, chunk_size=model_config.chunk_size,
        chunk_embedding_dim=model_config.chunk_embedding_dim,
        chunk_hidden=tuple(model_config.chunk_hidden), init_scheme=init_scheme,
        compute_dtype=compute_dtype)
    return model, primary
  if kind == "embedding":
    e = nets.MLP(_widths(model_config.e_width, model_config.e_depth)
                 + (int(model_config.embedding_dim),),
                 activation=model_config.activation, init_scheme=init_scheme)
    q = nets.ConditionedMLP(tuple(model_config.q_widths) + (output_dim,),
                            activation=model_config.primary.activation,
                            use_bias=model_config.q_use_bias, init_scheme=init_scheme)
    return EmbeddingModel(e=e, q=q, compute_dtype=compute_dtype), None
  if kind == "standard":
    net = nets.ConditionedMLP(tuple(model_config.standard_widths) + (output_dim,),
                              activation=model_config.activation, init_scheme=init_scheme)
    return StandardModel(net=net, compute_dtype=compute_dtype), None
  raise ConfigError(f"unknown config.model.kind {kind!r}; choose one of {MODEL_KINDS}")


def has_train_mode(model: nn.Module) -> bool:
  """Whether the model behaves differently in training (a g with state or dropout)."""
  return isinstance(model, HypernetModel) and model.primary.is_stateful
