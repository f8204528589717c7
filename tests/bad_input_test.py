"""The bad-input catalogue: each stops with one clear line and loses nothing.

In-process cases go through `registry.run` (what the launchers call) and must
raise a HypernetsError whose message is one line naming the field, file or step;
command-line cases run `launch/main.py` and must print exactly one `error:` line
and no traceback. Every case runs against a workdir holding a finished run whose
results must be untouched (unless the case is about that run's own directory).
"""

import errno
import json
import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from conftest import REPO_ROOT
from conftest import load_config
from hypernets.experiments import registry
from hypernets import primary as primary_lib
from hypernets.experiments import sweeps
from hypernets.training import workdir as workdir_lib
from hypernets.data import images
from hypernets.errors import HypernetsError


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  """A workdir with a finished small synthetic run; returns (path, results text)."""
  workdir = tmp_path_factory.mktemp("finished")
  config = load_config("synthetic", "small")
  config.num_train_steps = 10
  registry.run(config, str(workdir))
  return workdir, (workdir / "results.json").read_text()


def _set(config, field, value):
  node = config
  *parents, leaf = field.split(".")
  for part in parents:
    node = node[part]
  node[leaf] = value


CONFIG_CASES = [
    ("synthetic", {"model.kind": "transformer"}, "config.model.kind"),
    ("synthetic", {"model.generator": "diffusion"}, "config.model.generator"),
    ("synthetic", {"model.f_width": 0}, "config.model.f_width must be a positive integer"),
    ("synthetic", {"model.kind": "embedding", "model.e_depth": -1}, "config.model.e_depth"),
    ("synthetic", {"optimizer.learning_rate": 0.0}, "config.optimizer.learning_rate"),
    ("synthetic", {"num_seeds": 0}, "config.num_seeds"),
    ("synthetic", {"batch.conditions": 10_000}, "config.batch.conditions=10000 is larger"),
    ("synthetic", {"data.m1": 0}, "config.data.m1"),
    ("synthetic", {"model.primary.name": "conv"}, "needs image points"),
    ("synthetic", {"model.generated_params": "nothing"}, "config.model.generated_params"),
    ("synthetic", {"model.f_init": "bogus"}, "config.model.f_init is 'bogus'"),
    ("rotation_mnist", {"data.source": "mnist", "data.data_dir": "EMPTY"},
     "dataset 'mnist' not found"),
    ("rotation_mnist", {"batch.points": 3}, "config.batch.points must be 1"),
]


@pytest.mark.parametrize("name,overrides,message", CONFIG_CASES)
def test_bad_config_values(tmp_path, name, overrides, message):
  config = load_config(name, "small")
  for field, value in overrides.items():
    _set(config, field, str(tmp_path / "empty") if value == "EMPTY" else value)
  workdir = tmp_path / "run"
  with pytest.raises(HypernetsError, match=message) as e:
    registry.run(config, str(workdir))
  assert "\n" not in str(e.value)
  # Stopped before training: no checkpoint, no results.
  assert not (workdir / "results.json").exists()
  assert not (workdir / "checkpoints").exists() or not os.listdir(workdir / "checkpoints")


