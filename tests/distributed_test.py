"""`distributed.maybe_initialize` and a real 2-process jax.distributed run on CPU."""

import copy
import json
import os
import subprocess
import sys

import ml_collections
import pytest

from conftest import REPO_ROOT
from conftest import TEST_XLA_FLAGS
from hypernets.parallel import distributed
from hypernets.training import workdir as workdir_lib
from hypernets.errors import ConfigError
from hypernets.errors import WorkdirError

_SIGNALS = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID",
            distributed.ENV_FLAG, "SLURM_JOB_ID", "SLURM_NTASKS", "SLURM_STEP_ID",
            "SLURM_STEP_NODELIST", "SLURM_STEP_NUM_TASKS", "OMPI_COMM_WORLD_SIZE")


@pytest.fixture
def plain_env(monkeypatch):
  """No multi-process signal in the environment, and no TPU chips."""
  for name in _SIGNALS:
    monkeypatch.delenv(name, raising=False)
  monkeypatch.setattr(distributed, "_tpu_chips_attached", lambda: False)
  return monkeypatch


def test_environment_signals(plain_env):
  assert distributed.environment_signal() is None
  plain_env.setenv("SLURM_JOB_ID", "7")
  plain_env.setenv("SLURM_NTASKS", "1")
  assert distributed.environment_signal() is None  # a one-task Slurm job is one machine
  plain_env.setenv("SLURM_NTASKS", "4")
  assert distributed.environment_signal() is None  # sbatch's script, not an srun step
  plain_env.setenv("SLURM_STEP_ID", "0")
  plain_env.setenv("SLURM_STEP_NODELIST", "node[1-4]")
  plain_env.setenv("SLURM_STEP_NUM_TASKS", "4")
  assert distributed.environment_signal() == "an srun step of 4 tasks"
  plain_env.setenv("SLURM_STEP_NUM_TASKS", "1")  # `srun -n1` inside a bigger allocation
  assert distributed.environment_signal() is None
  plain_env.setenv("JAX_COORDINATOR_ADDRESS", "localhost:1234")
  assert distributed.environment_signal() == "$JAX_COORDINATOR_ADDRESS"
  plain_env.setenv(distributed.ENV_FLAG, "0")
  assert distributed.environment_signal() is None
  plain_env.setenv(distributed.ENV_FLAG, "1")
  assert distributed.ENV_FLAG in distributed.environment_signal()
  plain_env.setattr(distributed, "_tpu_chips_attached", lambda: True)
  plain_env.delenv(distributed.ENV_FLAG)
  plain_env.delenv("JAX_COORDINATOR_ADDRESS")
  plain_env.delenv("SLURM_JOB_ID")
  assert "TPU" in distributed.environment_signal()


def test_slurm_outside_srun_runs_alone_and_says_why_once(plain_env, caplog):
  plain_env.setattr(distributed, "_slurm_reason_logged", False)
  plain_env.setenv("SLURM_JOB_ID", "7")
  plain_env.setenv("SLURM_NTASKS", "4")
  with caplog.at_level("WARNING"):
    assert not distributed.maybe_initialize(ml_collections.ConfigDict())
    assert distributed.environment_signal() is None
  said = [r.getMessage() for r in caplog.records if "srun" in r.getMessage()]
  assert len(said) == 1 and "not in an srun step" in said[0] and "one process" in said[0]


def test_tpu_probe_falls_back_to_sysfs_without_jax_private_modules(plain_env, tmp_path):
  plain_env.undo()  # the real probe, not plain_env's stub
  import jax._src  # pylint: disable=g-import-not-at-top
  plain_env.setitem(sys.modules, "jax._src.hardware_utils", None)  # the import fails
  plain_env.delattr(jax._src, "hardware_utils", raising=False)
  plain_env.setattr(distributed, "_PCI_DEVICES", str(tmp_path))
  nic = tmp_path / "0000:00:04.0"
  nic.mkdir()
  (nic / "vendor").write_text("0x1ae0\n")  # Google's gVNIC: a network device
  (nic / "class").write_text("0x020000\n")
  assert not distributed._tpu_chips_attached()
  tpu = tmp_path / "0000:00:05.0"
  tpu.mkdir()
  (tpu / "vendor").write_text("0x1ae0\n")
  (tpu / "class").write_text("0x120000\n")  # a processing accelerator: a TPU chip
  assert distributed._tpu_chips_attached()


