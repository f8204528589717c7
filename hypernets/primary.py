"""Any Flax module as a primary network g: a parameter template and a pure apply.

A `Primary` is what a hypernetwork needs to know about g:
  * `template`: the pytree of `jax.ShapeDtypeStruct` of g's parameters, read with
    `jax.eval_shape` (no parameters are materialised);
  * `apply(theta, x)`: g(x; theta) as a pure function of a parameter pytree theta
    with exactly that structure (evaluation mode, g's initial state);
  * `init(key)`: a sample of g's own initial parameters (used to initialise f so
    that f(I) starts where g's own initialiser would put it);
  * for stateful g (BatchNorm statistics, Dropout): `state`, the non-parameter
    variables g keeps (shared by every conditioning input, never generated), and
    `apply_with_state(theta, state, x, *, train, rng) -> (y, new_state)`.
"""

import dataclasses
import functools
import sys
from typing import Any, Callable, Sequence, TYPE_CHECKING

import chex
import flax.errors
import flax.linen as nn
import jax
import jax.numpy as jnp

from hypernets import params as params_lib
from hypernets.errors import ConfigError

if TYPE_CHECKING:
  from flax import nnx  # imported where used: ~0.2 s of every process's start

PyTree = Any


def unique_leaf_names(paths: Sequence[str]) -> list[str]:
  """Flax-safe names for leaf paths: '/' -> '_', made unique by a numeric suffix.

  'proj/bias' and a raw parameter 'proj_bias' would both be 'proj_bias'; the later
  one in `paths` order becomes 'proj_bias_1' (or the first free suffix).
  """
  names, taken = [], set()
  for path in paths:
    name = path.replace("/", "_") or "root"
    candidate, k = name, 0
    while candidate in taken:
      k += 1
      candidate = f"{name}_{k}"
    taken.add(candidate)
    names.append(candidate)
  return names


@dataclasses.dataclass(frozen=True, eq=False)
class Primary:
  """A primary network g seen as pure functions over its parameter pytree.

  Hashed by identity so it can be a field of a Flax module.

  Attributes:
    template: ShapeDtypeStructs of g's parameters (what f emits).
    apply: apply(theta, x) -> y; for a stateful g: evaluation mode with `state`.
    init: init(key) -> a sample of g's own initial parameters.
    name: for messages.
    state: g's non-parameter variables ({} if none), e.g. {'batch_stats': ...}.
    apply_with_state: (theta, state, x, *, train, rng) -> (y, new_state); `rng`
      (a key or None) feeds g's random streams (dropout); `train` selects
      training behaviour (batch statistics, dropout on).
    rng_streams: the random streams g draws from (e.g. ('dropout',)).
  """

  template: PyTree
  apply: Callable[[PyTree, jax.Array], jax.Array]
  init: Callable[[jax.Array], PyTree]
  name: str = "primary"
  state: PyTree = dataclasses.field(default_factory=dict)
  apply_with_state: Callable[..., tuple[jax.Array, PyTree]] | None = None
  rng_streams: tuple[str, ...] = ()

  @property
  def treedef(self) -> jax.tree_util.PyTreeDef:
    return jax.tree_util.tree_structure(self.template)

  @property
  def leaves(self) -> list[jax.ShapeDtypeStruct]:
    return jax.tree_util.tree_leaves(self.template)

  @property
  def leaf_paths(self) -> list[str]:
    """'/'-joined key paths of the leaves, e.g. 'Dense_0/kernel'."""
    paths = jax.tree_util.tree_flatten_with_path(self.template)[0]
    return [jax.tree_util.keystr(path, simple=True, separator="/") for path, _ in paths]

  @property
  def leaf_names(self) -> list[str]:
    """Unique Flax-safe names of the leaves ('Dense_0_kernel', ...): unique_leaf_names."""
    return unique_leaf_names(self.leaf_paths)

  @property
  def num_params(self) -> int:
    """N_g: the number of scalars in g's parameter pytree."""
    return params_lib.count_params(self.template)

  @property
  def is_stateful(self) -> bool:
    """Whether g keeps non-parameter state or draws random numbers."""
    return bool(jax.tree_util.tree_leaves(self.state)) or bool(self.rng_streams)

  def run(self, theta: PyTree, state: PyTree, x: jax.Array, *, train: bool = False,
          rng: jax.Array | None = None) -> tuple[jax.Array, PyTree]:
    """(g(x; theta), g's new state); a stateless g returns `state` unchanged."""
    chex.assert_trees_all_equal_shapes_and_dtypes(theta, self.template)
    if self.apply_with_state is None:
      return self.apply(theta, x), state
    return self.apply_with_state(theta, state, x, train=train, rng=rng)


