"""Stopped at random moments, rerun the same command: bit-identical final state.

Two ways a run is stopped: SIGKILL (nothing runs after it: the rerun restores the last
finished checkpoint) and SIGTERM, a spot VM's or Slurm's notice (the run checkpoints
the step it reached and exits 75). Both are compared with one uninterrupted reference
run of the same command.

Signals are sent on the run's progress (a checkpoint at or past a random step, then a
random few milliseconds more), not on wall-clock time, so a faster or slower machine
still stops every run mid-training.
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import chex
import orbax.checkpoint as ocp
import pytest

from conftest import REPO_ROOT

STEPS = 150
# Checkpoints every 10 steps, log events every 5: a SIGTERM between checkpoints must
# still checkpoint the step reached.
ARGS = ["--config=configs/synthetic.py:small", f"--config.num_train_steps={STEPS}",
        "--config.checkpoint_every_steps=10", "--config.log_every_steps=5",
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


def _latest_logged_step(workdir):
  try:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      return max((json.loads(line)["step"] for line in f if "train_mse" in line),
                 default=-1)
  except FileNotFoundError:
    return -1


def _final_state(workdir):
  directory = os.path.join(workdir, "checkpoints")
  step = max(int(d) for d in os.listdir(directory) if d.isdigit())
  restored = ocp.StandardCheckpointer().restore(os.path.join(directory, str(step), "default"))
  return step, restored


def assert_same_final_run(reference, workdir, *, steps: int = STEPS) -> None:
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


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """The workdir of one uninterrupted run of the command."""
  workdir = tmp_path_factory.mktemp("reference") / "run"
  subprocess.run(_command(workdir), check=True, capture_output=True, timeout=300,
                 cwd=REPO_ROOT)
  return workdir


def _start_and_wait(workdir, target, rng, **popen_kwargs):
  """Starts the command; returns it once a checkpoint at or past `target` is written and
  a random few milliseconds more have passed (inside a step or a checkpoint write)."""
  proc = subprocess.Popen(_command(workdir), stdout=subprocess.DEVNULL, cwd=REPO_ROOT,
                          **popen_kwargs)
  deadline = time.monotonic() + 240
  while (proc.poll() is None and _latest_checkpoint(workdir) < target
         and time.monotonic() < deadline):
    time.sleep(0.002)
  time.sleep(rng.uniform(0.0, 0.01))
  return proc


def test_killed_runs_resume_bit_identically(tmp_path, reference):
  workdir = tmp_path / "killed"
  rng = random.Random(0)
  # One kill in each half of the run: the resumed run starts past the previous target.
  targets = [rng.randrange(low, low + 40) for low in (6, 76)]
  kills = 0
  for target in targets:
    proc = _start_and_wait(workdir, target, rng, stderr=subprocess.DEVNULL)
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


def test_sigterm_checkpoints_the_step_reached_and_resumes_bit_identically(tmp_path,
                                                                           reference):
  workdir = tmp_path / "preempted"
  rng = random.Random(1)
  targets = [rng.randrange(low, low + 40) for low in (10, 70)]
  stopped_at = []
  for target in targets:
    proc = _start_and_wait(workdir, target, rng, stderr=subprocess.PIPE, text=True)
    assert proc.poll() is None, "the run finished before the signal"
    signaled_after = max(_latest_logged_step(workdir), _latest_checkpoint(workdir))
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 75, stderr[-2000:]
    last_line = stderr.strip().splitlines()[-1]
    assert last_line.startswith("stopped: stopped by a signal at step "), last_line
    step = int(re.search(rf"at step (\d+) of {STEPS}", last_line).group(1))
    # The checkpoint is of exactly the step reached: no step of work is lost.
    assert _latest_checkpoint(workdir) == step >= signaled_after
    stopped_at.append(step)
  assert stopped_at == sorted(stopped_at) and stopped_at[-1] < STEPS
  # At least one stop fell between two checkpoints (log events come every 5 steps):
  # the path that writes a checkpoint off the schedule ran.
  assert any(step % 10 for step in stopped_at), stopped_at
  assert not (workdir / "results.json").exists()
  subprocess.run(_command(workdir), check=True, capture_output=True, timeout=300,
                 cwd=REPO_ROOT)

  assert_same_final_run(reference, workdir)