# Found by tests/config_fuzz_test.py (each crashed, hung or stopped after writing to the
# workdir); each must now stop in the config checks, before the workdir exists.
FUZZ_CASES = [
    # the run created its workdir, then found the data missing
    ("fuzz_missing_tfds_dataset", "rotation_mnist",
     {"data.source": "cifar10", "data.data_dir": "EMPTY"}, "dataset 'cifar10' not found"),
    # 'cannot be met within -inf%' after the workdir was written
    ("fuzz_param_budget_tolerance_not_positive", "structured",
     {"model.param_budget_tolerance": float("-inf")},
     "config.model.param_budget_tolerance must be a finite number > 0"),
    # XLA out of memory (1 TB) mid-run, a traceback
    ("fuzz_rotation_classes_beyond_memory", "rotation_mnist",
     {"data.num_classes": 2**30}, r"config.model.f_width.*output size 1073741824.*more than "
     "this machine's"),
    ("fuzz_structured_selector_beyond_memory", "structured",
     {"data.selector_width": 2**30}, r"config.data.selector_hidden, selector_width .*the "
     "target network: .* more than"),
    ("fuzz_training_set_beyond_memory", "synthetic",
     {"data.num_train_conditions": 10**9}, r"config.data.num_train_conditions.* train set"),
    # Found by the 1,500-example run of 2026-11-28:
    # a sweep (image_functions) created its root and point directory, then its first
    # point stopped on the field
    ("fuzz_sweep_point_field_checked_before_the_root", "image_functions",
     {"checkpoint_every_steps": -1}, "config.checkpoint_every_steps must be a positive"),
    ("fuzz_sweep_point_model_error_leaves_no_directory", "image_functions",
     {"model.generated_params": "bogus"}, "config.model.generated_params='bogus' matches "
     "none of g's parameters"),
    # numpy MemoryError (12.2 TiB) drawing the uniform test inputs, a traceback
    ("fuzz_uniform_test_inputs_beyond_memory", "assumption1",
     {"data.num_test_examples": 2**30}, r"config.data.num_test_examples and image_shape"),
    # XLA out of memory building the students / OverflowError (int64), a traceback
    ("fuzz_student_outputs_beyond_memory", "assumption1",
     {"model.num_outputs": 2**30}, r"config.model.num_outputs, student_width"),
    ("fuzz_student_outputs_beyond_int32", "assumption1",
     {"model.num_outputs": 2**63}, r"config.model.num_outputs=9223372036854775808 is larger"),
    # TypeError in the mesh: "can't multiply sequence by non-int of type 'str'"
    ("fuzz_mesh_shape_of_names", "synthetic",
     {"mesh.shape": ("data", "model")}, r"config.mesh.shape \('data', 'model'\) must hold"),
    # MemoryError in the memory check itself: a list of 10**9 widths
    ("fuzz_generator_depth_beyond_memory", "synthetic",
     {"model.f_depth": 10**9}, r"config.model.f_width, f_depth .*more than this"),
    # target gain inf: NaN loss at step 1, after the workdir was written
    ("fuzz_target_gain_infinite", "synthetic",
     {"data.target_gain": float("inf")}, "config.data.target_gain must be a finite number"),
    # Found by the second 1,500-example run (after the fixes above):
    # AttributeError: 'float' object has no attribute 'partition'
    ("fuzz_image_functions_methods_not_a_tuple", "image_functions",
     {"image_functions.methods": ("nope",)}, "config.image_functions.methods must be a "
     "non-empty"),
    # the sweep's point found the dataset missing after its directory was made
    ("fuzz_sweep_point_missing_dataset_leaves_no_directory", "image_functions",
     {"data.source": "fashion_mnist", "data.data_dir": "EMPTY"}, "not found"),
    # OverflowError passing 2**31 to a jitted schedule / 2**63 as a seed
    ("fuzz_steps_beyond_int32", "structured", {"optimizer.warmup_steps": 2**31},
     r"config.optimizer.warmup_steps=2147483648 is larger than 2\*\*31 - 1"),
    ("fuzz_seed_beyond_int64", "assumption2", {"seed": 2**63}, r"config.seed=.* is larger"),
    # XLA out of memory (4 TB) for the batch
    ("fuzz_batch_beyond_memory", "synthetic",
     {"batch.points": 2**30}, r"config.batch.conditions, batch.points .*more than"),
    # Found by the third 1,500-example run: XLA out of memory (480 GB); an abort
    ("fuzz_assumption2_classes_beyond_memory", "assumption2",
     {"data.num_classes": 10**9}, r"config.data.num_classes, model.widths .*more than"),
    ("fuzz_task_by_import_path_generator_beyond_memory", "image_functions",
     {"model.f_width": 10**9}, r"config.model.f_width, f_depth .*more than"),
]


@pytest.mark.parametrize("name,config_name,overrides,message", FUZZ_CASES,
                         ids=[case[0] for case in FUZZ_CASES])
def test_fuzz_findings_stop_before_the_workdir(tmp_path, name, config_name, overrides,
                                               message):
  del name
  config = load_config(config_name, "small")
  for field, value in overrides.items():
    _set(config, field, str(tmp_path / "empty") if value == "EMPTY" else value)
  workdir = tmp_path / "run"
  with pytest.raises(HypernetsError, match=message) as e:
    registry.run(config, str(workdir))
  assert "\n" not in str(e.value)
  assert not workdir.exists()


def test_dataset_split_that_does_not_exist():
  with pytest.raises(HypernetsError, match="validation") as e:
    images.load_images("mnist_5k", split="validation")
  assert "\n" not in str(e.value)


def test_primary_drawing_from_an_unknown_random_stream():

  class Noisy(nn.Module):

    @nn.compact
    def __call__(self, x):
      return nn.Dense(2)(x) + jax.random.normal(self.make_rng("noise"), (2,))

  with pytest.raises(HypernetsError, match="rng_streams") as e:
    primary_lib.from_linen(Noisy(), jnp.ones((2, 3)))
  assert "\n" not in str(e.value)


