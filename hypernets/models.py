"""The three conditioned models and `create_model(config)`.

Each is a Linen module whose `__call__(cond, x)` maps ONE conditioning input
cond [*cond_shape] and a batch of points x [points, *x_shape] to [points, out].
Batching over conditioning inputs is `apply_batched` (a `jax.vmap`), never a loop.
"""

import functools
import re
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from hypernets import generators
from hypernets import nets
from hypernets import per_example_conv
from hypernets import precision
from hypernets import primary as primary_lib
from hypernets.errors import ConfigError

MODEL_KINDS = ("hypernet", "embedding", "standard")
PRIMARY_NAMES = ("mlp", "conv")


class SharedLeaves(nn.Module):
  """Leaves of g that are ordinary trainable parameters (not generated).

  Each starts at a sample of g's own initialiser. Returns {leaf index: array}.
  """

  primary: primary_lib.Primary
  indices: tuple[int, ...]

  @nn.compact
  def __call__(self) -> dict[int, jax.Array]:
    paths, leaves = self.primary.leaf_paths, self.primary.leaves

    def leaf_init(i):
      return lambda key: jax.tree_util.tree_leaves(self.primary.init(key))[i]

    return {i: self.param(paths[i].replace("/", "_"), leaf_init(i)) for i in self.indices}


class HypernetModel(nn.Module):
  """h_I(x) = g(x; theta_I): f emits g's weights (all, or those not in `shared`).

  Attributes:
    f: a generator (generators.py): I -> list of the leaves in `f.specs`, or, with
      `film` set, I -> per-layer (gamma, beta) modulating g's shared weights.
    primary: the primary network g.
    shared: indices of g's leaves that are ordinary shared parameters (collection
      'g_shared'); with `film`, every leaf is shared.
    film: the layers FiLM modulates, or None.
    compute_dtype: 'float32', or 'bfloat16' for mixed precision (precision.py):
      theta_I is then cast so that g itself computes in bf16.
  """

  f: nn.Module
  primary: primary_lib.Primary
  shared: tuple[int, ...] = ()
  film: tuple[generators.FilmLayer, ...] | None = None
  compute_dtype: str = "float32"

  @nn.compact
  def generate(self, cond: jax.Array):
    """theta_I: g's full parameter pytree for one conditioning input."""
    num_leaves = len(self.primary.leaves)
    shared = (SharedLeaves(self.primary, self.shared, name="g_shared")()
              if self.shared else {})
    if self.film is not None:
      leaves = generators.apply_film([shared[i] for i in range(num_leaves)], self.film,
                                     self.f(cond))
    else:
      generated = dict(zip((spec.index for spec in self.f.specs), self.f(cond)))
      leaves = [generated[i] if i in generated else shared[i] for i in range(num_leaves)]
    leaves = precision.cast_floats(leaves, precision.compute_dtype_of(self.compute_dtype))
    return jax.tree_util.tree_unflatten(self.primary.treedef, leaves)

  def __call__(self, cond: jax.Array, x: jax.Array) -> jax.Array:
    theta = self.generate(cond)
    # Convs whose kernels vary with I run as batched matmuls (per_example_conv.py).
    varying = ([layer.kernel_index for layer in self.film] if self.film is not None
               else [spec.index for spec in self.f.specs])
    with per_example_conv.as_matmuls([self.primary.leaf_paths[i] for i in varying]):
      return self.primary.apply(theta, x)


def select_leaves(primary: primary_lib.Primary, pattern: str) -> tuple[int, ...]:
  """Indices of g's leaves whose path ('Dense_0/kernel', ...) matches regex `pattern`."""
  try:
    regex = re.compile(pattern)
  except re.error as e:
    raise ConfigError(f"config.model.generated_params={pattern!r} is not a regular "
                      f"expression: {e}") from None
  indices = tuple(i for i, path in enumerate(primary.leaf_paths) if regex.search(path))
  if not indices:
    raise ConfigError(f"config.model.generated_params={pattern!r} matches none of g's "
                      f"parameters {primary.leaf_paths}")
  return indices


