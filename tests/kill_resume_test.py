"""SIGKILL at random moments, rerun the same command: bit-identical final state."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import orbax.checkpoint as ocp
import jax

from conftest import REPO_ROOT

ARGS = ["--config=configs/synthetic.py:small", "--config.num_train_steps=150",
        "--config.checkpoint_every_steps=3", "--config.log_every_steps=3",
        "--config.eval_every_steps=50"]
TIMING_FIELDS = {"compile_seconds", "train_seconds_this_run", "steps_this_run",
                 "steps_per_second"}


def _command(workdir):
  return [sys.executable, os.path.join(REPO_ROOT, "launch", "main.py"), *ARGS,
          f"--workdir={workdir}"]


def _final_state(workdir):
  directory = os.path.join(workdir, "checkpoints")
  step = max(int(d) for d in os.listdir(directory) if d.isdigit())
  restored = ocp.StandardCheckpointer().restore(os.path.join(directory, str(step), "default"))
  return step, restored


def test_killed_runs_resume_bit_identically(tmp_path):
  reference = tmp_path / "reference"
  subprocess.run(_command(reference), check=True, capture_output=True, timeout=300,
                 cwd=REPO_ROOT)
  workdir = tmp_path / "killed"
  rng = random.Random(0)
  kills = 0
  for _ in range(4):
    proc = subprocess.Popen(_command(workdir), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=REPO_ROOT)
    time.sleep(rng.uniform(3.0, 9.0))
    if proc.poll() is None:
      proc.send_signal(signal.SIGKILL)
      kills += 1
    proc.wait()
    if (workdir / "results.json").exists():
      break
  assert kills >= 1
  subprocess.run(_command(workdir), check=True, capture_output=True, timeout=300,
                 cwd=REPO_ROOT)

  ref_step, ref_state = _final_state(reference)
  step, state = _final_state(workdir)
  assert step == ref_step == 150
  for a, b in zip(jax.tree.leaves(ref_state), jax.tree.leaves(state)):
    np.testing.assert_array_equal(a, b)  # bit-identical
  ref_results = json.loads((reference / "results.json").read_text())
  results = json.loads((workdir / "results.json").read_text())
  for key in set(ref_results) - TIMING_FIELDS:
    assert results[key] == ref_results[key], key
  # No half-written checkpoint or temporary result file is left to be picked up.
  leftovers = [n for n in os.listdir(workdir) if n.startswith(".tmp")]
  assert not leftovers
