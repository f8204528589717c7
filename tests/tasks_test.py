"""The task extension point: built-in and user tasks found by name or import path,
checked, and trained through every entry point (examples/sine_task.py)."""

import dataclasses
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO_ROOT
from conftest import load_config
from hypernets import data as data_lib
from hypernets.data import synthetic
from hypernets.data import tasks
from hypernets.errors import ConfigError
from hypernets.experiments import kind_comparison

SINE = "examples.sine_task:make_dataset"


def _data_config(name):
  config = load_config("synthetic", "small")
  config.data.name = name
  return config.data


def test_builtin_tasks_register_through_the_same_mechanism():
  assert {"synthetic", "structured", "rotation"} <= set(data_lib.registered_tasks())
  assert tasks.find_task("synthetic") is synthetic.create_dataset


def test_import_path_file_path_and_registered_name_find_the_same_task():
  by_module = data_lib.create_dataset(_data_config(SINE))
  by_file = data_lib.create_dataset(_data_config(
      os.path.join(REPO_ROOT, "examples", "sine_task.py") + ":make_dataset"))
  data_lib.register_task("sine_for_test", tasks.find_task(SINE))
  by_name = data_lib.create_dataset(_data_config("sine_for_test"))
  for other in (by_file, by_name):
    np.testing.assert_array_equal(other.test.y, by_module.test.y)
  assert by_module.test.x.shape == (32, 16, 1) and by_module.test.cond.shape == (32, 3)


def _register(name, fn):
  data_lib.register_task(name, fn)
  return name


def _good():
  return tasks.find_task(SINE)(_data_config(SINE))


def _replace_test(**fields):
  good = _good()
  return good.__class__(**{**good.__dict__, "test": good.test.replace(**fields)})


BAD_TASKS = [
    ("no_such_package.tasks:make", "no_such_package.tasks could not be imported"),
    ("examples.sine_task:nope", "has no callable 'nope'"),
    ("examples.sine_task:LOW", "has no callable 'LOW'"),
    ("no_such_task", "unknown config.data.name 'no_such_task'"),
    (lambda: _register("returns_int", lambda c: 3), "returned int, not a hypernets.data.Dataset"),
    # The splits disagree: test x has 2 features, the sampler's batches 1.
    (lambda: _register("x_disagrees", lambda c: _replace_test(
        x=jnp.ones((32, 16, 2)))), "a sampled training batch has x of shape"),
    (lambda: _register("points_disagree", lambda c: _replace_test(
        y=jnp.ones((32, 15, 1)))), r"test has cond \(32, 3\), x \(32, 16, 1\), y \(32, 15, 1\)"),
    # The targets disagree with the model's output size.
    (lambda: _register("y_vs_output", lambda c: dataclasses.replace(_good(), output_dim=3)),
     r"regression targets y \(32, 16, 1\) must end in output_dim=3"),
]


@pytest.mark.parametrize("name,message", BAD_TASKS)
def test_bad_tasks_stop_with_one_line(name, message):
  name = name() if callable(name) else name
  with pytest.raises(ConfigError, match=message) as e:
    data_lib.create_dataset(_data_config(name))
  assert "\n" not in str(e.value)


def test_registered_user_task_trains_through_compare_kinds(tmp_path):
  config = load_config("synthetic", "small")
  config.data.name = _register("sine_registered", tasks.find_task(SINE))
  config.num_train_steps = 20
  rows = kind_comparison.compare_kinds(config, str(tmp_path), kinds=("hypernet",))
  assert rows[0]["metrics"]["test_mse"][0] > 0
  with open(tmp_path / "hypernet" / "config.json") as f:
    saved = json.load(f)
  assert saved["data"]["name"] == "sine_registered"
  assert saved["task"]["function"] == "examples.sine_task:make_dataset"
  assert saved["task"]["file"].endswith(os.path.join("examples", "sine_task.py"))


def _launch(script, *args):
  proc = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "launch", script),
                         "--config=examples/sine_config.py", *args], cwd=REPO_ROOT,
                        capture_output=True, text=True, timeout=600,
                        env={**os.environ, "PYTHONPATH": REPO_ROOT})
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc


def test_user_task_trains_through_sweep_then_resumes_in_a_fresh_process(tmp_path):
  # sweep.py: both points of the example's sweep train on the user's task.
  _launch("sweep.py", "--sweep=kinds", f"--workdir={tmp_path}")
  with open(tmp_path / "results.json") as f:
    rows = {row["model.kind"]: row for row in json.load(f)}
  assert set(rows) == {"hypernet", "embedding"}
  point = tmp_path / "model.kind=hypernet"
  with open(point / "results.json") as f:
    uninterrupted = json.load(f)
  # Lose the last checkpoint and the results, as a killed run would; main.py in a
  # fresh process finds the task again by its import path and resumes at step 20.
  checkpoints = sorted(int(n) for n in os.listdir(point / "checkpoints") if n.isdigit())
  assert checkpoints == [20, 40]
  subprocess.run(["rm", "-r", str(point / "checkpoints" / "40"), str(point / "results.json")],
                 check=True)
  _launch("main.py", "--config.model.kind=hypernet", f"--workdir={point}")
  with open(point / "results.json") as f:
    resumed = json.load(f)
  assert resumed["steps_this_run"] == 20
  assert resumed["test_mse"] == uninterrupted["test_mse"]
  assert resumed["train_mse"] == uninterrupted["train_mse"]
