"""Train several model kinds on one config and tabulate them side by side."""

import copy
import json
import os
from typing import Callable, Sequence

import ml_collections

from hypernets import training
from hypernets.training import workdir as workdir_lib

# Test metrics shown in the table, where the task has them.
_REPORTED = ("test_mse", "test_rel_mse", "test_error", "test_nll")
# Which count is "the network that sees x" for each kind.
_PRIMARY_COUNT = {"hypernet": "N_g", "embedding": "N_q", "standard": "N_net"}


def compare_kinds(config: ml_collections.ConfigDict, workdir: str,
                  kinds: Sequence[str] = ("hypernet", "embedding", "standard"), *,
                  report: Callable[[str], None] | None = None) -> list[dict]:
  """Runs `train_and_evaluate` for each kind into workdir/<kind> (resuming if there).

  A kind whose workdir holds a finished run of the same config is not run again (nor
  compiled): its recorded results are read. `report` (e.g. print) gets one progress
  line per kind before it runs.

  Returns one row per kind: method, primary_name, primary_params, total_params,
  num_seeds, metrics {name: (mean, std)}, train_seconds (of the run that trained it;
  None if unknown). Also writes workdir/comparison.json.
  """
  rows = []
  for i, kind in enumerate(kinds):
    kind_config = copy.deepcopy(config)
    kind_config.model.kind = kind
    kind_workdir = os.path.join(workdir, kind)
    results = workdir_lib.finished_results(kind_workdir, kind_config)
    if results is None:
      if report:
        report(f"[{i + 1}/{len(kinds)}] {kind}: training {kind_config.num_train_steps} "
               f"steps in {kind_workdir}")
      training.train_and_evaluate(kind_config, kind_workdir)
      with open(os.path.join(kind_workdir, "results.json")) as f:
        results = json.load(f)
    elif report:
      report(f"[{i + 1}/{len(kinds)}] {kind}: finished run found in {kind_workdir}, "
             "not run again")
    counts = results["param_counts"]
    rows.append({
        "method": kind,
        "primary_name": _PRIMARY_COUNT[kind],
        "primary_params": counts[_PRIMARY_COUNT[kind]],
        "total_params": counts["total"],
        "num_seeds": results["num_seeds"],
        "metrics": {name: (results[name], results[f"{name}_std"])
                    for name in _REPORTED if name in results},
        # A rerun of a finished run (e.g. launch/main.py) records 0 steps and 0 s.
        "train_seconds": (results["train_seconds_this_run"]
                          if results.get("steps_this_run") else None),
    })
  workdir_lib.write_json_atomic(os.path.join(workdir, "comparison.json"), rows)
  return rows


def format_table(rows: Sequence[dict]) -> str:
  """A fixed-width text table of `compare_kinds` rows (mean +- std over seeds)."""
  names = [n for n in _REPORTED if rows and n in rows[0]["metrics"]]
  show_std = any(row["num_seeds"] > 1 for row in rows)
  width = 21 if show_std else 12
  header = (f"{'method':<10} {'primary':>14} {'total params':>13} "
            + " ".join(f"{n:>{width}}" for n in names) + f" {'train s':>8}")
  lines = [header, "-" * len(header)]
  for row in rows:
    primary = f"{row['primary_name']}={row['primary_params']}"
    cells = []
    for name in names:
      mean, std = row["metrics"][name]
      cells.append(f"{f'{mean:.4g} +- {std:.2g}' if show_std else f'{mean:.4g}':>{width}}")
    seconds = "-" if row["train_seconds"] is None else f"{row['train_seconds']:.1f}"
    lines.append(f"{row['method']:<10} {primary:>14} {row['total_params']:>13} "
                 + " ".join(cells) + f" {seconds:>8}")
  if show_std:
    lines.append(f"(mean +- std over {rows[0]['num_seeds']} seeds)")
  return "\n".join(lines)
