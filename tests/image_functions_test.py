"""Images as functions: the task (through the extension point) and the comparison runner."""

import json
import os
import subprocess
import sys

import jax
import numpy as np

from conftest import REPO_ROOT
from conftest import load_config
from hypernets import data as data_lib
from hypernets.data import image_functions as task
from hypernets.experiments import image_functions
from hypernets.experiments import registry


def test_task_holds_out_a_fixed_pixel_mask_and_conditions_on_observed_pixels():
  config = load_config("image_functions", "small")
  assert ":" in config.data.name  # an import path, not a registered name
  dataset = data_lib.create_dataset(config.data)
  heldout = task.heldout_mask(64, fraction=0.25, seed=config.data.seed)
  assert heldout.sum() == 16
  splits = dataset.eval_splits
  assert jax.tree.map(np.shape, splits["train"].x) == (128, 48, 2)
  assert splits["heldout_pixels"].x.shape == (128, 16, 2)
  assert splits["test"].x.shape == (32, 64, 2) and splits["test"].cond.shape == (32, 48)
  coords = task.pixel_coordinates(8, 8)
  assert coords.min() == -1 and coords.max() == 1
  # I is the observed pixels; the held-out ones appear only as targets.
  np.testing.assert_array_equal(splits["test"].cond, splits["test"].y[:, ~heldout, 0])
  np.testing.assert_array_equal(splits["heldout_pixels"].x[0], coords[heldout])
  np.testing.assert_array_equal(splits["train"].x[0], coords[~heldout])


def test_embedding_q_is_matched_to_g_size():
  for width in (8, 16, 32, 64):
    q = image_functions.matched_q_width(width, embedding_dim=32)
    n_g = image_functions.mlp_params((width, width), d_in=2)
    n_q = lambda w: image_functions.mlp_params((w, w), d_in=34)  # pylint: disable=unnecessary-lambda-assignment
    # The closest q (one width step is coarse at small widths: 79 / 121 for N_g = 105).
    assert abs(n_q(q) - n_g) <= min(abs(n_q(q - 1) - n_g), abs(n_q(q + 1) - n_g))
    assert abs(n_q(q) - n_g) <= 0.2 * n_g, (width, n_g, n_q(q))


def test_comparison_trains_each_point_and_reports_psnr(tmp_path):
  config = load_config("image_functions", "small")
  config.image_functions.methods = ("hypernet_sine", "embedding_relu")
  config.image_functions.widths = (4,)
  config.image_functions.figure_width = 4
  config.num_train_steps = config.eval_every_steps = config.checkpoint_every_steps = 10
  rows = registry.run(config, str(tmp_path))
  assert [r["method"] for r in rows] == ["hypernet_sine", "embedding_relu"]
  for row in rows:
    with open(tmp_path / row["point"] / "results.json") as f:
      mse = json.load(f)["test_mse"]
    np.testing.assert_allclose(row["psnr_test"], -10 * np.log10(mse), rtol=1e-6)
    assert np.isfinite(row["psnr_heldout_pixels"]) and np.isfinite(row["psnr_train"])
  assert rows[0]["primary_params"] == 4 * 2 + 4 + 4 * 4 + 4 + 4 + 1
  for name in ("image_functions.md", "psnr_vs_primary.png", "reconstructions.png"):
    assert os.path.getsize(tmp_path / name) > 0
  assert "| hypernet_sine | 4 | N_g = 37 |" in (tmp_path / "image_functions.md").read_text()

  # The same command through launch/main.py finds every point done and ends with one
  # line (results.json of a sweep's root is a list of rows: main.py read it as a dict).
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "launch", "main.py"),
       "--config=configs/image_functions.py:small",
       "--config.image_functions.methods=('hypernet_sine', 'embedding_relu')",
       "--config.image_functions.widths=(4,)", "--config.image_functions.figure_width=4",
       *[f"--config.{k}=10" for k in ("num_train_steps", "eval_every_steps",
                                       "checkpoint_every_steps")],
       f"--workdir={tmp_path}"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
  assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
  assert proc.stdout.strip().splitlines()[-1].startswith("done: 2 points ("), proc.stdout
