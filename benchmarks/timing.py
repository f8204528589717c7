"""Timing helpers: compile time apart, warm-up excluded, median of several repeats."""

import math
import statistics
import time
from typing import Any, Callable

import jax


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


def measure_interleaved(runners: dict[str, Callable[[int], None]], *, warmup: int = 2,
                        repeats: int = 5, min_repeat_s: float = 0.2,
                        max_steps: int = 10_000) -> dict[str, dict[str, Any]]:
  """`measure_steps` of several step functions, their repeats interleaved.

  For before/after comparisons on a machine that other work may share: each round
  times one repeat of every runner in turn, so a change of load hits all of them
  alike. Returns {name: measure_steps-style dict}.
  """
  steps = {}
  for name, run_steps in runners.items():
    if warmup:
      run_steps(warmup)
    one = min(timed(lambda: run_steps(1))[1] for _ in range(2))  # pylint: disable=cell-var-from-loop
    steps[name] = int(min(max_steps, max(1, math.ceil(min_repeat_s / max(one, 1e-7)))))
  per_step = {name: [] for name in runners}
  for _ in range(repeats):
    for name, run_steps in runners.items():
      _, seconds = timed(lambda: run_steps(steps[name]))  # pylint: disable=cell-var-from-loop
      per_step[name].append(seconds / steps[name])
  return {name: {"step_s": statistics.median(v), "step_s_min": min(v), "step_s_max": max(v),
                 "steps_per_repeat": steps[name], "repeats": repeats, "all_step_s": v}
          for name, v in per_step.items()}


class JaxStepper:
  """Runs a compiled (state, *args) -> (state, metrics) step n times, carrying state.

  The state is donated at every call (as in training), so only the stepper holds it.
  """

  def __init__(self, compiled: Callable, state: Any, *args: Any):
    self.compiled, self.state, self.args = compiled, state, args

  def __call__(self, num_steps: int) -> None:
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
