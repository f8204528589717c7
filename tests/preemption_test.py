"""SIGTERM (a spot VM's or Slurm's notice) at random moments: the run checkpoints the
step it reached, exits 75, and the rerun ends bit-identical to an uninterrupted run.

Signals are sent on the run's progress (a checkpoint at or past a random step, then
a random few milliseconds more), as tests/kill_resume_test.py does with SIGKILL.
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time


from conftest import REPO_ROOT
from kill_resume_test import assert_same_final_run
from kill_resume_test import _latest_checkpoint

# Checkpoints every 10 steps, log events every 5: a stop between checkpoints must
# still checkpoint the step reached.
ARGS = ["--config=configs/synthetic.py:small", "--config.num_train_steps=150",
        "--config.checkpoint_every_steps=10", "--config.log_every_steps=5",
        "--config.eval_every_steps=50"]


def _command(workdir):
  return [sys.executable, os.path.join(REPO_ROOT, "launch", "main.py"), *ARGS,
          f"--workdir={workdir}"]


def _latest_logged_step(workdir):
  try:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      return max((json.loads(line)["step"] for line in f if "train_mse" in line),
                 default=-1)
  except FileNotFoundError:
    return -1


def test_sigterm_checkpoints_the_step_reached_and_resumes_bit_identically(tmp_path):
  reference = tmp_path / "reference"
  subprocess.run(_command(reference), check=True, capture_output=True, timeout=300,
                 cwd=REPO_ROOT)
  workdir = tmp_path / "preempted"
  rng = random.Random(1)
  targets = [rng.randrange(low, low + 40) for low in (10, 60)]
  stopped_at = []
  for target in targets:
    proc = subprocess.Popen(_command(workdir), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, cwd=REPO_ROOT)
    deadline = time.monotonic() + 240
    while (proc.poll() is None and _latest_checkpoint(workdir) < target
           and time.monotonic() < deadline):
      time.sleep(0.002)
    time.sleep(rng.uniform(0.0, 0.01))  # land inside a call or a checkpoint write
    assert proc.poll() is None, "the run finished before the signal"
    signaled_after = max(_latest_logged_step(workdir), _latest_checkpoint(workdir))
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 75, stderr[-2000:]
    last_line = stderr.strip().splitlines()[-1]
    assert last_line.startswith("stopped: stopped by a signal at step "), last_line
    step = int(re.search(r"at step (\d+) of 150", last_line).group(1))
    # The checkpoint is of exactly the step reached: no step of work is lost.
    assert _latest_checkpoint(workdir) == step >= signaled_after
    stopped_at.append(step)
  assert stopped_at == sorted(stopped_at) and stopped_at[-1] < 150
  assert not (workdir / "results.json").exists()
  subprocess.run(_command(workdir), check=True, capture_output=True, timeout=300,
                 cwd=REPO_ROOT)

  assert_same_final_run(reference, workdir)
