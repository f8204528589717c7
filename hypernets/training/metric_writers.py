"""Metric writing: TensorBoard event files, JSON lines and log lines with progress/ETA.

The interface follows clu's `MetricWriter` (write_scalars/write_hparams/flush/close).
clu's own writers import TensorFlow, which this project does not need, so event
files are written with tensorboardX. Only process 0 writes. A workdir in a bucket
(`gs://...`) is written through hypernets/training/files.py: there every flush
uploads the files again (objects cannot be appended to), at most every
REMOTE_FLUSH_SECONDS while training and at `flush()` / `close()`.
"""

import json
import time
from typing import Any, Mapping

from absl import logging
import numpy as np

from hypernets.parallel import distributed
from hypernets.training import files

REMOTE_FLUSH_SECONDS = 60.0


class MetricWriter:
  """Writes scalars to `workdir/metrics.jsonl`, TensorBoard events and the log."""

  def __init__(self, workdir: str, *, tensorboard: bool = True):
    self._enabled = distributed.is_primary()
    self._jsonl = None
    self._tb = None
    if not self._enabled:
      return
    self._remote = files.is_url(workdir)
    self._last_flush = time.monotonic()
    self._jsonl = files.AppendFile(files.join(workdir, "metrics.jsonl"))
    if tensorboard:
      import tensorboardX  # pylint: disable=g-import-not-at-top
      if self._remote:
        _route_tensorboard_through_files(workdir)
      self._tb = tensorboardX.SummaryWriter(files.join(workdir, "tensorboard"))

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    """Writes each scalar (python or 0-d array) at `step`."""
    if not self._enabled:
      return
    values = {k: float(np.asarray(v)) for k, v in scalars.items()}
    logging.info("[%d] %s", step, ", ".join(f"{k}={v:.6g}" for k, v in values.items()))
    self._jsonl.write(json.dumps({"step": int(step), **values}) + "\n")
    if self._tb is not None:
      for name, value in values.items():
        self._tb.add_scalar(name, value, global_step=int(step))
    if self._remote and time.monotonic() - self._last_flush > REMOTE_FLUSH_SECONDS:
      self.flush()

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    """Records hyperparameters as a TensorBoard text summary."""
    if self._enabled and self._tb is not None:
      text = "\n".join(f"    {k}: {v}" for k, v in sorted(hparams.items()))
      self._tb.add_text("hparams", text, global_step=0)

  def flush(self) -> None:
    if self._jsonl is not None:
      self._jsonl.flush()
    if self._tb is not None:
      self._tb.flush()
    self._last_flush = time.monotonic()

  def close(self) -> None:
    self.flush()
    if self._jsonl is not None:
      self._jsonl.close()
    if self._tb is not None:
      self._tb.close()
    self._jsonl = self._tb = None


class _FilesWriterFactory:
  """tensorboardX's hook for URL schemes (its own gs:// writer needs google-cloud-storage)."""

  def open(self, path: str) -> files.AppendFile:
    return files.AppendFile(path, binary=True)

  def directory_check(self, path: str) -> None:
    files.makedirs(path)


def _route_tensorboard_through_files(workdir: str) -> None:
  from tensorboardX import record_writer  # pylint: disable=g-import-not-at-top
  record_writer.register_writer_factory(workdir.split(":", 1)[0], _FilesWriterFactory())


class ReportProgress:
  """Logs 'step s/n (p%), r steps/s, ETA t' at most every `every_secs` seconds.

  Also writes `steps_per_sec` through the writer. Call it once per step, from the
  host, after dispatching the step (it never waits for the device).
  """

  def __init__(self, *, num_train_steps: int, writer: MetricWriter | None = None,
               every_secs: float = 10.0):
    self._total = num_train_steps
    self._writer = writer
    self._every = every_secs
    self._last_time = None
    self._last_step = None

  def __call__(self, step: int) -> None:
    now = time.monotonic()
    if self._last_time is None:
      self._last_time, self._last_step = now, step
      return
    if now - self._last_time < self._every and step != self._total:
      return
    rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
    eta = (self._total - step) / rate if rate > 0 else float("inf")
    logging.info("step %d/%d (%.1f%%), %.1f steps/s, ETA %s", step, self._total,
                 100.0 * step / self._total, rate, _format_seconds(eta))
    if self._writer is not None:
      self._writer.write_scalars(step, {"steps_per_sec": rate})
    self._last_time, self._last_step = now, step


def _format_seconds(seconds: float) -> str:
  if not np.isfinite(seconds):
    return "?"
  minutes, secs = divmod(int(round(seconds)), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
