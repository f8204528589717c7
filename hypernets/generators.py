"""Hypernetworks f: conditioning input I -> (part of) the parameter pytree of g.

Kinds (`generator` of models.hypernetwork, `config.model.generator`):
  heads    trunk(I) -> one linear head per generated leaf of g (the paper's f).
  lowrank  trunk(I) -> linear bottleneck h(I) of width `rank` -> theta = W h(I) + b
           (Theorem 5's form).
  chunked  one shared generator emits fixed-size chunks from [trunk(I), c_k] with
           learned chunk embeddings c_k; the flat output is cut into g's leaves and
           scaled by a learned per-leaf gain. Its size depends on N_g only through
           the number of chunks.
  film     g keeps shared base weights; f emits a per-output-unit scale and shift of
           every layer it can identify (film.py).
Generated deltas on a frozen g (`DeltaHeads`): theta_I = theta0 + Delta(I), Delta
full or low-rank (A_I B_I) per leaf, starting at zero.

Generators see g through `LeafSpec`s, one per generated leaf, which carry the
variance g's own initialiser gives that leaf, or the constant it sets it to
(LayerNorm scale = 1, zero biases). `init` chooses how f's last layer starts:
  'primary'       f(I) starts at a sample of g's own init plus a small I-dependent
                  part (variance scale `init_scale`); for 'chunked', whose shared
                  generator cannot hold a per-leaf sample, it is 'hyperfan_in';
  'lecun'         a plain Dense, as in the paper's code, started like every other
                  layer (`init_scheme`, nets.INIT_SCHEMES; 'torch' is the paper's);
  'hyperfan_in' / 'hyperfan_out'  (Chang, Sahni & Tan, ICLR 2020) the generated
                  leaves start with the variance of g's own fan-in initialiser, or
                  its fan-out counterpart. Leaves g initialises to a constant c start
                  at c plus an I-dependent part of variance init_scale * c^2 (for
                  c = 0: init_scale * the mean variance of the random leaves), so a
                  LayerNorm scale starts near 1, not near 0.
"""

import dataclasses
import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hypernets import flat_random
from hypernets.errors import ConfigError
from hypernets.nets import layer_inits
from hypernets.film import FilmGenerator  # pylint: disable=unused-import
from hypernets.film import FilmLayer  # pylint: disable=unused-import
from hypernets.film import apply_film  # pylint: disable=unused-import
from hypernets.film import film_layers  # pylint: disable=unused-import
from hypernets.nets import MLP
from hypernets.primary import Primary

GENERATORS = ("heads", "lowrank", "chunked", "film")
INITS = ("primary", "lecun", "hyperfan_in", "hyperfan_out")
HYPERFAN_INITS = ("hyperfan_in", "hyperfan_out")
DELTAS = ("full", "lowrank")


@dataclasses.dataclass(frozen=True)
class LeafSpec:
  """One leaf of g that f generates."""

  index: int  # position among g's leaves (tree_leaves order)
  path: str  # e.g. 'Dense_0/kernel'
  shape: tuple[int, ...]
  dtype: jnp.dtype
  init_variance: float  # variance g's own initialiser gives this leaf
  name: str  # unique Flax-safe name (primary.unique_leaf_names)
  constant: float | None = None  # g's init sets every entry to this value, else None

  @property
  def size(self) -> int:
    return int(np.prod(self.shape, dtype=int))

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
  """LeafSpecs of g's leaves (all, or `indices`), init variances from `num_samples` inits.

  A leaf equal to one value everywhere in every sample is a constant leaf.
  """
  samples = [jax.tree_util.tree_leaves(primary.init(key))
             for key in jax.random.split(jax.random.key(0), num_samples)]
  specs = []
  for i, (path, name, leaf) in enumerate(zip(primary.leaf_paths, primary.leaf_names,
                                             primary.leaves)):
    if indices is not None and i not in indices:
      continue
    values = np.stack([np.asarray(s[i], np.float64) for s in samples])
    first = values.reshape(-1)[0] if values.size else 0.0
    constant = float(first) if values.size and np.all(values == first) else None
    specs.append(LeafSpec(i, path, tuple(leaf.shape), jnp.dtype(leaf.dtype),
                          float(values.var()), name=name, constant=constant))
  return tuple(specs)


