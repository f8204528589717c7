"""The hypernetwork h_I(x) = g(x; f(I)): `HypernetModel` and `hypernetwork(...)`.

`hypernetwork(primary, generator=...)` checks its arguments and builds a
HypernetModel whose f (generators.py, film.py) emits exactly the parameter pytree
of the primary g (primary.py); `calibrate_hyperfan` rescales its output layer.
Re-exported by hypernets.models, beside the embedding and standard models.
"""

import dataclasses
import re
from typing import Any, Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hypernets import film as film_lib
from hypernets import generators
from hypernets import nets
from hypernets import per_example_conv
from hypernets import precision
from hypernets import primary as primary_lib
from hypernets.errors import ConfigError


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