def _stream_rngs(streams: Sequence[str], rng: jax.Array | None):
  """{stream: key} for Linen's `rngs=`, one independent key per stream."""
  if not streams:
    return None
  rng = jax.random.key(0) if rng is None else rng
  return {s: jax.random.fold_in(rng, i) for i, s in enumerate(streams)}


def _linen_rng_streams(module: nn.Module, variables, example_x,
                       call_kwargs) -> tuple[str, ...]:
  """The random streams g draws from in training mode: () or ('dropout',)."""
  mutable = [k for k in variables if k != "params"]
  for streams in ((), ("dropout",)):
    try:
      jax.eval_shape(lambda v, x, s=streams: module.apply(
          v, x, rngs=_stream_rngs(s, jax.random.key(0)), mutable=mutable, **call_kwargs),
                     variables, example_x)
      return streams
    except flax.errors.InvalidRngError:
      continue
  raise ConfigError(
      f"primary {type(module).__name__} draws from a random stream other than "
      "'dropout'; name its streams with from_linen(..., rng_streams=...)")


def from_linen(module: nn.Module, example_x: jax.Array, *, train_arg: str | None = None,
               rng_streams: Sequence[str] | None = None) -> Primary:
  """Wraps a Linen module g; `example_x` is a batch of inputs, e.g. [points, m1].

  Non-parameter collections (e.g. 'batch_stats') become g's `state`: shared by
  every conditioning input, updated in training (mutable), never generated.

  Args:
    module: g.
    example_x: [points, ...] inputs of one conditioning input.
    train_arg: name of g's boolean call argument that switches training mode
      (e.g. 'train' for `__call__(x, train)`); None if g has none.
    rng_streams: g's random streams (Linen `make_rng` names); None: detect
      ('dropout' if g needs it in training mode).
  """
  example_x = jnp.asarray(example_x)
  train_kwargs = (lambda train: {train_arg: train}) if train_arg else (lambda train: {})
  # Linen falls back to the 'params' stream for any stream missing at init.
  init_rngs = lambda key: {"params": key}  # pylint: disable=unnecessary-lambda-assignment
  abstract = jax.eval_shape(functools.partial(module.init, **train_kwargs(False)),
                            init_rngs(jax.random.key(0)), example_x)
  if rng_streams is None:
    rng_streams = _linen_rng_streams(module, abstract, example_x, train_kwargs(True))
  rng_streams = tuple(rng_streams)
  if not jax.tree_util.tree_leaves(abstract.get("params", {})):
    raise ConfigError(f"primary {type(module).__name__} has no parameters")
  collections = sorted(set(abstract) - {"params"})
  state = ({k: v for k, v in module.init(init_rngs(jax.random.key(0)), example_x,
                                         **train_kwargs(False)).items() if k != "params"}
           if collections else {})

  def apply_with_state(theta, state, x, *, train=False, rng=None):
    variables = {"params": theta, **state}
    rngs = _stream_rngs(rng_streams, rng)
    if not state:
      return module.apply(variables, x, rngs=rngs, **train_kwargs(train)), state
    y, updated = module.apply(variables, x, rngs=rngs, mutable=list(state),
                              **train_kwargs(train))
    return y, ({**state, **updated} if train else state)

  def apply(theta, x):
    return apply_with_state(theta, state, x, train=False)[0]

  def init(key):
    return module.init(init_rngs(key), example_x, **train_kwargs(False))["params"]

  stateful = bool(collections) or bool(rng_streams)
  return Primary(template=abstract["params"], apply=apply, init=init,
                 name=type(module).__name__, state=state,
                 apply_with_state=apply_with_state if stateful else None,
                 rng_streams=rng_streams)


