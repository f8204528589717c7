"""The run directory: one writer (a lock), the saved config, atomic result files.

A workdir is a local path or a bucket URL (`gs://bucket/run`); every file in it goes
through hypernets/training/files.py, so the same code writes either.
"""

import json
import time
from typing import Any

from absl import logging
import ml_collections

from hypernets.parallel import distributed
from hypernets.config import RESUMABLE_FIELDS
from hypernets.errors import WorkdirError
from hypernets.training import files
from hypernets.training import workdir_lock


def write_text_atomic(path: str, text: str) -> None:
  """Writes `text` to `path` (local or URL) atomically: a reader sees the old file
  or the new one, never half of one."""
  files.write_bytes_atomic(path, text.encode())


def write_json_atomic(path: str, data: Any) -> None:
  """Writes `data` as indented JSON to `path` atomically (see write_text_atomic)."""
  write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def flatten_dict(tree: dict, prefix: str = "") -> dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    name = f"{prefix}{key}"
    if isinstance(value, dict):
      flat.update(flatten_dict(value, name + "."))
    else:
      flat[name] = value
  return flat


def config_to_json_dict(config: ml_collections.ConfigDict) -> dict:
  """The config as plain JSON types (tuples become lists)."""
  return json.loads(config.to_json())


def prepare_workdir(workdir: str, config: ml_collections.ConfigDict, *,
                    primary: bool | None = None) -> str:
  """Locks `workdir`, creates it, checks it is writable and holds no run of another config.

  The lock comes first (hypernets/training/workdir_lock.py): while another process
  trains in `workdir`, this one stops with WorkdirError naming it, having changed
  nothing; the lock is then held until this process exits (`release_workdir`).
  Writes `workdir/config.json` for a new run. Returns the absolute path (a URL
  such as `gs://bucket/run` as given). Raises WorkdirError (nothing in the
  workdir is modified) otherwise, unless `config.overwrite`: then the old run is
  moved to `<workdir>.replaced-<time>`.
  In a multi-process run only process 0 (`primary`, default: this process is
  process 0) locks, creates, moves and writes; the others check, read-only; every
  process stops on the first process's error, and all wait for process 0 to finish.
  """
  if primary is None:
    primary = distributed.is_primary()
  workdir = files.absolute(workdir)
  error = None
  try:
    if primary:
      _create_or_move_aside(workdir, config)
    else:
      _check_saved_config(workdir, config)
  except WorkdirError as e:
    error = str(e)
  error = distributed.first_error(error)
  if error is not None:
    raise WorkdirError(error)
  distributed.barrier("hypernets.prepare_workdir")
  return workdir


def results_at_step(workdir: str, step: int) -> dict | None:
  """results.json of a run in `workdir` that finished at `step`, or None (absent,
  unreadable, or of another step). Reads only; works for gs:// workdirs too."""
  path = files.join(workdir, "results.json")
  if not files.exists(path):
    return None
  try:
    results = json.loads(files.read_text(path))
  except (OSError, json.JSONDecodeError):
    return None  # rerunning rewrites it
  return results if results.get("step") == step else None


def finished_results(workdir: str, config: ml_collections.ConfigDict) -> dict | None:
  """results.json of a finished run of `config` in `workdir`, or None.

  Finished: results.json records step `config.num_train_steps` and config.json matches
  `config` up to RESUMABLE_FIELDS. A run of another config raises WorkdirError, as
  `prepare_workdir` would (None with `config.overwrite`: that run is to be replaced).
  Reads only; lets a rerun report a finished run without rebuilding the model.
  """
  if not files.exists(files.join(workdir, "results.json")) or _check_saved_config(
      workdir, config):
    return None
  return results_at_step(workdir, config.get("num_train_steps"))


def claim_workdir(workdir: str) -> str | None:
  """Takes `workdir`'s lock without waiting: None if this process now holds it, else
  the line naming the holder. In a multi-process run process 0 decides for all."""
  workdir = files.absolute(workdir)
  busy = None
  if distributed.is_primary():
    try:
      files.makedirs(workdir)
      busy = workdir_lock.try_acquire(workdir)
    except OSError as e:
      busy = f"workdir {workdir} cannot be written: {e.strerror or e}"
  return distributed.first_error(busy)


def release_workdir(workdir: str) -> None:
  """Gives back the lock prepare_workdir or claim_workdir took (else a no-op)."""
  workdir_lock.release(workdir)


def _create_or_move_aside(workdir: str, config: ml_collections.ConfigDict) -> None:
  """prepare_workdir's part for the process that writes."""
  try:
    files.makedirs(workdir)
    busy = workdir_lock.try_acquire(workdir)  # before anything is written
    if busy is None:
      files.check_writable(workdir)
  except OSError as e:
    raise WorkdirError(f"workdir {workdir} cannot be written: {e.strerror or e}") from None
  if busy is not None:
    raise WorkdirError(busy)
  if _check_saved_config(workdir, config):
    moved = f"{workdir}.replaced-{time.strftime('%Y%m%d-%H%M%S')}"
    files.rename(workdir, moved)  # set aside, never deleted; our lock moves with it
    workdir_lock.release(workdir)
    logging.warning("config.overwrite: moved the previous run in %s to %s", workdir, moved)
    _create_or_move_aside(workdir, config)
    return
  config_path = files.join(workdir, "config.json")
  if not files.exists(config_path):
    write_json_atomic(config_path, {**config_to_json_dict(config), **_task_record(config)})


# config.json's record of where the task function lives (not a config field: never
# compared on resume, so a task module may move without breaking a resume).
TASK_RECORD = "task"


def _task_record(config: ml_collections.ConfigDict) -> dict:
  """{'task': {'name', 'function', 'file'}} for a config with data.name, else {}."""
  name = config.get("data", {}).get("name") if "data" in config else None
  if not name:
    return {}
  from hypernets.data import tasks  # pylint: disable=g-import-not-at-top
  return {TASK_RECORD: tasks.task_location(name)}


def _check_saved_config(workdir: str, config: ml_collections.ConfigDict) -> bool:
  """Whether workdir/config.json holds another config that config.overwrite moves aside.

  False if it is absent or matches up to RESUMABLE_FIELDS; raises WorkdirError if it
  differs and `config.overwrite` is off, or cannot be read.
  """
  config_path = files.join(workdir, "config.json")
  if not files.exists(config_path):
    return False
  try:
    saved = json.loads(files.read_text(config_path))
  except (OSError, json.JSONDecodeError) as e:
    raise WorkdirError(f"{config_path} is unreadable ({e}); move it away or use "
                       "a new workdir") from None
  saved.pop(TASK_RECORD, None)
  saved_flat = flatten_dict(saved)
  current_flat = flatten_dict(config_to_json_dict(config))
  differing = sorted(
      name for name in set(saved_flat) | set(current_flat)
      if name not in RESUMABLE_FIELDS
      and saved_flat.get(name, "<absent>") != current_flat.get(name, "<absent>"))
  if not differing:
    return False
  if config.get("overwrite", False):
    return True
  shown = ", ".join(
      f"config.{name} (saved {saved_flat.get(name, '<absent>')!r}, "
      f"now {current_flat.get(name, '<absent>')!r})" for name in differing[:3])
  more = f" and {len(differing) - 3} more" if len(differing) > 3 else ""
  raise WorkdirError(f"workdir {workdir} holds a run of a different config: "
                     f"{shown}{more}; use a new --workdir, or --config.overwrite=True "
                     "to move the old run aside")
