"""The three conditioned models, `hypernetwork(...)` and `create_model(config)`.

Each is a Linen module whose `__call__(cond, x, train=False)` maps ONE conditioning
input cond [*cond_shape] and a batch of points x [points, *x_shape] to
[points, out]. Batching over conditioning inputs is `apply_batched` (a
`jax.vmap`), never a loop.

Variable collections of a HypernetModel: 'params' (trainable: 'f', and 'g_shared'
for g's leaves that are ordinary parameters), 'g_state' (g's non-parameter state,
e.g. batch statistics: shared by every I, updated by `apply_batched_train`) and
'g_base' (the frozen pre-trained theta0 of generated deltas; never updated).
"""

import dataclasses
import functools
import re
from typing import Any, Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from hypernets import film as film_lib
from hypernets import generators
from hypernets import nets
from hypernets import per_example_conv
from hypernets import precision
from hypernets import primary as primary_lib
from hypernets.errors import ConfigError

MODEL_KINDS = ("hypernet", "embedding", "standard")
PRIMARY_NAMES = ("mlp", "conv")
# Collections a training step may update (the rest of the non-'params' ones are fixed).
MUTABLE_COLLECTIONS = ("g_state",)


@dataclasses.dataclass(frozen=True, eq=False)
class FrozenTree:
  """A pytree held by a module field (hashed by identity), e.g. a pre-trained theta0."""

  tree: Any


class SharedLeaves(nn.Module):
  """Leaves of g that are ordinary trainable parameters (not generated).

  Each starts at a sample of g's own initialiser. Returns {leaf index: array}.
  """

  primary: primary_lib.Primary
  indices: tuple[int, ...]

  @nn.compact
  def __call__(self) -> dict[int, jax.Array]:
    names = self.primary.leaf_names

    def leaf_init(i):
      return lambda key: jax.tree_util.tree_leaves(self.primary.init(key))[i]

    return {i: self.param(names[i], leaf_init(i)) for i in self.indices}


class HypernetModel(nn.Module):
  """h_I(x) = g(x; theta_I): f emits g's weights (all, or those not in `shared`).

  Attributes:
    f: a generator (generators.py): I -> list of the leaves in `f.specs`; with
      `film` set, I -> per-layer (gamma, beta) modulating g's shared weights;
      with `base` set, I -> Delta(I) of the leaves in `f.specs`.
    primary: the primary network g.
    shared: indices of g's leaves that are ordinary shared parameters (collection
      'g_shared'); with `film`, every leaf is shared.
    film: the layers FiLM modulates, or None.
    base: a frozen theta0 (FrozenTree of g's parameter pytree): theta_I = theta0 +
      Delta(I) on f's leaves, theta0 elsewhere; kept in collection 'g_base'.
    compute_dtype: 'float32', or 'bfloat16' for mixed precision (precision.py):
      theta_I is then cast so that g itself computes in bf16.
  """

  f: nn.Module
  primary: primary_lib.Primary
  shared: tuple[int, ...] = ()
  film: tuple[film_lib.FilmLayer, ...] | None = None
  base: FrozenTree | None = None
  compute_dtype: str = "float32"

  @nn.compact
  def generate(self, cond: jax.Array):
    """theta_I: g's full parameter pytree for one conditioning input."""
    num_leaves = len(self.primary.leaves)
    shared = (SharedLeaves(self.primary, self.shared, name="g_shared")()
              if self.shared else {})
    if self.film is not None:
      leaves = film_lib.apply_film([shared[i] for i in range(num_leaves)], self.film,
                                   self.f(cond))
    elif self.base is not None:
      base = jax.tree_util.tree_leaves(
          self.variable("g_base", "theta0", lambda: self.base.tree).value)
      deltas = dict(zip((spec.index for spec in self.f.specs), self.f(cond)))
      leaves = [base[i] + deltas[i] if i in deltas else base[i] for i in range(num_leaves)]
    else:
      generated = dict(zip((spec.index for spec in self.f.specs), self.f(cond)))
      leaves = [generated[i] if i in generated else shared[i] for i in range(num_leaves)]
    theta = jax.tree_util.tree_unflatten(self.primary.treedef, leaves)
    chex.assert_trees_all_equal_shapes_and_dtypes(theta, self.primary.template)
    if jax.tree_util.tree_leaves(self.primary.state):
      # Declared here (the compact method); __call__ reads and updates it.
      self.variable("g_state", "state", lambda: self.primary.state)
    return precision.cast_floats(theta, precision.compute_dtype_of(self.compute_dtype))

  def __call__(self, cond: jax.Array, x: jax.Array, train: bool = False) -> jax.Array:
    """h_I(x): cond [*cond_shape], x [points, ...] -> [points, out].

    `train`: g in training mode (batch statistics, dropout from the 'dropout' rng);
    its state updates are kept when 'g_state' is mutable.
    """
    theta = self.generate(cond)
    # Convs whose kernels vary with I run as batched matmuls (per_example_conv.py).
    varying = ([layer.scale_index for layer in self.film if layer.scale_index is not None]
               if self.film is not None
               else [spec.index for spec in self.f.specs])
    as_matmuls = per_example_conv.as_matmuls([self.primary.leaf_paths[i] for i in varying])
    if not self.primary.is_stateful:
      with as_matmuls:
        return self.primary.apply(theta, x)
    has_state = bool(jax.tree_util.tree_leaves(self.primary.state))
    state = self.get_variable("g_state", "state") if has_state else {}
    rng = None
    if self.primary.rng_streams:
      rng = self.make_rng("dropout") if self.has_rng("dropout") else jax.random.key(0)
    with as_matmuls:
      y, new_state = self.primary.run(theta, state, x, train=train, rng=rng)
    if (train and has_state and self.is_mutable_collection("g_state")
        and not self.is_initializing()):
      self.put_variable("g_state", "state", jax.tree.map(
          lambda new, old: new.astype(old.dtype), new_state, state))
    return y


