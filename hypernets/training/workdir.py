"""The run directory: writability, the saved config, atomic result files."""

import json
import os
import tempfile
import time
from typing import Any

from absl import logging
import ml_collections

from hypernets.parallel import distributed
from hypernets.config import RESUMABLE_FIELDS
from hypernets.errors import WorkdirError



def write_text_atomic(path: str, text: str) -> None:
  """Writes `text` to `path` through a temporary file and a rename: a reader sees
  the old file or the new one, never half of one."""
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp_")
  try:
    with os.fdopen(fd, "w") as f:
      f.write(text)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


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
  """Creates `workdir`, checks it is writable and holds no run of another config.

  Writes `workdir/config.json` for a new run. Returns the absolute path.
  Raises WorkdirError (nothing in the workdir is modified) otherwise, unless
  `config.overwrite`: then the old run is moved to `<workdir>.replaced-<time>`.
  In a multi-process run only process 0 (`primary`, default: this process is
  process 0) creates, moves and writes; the others check, read-only, so that every
  process stops on the same clear error, and all wait for process 0 to finish.
  """
  if primary is None:
    primary = distributed.is_primary()
  workdir = os.path.abspath(workdir)
  if primary:
    _create_or_move_aside(workdir, config)
  else:
    _check_saved_config(workdir, config)
  distributed.barrier("hypernets.prepare_workdir")
  return workdir


def _create_or_move_aside(workdir: str, config: ml_collections.ConfigDict) -> None:
  """prepare_workdir's part for the process that writes."""
  try:
    os.makedirs(workdir, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=workdir, prefix=".write_test_"):
      pass
  except OSError as e:
    raise WorkdirError(f"workdir {workdir} cannot be written: {e.strerror or e}") from None
  if _check_saved_config(workdir, config):
    moved = f"{workdir}.replaced-{time.strftime('%Y%m%d-%H%M%S')}"
    os.rename(workdir, moved)  # set aside, never deleted
    logging.warning("config.overwrite: moved the previous run in %s to %s", workdir, moved)
    _create_or_move_aside(workdir, config)
    return
  config_path = os.path.join(workdir, "config.json")
  if not os.path.exists(config_path):
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
  config_path = os.path.join(workdir, "config.json")
  if not os.path.exists(config_path):
    return False
  try:
    with open(config_path) as f:
      saved = json.load(f)
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
