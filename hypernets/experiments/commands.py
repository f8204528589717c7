"""The command that produced a run, read back from its config.json.

A run's config.json holds its whole config, not the command line. The command is
recovered by comparing it with the config file's variants (`get_config(variant)`):
the variant that differs in the fewest fields names the `--config=file.py:variant`,
and every field that still differs becomes a `--config.field=value` override
(fields a sweep sets per point are left to the sweep). A run made with `:small`
shows `:small`; one made with extra overrides shows them.
"""

import importlib.util
import json
import os
from typing import Iterable

from hypernets.config import RESUMABLE_FIELDS

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VARIANTS = ("", "quick", "small", "paper", "official")


def _flatten(tree: dict, prefix: str = "") -> dict:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = tuple(value) if isinstance(value, list) else value
  return flat


def _load(config_file: str):
  path = os.path.join(REPO_ROOT, config_file)
  spec = importlib.util.spec_from_file_location(f"report_{os.path.basename(path)[:-3]}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _format(value) -> str:
  if isinstance(value, tuple):
    inner = ", ".join(_format(v) for v in value)
    return f"'({inner}{',' if len(value) == 1 else ''})'"
  return str(value)


def config_args(saved: dict, *, config_file: str, skip: Iterable[str] = (),
                prefer: str | None = None) -> str:
  """'--config=FILE:VARIANT --config.a=1 ...' reproducing `saved` (a config.json dict)
  up to the fields in `skip` (and those that may change on resume). The skipped
  fields (a sweep's) take their saved values first, so fields that follow them (a
  FieldReference) need no override. Of variants that tie, `prefer` wins."""
  module = _load(config_file)
  saved_flat = _flatten(saved)
  sweep_fields = set(skip)
  skip = set(skip) | set(RESUMABLE_FIELDS)
  best = None
  for variant in VARIANTS:
    try:
      config = module.get_config(variant or None)
    except (ValueError, KeyError):
      continue
    for name in sorted(sweep_fields & set(saved_flat)):
      _set(config, name, saved_flat[name])
    diffs = _overrides(config, saved_flat, skip)
    if (best is None or len(diffs) < len(best[1])
        or (len(diffs) == len(best[1]) and variant == prefer)):
      best = (variant, diffs)
  variant, diffs = best
  head = f"--config={config_file}" + (f":{variant}" if variant else "")
  return " ".join([head] + [f"--config.{k}={_format(v)}" for k, v in diffs])


def _overrides(config, saved_flat: dict, skip: set) -> list[tuple[str, object]]:
  """Overrides that turn `config` into the saved one, applied in order: a field
  that follows another (a FieldReference) needs none once its source is set."""
  overrides = []
  for name in sorted(saved_flat):
    if name in skip:
      continue
    current = _flatten(json.loads(config.to_json()))
    if name not in current or current[name] == saved_flat[name]:
      continue
    overrides.append((name, saved_flat[name]))
    _set(config, name, saved_flat[name])
  return overrides


def _set(config, name: str, value) -> None:
  """config.<name> = value; a value of another type than the default's is left out."""
  node = config
  *parents, leaf = name.split(".")
  try:
    for part in parents:
      node = node[part]
    node[leaf] = value
  except (TypeError, ValueError, KeyError, AttributeError):
    pass


def command_for(rows: list[dict], *, config_file: str, sweep: str | None, workdir: str,
                workdir_on_disk: str, fallback: str, prefer: str | None = None) -> str:
  """The command that produced a gathered sweep (or one run) into `workdir` (as
  shown), from the config.json of its first point (a single run's: in
  `workdir_on_disk`); `fallback` when none can be read."""
  fields = {k for row in rows for k in row if "." in k}  # the sweep's per-point fields
  places = [row["workdir"] for row in rows if "workdir" in row] or [workdir_on_disk]
  for place in places:
    path = os.path.join(place, "config.json")
    if os.path.exists(path):
      with open(path) as f:
        saved = json.load(f)
      try:
        args = config_args(saved, config_file=config_file, skip=fields, prefer=prefer)
      except Exception:  # pylint: disable=broad-except
        return fallback  # a config file that no longer loads: say what was planned
      if sweep:
        return f"python launch/sweep.py {args} --sweep={sweep} --workdir={workdir}"
      return f"python launch/main.py {args} --workdir={workdir}"
  return fallback
