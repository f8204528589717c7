"""train_and_evaluate: learning, outputs, resume, and bad input."""

import json
import os

import chex
import jax
import numpy as np
import pytest

from hypernets.training import checkpoints
from hypernets import provenance
from hypernets import training
from hypernets.errors import ConfigError
from hypernets.errors import TrainingDivergedError
from hypernets.errors import WorkdirError


@pytest.mark.parametrize("kind", ["hypernet", "embedding", "standard"])
def test_training_lowers_the_loss_and_writes_outputs(small_config, tmp_path, kind):
  small_config.model.kind = kind
  small_config.num_train_steps = 60
  small_config.optimizer.learning_rate = 1e-2
  workdir = str(tmp_path)
  state = training.train_and_evaluate(small_config, workdir)
  assert state.step.tolist() == [60]  # one seed
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    losses = [row["train_mse"] for row in map(json.loads, f) if "train_mse" in row]
  assert losses[-1] < 0.7 * losses[0], losses
  with open(os.path.join(workdir, "results.json")) as f:
    results = json.load(f)
  assert results["step"] == 60 and results["method"] == kind
  assert results["code_version"] == provenance.code_version()  # this checkout's commit
  assert results["jax_version"] == jax.__version__
  assert np.isfinite(results["test_mse"]) and results["test_mse"] > 0
  assert results["param_counts"]["total"] > 0
  assert ("N_g" in results["param_counts"]) == (kind == "hypernet")
  assert os.listdir(os.path.join(workdir, "tensorboard"))
  with open(os.path.join(workdir, "config.json")) as f:
    assert json.load(f)["model"]["kind"] == kind


def test_resume_continues_from_the_saved_step(small_config, tmp_path, monkeypatch):
  small_config.num_train_steps = 40
  small_config.checkpoint_every_steps = 20
  uninterrupted = training.train_and_evaluate(small_config, str(tmp_path / "full"))

  real_save = checkpoints.save

  def save_then_die(manager, step, state):
    real_save(manager, step, state)
    if step == 20:
      raise KeyboardInterrupt  # killed right after the step-20 checkpoint

  monkeypatch.setattr(checkpoints, "save", save_then_die)
  workdir = str(tmp_path / "interrupted")
  with pytest.raises(KeyboardInterrupt):
    training.train_and_evaluate(small_config, workdir)
  assert not os.path.exists(os.path.join(workdir, "results.json"))
  monkeypatch.setattr(checkpoints, "save", real_save)

  restored_steps = []
  real_restore = checkpoints.restore_or_initialize
  monkeypatch.setattr(checkpoints, "restore_or_initialize",
                      lambda m, s: restored_steps.append(m.latest_step()) or real_restore(m, s))
  resumed = training.train_and_evaluate(small_config, workdir)
  assert restored_steps == [20]
  assert resumed.step.tolist() == [40]
  # Batches depend on the step only, so the resumed run ends where the full one does.
  chex.assert_trees_all_close(resumed.params, uninterrupted.params, rtol=1e-6)


@pytest.mark.parametrize("kind", ["hypernet", "embedding"])
def test_seeds_as_a_batch_equal_single_seed_runs(small_config, tmp_path, kind):
  small_config.model.kind = kind
  small_config.model.f_init = "hyperfan_in"  # per-seed calibration under vmap too
  small_config.num_train_steps = 20
  small_config.num_seeds = 3
  small_config.seed = 5
  batched = training.train_and_evaluate(small_config, str(tmp_path / "batched"))
  with open(tmp_path / "batched" / "results.json") as f:
    results = json.load(f)
  assert results["num_seeds"] == 3 and results["seeds"] == [5, 6, 7]
  small_config.num_seeds = 1
  for s in range(3):
    small_config.seed = 5 + s
    single = training.train_and_evaluate(small_config, str(tmp_path / f"single{s}"))
    chex.assert_trees_all_close(jax.tree.map(lambda a, s=s: a[s], batched.params),
                                jax.tree.map(lambda a: a[0], single.params),
                                rtol=1e-5, atol=1e-6)
    with open(tmp_path / f"single{s}" / "results.json") as f:
      np.testing.assert_allclose(results["per_seed"]["test_mse"][s],
                                 json.load(f)["test_mse"], rtol=1e-5)
  per_seed = results["per_seed"]["test_mse"]
  np.testing.assert_allclose(results["test_mse"], np.mean(per_seed), rtol=1e-9)
  np.testing.assert_allclose(results["test_mse_std"], np.std(per_seed), rtol=1e-9)
  assert len(set(per_seed)) == 3  # the seeds really differ


