"""benchmarks/workers.py: the worker protocol, and each framework in its own process.

The PyTorch tests are skipped where torch is not installed (CI installs '.[test]')."""

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import timing
from benchmarks import workers
from conftest import REPO_ROOT

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")


def test_the_benchmark_driver_never_imports_torch():
  code = ("import sys; from benchmarks import run, compare, conv_primary, tables, targets; "
          "from benchmarks import timing, machine; machine.describe(); "
          "print('torch' in sys.modules)")
  proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                        text=True, timeout=300, check=True)
  assert proc.stdout.strip() == "False"


def test_interleaved_timing_uses_the_seconds_a_worker_reports():
  calls = []

  def reported(steps):  # a worker's answer: per-step seconds, not the wall clock here
    calls.append(steps)
    return [0.5] * steps

  timed = timing.measure_interleaved({"w": reported}, warmup=1, repeats=3, min_repeat_s=1.0)
  assert timed["w"]["step_s"] == 0.5 and timed["w"]["steps_per_repeat"] == 2
  assert timed["w"]["per_step"] == {"median": 0.5, "p10": 0.5, "p90": 0.5}
  assert calls == [1, 1, 1, 2, 2, 2]


def test_spread():
  assert timing.spread([4.0, 1.0, 3.0, 2.0, 5.0]) == {"median": 3.0, "p10": 1.4, "p90": 4.6}


def test_jax_worker_answers_and_reports_errors_in_one_line():
  with workers.Worker("jax", threads=1) as worker:
    assert worker.info["side"] == "jax"
    assert worker.info["frameworks_loaded"] == ["jax"]
    with pytest.raises(workers.WorkerError, match="KeyError"):
      worker.call("run", label="no such step", steps=1)
    assert worker.call("ping")["side"] == "jax"  # still serving after an error
  assert worker.proc.returncode == 0


def _spec():
  return dict(kind="hypernet", d_cond=6, d_x=6, trunk_widths=[8], primary_dims=[6, 5, 3],
              primary_bias=True, embedding_dim=0, q_dims=[], q_bias=False,
              task="classification", optimizer="sgd", learning_rate=0.1)


@needs_torch
def test_torch_worker_times_model_and_data_steps_without_jax(tmp_path):
  rng = np.random.default_rng(0)
  batch = tmp_path / "batch.npz"
  np.savez(batch, cond=rng.normal(size=(4, 6)).astype(np.float32),
           x=rng.normal(size=(4, 1, 6)).astype(np.float32),
           y=rng.integers(0, 3, size=(4, 1)).astype(np.int32))
  images = tmp_path / "images.npz"
  np.savez(images, images=rng.integers(0, 256, size=(10, 3, 2, 1)).astype(np.uint8))
  with workers.Worker("torch", threads=1) as worker:
    assert worker.info["threads"] == 1
    assert worker.info["frameworks_loaded"] == ["torch"]  # no JAX beside torch
    worker.call("model_step", label="m", spec=_spec(), variant="bmm", batch_path=str(batch))
    worker.call("data_step", label="d", spec=_spec(), variant="bmm",
                images_path=str(images), mean=0.5, std=0.25, num_classes=3, batch_size=4)
    for label in ("m", "d"):
      seconds = worker.runner(label)(5)  # d: 5 steps over 2 epochs of 2 batches
      assert len(seconds) == 5 and all(s > 0 for s in seconds)


@needs_torch
def test_torch_rotation_and_labels_match_the_library():
  from benchmarks import torch_reference  # pylint: disable=g-import-not-at-top
  from hypernets.data import rotation  # pylint: disable=g-import-not-at-top
  images = np.arange(30, dtype=np.uint8).reshape(1, 5, 6, 1)
  data = torch_reference.RotatedImages(images, mean=0.0, std=1.0, num_classes=12)
  angles = np.array([0.0, 14.9, 15.0, 100.0, 344.9, 345.0, 359.9], np.float32)
  np.testing.assert_array_equal([data.label(float(a)) for a in angles],
                                np.asarray(rotation.angle_to_class(angles, num_classes=12)))
  square = images[:, :, :5]  # a quarter turn of a square image is exact
  np.testing.assert_array_equal(data.rotate(square[0], 90.0), np.rot90(square[0]))
  cond, x, y = data[0]
  assert cond.shape == (30,) and x.shape == (1, 30) and 0 <= int(y[0]) < 12
