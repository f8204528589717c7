"""gs:// workdirs through the files layer (etils.epath over fsspec), on a local fake bucket.

The fake is fsspec's `gcs` protocol pointed at a local directory, so every call
goes through the same layer a real gs:// path does (epath -> fsspec); only the
last hop (gcsfs -> GCS) is swapped. Orbax writes arrays to gs:// with
TensorStore's own GCS driver, which the fake cannot stand in for: the full run
below hands orbax the gs:// URL and redirects just that call to the fake's
directory.
"""

import json
import os

from etils.epath import backend as epath_backend
import fsspec
from fsspec.implementations.local import LocalFileSystem
import pytest

from conftest import load_config
from hypernets.errors import WorkdirError
from hypernets.experiments import registry
from hypernets.training import checkpoints
from hypernets.training import files
from hypernets.training import metric_writers
from hypernets.training import workdir as workdir_lib
from hypernets.training import workdir_lock


class FakeGCS(LocalFileSystem):
  """gs://bucket/key <-> ROOT/bucket/key on the local disk."""
  protocol = ("gcs", "gs")
  root = "/nonexistent"

  @classmethod
  def _strip_protocol(cls, path):
    path = str(path)
    for prefix in ("gs://", "gcs://"):
      if path.startswith(prefix):
        return os.path.join(cls.root, path[len(prefix):]).rstrip("/")
    return super()._strip_protocol(path)


@pytest.fixture
def bucket(tmp_path, monkeypatch):
  """A fake GCS root: 'gs://bucket/...' lands in the returned local directory."""
  root = tmp_path / "gcs"
  (root / "bucket").mkdir(parents=True)
  monkeypatch.setattr(FakeGCS, "root", str(root))
  for protocol in ("gcs", "gs"):
    fsspec.register_implementation(protocol, FakeGCS, clobber=True)
  type(epath_backend.fsspec_backend)._get_filesystem.cache_clear()
  yield root / "bucket"
  type(epath_backend.fsspec_backend)._get_filesystem.cache_clear()
  workdir_lock.release_all()


def test_files_layer_speaks_gs_through_epath(bucket):
  run = "gs://bucket/run"
  assert files.is_url(run) and files.absolute(run + "/") == run
  files.makedirs(run)
  files.write_bytes_atomic(files.join(run, "a.json"), b'{"x": 1}')
  assert (bucket / "run" / "a.json").read_bytes() == b'{"x": 1}'
  assert files.exists(files.join(run, "a.json")) and files.read_text(
      files.join(run, "a.json")) == '{"x": 1}'
  log = files.AppendFile(files.join(run, "log.txt"))
  log.write("one\n")
  log.flush()
  log.write("two\n")
  log.close()
  again = files.AppendFile(files.join(run, "log.txt"))  # a resumed run appends
  again.write("three\n")
  again.close()
  assert (bucket / "run" / "log.txt").read_text() == "one\ntwo\nthree\n"
  files.rename(run, "gs://bucket/moved")
  assert (bucket / "moved" / "a.json").exists() and not (bucket / "run").exists()
  files.remove("gs://bucket/moved/a.json")
  files.remove("gs://bucket/moved/a.json")  # already gone: fine
  assert not (bucket / "moved" / "a.json").exists()


def test_bucket_lock_is_a_lease(bucket, monkeypatch):
  monkeypatch.setattr(workdir_lock, "SETTLE_SECONDS", 0.0)
  run = "gs://bucket/run"
  files.makedirs(run)
  assert workdir_lock.try_acquire(run) is None
  holder = json.loads((bucket / "run" / ".lock").read_text())
  assert holder["pid"] == os.getpid() and holder["heartbeat"] > 0
  # Another process (another lease on the same object) is refused while it beats...
  other = workdir_lock._Lease(files.join(run, workdir_lock.LOCK_NAME))
  assert other.acquire()["token"] == holder["token"]
  # ...and takes over a lease whose holder stopped beating (a preempted VM).
  monkeypatch.setattr(workdir_lock, "LEASE_SECONDS", -1.0)
  assert other.acquire() is None
  other.release()
  assert not (bucket / "run" / ".lock").exists()
  workdir_lock.release(run)


def test_a_run_in_a_bucket_writes_everything_through_the_layer(bucket, monkeypatch):
  monkeypatch.setattr(workdir_lock, "SETTLE_SECONDS", 0.0)
  handed_to_orbax = []
  manager_class = checkpoints.ocp.CheckpointManager

  def local_manager(directory, *args, **kwargs):
    handed_to_orbax.append(str(directory))
    return manager_class(FakeGCS._strip_protocol(str(directory)), *args, **kwargs)

  monkeypatch.setattr(checkpoints.ocp, "CheckpointManager", local_manager)
  config = load_config("synthetic", "small")
  config.num_train_steps = 20
  run = "gs://bucket/run"
  registry.run(config, run)
  assert handed_to_orbax == ["gs://bucket/run/checkpoints"]
  local = bucket / "run"
  assert json.loads((local / "config.json").read_text())["num_train_steps"] == 20
  assert json.loads((local / "results.json").read_text())["step"] == 20
  rows = [json.loads(l) for l in (local / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows if "train_mse" in r] == [10, 20]
  events = list((local / "tensorboard").iterdir())
  assert len(events) == 1 and events[0].name.startswith("events.out.tfevents")
  assert events[0].stat().st_size > 100
  assert json.loads((local / ".lock").read_text())["pid"] == os.getpid()
  # The same command again reads the finished run's results.json from the bucket and
  # returns it without training (it stays as written).
  finished = (local / "results.json").read_text()
  registry.run(config, run)
  assert (local / "results.json").read_text() == finished
  # Without results.json it restores the last checkpoint from the bucket: 0 steps.
  (local / "results.json").unlink()
  registry.run(config, run)
  assert json.loads((local / "results.json").read_text())["steps_this_run"] == 0
  rows = [json.loads(l) for l in (local / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows if "train_mse" in r] == [10, 20]  # nothing trained


def test_a_bucket_workdir_of_another_config_is_refused(bucket, monkeypatch, small_config):
  monkeypatch.setattr(workdir_lock, "SETTLE_SECONDS", 0.0)
  run = "gs://bucket/run"
  assert workdir_lib.prepare_workdir(run, small_config) == run
  small_config.model.f_width = 48
  with pytest.raises(WorkdirError, match="config.model.f_width"):
    workdir_lib.prepare_workdir(run, small_config)
