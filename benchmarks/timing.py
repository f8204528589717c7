"""Timing helpers: compile time apart, warm-up excluded, median of several repeats.

Imports no framework: the PyTorch worker process (benchmarks/workers.py) uses it too.
"""

import math
import statistics
import time
from typing import Any, Callable


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
  """(fn(), seconds it took)."""
  start = time.perf_counter()
  result = fn()
  return result, time.perf_counter() - start


def measure_steps(run_steps: Callable[[int], None], *, warmup: int = 2, repeats: int = 5,
                  min_repeat_s: float = 0.2, max_steps: int = 10_000) -> dict[str, Any]:
  """Seconds per step of `run_steps(n)` (runs n steps, returns when they are done).

  `warmup` steps run first and are not timed; then the number of steps per repeat n
  is chosen so one repeat lasts about `min_repeat_s`, and `repeats` repeats of n steps
  are timed. Returns {'step_s': median, 'step_s_min', 'step_s_max', 'steps_per_repeat',
  'repeats', 'all_step_s': [...]}.
  """
  if warmup:
    run_steps(warmup)
  _, one = timed(lambda: run_steps(1))
  _, one_again = timed(lambda: run_steps(1))
  estimate = max(min(one, one_again), 1e-7)
  steps = int(min(max_steps, max(1, math.ceil(min_repeat_s / estimate))))
  per_step = []
  for _ in range(repeats):
    _, seconds = timed(lambda: run_steps(steps))
    per_step.append(seconds / steps)
  return {"step_s": statistics.median(per_step), "step_s_min": min(per_step),
          "step_s_max": max(per_step), "steps_per_repeat": steps, "repeats": repeats,
          "all_step_s": per_step}


def spread(values: list[float]) -> dict[str, float]:
  """Median, 10th and 90th percentile of `values` (linear interpolation)."""
  ordered = sorted(values)

  def quantile(q):
    pos = q * (len(ordered) - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (pos - lo) * (ordered[hi] - ordered[lo])

  return {"median": statistics.median(ordered), "p10": quantile(0.1), "p90": quantile(0.9)}


def measure_interleaved(runners: dict[str, Callable[[int], Any]], *, warmup: int = 2,
                        repeats: int = 5, min_repeat_s: float = 0.2,
                        max_steps: int = 10_000) -> dict[str, dict[str, Any]]:
  """`measure_steps` of several step functions, their repeats interleaved.

  For before/after comparisons on a machine that other work may share: each round
  times one repeat of every runner in turn, so a change of load hits all of them
  alike. A runner that returns a list of per-step seconds (a worker process timing
  itself, benchmarks/workers.py) is timed by those; else by the wall clock here.
  Returns {name: measure_steps-style dict}, plus 'step_s_p10' / 'step_s_p90' over
  the repeats and, for self-timing runners, 'per_step' (median / p10 / p90 of every
  single step: stalls show there, averaged away in a repeat).
  """

  def seconds_of(run_steps, n):
    result, wall = timed(lambda: run_steps(n))
    return (sum(result), list(result)) if isinstance(result, list) else (wall, None)

  steps = {}
  for name, run_steps in runners.items():
    if warmup:
      run_steps(warmup)
    one = min(seconds_of(run_steps, 1)[0] for _ in range(2))
    steps[name] = int(min(max_steps, max(1, math.ceil(min_repeat_s / max(one, 1e-7)))))
  per_step = {name: [] for name in runners}
  singles = {name: [] for name in runners}
  for _ in range(repeats):
    for name, run_steps in runners.items():
      seconds, each = seconds_of(run_steps, steps[name])
      per_step[name].append(seconds / steps[name])
      if each is not None:
        singles[name].extend(each)
  out = {}
  for name, v in per_step.items():
    s = spread(v)
    out[name] = {"step_s": s["median"], "step_s_min": min(v), "step_s_max": max(v),
                 "step_s_p10": s["p10"], "step_s_p90": s["p90"],
                 "steps_per_repeat": steps[name], "repeats": repeats, "all_step_s": v}
    if singles[name]:
      out[name]["per_step"] = spread(singles[name])
  return out


class JaxStepper:
  """Runs a compiled (state, *args) -> (state, metrics) step n times, carrying state.

  The state is donated at every call (as in training), so only the stepper holds it.
  """

  def __init__(self, compiled: Callable, state: Any, *args: Any):
    self.compiled, self.state, self.args = compiled, state, args

  def __call__(self, num_steps: int) -> None:
    import jax  # pylint: disable=g-import-not-at-top
    metrics = None
    for _ in range(num_steps):
      self.state, metrics = self.compiled(self.state, *self.args)
    jax.block_until_ready((self.state, metrics))


def compile_jitted(jitted, *args) -> tuple[Any, dict[str, float]]:
  """(compiled, {'lower_s', 'compile_s', 'total_s'}) of `jitted.lower(*args).compile()`."""
  lowered, lower_s = timed(lambda: jitted.lower(*args))
  compiled, compile_s = timed(lowered.compile)
  return compiled, {"lower_s": lower_s, "compile_s": compile_s,
                    "total_s": lower_s + compile_s}


def xla_costs(compiled) -> dict[str, float | None]:
  """XLA's own flops / bytes accessed / peak memory of a compiled program (None if absent)."""
  out = {"xla_flops": None, "xla_bytes_accessed": None, "peak_bytes": None,
         "temp_bytes": None, "argument_bytes": None}
  try:
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older jax: one dict per program
      cost = cost[0] if cost else {}
    out["xla_flops"] = float(cost.get("flops", 0.0)) or None
    out["xla_bytes_accessed"] = float(cost.get("bytes accessed", 0.0)) or None
  except Exception:  # pylint: disable=broad-except
    pass
  try:
    memory = compiled.memory_analysis()
    out["temp_bytes"] = int(memory.temp_size_in_bytes)
    out["argument_bytes"] = int(memory.argument_size_in_bytes)
    # Arguments + outputs - donated (aliased) + temporaries: every buffer the step
    # holds at once, at most. XLA:CPU's own `peak_memory_in_bytes` came out below
    # `temp_size_in_bytes` (it leaves buffers out), so it is recorded apart only.
    out["peak_bytes"] = int(memory.argument_size_in_bytes + memory.output_size_in_bytes
                            - memory.alias_size_in_bytes + memory.temp_size_in_bytes)
    out["xla_peak_memory_bytes"] = int(getattr(memory, "peak_memory_in_bytes", 0)) or None
  except Exception:  # pylint: disable=broad-except
    pass
  return out
