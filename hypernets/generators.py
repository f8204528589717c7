"""Hypernetworks f: conditioning input I -> (part of) the parameter pytree of g.

Kinds (`config.model.generator`):
  heads    trunk(I) -> one linear head per generated leaf of g (the paper's f).
  lowrank  trunk(I) -> linear bottleneck h(I) of width `rank` -> theta = W h(I) + b
           (Theorem 5's form).
  chunked  one shared generator emits fixed-size chunks from [trunk(I), c_k] with
           learned chunk embeddings c_k; the flat output is cut into g's leaves and
           scaled by a learned per-leaf gain. Its size depends on N_g only through
           the number of chunks.
  film     g keeps shared base weights; f emits a per-output-unit scale and shift of
           every layer (functa-style FiLM), applied to g's kernels and biases.

Generators see g through `LeafSpec`s, one per generated leaf, which carry the
variance g's own initialiser gives that leaf; `init` chooses how f's last layer is
initialised: 'primary' (f(I) starts at a sample of g's own init plus a small
I-dependent part), 'lecun' (a plain Dense, as in the paper's code, started like every
other layer: `init_scheme`, nets.INIT_SCHEMES; 'torch' is the paper's), 'hyperfan_in' /
'hyperfan_out' (Chang, Sahni & Tan, ICLR 2020: the generated leaves start with the
variance of g's own fan-in initialiser, or its fan-out counterpart).
"""

import dataclasses
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hypernets.errors import ConfigError
from hypernets.nets import layer_inits
from hypernets.nets import MLP
from hypernets.primary import Primary

GENERATORS = ("heads", "lowrank", "chunked", "film")
INITS = ("primary", "lecun", "hyperfan_in", "hyperfan_out")


@dataclasses.dataclass(frozen=True)
class LeafSpec:
  """One leaf of g that f generates."""

  index: int  # position among g's leaves (tree_leaves order)
  path: str  # e.g. 'Dense_0/kernel'
  shape: tuple[int, ...]
  dtype: jnp.dtype
  init_variance: float  # variance g's own initialiser gives this leaf

  @property
  def size(self) -> int:
    return int(np.prod(self.shape, dtype=int))

  @property
  def name(self) -> str:
    return self.path.replace("/", "_")

  def target_variance(self, init: str) -> float:
    """Variance the generated leaf should start with under hyperfan `init`.

    hyperfan_in: g's own (fan-in) init variance. hyperfan_out: the same gain over
    fan-out instead of fan-in, v * fan_in / fan_out, for kernels [..., in, out].
    """
    if init == "hyperfan_out" and len(self.shape) >= 2:
      return self.init_variance * self.shape[-2] / self.shape[-1]
    return self.init_variance


def leaf_specs(primary: Primary, *, num_samples: int = 16,
               indices: Sequence[int] | None = None) -> tuple[LeafSpec, ...]:
  """LeafSpecs of g's leaves (all, or `indices`), init variances from `num_samples` inits."""
  samples = [jax.tree_util.tree_leaves(primary.init(key))
             for key in jax.random.split(jax.random.key(0), num_samples)]
  specs = []
  for i, (path, leaf) in enumerate(zip(primary.leaf_paths, primary.leaves)):
    if indices is not None and i not in indices:
      continue
    values = np.stack([np.asarray(s[i], np.float64) for s in samples])
    specs.append(LeafSpec(i, path, tuple(leaf.shape), jnp.dtype(leaf.dtype),
                          float(values.var())))
  return tuple(specs)


def _primary_leaf_init(primary: Primary, spec: LeafSpec):
  """Initialiser returning that leaf of a fresh sample of g's own init, flattened."""

  def init(key, shape, dtype=jnp.float32):
    leaf = jax.tree_util.tree_leaves(primary.init(key))[spec.index]
    return jnp.reshape(leaf, shape).astype(dtype)

  return init


def _scaled_normal(variance, sq_norm):
  """N(0, variance / sq_norm) initialiser: a linear map of an input with squared
  norm `sq_norm` then has output variance `variance`."""

  def init(key, shape, dtype=jnp.float32):
    std = jnp.sqrt(variance / jnp.maximum(sq_norm, 1e-12))
    return (std * jax.random.normal(key, shape)).astype(dtype)

  return init


def _check_init(init: str, allowed=INITS) -> None:
  if init not in allowed:
    raise ConfigError(f"unknown config.model.f_init {init!r} for this generator; "
                      f"choose one of {tuple(allowed)}")