def constant_noise_variance(spec: LeafSpec, specs: Sequence[LeafSpec],
                            init_scale: float) -> float:
  """Variance of the I-dependent part of a constant leaf under hyperfan."""
  if spec.constant:
    return init_scale * spec.constant ** 2
  random = [s.init_variance for s in specs if s.constant is None]
  return init_scale * (float(np.mean(random)) if random else 1.0)


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
    return (std * flat_random.normal(key, shape)).astype(dtype)

  return init


def check_init(init: str, *, argument: str = "init") -> None:
  """Raises ConfigError naming `argument` unless `init` is one of INITS."""
  if init not in INITS:
    raise ConfigError(f"unknown {argument} {init!r}; choose one of {INITS}")


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

  @property
  def needs_calibration(self) -> bool:
    """Whether the output layer's init uses E||features||^2 (models.calibrate_hyperfan)."""
    return self.init in HYPERFAN_INITS

  def trunk(self, cond: jax.Array) -> jax.Array:
    """trunk(I): [*cond_shape] -> [trunk_widths[-1]]."""
    return MLP(self.trunk_widths, self.activation, activate_final=True,
               init_scheme=self.init_scheme, name="trunk")(jnp.reshape(cond, (-1,)))

  def _sq_norm(self, sq_norm: jax.Array):
    """The calibrated E||features||^2 if set, else `sq_norm` (this input's); records
    this input's value under 'intermediates' for `models.calibrate_hyperfan`."""
    self.sow("intermediates", "feature_sq_norm", sq_norm)
    return sq_norm if self.feature_sq_norm is None else self.feature_sq_norm

  def _fan_target(self, spec: LeafSpec, init: str) -> tuple[float, float]:
    """(start value, variance of the I-dependent part) of a leaf under hyperfan `init`."""
    if spec.constant is None:
      return 0.0, spec.target_variance(init)
    return spec.constant, constant_noise_variance(spec, self.specs, self.init_scale)

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
    check_init(self.init)
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
        start, variance = self._fan_target(spec, self.init)
        kernel_init = _scaled_normal(variance, sq_norm)
        bias_init = nn.initializers.constant(start)
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
    check_init(self.init)
    h = nn.Dense(self.rank, name="bottleneck")(self.trunk(cond))  # [rank]
    sq_norm = self._sq_norm(jnp.sum(jnp.square(h)))
    total = sum(spec.size for spec in self.specs)
    keys_for = lambda key: jax.random.split(key, len(self.specs))  # pylint: disable=unnecessary-lambda-assignment

    def kernel_init(key, shape, dtype=jnp.float32):
      if self.init == "lecun":
        return layer_inits(self.init_scheme, self.rank)[0](key, shape, dtype)
      if self.init == "primary":
        return nn.initializers.variance_scaling(
            self.init_scale, "fan_in", "truncated_normal")(key, shape, dtype)
      return jnp.concatenate([
          _scaled_normal(self._fan_target(spec, self.init)[1], sq_norm)(
              k, (self.rank, spec.size), dtype)
          for k, spec in zip(keys_for(key), self.specs)], axis=1)

    def bias_init(key, shape, dtype=jnp.float32):
      if self.init == "lecun":
        return layer_inits(self.init_scheme, self.rank)[1](key, shape, dtype)
      if self.init == "primary":
        return jnp.concatenate([
            _primary_leaf_init(self.primary, spec)(k, (spec.size,), dtype)
            for k, spec in zip(keys_for(key), self.specs)])
      return jnp.concatenate([jnp.full((spec.size,), self._fan_target(spec, self.init)[0],
                                       dtype) for spec in self.specs])

    w = self.param("W", kernel_init, (self.rank, total))
    b = self.param("b", bias_init, (total,))
    return self._split(h @ w + b)


