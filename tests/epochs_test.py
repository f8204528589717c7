"""Batch order: epoch sampling visits every training row once per epoch; rotation's
fresh test angles; torch init bounds."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from hypernets import data as data_lib
from hypernets import models
from hypernets import nets
from hypernets.data import epochs


@pytest.mark.parametrize("num_rows,batch", [(37, 8), (64, 16), (5, 7), (1000, 64)])
def test_epoch_rows_visit_every_row_once_per_epoch(num_rows, batch):
  key = jax.random.key(3)
  num_epochs = 3
  steps = epochs.steps_per_epochs(num_epochs, num_rows=num_rows, batch_size=batch)
  rows = np.concatenate([np.asarray(epochs.epoch_rows(key, s, num_rows=num_rows,
                                                      batch_size=batch))
                         for s in range(steps)])
  assert rows.min() >= 0 and rows.max() < num_rows
  orders = [rows[e * num_rows:(e + 1) * num_rows] for e in range(num_epochs)]
  for order in orders:
    np.testing.assert_array_equal(np.sort(order), np.arange(num_rows))
  if num_rows > 8:  # a fresh permutation each epoch, not the identity
    assert not np.array_equal(orders[0], orders[1])
    assert not np.array_equal(orders[0], np.arange(num_rows))
  # Keyed: the same key gives the same order, another key another.
  again = epochs.epoch_rows(key, 1, num_rows=num_rows, batch_size=batch)
  np.testing.assert_array_equal(again, rows[batch:2 * batch])
  if num_rows > 8:
    other = epochs.epoch_rows(jax.random.key(4), 0, num_rows=num_rows, batch_size=batch)
    assert not np.array_equal(other, rows[:batch])


def test_epoch_sampling_through_the_dataset_and_the_config_reference(small_config):
  small_config.batch.sampling = "epoch"  # the data pipeline reads data.sampling
  assert small_config.data.sampling == "epoch"
  dataset = data_lib.create_dataset(small_config.data)
  n, b = small_config.data.num_train_conditions, 8
  seen = []
  for step in range(n // b):
    batch = jax.jit(lambda k, s: dataset.sample(dataset.train, k, num_conditions=b,
                                                points_per_condition=4, step=s))(
        jax.random.key(step), step)
    seen += [int(np.flatnonzero((dataset.train.cond == c).all(-1))[0]) for c in batch.cond]
  np.testing.assert_array_equal(np.sort(seen), np.arange(n))


def test_rotation_epoch_order_and_fresh_test_angles():
  config = load_config("rotation_mnist", "small")
  assert config.batch.sampling == "epoch" and config.model.init_scheme == "torch"
  config.data.test_angles = "fresh"
  dataset = data_lib.create_dataset(config.data)
  first, second = dataset.eval_splits_at(0)["test"], dataset.eval_splits_at(1)["test"]
  np.testing.assert_array_equal(first.cond, second.cond)  # the same images
  assert not np.array_equal(first.y, second.y)  # at new angles
  # Keyed by k, not by how often it is read; draw 0 is what eval_splits holds.
  np.testing.assert_array_equal(dataset.eval_splits_at(1)["test"].y, second.y)
  np.testing.assert_array_equal(dataset.eval_splits["test"].y, first.y)
  config.data.test_angles = "fixed"
  fixed = data_lib.create_dataset(config.data)
  np.testing.assert_array_equal(fixed.eval_splits["test"].y, fixed.eval_splits["test"].y)
  np.testing.assert_array_equal(fixed.test.y, first.y)  # the first fresh draw = fixed
  n = dataset.num_train_conditions
  rows = []
  for step in range(-(-n // 16)):
    batch = dataset.sample(dataset.train, jax.random.key(step), num_conditions=16,
                           points_per_condition=1, step=step)
    flat = np.asarray(dataset.train).reshape(n, -1).astype(np.float32)
    images = np.asarray(batch.cond) * 0.3081 + 0.1307  # undo the normalisation
    rows += [int(np.argmin(np.abs(flat / 255.0 - im).sum(-1))) for im in images]
  np.testing.assert_array_equal(np.sort(rows[:n]), np.arange(n))


def test_torch_init_bounds_and_variance():
  fan_in, width = 400, 512
  mlp = nets.MLP((width, 3), init_scheme="torch")
  params = mlp.init(jax.random.key(0), jnp.ones((2, fan_in)))["params"]
  bound = 1.0 / np.sqrt(fan_in)
  for leaf in (params["Dense_0"]["kernel"], params["Dense_0"]["bias"]):
    values = np.asarray(leaf).ravel()
    assert np.abs(values).max() <= bound
    assert np.abs(values).max() > 0.98 * bound  # uniform up to the bound
    # U(-b, b) has variance b^2 / 3.
    assert abs(values.var() / (bound ** 2 / 3) - 1) < (0.03 if values.size > 1000 else 0.2)
  assert np.abs(np.asarray(params["Dense_1"]["bias"])).max() <= 1 / np.sqrt(width)
  lecun = nets.MLP((width, 3)).init(jax.random.key(0), jnp.ones((2, fan_in)))["params"]
  assert not np.asarray(lecun["Dense_0"]["bias"]).any()  # flax: zero biases


@pytest.mark.parametrize("kind", ["hypernet", "embedding", "standard"])
def test_init_scheme_reaches_every_layer_of_the_model(kind):
  config = load_config("rotation_mnist", f"small,kind={kind}")  # torch by default
  dataset = data_lib.create_dataset(config.data)
  example = jax.tree.map(lambda a: a[0], dataset.test)
  model, _ = models.create_model(config.model, example_cond=example.cond,
                                 example_x=example.x, output_dim=12)
  params = model.init(jax.random.key(0), example.cond, example.x)["params"]
  leaves = {jax.tree_util.keystr(p): (p[-1].key, np.asarray(v))
            for p, v in jax.tree_util.tree_leaves_with_path(params)}
  biases = {p: v for p, (name, v) in leaves.items() if "bias" in name}
  kernels = {p: v for p, (name, v) in leaves.items() if "kernel" in name}
  assert biases and kernels
  for path, bias in biases.items():  # torch: no bias starts at zero
    assert np.abs(bias).max() > 0, path
  for path, kernel in kernels.items():  # U(+-1/sqrt(fan_in)) with fan_in = rows
    assert np.abs(kernel).max() <= 1 / np.sqrt(kernel.shape[0]) + 1e-7