class _GeneratorBase(nn.Module):
  """Fields shared by the generators that emit leaves."""

  primary: Primary
  specs: tuple[LeafSpec, ...]
  trunk_widths: Sequence[int]
  activation: str = "relu"
  init: str = "primary"
  init_scale: float = 0.01  # 'primary' init: variance scale of the I-dependent part
  # E||trunk(I)||^2 over the data; None: use the value at the init input.
  feature_sq_norm: float | jax.Array | None = None
  init_scheme: str = "lecun"  # trunk layers and 'lecun' (plain) output layers

  def trunk(self, cond: jax.Array) -> jax.Array:
    """trunk(I): [*cond_shape] -> [trunk_widths[-1]]."""
    return MLP(self.trunk_widths, self.activation, activate_final=True,
               init_scheme=self.init_scheme, name="trunk")(jnp.reshape(cond, (-1,)))

  def _sq_norm(self, sq_norm: jax.Array):
    """The calibrated E||features||^2 if set, else `sq_norm` (this input's); records
    this input's value under 'intermediates' for `models.calibrate_hyperfan`."""
    self.sow("intermediates", "feature_sq_norm", sq_norm)
    return sq_norm if self.feature_sq_norm is None else self.feature_sq_norm

  def _split(self, flat: jax.Array) -> list[jax.Array]:
    """Cuts a flat vector [>= sum of sizes] into the generated leaves."""
    leaves, offset = [], 0
    for spec in self.specs:
      leaves.append(jnp.reshape(flat[offset:offset + spec.size], spec.shape)
                    .astype(spec.dtype))
      offset += spec.size
    return leaves


class PerTensorHeads(_GeneratorBase):
  """f(I) = heads(trunk(I)): one linear head per generated leaf of g.

  The paper's hypernetwork: a linear projection of a lower-dimensional bottleneck
  (the trunk's last layer) onto every weight of g; splitting the projection per
  leaf lets each leaf keep its shape, dtype and initialisation.
  Maps I [*cond_shape] -> list of generated leaves.
  """

  @nn.compact
  def __call__(self, cond: jax.Array) -> list[jax.Array]:
    _check_init(self.init)
    h = self.trunk(cond)
    sq_norm = self._sq_norm(jnp.sum(jnp.square(h)))
    leaves = []
    for spec in self.specs:
      if self.init == "primary":
        kernel_init = nn.initializers.variance_scaling(self.init_scale, "fan_in",
                                                       "truncated_normal")
        bias_init = _primary_leaf_init(self.primary, spec)
      elif self.init == "lecun":
        kernel_init, bias_init = layer_inits(self.init_scheme, h.shape[-1])
      else:
        kernel_init = _scaled_normal(spec.target_variance(self.init), sq_norm)
        bias_init = nn.initializers.zeros
      out = nn.Dense(spec.size, kernel_init=kernel_init, bias_init=bias_init,
                     name=f"head_{spec.name}")(h)
      leaves.append(jnp.reshape(out, spec.shape).astype(spec.dtype))
    return leaves


class LowRankGenerator(_GeneratorBase):
  """theta = W h(I) + b with h(I) = Dense_rank(trunk(I)) (Theorem 5's selector form).

  Maps I [*cond_shape] -> list of generated leaves.
  """

  rank: int = 4

  @nn.compact
  def __call__(self, cond: jax.Array) -> list[jax.Array]:
    _check_init(self.init)
    h = nn.Dense(self.rank, name="bottleneck")(self.trunk(cond))  # [rank]
    sq_norm = self._sq_norm(jnp.sum(jnp.square(h)))
    total = sum(spec.size for spec in self.specs)

    def kernel_init(key, shape, dtype=jnp.float32):
      if self.init == "lecun":
        return layer_inits(self.init_scheme, self.rank)[0](key, shape, dtype)
      if self.init == "primary":
        return nn.initializers.variance_scaling(
            self.init_scale, "fan_in", "truncated_normal")(key, shape, dtype)
      blocks = [_scaled_normal(spec.target_variance(self.init), sq_norm)(
          k, (self.rank, spec.size), dtype)
                for k, spec in zip(jax.random.split(key, len(self.specs)), self.specs)]
      return jnp.concatenate(blocks, axis=1)

    def bias_init(key, shape, dtype=jnp.float32):
      if self.init == "lecun":
        return layer_inits(self.init_scheme, self.rank)[1](key, shape, dtype)
      if self.init != "primary":
        return jnp.zeros(shape, dtype)
      keys = jax.random.split(key, len(self.specs))
      return jnp.concatenate([
          _primary_leaf_init(self.primary, spec)(k, (spec.size,), dtype)
          for k, spec in zip(keys, self.specs)])

    w = self.param("W", kernel_init, (self.rank, total))
    b = self.param("b", bias_init, (total,))
    return self._split(h @ w + b)