def select_leaves(primary: primary_lib.Primary, pattern: str, *,
                  argument: str = "generated") -> tuple[int, ...]:
  """Indices of g's leaves whose path ('Dense_0/kernel', ...) matches regex `pattern`.

  `argument` names the pattern in error messages.
  """
  try:
    regex = re.compile(pattern)
  except (re.error, TypeError) as e:
    raise ConfigError(f"{argument}={pattern!r} is not a regular expression: {e}") from None
  indices = tuple(i for i, path in enumerate(primary.leaf_paths) if regex.search(path))
  if not indices:
    raise ConfigError(f"{argument}={pattern!r} matches none of g's parameters "
                      f"{primary.leaf_paths}")
  return indices


def _bad(argument: str, value, why: str) -> ConfigError:
  return ConfigError(f"models.hypernetwork: {argument}={value!r} {why}")


def _check_positive_int(argument: str, value) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise _bad(argument, value, "must be a positive integer")
  return int(value)


def _check_base_params(primary: primary_lib.Primary, base_params):
  """theta0 as float arrays with exactly g's parameter structure, shapes and dtypes."""
  try:
    chex.assert_trees_all_equal_structs(base_params, primary.template)
  except AssertionError:
    raise _bad("base_params", type(base_params).__name__,
               f"must have g's parameter structure {primary.treedef}") from None
  for path, leaf, want in zip(primary.leaf_paths, jax.tree_util.tree_leaves(base_params),
                              primary.leaves):
    if tuple(np.shape(leaf)) != tuple(want.shape):
      raise _bad("base_params", "...", f"leaf {path} has shape {tuple(np.shape(leaf))}, "
                 f"g's is {tuple(want.shape)}")
  return jax.tree.map(lambda a, t: jnp.asarray(a, t.dtype), base_params, primary.template)


