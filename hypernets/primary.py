"""Any Flax module as a primary network g: a parameter template and a pure apply.

A `Primary` is what a hypernetwork needs to know about g:
  * `template`: the pytree of `jax.ShapeDtypeStruct` of g's parameters, read with
    `jax.eval_shape` (no parameters are materialised);
  * `apply(theta, x)`: g(x; theta) as a pure function of a parameter pytree theta
    with exactly that structure;
  * `init(key)`: a sample of g's own initial parameters (used to initialise f so
    that f(I) starts where g's own initialiser would put it).
"""

import dataclasses
from typing import Any, Callable

import flax.linen as nn
from flax import nnx
import jax
import jax.numpy as jnp

from hypernets import params as params_lib
from hypernets.errors import ConfigError

PyTree = Any


@dataclasses.dataclass(frozen=True, eq=False)
class Primary:
  """A primary network g seen as pure functions over its parameter pytree.

  Hashed by identity so it can be a field of a Flax module.
  """

  template: PyTree
  apply: Callable[[PyTree, jax.Array], jax.Array]
  init: Callable[[jax.Array], PyTree]
  name: str = "primary"

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
  def num_params(self) -> int:
    """N_g: the number of scalars in g's parameter pytree."""
    return params_lib.count_params(self.template)



def from_linen(module: nn.Module, example_x: jax.Array) -> Primary:
  """Wraps a Linen module g; `example_x` is a batch of inputs, e.g. [points, m1].

  Only the 'params' collection may exist: a module with mutable state (BatchNorm
  statistics, caches) cannot have its whole state generated per input.
  """
  example_x = jnp.asarray(example_x)
  abstract = jax.eval_shape(module.init, jax.random.key(0), example_x)
  other = sorted(set(abstract) - {"params"})
  if other:
    raise ConfigError(
        f"primary {type(module).__name__} has variable collections {other} "
        "besides 'params'; only parameter-only modules can be generated "
        "(remove BatchNorm/state or use a stateless variant)")
  if not jax.tree_util.tree_leaves(abstract.get("params", {})):
    raise ConfigError(f"primary {type(module).__name__} has no parameters")

  def apply(theta, x):
    return module.apply({"params": theta}, x)

  def init(key):
    return module.init(key, example_x)["params"]

  return Primary(template=abstract["params"], apply=apply, init=init,
                 name=type(module).__name__)


def from_nnx(module: nnx.Module) -> Primary:
  """Wraps an NNX module g: its `nnx.Param` state, as a pure dict, is what f emits.

  Non-parameter state (e.g. BatchNorm statistics, RNG counters) is kept fixed at the
  module's current values. `init` returns the module's current parameters whatever
  the key: NNX modules are constructed already initialised.
  """
  graphdef, params, rest = nnx.split(module, nnx.Param, ...)
  pure = nnx.to_pure_dict(params)
  if not jax.tree_util.tree_leaves(pure):
    raise ConfigError(f"primary {type(module).__name__} has no nnx.Param")
  template = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), pure)

  def apply(theta, x):
    state = jax.tree.map(lambda v: v, params)  # fresh Variables, same structure
    nnx.replace_by_pure_dict(state, theta)
    return nnx.merge(graphdef, state, rest)(x)

  def init(key):
    del key
    return pure

  return Primary(template=template, apply=apply, init=init,
                 name=type(module).__name__)


def as_primary(module, example_x: jax.Array | None = None) -> Primary:
  """Returns a Primary for a Linen module (needs `example_x`), an NNX module or a Primary."""
  if isinstance(module, Primary):
    return module
  if isinstance(module, nnx.Module):
    return from_nnx(module)
  if isinstance(module, nn.Module):
    if example_x is None:
      raise ConfigError("a Linen primary needs example_x to read its parameter shapes")
    return from_linen(module, example_x)
  raise ConfigError(
      f"primary must be a flax.linen or flax.nnx Module, got {type(module).__name__}")
