"""Per-host training data (config.mesh.shard_train_data): each process loads its share
of the rows, the rows stay split over 'data' and every device samples its own rows.

8-device checks run in a subprocess: XLA_FLAGS must be set before jax is imported.
The 2-process run is in tests/distributed_test.py.
"""

import json
import os
import subprocess
import sys

import chex
import numpy as np
import pytest
import tensorflow_datasets as tfds

from conftest import REPO_ROOT
from conftest import load_config
from conftest import TEST_XLA_FLAGS
from hypernets import data as data_lib
from hypernets.data import dataset as dataset_lib
from hypernets.data import images
from hypernets.errors import ConfigError
from hypernets import training


def test_shard_indices_are_disjoint_equal_and_cover_all_but_the_remainder():
  shards = [dataset_lib.shard_indices(10, (i, 3)) for i in range(3)]
  assert [s.tolist() for s in shards] == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
  np.testing.assert_array_equal(dataset_lib.shard_indices(4, None), np.arange(4))
  with pytest.raises(ValueError, match="shard index 3"):
    dataset_lib.shard_indices(10, (3, 3))


def test_image_loaders_read_only_their_shard():
  whole, labels = images.load_labeled_images("digits_8x8", split="train")
  part, part_labels = images.load_labeled_images("digits_8x8", split="train", shard=(1, 4))
  rows = dataset_lib.shard_indices(len(whole), (1, 4))
  np.testing.assert_array_equal(part, whole[rows])
  np.testing.assert_array_equal(part_labels, labels[rows])
  with tfds.testing.mock_data(num_examples=7):
    tfds_whole = images.load_images("mnist", split="train")
    tfds_part = images.load_images("mnist", split="train", shard=(2, 3))
  np.testing.assert_array_equal(tfds_part, tfds_whole[[2, 5]])


def test_sharded_datasets_keep_the_whole_train_set_for_train_metrics():
  config = load_config("rotation_mnist", "small")
  whole = data_lib.create_dataset(config.data)
  half = data_lib.create_dataset(config.data, train_shard=(1, 2))
  assert half.num_train_conditions == whole.num_train_conditions // 2
  np.testing.assert_array_equal(half.train, whole.train[1::2][:half.num_train_conditions])
  # The same evaluation on every process.
  chex.assert_trees_all_equal(half.eval_splits, whole.eval_splits)
  synthetic = load_config("synthetic", "small")
  whole = data_lib.create_dataset(synthetic.data)
  half = data_lib.create_dataset(synthetic.data, train_shard=(0, 2))
  np.testing.assert_array_equal(half.train.cond, whole.train.cond[0::2])
  np.testing.assert_array_equal(half.eval_splits["train"].y, whole.train.y)


def test_sharding_rows_and_seeds_at_once_names_both_fields(small_config, tmp_path):
  small_config.mesh.shard_train_data = True
  small_config.mesh.shard_seeds = True
  with pytest.raises(ConfigError, match="shard_train_data and config.mesh.shard_seeds"):
    training.train_and_evaluate(small_config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()  # stopped before touching the workdir


SCRIPT = """
import json, sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
import jax, jax.numpy as jnp, numpy as np
from conftest import load_config
from hypernets import data as data_lib, models, training
from hypernets.parallel import sharding
from hypernets.training import optimizers
config = load_config('synthetic', 'small')
mesh = sharding.create_mesh(config.mesh)
dataset = data_lib.create_dataset(config.data, train_shard=(0, 1))
rows = dataset.num_train_conditions

# Rows tagged by index: which device drew which row.
tagged = dataset.train.replace(cond=jnp.broadcast_to(
    jnp.arange(rows, dtype=jnp.float32)[:, None], dataset.train.cond.shape))
train_data = sharding.global_rows(tagged, mesh)
batch = jax.jit(lambda t, k: sharding.sample_on_each_device(
    dataset.sample, t, k, mesh=mesh, num_conditions=16, points_per_condition=4))(
    train_data, jax.random.key(0))
drawn = [np.asarray(s.data[:, 0]).astype(int).tolist()
         for s in sorted(batch.cond.addressable_shards, key=lambda s: s.index[0].start)]

# The library's step: collectives in the compiled program.
example = jax.tree.map(lambda a: a[0], dataset.test)
model, _ = models.create_model(config.model, example_cond=example.cond, example_x=example.x,
                               output_dim=dataset.output_dim)
tx = optimizers.create_optimizer(config.optimizer, config.num_train_steps)
state = jax.vmap(lambda k: training.create_train_state(model, tx, k, example,
                                                    dataset.test.cond[:8]))(
    jax.random.split(jax.random.key(0), 1))
state = jax.device_put(state, sharding.replicated(mesh))
keys = jax.device_put(jax.random.split(jax.random.key(1), 1), sharding.replicated(mesh))
hlo = {{}}
for sharded in (False, True):
  step = training.make_train_step(model, tx, dataset, batch_conditions=16, batch_points=8,
                               batch_sharding=sharding.batch_sharding(mesh),
                               sharded_train_data=sharded)
  data = (sharding.global_rows(dataset.train, mesh) if sharded
          else jax.device_put(dataset.train, sharding.replicated(mesh)))
  text = jax.jit(jax.vmap(step, in_axes=(0, None, 0))).lower(state, data, keys).compile().as_text()
  hlo[str(sharded)] = dict(
      (op, text.count(op + '(') + text.count(op + '-start(')) for op in
      ('all-gather', 'all-to-all', 'collective-permute', 'all-reduce'))
try:
  training.check_batch_fits(dataset, 12, mesh=mesh)
  error = None
except Exception as e:
  error = str(e)
print(json.dumps(dict(rows=rows, drawn=drawn, hlo=hlo, error=error)))
"""


def test_each_device_samples_its_own_rows_and_no_row_moves():
  env = dict(os.environ, XLA_FLAGS=f"{TEST_XLA_FLAGS} --xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  code = SCRIPT.format(root=REPO_ROOT, tests=os.path.join(REPO_ROOT, "tests"))
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        env=env, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.strip().splitlines()[-1])
  per_device = out["rows"] // 8
  assert len(out["drawn"]) == 8
  for device, drawn in enumerate(out["drawn"]):
    assert len(drawn) == 2 and len(set(drawn)) == 2  # 16 conditions / 8 devices, distinct
    assert all(device * per_device <= row < (device + 1) * per_device for row in drawn)
  assert out["error"].startswith("config.batch.conditions=12 with config.mesh.shard_train_data "
                                 "must be a multiple of the data axis (8 devices)")
  sharded = out["hlo"]["True"]
  # Only the gradients' mean crosses devices: no training row is gathered or sent.
  assert sharded["all-reduce"] >= 1
  assert sharded["all-gather"] == sharded["all-to-all"] == sharded["collective-permute"] == 0
