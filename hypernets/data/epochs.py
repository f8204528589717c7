"""Batch order of a fixed training set: random rows per step, or epochs.

`config.batch.sampling`:
  random  each step draws `B` distinct rows uniformly (dataset.choose_rows): rows
          repeat and are missed at random across steps.
  epoch   the official PyTorch protocol (DataLoader(shuffle=True)): a fresh
          permutation of the N rows every epoch, every row once per epoch.

Design of 'epoch', for one compiled step of fixed shape and O(B) work per step:
the training stream is the concatenation of one permutation per epoch, and step s
takes stream positions [s B, (s + 1) B). Position p is row perm_e(p mod N) with
e = p div N. No row is dropped: where N is not a multiple of B, the epoch's last
partial batch is completed by the first rows of the next epoch's permutation (a
batch then straddles two epochs), so `num_epochs` epochs are num_epochs N / B
steps. perm_e is a keyed pseudo-random bijection of [0, N), computed per position
(never materialised): a 4-round Feistel network on [0, 4^h) >= N with round keys
from fold_in(order_key, e), restricted to [0, N) by cycle-walking (apply it again
while the value is >= N; fewer than 4 rounds of walking on average since 4^h < 4N).

The sampler sees only the step's key fold_in(data_key(seed), step), from which no
key constant over an epoch can be recovered, so the permutations come from
`data.seed` (`order_key`) and are the same for every seed of a run; seeds still
differ in initialisation and in their other draws (points, rotation angles).
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections

from hypernets.data.dataset import sample_batch
from hypernets.data.dataset import Split
from hypernets.data.dataset import take_rows
from hypernets.errors import ConfigError

SAMPLINGS = ("random", "epoch")
_ROUNDS = 4


def _mix(x: jax.Array) -> jax.Array:
  """A 32-bit integer hash (lowbias32): uint32 [...] -> uint32 [...]."""
  x = x ^ (x >> 16)
  x = x * jnp.uint32(0x7FEB352D)
  x = x ^ (x >> 15)
  x = x * jnp.uint32(0x846CA68B)
  return x ^ (x >> 16)


def _half_bits(num_rows: int) -> int:
  """h with 4^h >= num_rows (at least 1)."""
  bits = max(1, (num_rows - 1).bit_length())
  return (bits + 1) // 2


def _feistel(x: jax.Array, round_keys: jax.Array, half: int) -> jax.Array:
  """A bijection of [0, 4^half): uint32 x [...], round_keys uint32 [_ROUNDS]."""
  mask = jnp.uint32((1 << half) - 1)
  left, right = x >> half, x & mask
  for i in range(_ROUNDS):
    left, right = right, left ^ (_mix(right ^ round_keys[i]) & mask)
  return (left << half) | right


def permute(index: jax.Array, round_keys: jax.Array, *, num_rows: int) -> jax.Array:
  """perm(index) for ONE index in [0, num_rows): a keyed bijection of [0, num_rows).

  Cycle-walking keeps the Feistel bijection on [0, 4^h) inside [0, num_rows).
  """
  half = _half_bits(num_rows)
  first = _feistel(index.astype(jnp.uint32), round_keys, half)
  walk = jax.lax.while_loop(lambda y: y >= num_rows,
                            lambda y: _feistel(y, round_keys, half), first)
  return walk.astype(jnp.int32)


def epoch_rows(order_key: jax.Array, step: jax.Array | int, *, num_rows: int,
               batch_size: int) -> jax.Array:
  """Rows of step `step` under epoch ordering: int32 [batch_size] (module docstring).

  `order_key` fixes the permutations of all epochs (epoch e uses fold_in(key, e)).
  """
  positions = (jnp.asarray(step, jnp.int32) * batch_size
               + jnp.arange(batch_size, dtype=jnp.int32))  # [B] stream positions
  epochs, indices = positions // num_rows, positions % num_rows

  def one(epoch, index):
    keys = jax.random.bits(jax.random.fold_in(order_key, epoch), (_ROUNDS,), jnp.uint32)
    return permute(index, keys, num_rows=num_rows)

  return jax.vmap(one)(epochs, indices)


def steps_per_epochs(num_epochs: int, *, num_rows: int, batch_size: int) -> int:
  """Steps that visit every row `num_epochs` times: ceil(num_epochs N / B)."""
  return -(-num_epochs * num_rows // batch_size)


def sample_epoch_batch(split: Split, key: jax.Array, *, num_conditions: int,
                       points_per_condition: int, step: jax.Array | int,
                       order_seed: int) -> Split:
  """The batch of `step` under epoch ordering (rows: `epoch_rows` under
  `order_key(order_seed)`); points as `dataset.sample_batch` draws them (all, or
  with replacement from `key`)."""
  rows = epoch_rows(order_key(order_seed), step, num_rows=split.num_conditions,
                    batch_size=num_conditions)
  return take_rows(split, rows, key, points_per_condition=points_per_condition)


def sampling_of(data_config: ml_collections.ConfigDict) -> str:
  """The batch order the data config carries (`data.sampling`, a reference to
  `batch.sampling`); 'random' when absent. Raises ConfigError on another value."""
  sampling = data_config.get("sampling", "random")
  if sampling not in SAMPLINGS:
    raise ConfigError(f"config.batch.sampling is {sampling!r}; choose one of {SAMPLINGS}")
  return sampling


def order_key(data_seed: int) -> jax.Array:
  """The key of the epoch permutations: from data.seed, apart from its other draws.

  Samplers carry the int seed and make the key where they run (inside the jitted
  step), so a dataset built under `jax.jit` holds no traced key.
  """
  return jax.random.fold_in(jax.random.key(data_seed), 0x0E90C4)


def split_sampler(data_config: ml_collections.ConfigDict):
  """The sampler of a fixed Split for `data_config`'s batch order."""
  if sampling_of(data_config) == "random":
    return sample_batch
  return functools.partial(sample_epoch_batch, order_seed=int(data_config.seed))


def epoch_rows_dropping_last(key: jax.Array, step: jax.Array | int, *, num_rows: int,
                             batch_size: int) -> jax.Array:
  """Rows of step `step` when each epoch is num_rows // batch_size full batches of a
  fresh permutation (fold_in(key, epoch)) and its last partial batch is dropped, as
  a DataLoader with drop_last=True (the assumption checks' protocol). int32 [B],
  distinct within the batch and within the epoch.
  """
  steps_per_epoch = num_rows // batch_size
  step = jnp.asarray(step, jnp.int32)
  epoch, index = step // steps_per_epoch, step % steps_per_epoch
  positions = index * batch_size + jnp.arange(batch_size, dtype=jnp.int32)
  keys = jax.random.bits(jax.random.fold_in(key, epoch), (_ROUNDS,), jnp.uint32)
  return jax.vmap(lambda p: permute(p, keys, num_rows=num_rows))(positions)
