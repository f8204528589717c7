"""SIGKILL at random moments, rerun the same command: bit-identical final state.

Kills are triggered by the run's progress (a checkpoint at or past a random step, then a random
few milliseconds more), not by wall-clock time, so a faster or slower machine still kills every
run mid-training.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import chex
import orbax.checkpoint as ocp

from conftest import REPO_ROOT

ARGS = ["--config=configs/synthetic.py:small", "--config.num_train_steps=150",
        "--config.checkpoint_every_steps=3", "--config.log_every_steps=3",
        "--config.eval_every_steps=50"]
TIMING_FIELDS = {"compile_seconds", "train_seconds_this_run", "steps_this_run",
                 "steps_per_second"}


def _command(workdir):
  return [sys.executable, os.path.join(REPO_ROOT, "launch", "main.py"), *ARGS,
          f"--workdir={workdir}"]


def _latest_checkpoint(workdir):
  """The newest finished checkpoint step in workdir, or -1 (orbax names unfinished ones N.orbax-...)."""
  try:
    names = os.listdir(os.path.join(workdir, "checkpoints"))
  except FileNotFoundError:
    return -1
  return max((int(n) for n in names if n.isdigit()), default=-1)


def _final_state(workdir):
  directory = os.path.join(workdir, "checkpoints")
  step = max(int(d) for d in os.listdir(directory) if d.isdigit())
  restored = ocp.StandardCheckpointer().restore(os.path.join(directory, str(step), "default"))
  return step, restored


def assert_same_final_run(reference, workdir, *, steps: int = 150) -> None:
  """The run in workdir ended at the reference's step with bit-identical state and the
  same results.json, timings aside."""
  ref_step, ref_state = _final_state(reference)
  step, state = _final_state(workdir)
  assert step == ref_step == steps
  chex.assert_trees_all_equal(state, ref_state)  # bit-identical, leaf by leaf
  ref_results = json.loads((reference / "results.json").read_text())
  results = json.loads((workdir / "results.json").read_text())
  for key in set(ref_results) - TIMING_FIELDS:
    assert results[key] == ref_results[key], key


def test_killed_runs_resume_bit_identically(tmp_path):
  reference = tmp_path / "reference"
  subprocess.run(_command(reference), check=True, capture_output=True, timeout=300,
                 cwd=REPO_ROOT)
  workdir = tmp_path / "killed"
  rng = random.Random(0)
  # One kill in each third of the run: the resumed run starts past the previous target.
  targets = [rng.randrange(low, low + 30) for low in (6, 36, 66)]
  kills = 0
  for target in targets:
    proc = subprocess.Popen(_command(workdir), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=REPO_ROOT)
    deadline = time.monotonic() + 240
    while (proc.poll() is None and _latest_checkpoint(workdir) < target
           and time.monotonic() < deadline):
      time.sleep(0.002)
    time.sleep(rng.uniform(0.0, 0.01))  # land inside a step or a checkpoint write
    if proc.poll() is None:
      proc.send_signal(signal.SIGKILL)
      kills += 1
    proc.wait()
  assert kills == len(targets), f"only {kills} of the runs were still training when killed"
  assert not (workdir / "results.json").exists()
  subprocess.run(_command(workdir), check=True, capture_output=True, timeout=300,
                 cwd=REPO_ROOT)

  assert_same_final_run(reference, workdir)
  # No half-written checkpoint or temporary result file is left to be picked up.
  leftovers = [n for n in os.listdir(workdir) if n.startswith(".tmp")]
  assert not leftovers
