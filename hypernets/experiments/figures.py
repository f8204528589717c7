"""The report's figures: curves with std bands, and error against training steps.

Every function writes one PNG atomically (Agg backend, no display) and returns its path.
"""

import json
import os
from typing import Callable, Sequence

import numpy as np


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def save(fig, path: str) -> str:
  """Writes `fig` to `path` through a temporary file; closes it. Returns path."""
  plt = _pyplot()
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=120)
  plt.close(fig)
  os.replace(tmp, path)
  return path


def plot_curves(data: dict, path: str, *, xlabel: str, ylabel: str, title: str,
                logx: bool = False, logy: bool = False,
                extra: Callable | None = None, styles: dict | None = None) -> str:
  """Lines with +-1 std bands, one per group {name: (x [K], mean [K], std [K])}.

  `styles` {name: matplotlib kwargs} (e.g. a dashed line for the fixed regime).
  """
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  for name, (xs, mean, std) in data.items():
    style = {"marker": "o", **(styles or {}).get(name, {})}
    line, = ax.plot(xs, mean, label=name, **style)
    ax.fill_between(xs, mean - std, mean + std, alpha=0.2, color=line.get_color())
  if extra is not None:
    extra(ax)
  ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
  if logx:
    ax.set_xscale("log")
  if logy:
    ax.set_yscale("log")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  return save(fig, path)


def eval_history(workdir: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
  """(steps [K], values [K]) of `eval_<metric>` in a run's metrics.jsonl (seed mean)."""
  steps, values = [], []
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return np.zeros(0), np.zeros(0)
  with open(path) as f:
    for line in f:
      record = json.loads(line)
      if f"eval_{metric}" in record:
        steps.append(record["step"])
        values.append(record[f"eval_{metric}"])
  return np.array(steps, np.float64), np.array(values, np.float64)


def plot_histories(runs: Sequence[tuple[str, str]], path: str, *, metric: str,
                   ylabel: str, title: str) -> str:
  """Error against training steps, one line per (label, workdir), log y."""
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  for label, workdir in runs:
    steps, values = eval_history(workdir, metric)
    if steps.size:
      ax.plot(steps, values, marker=".", label=label)
  ax.set(xlabel="training step", ylabel=ylabel, title=title, yscale="log")
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=7)
  return save(fig, path)