def test_workdir_of_another_config_refused_then_moved_aside(finished_run, tmp_path):
  workdir, results = finished_run
  config = load_config("synthetic", "small")
  config.num_train_steps = 10
  config.model.f_width = 24
  with pytest.raises(HypernetsError, match=r"config.model.f_width .*--config.overwrite"):
    registry.run(config, str(workdir))
  assert (workdir / "results.json").read_text() == results
  # overwrite sets the old run aside instead of deleting it (on a copy of it).
  copy = tmp_path / "copy"
  subprocess.run(["cp", "-r", str(workdir), str(copy)], check=True)
  config.overwrite = True
  registry.run(config, str(copy))
  moved = [p for p in os.listdir(tmp_path) if p.startswith("copy.replaced-")]
  assert len(moved) == 1
  assert (tmp_path / moved[0] / "results.json").read_text() == results
  assert json.loads((copy / "config.json").read_text())["model"]["f_width"] == 24


def test_corrupt_checkpoint(tmp_path):
  config = load_config("synthetic", "small")
  config.num_train_steps = 20
  config.checkpoint_every_steps = 10
  registry.run(config, str(tmp_path))
  results = (tmp_path / "results.json").read_text()
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["10", "20"]
  latest = tmp_path / "checkpoints" / "20"
  for root, _, files in os.walk(latest):
    for name in files:
      with open(os.path.join(root, name), "r+b") as f:
        f.truncate(3)
  with pytest.raises(HypernetsError, match=r"checkpoint .*/20 .*(corrupt or truncated).*"
                     "move it away to resume from the checkpoint before it") as e:
    registry.run(config, str(tmp_path))
  assert "\n" not in str(e.value)
  assert (tmp_path / "results.json").read_text() == results


def test_disk_full_on_results_write(tmp_path, monkeypatch):
  config = load_config("synthetic", "small")
  config.num_train_steps = 10
  registry.run(config, str(tmp_path))
  # A results.json of an earlier state (as a run resumed past it leaves behind), so the
  # rerun evaluates and writes again instead of returning the finished run's results.
  stale = json.loads((tmp_path / "results.json").read_text())
  stale["step"] = 5
  (tmp_path / "results.json").write_text(json.dumps(stale))
  results = (tmp_path / "results.json").read_text()

  def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(os, "replace", full)
  with pytest.raises(HypernetsError, match="could not write .*results.json: No space left"):
    registry.run(config, str(tmp_path))
  assert (tmp_path / "results.json").read_text() == results
  assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp")]


def test_sweep_naming_a_field_that_does_not_exist(tmp_path):
  config = load_config("synthetic", "small")
  with pytest.raises(HypernetsError, match="'model.depth' does not exist"):
    sweeps.run_sweep(config, sweeps.sweep("model.depth", [1, 2]), str(tmp_path),
                     train_fn=registry.run)
  assert not os.listdir(tmp_path)  # checked before anything ran


@pytest.mark.parametrize("args,message", [
    (["--config=configs/synthetic.py:small", "--config.model.nope=1"],
     "error: --config.model.nope names no field of the config"),
    (["--config=configs/synthetic.py:small", "--config.model.f_width=abc"],
     "error: flag --config.model.f_width=abc: invalid literal for int()"),
    (["--config=configs/synthetic.py:bogus"],
     "error: ValueError: unknown configs/synthetic.py variant(s) ['bogus']"),
    (["--config=configs/synthetic.py:small", "--config.model.knd=embedding"],
     "error: --config.model.knd names no field of the config "
     "(did you mean --config.model.kind?); list the fields with --show"),
    (["--config=configs/missing.py"],
     "error: config file 'configs/missing.py' not found; looked in "
     + os.path.join(REPO_ROOT, "configs", "missing.py")),
    (["--config=configs/synthetic.py:small", "--config.optimizer.learning_rate=-1.0"],
     "error: config.optimizer.learning_rate must be a finite number > 0, got -1.0"),
])
def test_command_line_errors_are_one_line(finished_run, args, message):
  workdir, results = finished_run
  proc = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "launch", "main.py"),
                         *args, f"--workdir={workdir}"],
                        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
  assert proc.returncode == 1
  assert "Traceback" not in proc.stderr
  lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert len(lines) == 1 and lines[0].startswith(message), proc.stderr[-500:]
  assert "\\" not in lines[0] and "'\"" not in lines[0]  # no escaped message inside
  assert (workdir / "results.json").read_text() == results