def _fresh(state):
  """New Variables with the same values (merging them never mutates the originals)."""
  return jax.tree.map(lambda v: v, state)


def from_nnx(module: "nnx.Module") -> Primary:
  """Wraps an NNX module g: its `nnx.Param` state, as a pure dict, is what f emits.

  Other variables (e.g. `nnx.BatchStat`) are g's `state`: shared by every
  conditioning input and updated in training. Random streams (Dropout) are
  reseeded from the key each call gets, so g never mutates the module it was built
  from and works under jit and vmap. Training calls run `module.train()`,
  evaluation `module.eval()` (Dropout on/off, BatchNorm batch/running statistics).
  `init` returns the module's current parameters whatever the key: NNX modules
  are constructed already initialised.
  """
  from flax import nnx  # pylint: disable=g-import-not-at-top,redefined-outer-name
  graphdef, params, rng_state, rest = nnx.split(module, nnx.Param, nnx.RngState, ...)
  pure = nnx.to_pure_dict(params)
  if not jax.tree_util.tree_leaves(pure):
    raise ConfigError(f"primary {type(module).__name__} has no nnx.Param")
  template = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), pure)
  state = nnx.to_pure_dict(rest)
  has_rngs = bool(jax.tree_util.tree_leaves(rng_state))

  def apply_with_state(theta, state, x, *, train=False, rng=None):
    param_vars, rest_vars = _fresh(params), _fresh(rest)
    nnx.replace_by_pure_dict(param_vars, theta)
    if jax.tree_util.tree_leaves(state):
      nnx.replace_by_pure_dict(rest_vars, state)
    g = nnx.merge(graphdef, param_vars, _fresh(rng_state), rest_vars)
    if has_rngs:
      rng = jax.random.key(0) if rng is None else rng
      for i, (_, stream) in enumerate(nnx.iter_graph(g)):
        if isinstance(stream, nnx.RngStream):
          stream.key.set_value(jax.random.fold_in(rng, i))
          stream.count.set_value(jnp.zeros(stream.count.shape, jnp.uint32))
    if train:
      g.train()
    else:
      g.eval()
    y = g(x)
    new_state = nnx.to_pure_dict(nnx.split(g, nnx.Param, nnx.RngState, ...)[3])
    return y, (new_state if train else state)

  def apply(theta, x):
    return apply_with_state(theta, state, x, train=False)[0]

  def init(key):
    del key
    return pure

  stateful = bool(jax.tree_util.tree_leaves(state)) or has_rngs
  return Primary(template=template, apply=apply, init=init, name=type(module).__name__,
                 state=state, apply_with_state=apply_with_state if stateful else None,
                 rng_streams=("dropout",) if has_rngs else ())


def as_primary(module, example_x: jax.Array | None = None) -> Primary:
  """Returns a Primary for a Linen module (needs `example_x`), an NNX module or a Primary."""
  if isinstance(module, Primary):
    return module
  # An NNX module exists only once flax.nnx is imported: no need to import it here.
  nnx_module = getattr(sys.modules.get("flax.nnx"), "Module", None)
  if nnx_module is not None and isinstance(module, nnx_module):
    return from_nnx(module)
  if isinstance(module, nn.Module):
    if example_x is None:
      raise ConfigError("a Linen primary needs example_x to read its parameter shapes")
    return from_linen(module, example_x)
  raise ConfigError(
      f"primary must be a flax.linen or flax.nnx Module, got {type(module).__name__}")
