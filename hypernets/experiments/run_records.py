"""The runs behind REPRODUCTION.md, kept small enough to commit (docs/runs/).

A report root holds checkpoints and TensorBoard files (hundreds of MB) beside the
few files the report reads. `export_records(root, dest)` copies only those
(RECORD_FILES of each experiment directory and of each sweep point under it, a few
hundred kB in all), with every gathered row's `workdir` rewritten relative to dest,
so that `build_report(dest)` at any later commit gives the same table, figures and
commands as `build_report(root)` without rerunning anything; a machine that loses
its run directories loses no result that was published. `localize_rows` is the
reading side: it finds each row's point directory under the root being read, wherever
the runs first wrote.
"""

import json
import os
import shutil
from typing import Iterable, Sequence

from hypernets.training import workdir as workdir_lib

# What the report reads from an experiment directory or a sweep point's directory.
RECORD_FILES = ("results.json", "config.json", "metrics.jsonl")
INDEX_FILE = "RECORDS.md"


def localize_rows(rows: Sequence[dict], root: str, experiment: str) -> list[dict]:
  """`rows` (gathered results of root/experiment) with each `workdir` pointing at the
  point's directory under root when it exists there: a relative workdir (as exported)
  is read against root, an absolute one that is gone (a root copied or moved) by its
  last component under root/experiment. Rows whose directory is nowhere keep theirs."""
  localized = []
  for row in rows:
    row = dict(row)
    workdir = row.get("workdir")
    if workdir:
      candidates = ([workdir] if os.path.isabs(workdir) else [os.path.join(root, workdir)])
      candidates.append(os.path.join(root, experiment, os.path.basename(workdir.rstrip("/"))))
      found = next((c for c in candidates if os.path.isdir(c)), None)
      if found:
        row["workdir"] = found
    localized.append(row)
  return localized


def _copy_record_files(src: str, dst: str) -> int:
  copied = 0
  for name in RECORD_FILES:
    path = os.path.join(src, name)
    if os.path.isfile(path):
      os.makedirs(dst, exist_ok=True)
      shutil.copyfile(path, os.path.join(dst, name))
      copied += 1
  return copied


def _relative_rows(path: str, experiment: str) -> None:
  """Rewrites the gathered results.json at `path`: each row's workdir becomes
  '<experiment>/<point directory>' (relative to the records' root)."""
  with open(path) as f:
    rows = json.load(f)
  single = isinstance(rows, dict)
  for row in [rows] if single else rows:
    if row.get("workdir"):
      row["workdir"] = f"{experiment}/{os.path.basename(row['workdir'].rstrip('/'))}"
  workdir_lib.write_json_atomic(path, rows)


def export_records(root: str, dest: str, experiments: Iterable[str], *,
                   header: str = "") -> dict[str, int]:
  """Copies the report's inputs for each experiment from root to dest; returns
  {experiment: files copied}. dest/<experiment> is replaced whole (a point that is
  no longer in root does not linger); experiments absent from root are removed from
  dest too, so dest always mirrors what the report read. Writes dest/RECORDS.md
  (`header` + the table of files). Raises ValueError when root and dest are the same."""
  root, dest = os.path.abspath(root), os.path.abspath(dest)
  if root == dest:
    raise ValueError(f"the records' destination {dest} is the root being read")
  os.makedirs(dest, exist_ok=True)
  counts = {}
  for experiment in experiments:
    src, dst = os.path.join(root, experiment), os.path.join(dest, experiment)
    staging = dst + ".exporting"
    shutil.rmtree(staging, ignore_errors=True)
    copied = 0
    if os.path.isdir(src):
      copied = _copy_record_files(src, staging)
      for entry in sorted(os.listdir(src)):
        if os.path.isdir(os.path.join(src, entry)):
          copied += _copy_record_files(os.path.join(src, entry), os.path.join(staging, entry))
      gathered = os.path.join(staging, "results.json")
      if os.path.isfile(gathered):
        _relative_rows(gathered, experiment)
    shutil.rmtree(dst, ignore_errors=True)
    if copied:
      os.replace(staging, dst)
    counts[experiment] = copied
  lines = [header.strip(), ""] if header.strip() else []
  lines += ["| experiment | files |", "|---|---|"]
  lines += [f"| {name} | {n} |" for name, n in counts.items()]
  workdir_lib.write_text_atomic(os.path.join(dest, INDEX_FILE), "\n".join(lines) + "\n")
  return counts
