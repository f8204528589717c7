"""The online regime: fresh batches keyed by (seed, step), resumable, evaluated on a
large fresh sample; image tasks refuse it."""

import json
import shutil

import jax
import numpy as np
import pytest

from conftest import load_config
from hypernets import data as data_lib
from hypernets import training
from hypernets.config import check_training_config
from hypernets.data import online
from hypernets.errors import ConfigError
from hypernets.training.state import init_and_data_keys
from hypernets.experiments import registry


def _online(name="synthetic"):
  config = load_config(name, "small")
  config.data.regime = "online"
  config.data.num_test_conditions = 80  # 80 x 16 points >= 10 x (8 x 8)
  return config


@pytest.mark.parametrize("name", ["synthetic", "structured"])
def test_online_batches_are_keyed_by_seed_and_step_and_never_repeat(name):
  config = _online(name)
  dataset = data_lib.create_dataset(config.data)
  fixed_config = load_config(name, "small")
  fixed_config.data.num_test_conditions = config.data.num_test_conditions
  fixed = data_lib.create_dataset(fixed_config.data)
  # Both regimes evaluate on the same test sample.
  np.testing.assert_array_equal(dataset.test.y, fixed.test.y)
  assert dataset.num_train_conditions >= 10**9

  @jax.jit
  def batch(data_key, step):
    return dataset.sample(dataset.train, jax.random.fold_in(data_key, step),
                          num_conditions=8, points_per_condition=8, step=step)

  # The loop's data keys of seeds 0 and 1 (data.seed is 0 too).
  seed0, seed1 = init_and_data_keys(0, 2)[1]
  a, again = batch(seed0, 3), batch(seed0, 3)
  np.testing.assert_array_equal(a.x, again.x)
  np.testing.assert_array_equal(a.y, again.y)
  assert a.cond.shape == (8, config.data.m2) and a.y.shape[:2] == (8, 8)
  conds = np.concatenate([np.asarray(batch(k, s).cond) for k in (seed0, seed1)
                          for s in range(20)])
  # 320 conditioning inputs over 2 seeds x 20 steps: all distinct, none from the test set.
  assert len(np.unique(conds, axis=0)) == len(conds)
  for split in (dataset.test, dataset.eval_splits["train"]):
    assert not (conds[:, None, :] == np.asarray(split.cond)[None]).all(-1).any()
  assert not np.isin(np.asarray(dataset.test.cond),
                     np.asarray(dataset.eval_splits["train"].cond)).any()
  # y really is the target at the drawn inputs: the fixed split's rule.
  if name == "synthetic":
    from hypernets.data import synthetic  # pylint: disable=g-import-not-at-top
    np.testing.assert_allclose(
        a.y, synthetic.draw(dataset.train.target, jax.random.fold_in(seed0, 3),
                            num_conditions=8, points=8).y, rtol=1e-6)


def _params(state):
  return jax.tree.leaves(jax.device_get(state.params))


def test_online_runs_are_repeatable_and_resume_bit_identically(tmp_path):
  config = _online()
  config.num_seeds = 2
  config.checkpoint_every_steps = 20
  full = training.train_and_evaluate(config, str(tmp_path / "a"))
  # Resume: the same workdir without its last checkpoint and results restarts at
  # step 20 and must end exactly where the uninterrupted run ended.
  shutil.copytree(tmp_path / "a", tmp_path / "b")
  shutil.rmtree(tmp_path / "b" / "checkpoints" / "40")
  (tmp_path / "b" / "results.json").unlink()
  resumed = training.train_and_evaluate(config, str(tmp_path / "b"))
  for x, y in zip(_params(full), _params(resumed)):
    np.testing.assert_array_equal(x, y)
  results = json.loads((tmp_path / "a" / "results.json").read_text())
  assert results["steps_this_run"] == 40
  resumed_results = json.loads((tmp_path / "b" / "results.json").read_text())
  assert resumed_results["steps_this_run"] == 20
  for key in ("train_mse", "test_mse", "test_rel_mse"):  # both always reported
    assert results[key] == resumed_results[key]
  # The two seeds saw different batches: their parameters differ.
  assert not np.allclose(_params(full)[0][0], _params(full)[0][1])


@pytest.mark.parametrize("overrides,message", [
    ({"data.regime": "online"}, "stays 'fixed'"),
    ({"data.regime": "streaming"}, "config.data.regime is 'streaming'"),
])
def test_image_task_refuses_online_in_one_line(tmp_path, overrides, message):
  config = load_config("rotation_mnist", "small")
  for field, value in overrides.items():
    section, leaf = field.split(".")
    config[section][leaf] = value
  with pytest.raises(ConfigError, match=message) as e:
    registry.run(config, str(tmp_path / "run"))
  assert "\n" not in str(e.value)
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("field,value,message", [
    ("data.num_test_conditions", 8, ">= 10x a batch"),
    ("batch.sampling", "epoch", "orders fixed training rows"),
    ("mesh.shard_train_data", True, "has none"),
])
def test_online_refuses_what_needs_fixed_rows(field, value, message):
  config = _online()
  section, leaf = field.split(".")
  config[section][leaf] = value
  with pytest.raises(ConfigError, match=message) as e:
    check_training_config(config)
  assert "\n" not in str(e.value)


def test_online_batch_may_exceed_the_fixed_training_set(tmp_path):
  config = _online()
  config.data.num_train_conditions = 4  # unused online
  config.data.num_test_conditions = 200
  check_training_config(config)
  config.data.regime = "fixed"
  assert online.regime_of(config.data) == "fixed"
  workdir = tmp_path / "w"
  with pytest.raises(ConfigError, match="larger than the training set"):
    training.train_and_evaluate(config, str(workdir))
  assert not workdir.exists()  # refused before anything was written
