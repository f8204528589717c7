"""One writer per workdir: two launchers on one workdir, a killed holder, sweeps that split.

Processes that must start "together" import everything first, then wait for a go
file, so they reach the lock within milliseconds of each other whatever the load.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO_ROOT
from conftest import load_config
from hypernets.errors import WorkdirError
from hypernets.training import workdir as workdir_lib
from hypernets.training import workdir_lock

# Runs a launcher once `go` exists, after its imports (argv: go, script, args...).
_READY_THEN_GO = """
import os, runpy, sys, time
sys.path.insert(0, {root!r})
import jax
from hypernets.experiments import registry
go, script = sys.argv[1], sys.argv[2]
sys.argv = [script] + sys.argv[3:]
open(go + "." + str(os.getpid()), "w").close()  # ready
while not os.path.exists(go):
  time.sleep(0.005)
runpy.run_path(script, run_name="__main__")
"""

_BUSY = re.compile(r"^error: workdir (\S+) is in use by process (\d+) on (\S+) since "
                   r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S*); wait for it, or use another "
                   r"--workdir$")


def _start_together(tmp_path, commands):
  """Starts each (script, args) once all have imported; returns the Popens."""
  wrapper = tmp_path / "ready_then_go.py"
  wrapper.write_text(_READY_THEN_GO.format(root=REPO_ROOT))
  go = tmp_path / "go"
  procs = [subprocess.Popen([sys.executable, str(wrapper), str(go),
                             os.path.join(REPO_ROOT, "launch", script), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO_ROOT) for script, args in commands]
  deadline = time.monotonic() + 120
  while len([p for p in tmp_path.iterdir() if p.name.startswith("go.")]) < len(procs):
    assert time.monotonic() < deadline, "launchers never got ready"
    assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
    time.sleep(0.05)
  go.touch()
  return procs


def test_two_launchers_on_one_workdir_one_trains_the_other_stops(tmp_path):
  workdir = tmp_path / "run"
  args = ["--config=configs/synthetic.py:small", f"--workdir={workdir}"]  # 40 steps
  procs = _start_together(tmp_path, [("main.py", args), ("main.py", args)])
  outputs = [p.communicate(timeout=300) for p in procs]
  codes = sorted(p.returncode for p in procs)
  assert codes == [0, 1], [err[-2000:] for _, err in outputs]
  winner, loser = (0, 1) if procs[0].returncode == 0 else (1, 0)
  errors = [line for line in outputs[loser][1].splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "Traceback" not in outputs[loser][1], outputs[loser][1]
  match = _BUSY.match(errors[0])
  assert match, errors[0]
  assert match.group(1) == str(workdir)
  assert int(match.group(2)) == procs[winner].pid
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  keyed = [(row["step"], tuple(sorted(row))) for row in rows]
  assert len(keyed) == len(set(keyed)), rows  # each row once
  assert sum("train_mse" in row for row in rows) == 4  # one run's 4 log steps
  assert json.loads((workdir / "results.json").read_text())["step"] == 40


_HOLD = """
import sys, time
sys.path.insert(0, {root!r})
from hypernets.training import workdir_lock
workdir_lock.acquire(sys.argv[1])
print("locked", flush=True)
time.sleep(600)
"""


def test_a_held_lock_names_its_holder_and_a_killed_holder_leaves_none(tmp_path,
                                                                      small_config):
  workdir = tmp_path / "run"
  workdir.mkdir()
  holder = subprocess.Popen([sys.executable, "-c", _HOLD.format(root=REPO_ROOT),
                             str(workdir)], stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(WorkdirError) as e:
      workdir_lib.prepare_workdir(str(workdir), small_config)
    assert _BUSY.match("error: " + str(e.value)), str(e.value)
    assert f"by process {holder.pid} on " in str(e.value)
    assert sorted(p.name for p in workdir.iterdir()) == [".lock"]  # nothing written
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  # The kernel dropped the dead holder's lock: the next run just takes it.
  assert workdir_lib.prepare_workdir(str(workdir), small_config) == str(workdir)
  assert (workdir / "config.json").exists()
  assert workdir_lock.holds(str(workdir))
  workdir_lib.release_workdir(str(workdir))
  assert not workdir_lock.holds(str(workdir))


def test_one_process_may_prepare_its_own_workdir_again(tmp_path, small_config):
  workdir = str(tmp_path / "run")
  workdir_lib.prepare_workdir(workdir, small_config)
  workdir_lib.prepare_workdir(workdir, small_config)  # a resumed run in the same process
  assert workdir_lib.claim_workdir(workdir) is None
  workdir_lib.release_workdir(workdir)


# The synthetic config with a four-point sweep.
_SWEEP_CONFIG = """
import importlib.util
spec = importlib.util.spec_from_file_location("synthetic", {path!r})
synthetic = importlib.util.module_from_spec(spec)
spec.loader.exec_module(synthetic)
get_config = synthetic.get_config

def get_sweeps(arg=None):
  return {{"four": synthetic.sweeps.sweep("model.embedding_dim", [2, 4, 8, 16])}}
"""


def test_two_sweep_launchers_on_one_root_run_every_point_once(tmp_path):
  root = tmp_path / "sweep"
  config = tmp_path / "sweep_config.py"
  config.write_text(_SWEEP_CONFIG.format(
      path=os.path.join(REPO_ROOT, "configs", "synthetic.py")))
  args = [f"--config={config}:small,kind=embedding", "--sweep=four",
          "--config.num_train_steps=20", f"--workdir={root}", "--verbose"]
  procs = _start_together(tmp_path, [("sweep.py", args), ("sweep.py", args)])
  outputs = [p.communicate(timeout=400) for p in procs]
  assert [p.returncode for p in procs] == [0, 0], [err[-3000:] for _, err in outputs]
  trained = []
  for _, err in outputs:
    trained.append({m.group(1) for m in re.finditer(r"Sweep point (\d+)/4 \{[^}]*\}$", err,
                                                    re.MULTILINE)})
  assert trained[0].isdisjoint(trained[1]), trained  # no point twice
  assert trained[0] | trained[1] == {"1", "2", "3", "4"}, trained  # every point
  for out, _ in outputs:
    assert "4 points gathered" in out
  for point in [p for p in root.iterdir() if p.is_dir()]:
    rows = [json.loads(l) for l in (point / "metrics.jsonl").read_text().splitlines()]
    keyed = [(row["step"], tuple(sorted(row))) for row in rows]
    assert len(keyed) == len(set(keyed)), (point, rows)
    assert json.loads((point / "results.json").read_text())["steps_this_run"] == 20
  assert len(json.loads((root / "results.json").read_text())) == 4
