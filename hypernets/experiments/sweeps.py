"""Sweep definitions beside each config, and running them point by point.

A config module may define `get_sweeps(arg)` returning {name: [point, ...]}, a
point being {field: value} overrides such as {'model.f_depth': 3}. Build the lists
with `sweep`, `product` and `zipit` (in the spirit of big_vision's get_hyper).
"""

import copy
import csv
import io
import itertools
import json
import os
import re
import time
from typing import Any, Callable, Sequence

from absl import logging
import ml_collections

from hypernets.config import check_training_config
from hypernets.training import files
from hypernets.training import workdir_lock
from hypernets.training import workdir as workdir_lib
from hypernets.errors import ConfigError
from hypernets.errors import HypernetsError

Point = dict[str, Any]


def sweep(field: str, values: Sequence[Any]) -> list[Point]:
  """One point per value of `field`."""
  return [{field: value} for value in values]


def product(*sweeps: list[Point]) -> list[Point]:
  """Every combination of the given sweeps (the first varies slowest)."""
  return [dict(itertools.chain.from_iterable(p.items() for p in combo))
          for combo in itertools.product(*sweeps)]


def zipit(*sweeps: list[Point]) -> list[Point]:
  """Points taken together position by position (all sweeps of equal length)."""
  if len({len(s) for s in sweeps}) > 1:
    raise ValueError(f"zipit needs sweeps of equal length, got {[len(s) for s in sweeps]}")
  return [dict(itertools.chain.from_iterable(p.items() for p in combo))
          for combo in zip(*sweeps)]


def apply_point(config: ml_collections.ConfigDict, point: Point) -> ml_collections.ConfigDict:
  """A copy of `config` with the point's overrides; unknown fields raise ConfigError."""
  config = copy.deepcopy(config)
  for field, value in point.items():
    node, parts = config, field.split(".")
    for part in parts[:-1]:
      if not isinstance(node, ml_collections.ConfigDict) or part not in node:
        raise ConfigError(f"sweep field {field!r} does not exist in the config")
      node = node[part]
    if not isinstance(node, ml_collections.ConfigDict) or parts[-1] not in node:
      raise ConfigError(f"sweep field {field!r} does not exist in the config")
    try:
      node[parts[-1]] = value
    except TypeError as e:
      raise ConfigError(f"sweep field {field!r}: {e}") from None
  return config


def point_name(point: Point) -> str:
  """A directory name for a point, e.g. 'model.f_depth=3,model.kind=hypernet'."""
  name = ",".join(f"{k}={v}" for k, v in sorted(point.items())) or "default"
  return re.sub(r"[^A-Za-z0-9_.,=+-]", "_", name)


def run_sweep(config: ml_collections.ConfigDict, points: list[Point], workdir: str, *,
              train_fn: Callable[[ml_collections.ConfigDict, str], Any],
              poll_seconds: float = 2.0) -> list[dict]:
  """Runs every point into workdir/<point_name> and gathers the results.

  Points whose results.json exists are skipped (a rerun finishes only the missing
  ones; a killed point resumes from its checkpoint). All overrides are checked
  before anything runs. Each point is run under its workdir's lock: a point that
  another launcher is running is left to it, so two launchers on one root split
  the points, each point run once; at the end this one waits for those points
  (and runs any whose launcher died first). Writes workdir/results.json and
  workdir/results.csv: one row per point (its overrides plus the point's results,
  without per-seed lists).
  """
  configs = [apply_point(config, point) for point in points]  # fail early
  for point_config in configs:  # every point's fields, before any directory exists
    if point_config.get("experiment", "conditioned") == "conditioned":
      check_training_config(point_config)
  created = [] if files.exists(workdir) else [workdir]
  files.makedirs(workdir)
  todo = list(range(len(points)))
  while todo:
    busy = []
    for i in todo:
      point_dir = files.join(workdir, point_name(points[i]))
      if _done(point_dir):
        logging.info("Sweep point %d/%d %s: done already", i + 1, len(points), points[i])
        continue
      if not files.exists(point_dir):
        created.append(point_dir)
      holder = workdir_lib.claim_workdir(point_dir)
      if holder is not None:
        logging.info("Sweep point %d/%d %s: left to another launcher (%s)", i + 1,
                     len(points), points[i], holder)
        busy.append(i)
        continue
      try:
        if not _done(point_dir):  # finished by another launcher since the check above
          logging.info("Sweep point %d/%d %s", i + 1, len(points), points[i])
          train_fn(configs[i], point_dir)
      except HypernetsError:  # a bad field, a missing dataset: nothing trained here
        workdir_lib.release_workdir(point_dir)
        _remove_if_untouched(reversed(created))  # as the sweep found it
        raise
      finally:
        workdir_lib.release_workdir(point_dir)
    if busy:
      time.sleep(poll_seconds)
    todo = busy
  return gather(points, workdir)


def _remove_if_untouched(directories) -> None:
  """Removes each local directory this sweep created that holds nothing but its lock
  file (a point stopped by a config error before writing anything)."""
  for directory in directories:
    if files.is_url(directory) or not os.path.isdir(directory):
      continue
    entries = set(os.listdir(directory))
    if entries <= {workdir_lock.LOCK_NAME}:
      for name in entries:
        os.remove(os.path.join(directory, name))
      os.rmdir(directory)


def _done(point_dir: str) -> bool:
  return files.exists(files.join(point_dir, "results.json"))


def gather(points: list[Point], workdir: str) -> list[dict]:
  """Rows {**point, **results} of the finished points; writes results.json/.csv."""
  rows = []
  for point in points:
    path = files.join(workdir, point_name(point), "results.json")
    if not files.exists(path):
      continue
    results = json.loads(files.read_text(path))
    results.pop("per_seed", None)
    results.setdefault("regime", _regime(os.path.dirname(path)))
    rows.append({**point, **_flatten_counts(results), "workdir": os.path.dirname(path)})
  workdir_lib.write_json_atomic(files.join(workdir, "results.json"), rows)
  workdir_lib.write_text_atomic(files.join(workdir, "results.csv"), _to_csv(rows))
  return rows


def _regime(point_dir: str) -> str:
  """The data regime of a finished point (config.json's data.regime; 'fixed' if none)."""
  try:
    with open(os.path.join(point_dir, "config.json")) as f:
      return json.load(f).get("data", {}).get("regime", "fixed")
  except (OSError, ValueError):
    return "fixed"


def _flatten_counts(results: dict) -> dict:
  flat = dict(results)
  for key in ("param_counts", "budget_matched"):
    for name, value in (flat.pop(key, None) or {}).items():
      flat[name] = value
  flat.pop("seeds", None)
  return flat


def _to_csv(rows: list[dict]) -> str:
  columns = list(dict.fromkeys(k for row in rows for k in row))
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=columns)
  writer.writeheader()
  writer.writerows(rows)
  return out.getvalue()