@pytest.mark.parametrize("field,value,message", [
    ("model.kind", "transformer", "config.model.kind"),
    ("model.f_width", 0, "config.model.f_width must be a positive integer"),
    ("model.f_depth", -1, "config.model.f_depth must be a positive integer"),
    ("optimizer.learning_rate", 0.0, "config.optimizer.learning_rate must be"),
    ("optimizer.learning_rate", -1e-3, "config.optimizer.learning_rate must be"),
    ("data.m1", 0, "config.data.m1 must be a positive integer"),
    ("data.m2", 0, "config.data.m2 must be a positive integer"),
    ("num_seeds", 0, "config.num_seeds must be a positive integer"),
    ("batch.conditions", 1000, "config.batch.conditions=1000 is larger"),
])
def test_bad_config_stops_before_anything_is_written(small_config, tmp_path, field,
                                                     value, message):
  node = small_config
  *parents, leaf = field.split(".")
  for part in parents:
    node = node[part]
  node[leaf] = value
  with pytest.raises(ConfigError, match=message):
    training.train_and_evaluate(small_config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_embedding_depth_checked_for_embedding_kind(small_config, tmp_path):
  small_config.model.kind = "embedding"
  small_config.model.e_depth = 0
  with pytest.raises(ConfigError, match="config.model.e_depth"):
    training.train_and_evaluate(small_config, str(tmp_path))


def test_unwritable_workdir(small_config, tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a directory")
  with pytest.raises(WorkdirError, match="cannot be written"):
    training.train_and_evaluate(small_config, str(blocker / "run"))


def test_workdir_of_a_different_config_is_refused(small_config, tmp_path):
  small_config.num_train_steps = 20
  training.train_and_evaluate(small_config, str(tmp_path))
  before = (tmp_path / "results.json").read_text()
  small_config.model.f_width = 32
  with pytest.raises(WorkdirError, match="config.model.f_width"):
    training.train_and_evaluate(small_config, str(tmp_path))
  assert (tmp_path / "results.json").read_text() == before


def test_checkpoint_of_a_different_shape_is_refused(small_config, tmp_path):
  small_config.num_train_steps = 20
  training.train_and_evaluate(small_config, str(tmp_path))
  os.remove(tmp_path / "config.json")  # bypass the config check: test the checkpoint's
  small_config.model.f_width = 32
  with pytest.raises(WorkdirError,
                     match=r"does not fit this config's model .*: params/f/\S+ has shape "
                     r"\(1, 16, 16\) in the checkpoint, \(1, 32, 16\) here"):
    training.train_and_evaluate(small_config, str(tmp_path))
  assert "20" in os.listdir(tmp_path / "checkpoints")  # nothing lost


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(small_config, tmp_path):
  small_config.optimizer.name = "sgd"
  small_config.optimizer.schedule = "constant"
  small_config.optimizer.learning_rate = 1e9  # diverges within a few steps
  small_config.num_train_steps = 40
  small_config.log_every_steps = 5
  small_config.checkpoint_every_steps = 1
  with pytest.raises(TrainingDivergedError, match=r"became (nan|inf|-inf) at step (\d+)") as e:
    training.train_and_evaluate(small_config, str(tmp_path))
  bad_step = int(str(e.value).split(" at step ")[1].split(";")[0])
  saved = sorted(int(s) for s in os.listdir(tmp_path / "checkpoints") if s.isdigit())
  assert saved and max(saved) < bad_step
  assert f"last good checkpoint: step {max(saved)}" in str(e.value)
  assert not (tmp_path / "results.json").exists()


def test_several_steps_per_call_give_the_same_run(small_config, tmp_path):
  small_config.num_train_steps = 30
  one = training.train_and_evaluate(small_config, str(tmp_path / "one"))
  small_config.steps_per_call = 7  # divides none of the log/eval/checkpoint periods
  seven = training.train_and_evaluate(small_config, str(tmp_path / "seven"))
  assert seven.step.tolist() == [30]
  for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(seven.params)):
    np.testing.assert_array_equal(a, b)
  logged = lambda d: [r for r in map(json.loads, open(d / "metrics.jsonl")) if "train_mse" in r]  # pylint: disable=unnecessary-lambda-assignment
  assert logged(tmp_path / "one") == logged(tmp_path / "seven")