def test_auto_and_false_do_nothing_without_asking_for_devices(plain_env):
  assert not distributed.maybe_initialize(ml_collections.ConfigDict())  # no config field
  config = ml_collections.ConfigDict(dict(distributed=dict(enabled="auto")))
  assert not distributed.maybe_initialize(config)
  plain_env.setenv("JAX_COORDINATOR_ADDRESS", "localhost:1")
  for enabled in (False, "False", "false"):  # --config.distributed.enabled=False is a str
    config = ml_collections.ConfigDict(dict(distributed=dict(enabled=enabled)))
    assert not distributed.maybe_initialize(config)  # False wins over the environment


def test_bad_values_are_config_errors(plain_env):
  config = ml_collections.ConfigDict(dict(distributed=dict(enabled="yes please")))
  with pytest.raises(ConfigError, match="config.distributed.enabled"):
    distributed.maybe_initialize(config)
  plain_env.setenv("JAX_COORDINATOR_ADDRESS", "localhost:1")
  plain_env.setenv("JAX_NUM_PROCESSES", "two")
  with pytest.raises(ConfigError, match="JAX_NUM_PROCESSES"):
    distributed.maybe_initialize(ml_collections.ConfigDict())


def test_joining_after_the_backend_started_is_a_clear_error(plain_env):
  import jax  # pylint: disable=g-import-not-at-top
  jax.devices()  # the backend is up: too late to join
  config = ml_collections.ConfigDict(dict(distributed=dict(
      enabled=True, coordinator_address="localhost:1", num_processes=2, process_id=1)))
  with pytest.raises(ConfigError, match="before anything touches jax devices"):
    distributed.maybe_initialize(config)
  assert distributed.is_primary()  # a single process is process 0


def test_plain_process_never_starts_the_backend():
  """In a fresh process: maybe_initialize on a plain machine leaves jax untouched."""
  code = ("import ml_collections\n"
          "from jax._src import xla_bridge\n"
          "from hypernets.parallel import distributed\n"
          "assert not distributed.maybe_initialize(ml_collections.ConfigDict())\n"
          "print(xla_bridge.backends_are_initialized())\n")
  env = {k: v for k, v in os.environ.items() if k not in _SIGNALS}
  env["JAX_PLATFORMS"] = "cpu"
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        timeout=60, cwd=REPO_ROOT, env=env)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip() == "False"


# Runs launch/main.py with a line reporting what each process joined, printed after
# distributed.maybe_initialize (idempotent: registry.run calls it again). The one launch
# trains twice, in workdir/whole and workdir/split: each process loads all training rows,
# then half of them (config.mesh.shard_train_data). One launch, not two, because
# process 1 cannot read the compile cache (only process 0 writes it): a second launch
# would compile everything again.
_WRAPPER = """
import os, runpy, sys
sys.path.insert(0, {root!r})
from hypernets.parallel import distributed
from hypernets.experiments import registry
_run = registry.run

def run(config, workdir):
  distributed.maybe_initialize(config)
  import jax
  print(f"process_count={{jax.process_count()}} process_index={{jax.process_index()}}",
        flush=True)
  for layout, split in (("whole", False), ("split", True)):
    layout_config = config.copy_and_resolve_references()
    layout_config.mesh.shard_train_data = split
    results = _run(layout_config, os.path.join(workdir, layout))
  return results

registry.run = run
sys.argv[0] = {main!r}
runpy.run_path({main!r}, run_name="__main__")
"""


