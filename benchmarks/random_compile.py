"""Compile time of jax.random draws: shaped vs the same count drawn flat and reshaped
(hypernets.flat_random), and what the synthetic dataset's build costs with each.

  python -m benchmarks.random_compile [--repeats=3] [--out=results.json]

Each measurement compiles afresh (jax.clear_caches() first; the persistent cache is
off), repeats alternate shaped and flat, and medians with min/max are printed.
Figures are seconds on this host: compare rows of one run only.
"""

import json
import math
import os
import sys
import time

os.environ.setdefault("JAX_ENABLE_COMPILATION_CACHE", "false")

# pylint: disable=g-import-not-at-top
from absl import app
from absl import flags
import jax
import numpy as np

_REPEATS = flags.DEFINE_integer("repeats", 3, "Alternated repeats per row.")
_OUT = flags.DEFINE_string("out", None, "Optional JSON file for the figures.")

SHAPES = [(64, 16, 10), (64, 10), (10, 64), (8, 64, 10), (4, 4, 4, 4)]


def _compile_seconds(fn, *args) -> float:
  jax.clear_caches()
  start = time.perf_counter()
  jax.jit(fn).lower(*args).compile()
  return time.perf_counter() - start


def _stats(values):
  return {"median": float(np.median(values)), "min": float(np.min(values)),
          "max": float(np.max(values))}


def main(argv):
  del argv
  from hypernets import flat_random
  key = jax.random.key(0)
  rows = []
  for shape in SHAPES:
    shaped, flat = [], []
    for _ in range(_REPEATS.value):
      shaped.append(_compile_seconds(lambda k, s=shape: jax.random.uniform(k, s), key))
      flat.append(_compile_seconds(lambda k, s=shape: flat_random.uniform(k, s), key))
    rows.append({"shape": list(shape), "count": math.prod(shape),
                 "shaped_s": _stats(shaped), "flat_s": _stats(flat)})
  print(f"{'shape':>16} {'count':>7} {'shaped s (min-max)':>22} {'flat s (min-max)':>20}")
  for r in rows:
    sh, fl = r["shaped_s"], r["flat_s"]
    print(f"{str(tuple(r['shape'])):>16} {r['count']:>7} "
          f"{sh['median']:7.2f} ({sh['min']:.2f}-{sh['max']:.2f}) {'':>4}"
          f"{fl['median']:7.2f} ({fl['min']:.2f}-{fl['max']:.2f})")
  result = {"host": {"cpu_count": os.cpu_count(), "jax": jax.__version__,
                     "python": sys.version.split()[0]}, "rows": rows}
  if _OUT.value:
    with open(_OUT.value, "w") as f:
      json.dump(result, f, indent=1)


if __name__ == "__main__":
  app.run(main)