def hypernetwork(primary, *, generator: str = "heads",
                 trunk_widths: Sequence[int] = (64, 64), activation: str = "relu",
                 generated: str = ".*", init: str = "primary", init_scale: float = 0.01,
                 rank: int = 4, chunk_size: int = 256, chunk_embedding_dim: int = 8,
                 chunk_hidden: Sequence[int] = (), init_scheme: str = "lecun",
                 compute_dtype: str = "float32", base_params=None,
                 delta: str | None = None) -> HypernetModel:
  """A HypernetModel for `primary` with the named generator kind.

  Every argument is checked here: a bad one raises ConfigError naming it.

  Args:
    primary: g: a Primary (primary.from_linen / from_nnx) or an NNX module.
    generator: one of generators.GENERATORS.
    trunk_widths: hidden widths of f's trunk.
    activation: trunk activation (nets.ACTIVATIONS).
    generated: regex over g's leaf paths; matching leaves are generated (or get a
      delta), the rest are ordinary shared parameters (with `base_params`: frozen
      at theta0). 'film' ignores it and shares every leaf.
    init: how f's output layer starts (generators.INITS; ignored by 'film' and by
      deltas, which start at zero).
    init_scale: variance scale of the I-dependent part for 'primary' init, film,
      hyperfan's constant leaves and deltas' A_I.
    rank, chunk_size, chunk_embedding_dim, chunk_hidden: 'lowrank' / 'chunked'
      sizes; `rank` is also the rank of a 'lowrank' delta.
    init_scheme: how f's trunk (and a 'lecun', i.e. plain, output layer) starts
      (nets.INIT_SCHEMES); g's own init is the primary's.
    compute_dtype: 'float32' or 'bfloat16' (precision.py).
    base_params: a pre-trained theta0 of g (its parameter pytree). Then theta_I =
      theta0 + Delta(I) on the `generated` leaves, theta0 is frozen (collection
      'g_base', not trainable) and Delta starts at zero (generators.DeltaHeads).
    delta: 'full' (default with base_params) or 'lowrank' (A_I B_I per matrix).
  """
  primary = primary_lib.as_primary(primary)
  if generator not in generators.GENERATORS:
    raise _bad("generator", generator, f"is unknown; choose one of {generators.GENERATORS}")
  if init not in generators.INITS:
    raise _bad("init", init, f"is unknown; choose one of {generators.INITS}")
  if activation not in nets.ACTIVATIONS:
    raise _bad("activation", activation, f"is unknown; choose one of {sorted(nets.ACTIVATIONS)}")
  if init_scheme not in nets.INIT_SCHEMES:
    raise _bad("init_scheme", init_scheme, f"is unknown; choose one of {nets.INIT_SCHEMES}")
  if compute_dtype not in precision.COMPUTE_DTYPES:
    raise _bad("compute_dtype", compute_dtype,
               f"is unknown; choose one of {precision.COMPUTE_DTYPES}")
  if (isinstance(init_scale, bool) or not isinstance(init_scale, (int, float))
      or not np.isfinite(init_scale) or init_scale <= 0):
    raise _bad("init_scale", init_scale, "must be a finite number > 0")
  trunk_widths = tuple(_check_positive_int("trunk_widths", w) for w in trunk_widths)
  rank = _check_positive_int("rank", rank)
  chunk_size = _check_positive_int("chunk_size", chunk_size)
  chunk_embedding_dim = _check_positive_int("chunk_embedding_dim", chunk_embedding_dim)
  chunk_hidden = tuple(_check_positive_int("chunk_hidden", w) for w in chunk_hidden)
  if delta is not None and base_params is None:
    raise _bad("delta", delta, "needs base_params (the frozen theta0 it is added to)")
  if generator == "film":
    if base_params is not None:
      raise _bad("base_params", "...", "cannot be used with generator='film'")
    layers = film_lib.film_layers(primary)
    f = film_lib.FilmGenerator(layers, trunk_widths, activation, init_scale,
                               init_scheme=init_scheme)
    return HypernetModel(f=f, primary=primary, shared=tuple(range(len(primary.leaves))),
                         film=layers, compute_dtype=compute_dtype)
  indices = select_leaves(primary, generated)
  specs = generators.leaf_specs(primary, indices=indices)
  common = dict(primary=primary, specs=specs, trunk_widths=trunk_widths,
                activation=activation, init=init, init_scale=init_scale,
                init_scheme=init_scheme)
  if base_params is not None:
    delta = "full" if delta is None else delta
    if delta not in generators.DELTAS:
      raise _bad("delta", delta, f"is unknown; choose one of {generators.DELTAS}")
    if generator != "heads":
      raise _bad("generator", generator, "must be 'heads' with base_params (a delta has "
                 "one zero-initialised head per leaf)")
    base = FrozenTree(_check_base_params(primary, base_params))
    f = generators.DeltaHeads(**common, delta=delta, rank=rank)
    return HypernetModel(f=f, primary=primary, base=base, compute_dtype=compute_dtype)
  if generator == "heads":
    f = generators.PerTensorHeads(**common)
  elif generator == "lowrank":
    f = generators.LowRankGenerator(**common, rank=rank)
  else:
    f = generators.ChunkedGenerator(**common, chunk_size=chunk_size,
                                    chunk_embedding_dim=chunk_embedding_dim,
                                    chunk_hidden=chunk_hidden)
  shared = tuple(i for i in range(len(primary.leaves)) if i not in indices)
  return HypernetModel(f=f, primary=primary, shared=shared, compute_dtype=compute_dtype)


def calibrate_hyperfan(model: nn.Module, key: jax.Array, conds: jax.Array) -> nn.Module:
  """For hyperfan inits: the model with f.feature_sq_norm = mean ||features(I)||^2.

  Hyperfan sets the variance of f's output layer from the squared norm of the
  features it maps; measured over a batch of conditioning inputs conds [B, ...]
  (instead of the single input seen at init) the generated weights have the
  target variance on average over I. Other models are returned unchanged.
  Initialise the returned model with the same `key`: only the output layer changes.
  """
  if not (isinstance(model, HypernetModel)
          and getattr(model.f, "needs_calibration", False)):
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
