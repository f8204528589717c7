"""The 'loop' section of `python -m benchmarks.run`: the whole training loop, one
step per dispatch against steps per call chosen up to the next event.

`hypernets.training.train_and_evaluate` runs the suite's loop config twice per
repeat, `steps_per_call=1` and `steps_per_call=0` (auto), alternating, each in a
fresh workdir. Reported per setting: the loop's own steps_per_second (training
time between the first and last step, including log / eval / checkpoint events,
excluding the first compile) and the wall time of the whole call; medians and
spreads over the repeats. Both settings train bit-identically (tests/loop_test.py).
"""

import shutil
import tempfile
import time
from typing import Any

import numpy as np

from benchmarks import sections as sections_lib
from benchmarks import suites as suites_lib

SETTINGS = {"one_step_per_call": 1, "auto": 0}


def _one_run(config, workdir: str) -> dict[str, float]:
  # pylint: disable=g-import-not-at-top
  from hypernets import training
  from hypernets.training import workdir as workdir_lib
  # pylint: enable=g-import-not-at-top
  start = time.perf_counter()
  training.train_and_evaluate(config, workdir)
  wall = time.perf_counter() - start
  results = workdir_lib.results_at_step(workdir, config.num_train_steps)
  return {"steps_per_second": results["steps_per_second"], "wall_s": wall}


def _summary(values: list[float]) -> dict[str, float]:
  values = np.asarray(values, np.float64)
  return {"median": float(np.median(values)), "p10": float(np.percentile(values, 10)),
          "p90": float(np.percentile(values, 90)), "n": int(values.size)}


def run_loop(suite: suites_lib.Suite) -> dict[str, Any]:
  """{setting: {steps_per_second: {median, p10, p90, n}, wall_s: ...}, 'speedup': ...}."""
  name, arg = suite.loop_config
  base = sections_lib.load_config(name, arg, suite.loop_overrides)
  runs = {setting: [] for setting in SETTINGS}
  root = tempfile.mkdtemp(prefix="loop_bench_")
  try:
    for repeat in range(suite.loop_repeats):
      for setting, steps_per_call in SETTINGS.items():
        config = base.copy_and_resolve_references()
        config.steps_per_call = steps_per_call
        runs[setting].append(_one_run(config, f"{root}/{setting}_{repeat}"))
  finally:
    shutil.rmtree(root, ignore_errors=True)
  out = {setting: {key: _summary([r[key] for r in rows]) for key in rows[0]}
         for setting, rows in runs.items()}
  out["config"] = {"name": name, "arg": arg, "num_train_steps": base.num_train_steps,
                   "log_every_steps": base.log_every_steps,
                   "eval_every_steps": base.eval_every_steps,
                   "checkpoint_every_steps": base.checkpoint_every_steps}
  out["speedup_auto_over_one"] = (out["auto"]["steps_per_second"]["median"]
                                  / out["one_step_per_call"]["steps_per_second"]["median"])
  return out