def hypernetwork(primary: primary_lib.Primary, *, generator: str = "heads",
                 trunk_widths: Sequence[int] = (64, 64), activation: str = "relu",
                 generated: str = ".*", init: str = "primary", init_scale: float = 0.01,
                 rank: int = 4, chunk_size: int = 256, chunk_embedding_dim: int = 8,
                 chunk_hidden: Sequence[int] = (), init_scheme: str = "lecun"
                 ) -> HypernetModel:
  """A HypernetModel for `primary` with the named generator kind.

  Args:
    primary: g (see primary.from_linen / from_nnx).
    generator: one of generators.GENERATORS.
    trunk_widths: hidden widths of f's trunk.
    activation: trunk activation.
    generated: regex over g's leaf paths; matching leaves are generated, the rest
      are ordinary shared parameters (ignored by 'film', which shares all).
    init: how f's output layer starts (generators.INITS).
    init_scale: variance scale of the I-dependent part for 'primary' init / film.
    rank, chunk_size, chunk_embedding_dim, chunk_hidden: 'lowrank' / 'chunked' sizes.
    init_scheme: how f's trunk (and a 'lecun', i.e. plain, output layer) starts
      (nets.INIT_SCHEMES); g's own init is the primary's.
  """
  trunk_widths = tuple(int(w) for w in trunk_widths)
  if generator == "film":
    layers = generators.film_layers(primary)
    f = generators.FilmGenerator(layers, trunk_widths, activation, init_scale,
                                 init_scheme=init_scheme)
    return HypernetModel(f=f, primary=primary,
                         shared=tuple(range(len(primary.leaves))), film=layers)
  indices = select_leaves(primary, generated)
  specs = generators.leaf_specs(primary, indices=indices)
  common = dict(primary=primary, specs=specs, trunk_widths=trunk_widths,
                activation=activation, init=init, init_scale=init_scale,
                init_scheme=init_scheme)
  if generator == "heads":
    f = generators.PerTensorHeads(**common)
  elif generator == "lowrank":
    f = generators.LowRankGenerator(**common, rank=int(rank))
  elif generator == "chunked":
    f = generators.ChunkedGenerator(**common, chunk_size=int(chunk_size),
                                    chunk_embedding_dim=int(chunk_embedding_dim),
                                    chunk_hidden=tuple(chunk_hidden))
  else:
    raise ConfigError(f"unknown config.model.generator {generator!r}; choose one of "
                      f"{generators.GENERATORS}")
  shared = tuple(i for i in range(len(primary.leaves)) if i not in indices)
  return HypernetModel(f=f, primary=primary, shared=shared)


def calibrate_hyperfan(model: nn.Module, key: jax.Array, conds: jax.Array) -> nn.Module:
  """For hyperfan inits: the model with f.feature_sq_norm = mean ||features(I)||^2.

  Hyperfan sets the variance of f's output layer from the squared norm of the
  features it maps; measured over a batch of conditioning inputs conds [B, ...]
  (instead of the single input seen at init) the generated weights have the
  target variance on average over I. Other models are returned unchanged.
  Initialise the returned model with the same `key`: only the output layer changes.
  """
  if not (isinstance(model, HypernetModel)
          and getattr(model.f, "init", None) in ("hyperfan_in", "hyperfan_out")):
    return model
  variables = model.init(key, conds[0], method=HypernetModel.generate)

  def sq_norm(cond):
    _, state = model.apply(variables, cond, method=HypernetModel.generate,
                           mutable=["intermediates"])
    return state["intermediates"]["f"]["feature_sq_norm"][0]

  # A jnp scalar, not a float: calibration may run under jit/vmap (one per seed).
  mean_sq_norm = jnp.mean(jax.vmap(sq_norm)(conds))
  return model.clone(f=model.f.clone(feature_sq_norm=mean_sq_norm))


class EmbeddingModel(nn.Module):
  """h_I(x) = q([x, e(I)]): a fixed network q sees x next to an embedding e(I)."""

  e: nn.Module  # I -> [embedding_dim]
  q: nn.Module  # (x [points, d], e [embedding_dim]) -> [points, out]
  compute_dtype: str = "float32"  # see precision.py

  def __call__(self, cond: jax.Array, x: jax.Array) -> jax.Array:
    embedding = self.e(jnp.reshape(cond, (-1,)))
    return self.q(jnp.reshape(x, (x.shape[0], -1)), embedding)


class StandardModel(nn.Module):
  """h_I(x) = net([x, I]): one network on the concatenated input."""

  net: nn.Module  # (x [points, d], I [m2]) -> [points, out]
  compute_dtype: str = "float32"  # see precision.py

  def __call__(self, cond: jax.Array, x: jax.Array) -> jax.Array:
    return self.net(jnp.reshape(x, (x.shape[0], -1)), jnp.reshape(cond, (-1,)))


def apply_one(model: nn.Module, variables, cond: jax.Array, x: jax.Array) -> jax.Array:
  """h_I(x) for one conditioning input: cond [*cond_shape], x [points, ...] -> [points, out].

  In the model's `compute_dtype` (inputs and parameters cast at this boundary);
  the output is float32 either way.
  """
  dtype = precision.compute_dtype_of(getattr(model, "compute_dtype", "float32"))
  if dtype is None:
    return model.apply(variables, cond, x)
  cast = functools.partial(precision.cast_floats, dtype=dtype)
  return model.apply(cast(variables), cast(cond), cast(x)).astype(jnp.float32)


def apply_batched(model: nn.Module, variables, cond: jax.Array, x: jax.Array) -> jax.Array:
  """h_{I_b}(x_b) for a batch: cond [B, *cond_shape], x [B, points, ...] -> [B, points, out]."""
  return jax.vmap(functools.partial(apply_one, model), in_axes=(None, 0, 0))(
      variables, cond, x)


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
    model = hypernetwork(
        primary, generator=model_config.generator,
        trunk_widths=_widths(model_config.f_width, model_config.f_depth),
        activation=model_config.activation, generated=model_config.generated_params,
        init=model_config.f_init, init_scale=model_config.f_init_scale,
        rank=model_config.rank, chunk_size=model_config.chunk_size,
        chunk_embedding_dim=model_config.chunk_embedding_dim,
        chunk_hidden=tuple(model_config.chunk_hidden), init_scheme=init_scheme)
    return model.clone(compute_dtype=compute_dtype), primary
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