class ChunkedGenerator(_GeneratorBase):
  """A shared generator emits `chunk_size` numbers per learned chunk embedding.

  chunk_k = G([trunk(I), c_k]); the chunks are concatenated, cut into g's leaves,
  and each leaf is multiplied by a learned scalar gain (initialised to the target
  standard deviation under hyperfan, so every leaf starts with its own variance
  although G is shared). A leaf g initialises to a non-zero constant c also gets a
  learned scalar offset starting at c. init 'primary' is 'hyperfan_in' here.
  Maps I [*cond_shape] -> list of generated leaves.
  """

  chunk_size: int = 256
  chunk_embedding_dim: int = 8
  chunk_hidden: Sequence[int] = ()

  @property
  def needs_calibration(self) -> bool:
    return self.init != "lecun"

  @nn.compact
  def __call__(self, cond: jax.Array) -> list[jax.Array]:
    check_init(self.init)
    fan_init = self.init if self.init in HYPERFAN_INITS else "hyperfan_in"
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
        leaves.append((self.param(f"gain_{spec.name}", nn.initializers.ones, ()) * leaf)
                      .astype(spec.dtype))
        continue
      # Hyperfan: the leaf's raw variance (at this input, rescaled to the average
      # input) is set to the target by the gain, exactly per leaf although the
      # chunk generator is shared.
      start, variance = self._fan_target(spec, fan_init)
      raw_variance = jnp.mean(jnp.square(leaf)) * sq_norm_ratio
      gain0 = jnp.sqrt(variance / jnp.maximum(raw_variance, 1e-12))
      gain = self.param(f"gain_{spec.name}",
                        lambda key, shape, dtype=jnp.float32, g=gain0: jnp.full(shape, g, dtype),
                        ())
      out = gain * leaf
      if start:
        out = out + self.param(f"offset_{spec.name}", nn.initializers.constant(start), ())
      leaves.append(out.astype(spec.dtype))
    return leaves


class DeltaHeads(_GeneratorBase):
  """Delta(I) for a frozen g: one zero-initialised head per selected leaf.

  delta 'full': Delta_leaf = head(trunk(I)), reshaped to the leaf. 'lowrank': for
  a leaf [..., n] with m = prod(leading axes) >= 2 axes, Delta = A_I B_I reshaped,
  A_I [m, rank] (starts at a fixed random matrix, N(0, 1/m), plus a small
  I-dependent part), B_I [rank, n] (starts at zero, as LoRA's B); vectors get a
  full delta. Every Delta starts at exactly zero, so h_I starts as the frozen g.
  Maps I [*cond_shape] -> list of Delta leaves.
  """

  delta: str = "full"
  rank: int = 4

  @property
  def needs_calibration(self) -> bool:
    return False

  @nn.compact
  def __call__(self, cond: jax.Array) -> list[jax.Array]:
    h = self.trunk(cond)
    zeros = nn.initializers.zeros
    small = nn.initializers.variance_scaling(self.init_scale, "fan_in", "truncated_normal")
    deltas = []
    for spec in self.specs:
      if self.delta == "lowrank" and len(spec.shape) >= 2:
        m, n = spec.size // spec.shape[-1], spec.shape[-1]
        a = nn.Dense(m * self.rank, kernel_init=small,
                     bias_init=nn.initializers.normal(1.0 / math.sqrt(m)),
                     name=f"delta_A_{spec.name}")(h).reshape(m, self.rank)
        b = nn.Dense(self.rank * n, kernel_init=zeros, bias_init=zeros,
                     name=f"delta_B_{spec.name}")(h).reshape(self.rank, n)
        delta = (a @ b).reshape(spec.shape)
      else:
        delta = nn.Dense(spec.size, kernel_init=zeros, bias_init=zeros,
                         name=f"delta_{spec.name}")(h).reshape(spec.shape)
      deltas.append(delta.astype(spec.dtype))
    return deltas
