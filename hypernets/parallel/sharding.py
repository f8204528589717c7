"""Meshes and shardings: one jitted program over all devices.

`config.mesh.shape` over `config.mesh.axis_names` (default (-1, 1) over
('data', 'model'): every device on the data axis). The data axis shards the
conditioning inputs of each batch, or, with `config.mesh.shard_seeds`, the seed
axis of a seeds-as-a-batch run (padded up to a multiple of the axis). Parameters
are replicated, except that `config.mesh.shard_heads` splits large generator heads
over the model axis. The training rows are replicated, or, with
`config.mesh.shard_train_data`, loaded per process and split over 'data', each
device drawing its share of every batch from its own rows.
"""

import math
from typing import Any

import jax
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import ml_collections
import numpy as np

from hypernets.errors import ConfigError

DEFAULT_AXIS_NAMES = ("data", "model")


def mesh_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """config.mesh, or the default (all devices on 'data') for configs without one."""
  if "mesh" in config:
    return config.mesh
  return ml_collections.ConfigDict(dict(shape=(-1, 1), axis_names=DEFAULT_AXIS_NAMES,
                                        shard_seeds=False, shard_heads=False))


def create_mesh(mesh_cfg: ml_collections.ConfigDict, devices=None) -> Mesh:
  """A Mesh of `devices` (default: all) with shape mesh_cfg.shape (one -1 allowed)."""
  devices = list(jax.devices() if devices is None else devices)
  shape, names = list(mesh_cfg.shape), tuple(mesh_cfg.axis_names)
  if len(shape) != len(names):
    raise ConfigError(f"config.mesh.shape {tuple(shape)} and config.mesh.axis_names "
                      f"{names} differ in length")
  if names[0] != "data":
    raise ConfigError(f"config.mesh.axis_names must start with 'data', got {names}")
  if not all(isinstance(s, int) and not isinstance(s, bool) and (s == -1 or s >= 1)
             for s in shape):
    raise ConfigError(f"config.mesh.shape {tuple(shape)} must hold integers >= 1 "
                      "(and at most one -1: all remaining devices)")
  if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
    raise ConfigError(f"config.mesh.axis_names {names} must be distinct non-empty names")
  if shape.count(-1) > 1:
    raise ConfigError(f"config.mesh.shape {tuple(shape)} has more than one -1")
  known = math.prod(s for s in shape if s != -1)
  if -1 in shape:
    shape[shape.index(-1)] = len(devices) // max(known, 1)
  if math.prod(shape) != len(devices) or min(shape) < 1:
    raise ConfigError(f"config.mesh.shape {tuple(mesh_cfg.shape)} does not fit "
                      f"{len(devices)} devices")
  return Mesh(np.asarray(devices).reshape(shape), names)


def data_axis_size(mesh: Mesh) -> int:
  return mesh.shape["data"]


def state_shardings(state: Any, mesh: Mesh, *, shard_seeds: bool, shard_heads: bool) -> Any:
  """NamedShardings for a seeds-as-a-batch state (every leaf [num_seeds, ...]).

  The seed axis is sharded over 'data' if `shard_seeds`, else replicated. With
  `shard_heads`, generator head kernels [S, width, size] split `size` over 'model'
  where it divides evenly.
  """
  seed_spec = "data" if shard_seeds else None
  model_size = mesh.shape.get("model", 1)

  def spec(path, leaf):
    if np.ndim(leaf) == 0:
      return NamedSharding(mesh, P())
    dims = [seed_spec] + [None] * (np.ndim(leaf) - 1)
    name = jax.tree_util.keystr(path, simple=True, separator="/")
    if (shard_heads and model_size > 1 and "/head_" in f"/{name}"
        and name.endswith("kernel") and leaf.shape[-1] % model_size == 0):
      dims[-1] = "model"
    return NamedSharding(mesh, P(*dims))

  return jax.tree_util.tree_map_with_path(spec, state)


def padded_num_seeds(*, mesh: Mesh, num_seeds: int, shard_seeds: bool) -> int:
  """How many seeds a run trains: num_seeds, rounded up to the data axis if sharded.

  The extra seeds (config.seed + num_seeds, ...) are ordinary seeds that fill the
  last shard; results, logged train metrics and the returned state drop them, so
  100 seeds on 8 devices train as 8 shards of 13 and report the 100.
  """
  if not shard_seeds:
    return num_seeds
  return -(-num_seeds // data_axis_size(mesh)) * data_axis_size(mesh)


def check_divisible(*, mesh: Mesh, batch_conditions: int, shard_seeds: bool) -> None:
  """A batch split over the data axis must split evenly; else one clear line."""
  size = data_axis_size(mesh)
  if not shard_seeds and batch_conditions % size:
    raise ConfigError(f"config.batch.conditions={batch_conditions} must be a multiple of "
                      f"the data axis ({size} devices), or set config.mesh.shard_seeds "
                      "to split seeds instead")


def local_data_devices(mesh: Mesh) -> int:
  """Positions of the data axis held by this process's devices."""
  local = {d.id for d in jax.local_devices()}
  positions = {index[0] for index, device in np.ndenumerate(mesh.devices)
               if device.id in local}
  return len(positions)


def global_rows(local_rows: Any, mesh: Mesh) -> Any:
  """This process's training rows [n, ...] (each leaf) as its part of one global array
  split over 'data'. n is cut to a multiple of the process's data-axis devices; every
  process must hold the same n (dataset.shard_indices gives that)."""
  devices = local_data_devices(mesh)
  n = len(jax.tree.leaves(local_rows)[0]) // devices * devices
  return jax.tree.map(
      lambda a: jax.make_array_from_process_local_data(batch_sharding(mesh), np.asarray(a[:n])),
      local_rows)


def sample_on_each_device(sample, train: Any, key: jax.Array, *, mesh: Mesh,
                          num_conditions: int, points_per_condition: int):
  """A batch drawn where the training rows live: `train` [N, ...] is split over 'data'.

  Device d of the data axis draws num_conditions / D conditioning inputs from its
  own N / D rows with fold_in(key, d); the result is the batch [num_conditions, ...]
  split over 'data', so no training row crosses devices or hosts. Every row is
  still distinct; the batch is stratified over the shards (one share from each).
  """
  size = data_axis_size(mesh)

  def local(train_block, key):
    key = jax.random.fold_in(key, jax.lax.axis_index("data"))
    return sample(train_block, key, num_conditions=num_conditions // size,
                  points_per_condition=points_per_condition)

  return jax.shard_map(local, mesh=mesh, in_specs=(P("data"), P()),
                       out_specs=P("data"))(train, key)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Conditioning inputs (leading axis of a batch) split over 'data'."""
  return NamedSharding(mesh, P("data"))
