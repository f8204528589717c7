"""The launchers, run as a user would: one clear line on bad input, a table on success."""

import os
import subprocess
import sys

from conftest import REPO_ROOT


def _run(script, *args):
  return subprocess.run([sys.executable, os.path.join(REPO_ROOT, "launch", script), *args],
                        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)


def test_main_bad_config_value_is_one_clear_line(tmp_path):
  proc = _run("main.py", "--config=configs/synthetic.py:small",
              f"--workdir={tmp_path}/run", "--config.model.f_width=0")
  assert proc.returncode == 1
  assert "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1] == (
      "error: config.model.f_width must be a positive integer, got 0")
  assert not os.path.exists(tmp_path / "run")


def test_main_wrong_type_override_names_the_field(tmp_path):
  proc = _run("main.py", "--config=configs/synthetic.py:small",
              f"--workdir={tmp_path}", "--config.model.f_width=abc")
  assert proc.returncode != 0
  assert "Traceback" not in proc.stderr
  assert "f_width" in proc.stderr


def test_compare_prints_the_table(tmp_path):
  proc = _run("compare.py", "--config=configs/synthetic.py:small",
              f"--workdir={tmp_path}", "--kinds=hypernet,embedding")
  assert proc.returncode == 0, proc.stderr[-2000:]
  lines = proc.stdout.strip().splitlines()
  assert lines[0].split()[:2] == ["method", "primary"]
  assert "test_mse" in lines[0] and "test_rel_mse" in lines[0]
  assert lines[2].startswith("hypernet") and "N_g=" in lines[2]
  assert lines[3].startswith("embedding") and "N_q=" in lines[3]
  assert os.path.exists(tmp_path / "hypernet" / "results.json")
  assert os.path.exists(tmp_path / "comparison.json")
  # Quiet: one progress line per run on stderr, no INFO/absl lines (--verbose has them).
  assert proc.stderr.strip().splitlines() == [
      f"[1/2] hypernet: training 40 steps in {tmp_path}/hypernet",
      f"[2/2] embedding: training 40 steps in {tmp_path}/embedding"]
  # A rerun reads the finished runs back: the same table, the recorded train time.
  again = _run("compare.py", "--config=configs/synthetic.py:small",
               f"--workdir={tmp_path}", "--kinds=hypernet,embedding")
  assert again.returncode == 0, again.stderr[-2000:]
  assert again.stdout == proc.stdout
  assert float(lines[2].split()[-1]) > 0
  assert "not run again" in again.stderr and "training" not in again.stderr
