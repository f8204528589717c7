"""Train several model kinds on one config and tabulate them side by side."""

import copy
import json
import os
from typing import Sequence

import ml_collections

from hypernets import train
from hypernets import workdir as workdir_lib

# Which count is "the network that sees x" for each kind.
_PRIMARY_COUNT = {"hypernet": "N_g", "embedding": "N_q", "standard": "N_net"}


def compare_kinds(config: ml_collections.ConfigDict, workdir: str,
                  kinds: Sequence[str] = ("hypernet", "embedding", "standard")
                  ) -> list[dict]:
  """Runs `train_and_evaluate` for each kind into workdir/<kind> (resuming if there).

  Returns one row per kind: method, primary_name, primary_params, total_params,
  test_mse, test_rel_mse, train_seconds. Also writes workdir/comparison.json.
  """
  rows = []
  for kind in kinds:
    kind_config = copy.deepcopy(config)
    kind_config.model.kind = kind
    kind_workdir = os.path.join(workdir, kind)
    train.train_and_evaluate(kind_config, kind_workdir)
    with open(os.path.join(kind_workdir, "results.json")) as f:
      results = json.load(f)
    counts = results["param_counts"]
    rows.append({
        "method": kind,
        "primary_name": _PRIMARY_COUNT[kind],
        "primary_params": counts[_PRIMARY_COUNT[kind]],
        "total_params": counts["total"],
        "test_mse": results["test_mse"],
        "test_rel_mse": results["test_rel_mse"],
        "train_seconds": results["train_seconds_this_run"],
    })
  workdir_lib.write_json_atomic(os.path.join(workdir, "comparison.json"), rows)
  return rows


def format_table(rows: Sequence[dict]) -> str:
  """A fixed-width text table of `compare_kinds` rows."""
  header = (f"{'method':<10} {'primary':>14} {'total params':>13} {'test MSE':>10} "
            f"{'test MSE/Var(y)':>16} {'train s':>8}")
  lines = [header, "-" * len(header)]
  for row in rows:
    primary = f"{row['primary_name']}={row['primary_params']}"
    lines.append(f"{row['method']:<10} {primary:>14} {row['total_params']:>13} "
                 f"{row['test_mse']:>10.4g} {row['test_rel_mse']:>16.4g} "
                 f"{row['train_seconds']:>8.1f}")
  return "\n".join(lines)