def test_two_cpu_processes_train_as_one_and_only_process_0_writes(tmp_path):
  wrapper = tmp_path / "main_distributed.py"
  wrapper.write_text(_WRAPPER.format(root=REPO_ROOT,
                                     main=os.path.join(REPO_ROOT, "launch", "main.py")))
  workdir = tmp_path / "run"
  env = {k: v for k, v in os.environ.items() if k not in _SIGNALS}
  env["XLA_FLAGS"] = TEST_XLA_FLAGS  # one CPU device per process, whatever the caller set
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "launch", "gpu.py"), "--mode=per_gpu",
       "--platform=cpu", "--num_processes=2", f"--script={wrapper}",
       "--config=configs/synthetic.py:small", "--config.num_train_steps=10",
       f"--workdir={workdir}", "--verbose"],  # the INFO log lines checked below
      capture_output=True, text=True, timeout=420, cwd=REPO_ROOT, env=env)
  out = proc.stdout
  assert proc.returncode == 0, (out + proc.stderr)[-4000:]
  lines = {i: [line[4:] for line in out.splitlines() if line.startswith(f"[{i}] ")]
           for i in (0, 1)}
  assert "process_count=2 process_index=0" in lines[0]
  assert "process_count=2 process_index=1" in lines[1]
  # Only process 0 logs and writes metrics.
  assert sum("] train_mse=" in line for line in lines[0]) == 2  # once per layout
  assert not any("train_mse=" in line for line in lines[1])
  found = {name: sorted(os.path.join(d, name) for d, _, files in os.walk(tmp_path)
                        if name in files)
           for name in ("results.json", "metrics.jsonl")}
  assert found == {name: [str(workdir / layout / name) for layout in ("split", "whole")]
                   for name in ("results.json", "metrics.jsonl")}
  for layout, split in (("whole", False), ("split", True)):
    run_dir = workdir / layout
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    keyed = [(row["step"], tuple(sorted(row))) for row in rows]
    assert len(keyed) == len(set(keyed)), rows  # every row written once, not once per process
    assert sum("train_mse" in row for row in rows) == 1  # 10 steps, logged every 10
    results = json.loads((run_dir / "results.json").read_text())
    assert results["step"] == 10
    assert (run_dir / "checkpoints" / "10").is_dir()  # both processes saved through orbax
    # Per-host data: split, each process loaded half of the 64 training rows, and the
    # two halves form the one global array the step samples from.
    assert results["train_rows"] == {"per_process": 32 if split else 64, "global": 64,
                                     "split_over_devices": split}, layout
  for i in (0, 1):
    said = [line.split("] ", 1)[-1] for line in lines[i]
            if "Training rows split over 'data'" in line]  # once: only the split run
    assert said == ["Training rows split over 'data': 32 in this process, 32 per device"], said


def test_other_processes_check_the_workdir_read_only(tmp_path, small_config):
  workdir = tmp_path / "run"
  # Before process 0 made it: nothing to check, nothing created.
  assert workdir_lib.prepare_workdir(str(workdir), small_config, primary=False) == str(workdir)
  assert not workdir.exists()
  workdir_lib.prepare_workdir(str(workdir), small_config)  # process 0
  saved = (workdir / "config.json").read_text()
  assert workdir_lib.prepare_workdir(str(workdir), small_config, primary=False)
  other = copy.deepcopy(small_config)
  other.model.f_width = 48
  with pytest.raises(WorkdirError, match="config.model.f_width"):
    workdir_lib.prepare_workdir(str(workdir), other, primary=False)
  other.overwrite = True  # process 0 moves the old run aside; the others must not
  workdir_lib.prepare_workdir(str(workdir), other, primary=False)
  assert (workdir / "config.json").read_text() == saved
  assert [p.name for p in tmp_path.iterdir()] == ["run"]
  # A launcher's process count is not part of the run: resuming with another is fine.
  resumed = copy.deepcopy(small_config)
  resumed.distributed.num_processes = 4
  workdir_lib.prepare_workdir(str(workdir), resumed)