class ChunkedGenerator(_GeneratorBase):
  """A shared generator emits `chunk_size` numbers per learned chunk embedding.

  chunk_k = G([trunk(I), c_k]); the chunks are concatenated, cut into g's leaves,
  and each leaf is multiplied by a learned scalar gain (initialised to the target
  standard deviation under hyperfan, so every leaf starts with its own variance
  although G is shared). Maps I [*cond_shape] -> list of generated leaves.
  """

  chunk_size: int = 256
  chunk_embedding_dim: int = 8
  chunk_hidden: Sequence[int] = ()

  @nn.compact
  def __call__(self, cond: jax.Array) -> list[jax.Array]:
    _check_init(self.init, ("lecun", "hyperfan_in", "hyperfan_out"))
    total = sum(spec.size for spec in self.specs)
    num_chunks = math.ceil(total / self.chunk_size)
    h = self.trunk(cond)
    embeddings = self.param("chunk_embeddings", nn.initializers.normal(1.0),
                            (num_chunks, self.chunk_embedding_dim))
    z = jnp.concatenate(
        [jnp.broadcast_to(h, (num_chunks, h.shape[-1])), embeddings], axis=-1)
    for i, width in enumerate(self.chunk_hidden):
      z = MLP((width,), self.activation, activate_final=True, name=f"chunk_hidden_{i}")(z)
    this_sq_norm = jnp.mean(jnp.sum(jnp.square(z), axis=-1))
    # Calibrated E||z||^2 over I relative to this input's (1 when uncalibrated).
    sq_norm_ratio = self._sq_norm(this_sq_norm) / this_sq_norm
    chunks = nn.Dense(self.chunk_size, name="chunk_out")(z)  # [num_chunks, chunk_size]
    raw = self._split(jnp.reshape(chunks, (-1,)))
    leaves = []
    for spec, leaf in zip(self.specs, raw):
      if self.init == "lecun":
        gain_init = nn.initializers.ones
      else:
        # Hyperfan: the leaf's raw variance (at this input, rescaled to the average
        # input) is set to the target by the gain, exactly per leaf although the
        # chunk generator is shared.
        raw_variance = jnp.mean(jnp.square(leaf)) * sq_norm_ratio
        gain0 = jnp.sqrt(spec.target_variance(self.init) / jnp.maximum(raw_variance, 1e-12))
        gain_init = lambda key, shape, dtype=jnp.float32, g=gain0: jnp.full(shape, g, dtype)
      gain = self.param(f"gain_{spec.name}", gain_init, ())
      leaves.append((gain * leaf).astype(spec.dtype))
    return leaves


@dataclasses.dataclass(frozen=True)
class FilmLayer:
  """A layer of g that FiLM modulates: its kernel leaf, bias leaf (or None), width."""

  kernel_index: int
  bias_index: int | None
  features: int
  name: str


def film_layers(primary: Primary) -> tuple[FilmLayer, ...]:
  """g's layers: every leaf named 'kernel' with a sibling 'bias' (if any).

  The last axis of a Dense or Conv kernel is its output features, so scaling that
  axis and the bias by (1 + gamma) and adding beta to the bias is exactly FiLM of
  the layer's pre-activations: (x W + b)(1 + gamma) + beta.
  """
  paths = primary.leaf_paths
  index = {p: i for i, p in enumerate(paths)}
  layers = []
  for i, (path, leaf) in enumerate(zip(paths, primary.leaves)):
    parent, _, leaf_name = path.rpartition("/")
    if leaf_name == "kernel":
      bias_path = f"{parent}/bias" if parent else "bias"
      layers.append(FilmLayer(i, index.get(bias_path), int(leaf.shape[-1]),
                              parent.replace("/", "_") or "root"))
  if not layers:
    raise ConfigError("config.model.generator='film' needs a primary with 'kernel' "
                      f"leaves; this one has {paths}")
  return tuple(layers)


class FilmGenerator(nn.Module):
  """f(I) -> per-layer (gamma, beta), each [features]; starts near the identity.

  Maps I [*cond_shape] -> tuple of (gamma, beta) per FilmLayer.
  """

  layers: tuple[FilmLayer, ...]
  trunk_widths: Sequence[int]
  activation: str = "relu"
  init_scale: float = 0.01
  init_scheme: str = "lecun"  # trunk layers

  @nn.compact
  def __call__(self, cond: jax.Array):
    h = MLP(self.trunk_widths, self.activation, activate_final=True,
            init_scheme=self.init_scheme, name="trunk")(jnp.reshape(cond, (-1,)))
    init = nn.initializers.variance_scaling(self.init_scale, "fan_in", "truncated_normal")
    out = []
    for layer in self.layers:
      gamma_beta = nn.Dense(2 * layer.features, kernel_init=init,
                            name=f"film_{layer.name}")(h)
      out.append((gamma_beta[:layer.features], gamma_beta[layer.features:]))
    return tuple(out)


def apply_film(leaves: list[jax.Array], layers: tuple[FilmLayer, ...],
               modulations) -> list[jax.Array]:
  """g's leaves with each layer's kernel/bias modulated by (1 + gamma), + beta."""
  leaves = list(leaves)
  for layer, (gamma, beta) in zip(layers, modulations):
    kernel = leaves[layer.kernel_index]
    leaves[layer.kernel_index] = (kernel * (1.0 + gamma)).astype(kernel.dtype)
    if layer.bias_index is not None:
      bias = leaves[layer.bias_index]
      leaves[layer.bias_index] = (bias * (1.0 + gamma) + beta).astype(bias.dtype)
  return leaves
