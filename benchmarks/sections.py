"""The JAX-only sections of `python -m benchmarks.run` and their shared figures.

Roof (the machine's ceilings), rates and the memory roofline of a JAX step;
`time_jax_steps` (compile, then time several steps interleaved); the sections
precision, seeds, scaling and compile. JAX against PyTorch is benchmarks/compare.py.
"""

import dataclasses
from typing import Any

import numpy as np

from benchmarks import jax_steps
from benchmarks import suites as suites_lib
from benchmarks import timing


def measure_kwargs(suite: suites_lib.Suite) -> dict[str, Any]:
  """The suite's warm-up, repeats and repeat length, for the timing functions."""
  return dict(warmup=suite.warmup, repeats=suite.repeats, min_repeat_s=suite.min_repeat_s)


def load_config(name: str, arg: str | None, overrides=()):
  """configs/<name>.py's get_config(arg) with `overrides` ((field, value), ...) applied."""
  config = jax_steps.load_config(name, arg)
  if overrides:
    config.update_from_flattened_dict(dict(overrides))
  return config


@dataclasses.dataclass(frozen=True)
class Roof:
  """The machine's measured ceilings: fp32 matmul FLOP/s and streaming bytes/s."""

  peak: float
  bandwidth: float | None


def rates(step_s: float, *, examples: int, flops: float, peak: float) -> dict[str, float]:
  return {"examples_per_s": examples / step_s, "flop_per_s": flops / step_s,
          "roofline_fraction": flops / step_s / peak}


def memory_roofline(timed: dict[str, Any], *, flops: float, roof: Roof) -> dict[str, Any]:
  """Arithmetic intensity (analytic FLOPs / XLA bytes accessed) and the attainable
  fraction of the matmul peak, min(peak, intensity x bandwidth) / peak."""
  if not timed.get("xla_bytes_accessed") or not roof.bandwidth:
    return {"intensity_flop_per_byte": None, "attainable_fraction": None}
  intensity = flops / timed["xla_bytes_accessed"]
  return {"intensity_flop_per_byte": intensity,
          "attainable_fraction": min(roof.peak, intensity * roof.bandwidth) / roof.peak}


def _stepper(built: jax_steps.Built, which: str):
  """(JaxStepper over a fresh state, compile times) of built's 'library' or 'model_only'
  step, compiled once per Built."""
  state = built.fresh_state()
  if which == "library":
    jitted, data = built.library_step, built.train_data
  else:
    jitted, data = built.model_step, built.batch
  if which not in built.compiled:
    built.compiled[which] = timing.compile_jitted(jitted, state, data, built.data_keys)
  compiled, compile_times = built.compiled[which]
  return timing.JaxStepper(compiled, state, data, built.data_keys), compiled, compile_times


def _jax_figures(built: jax_steps.Built, timed: dict[str, Any], compiled, compile_times, *,
                 roof: Roof) -> dict[str, Any]:
  """A JAX step's timing plus compile times, XLA's costs, rates and memory roofline."""
  flops = built.step_flops()["train"]
  timed.update(compile_times)
  timed.update(timing.xla_costs(compiled))
  timed.update(rates(timed["step_s"], flops=flops, peak=roof.peak,
                      examples=built.config.batch.conditions * built.num_seeds))
  timed.update(memory_roofline(timed, flops=flops, roof=roof))
  return timed


def time_jax_steps(steps: dict[str, tuple[jax_steps.Built, str]], suite: suites_lib.Suite,
                   *, roof: Roof, extra_runners=None) -> dict[str, dict[str, Any]]:
  """Compile and time several JAX steps, their repeats interleaved.

  `steps`: {label: (built, 'library' | 'model_only')}; `extra_runners`: {label:
  run_steps(n)} timed in the same rounds (e.g. PyTorch), returned as bare timings.
  """
  runners, pieces = {}, {}
  for label, (built, which) in steps.items():
    runners[label], compiled, compile_times = _stepper(built, which)
    pieces[label] = (built, compiled, compile_times)
  runners.update(extra_runners or {})
  timed = timing.measure_interleaved(runners, **measure_kwargs(suite))
  for label, (built, compiled, compile_times) in pieces.items():
    timed[label] = _jax_figures(built, timed[label], compiled, compile_times, roof=roof)
  return timed


def run_seeds(suite: suites_lib.Suite, *, roof: Roof,
              sampler_override=None) -> dict[str, Any]:
  """Library and model-only steps with S seeds in one program, for each S of the suite."""
  builts = {}
  for num_seeds in suite.seeds:
    config = load_config(*suite.seeds_config, overrides=(("num_seeds", num_seeds),))
    builts[num_seeds] = jax_steps.build_cached(config, sampler_override=sampler_override)
  rows = [{"seeds": s, "flops_train": built.step_flops()["train"]}
          for s, built in builts.items()]
  for which in ("library", "model_only"):
    # Every S interleaved, so the S-seed / S x 1-seed ratio sees one machine load.
    timed = time_jax_steps({s: (built, which) for s, built in builts.items()}, suite,
                           roof=roof)
    for row in rows:
      row[which] = timed[row["seeds"]]
  single = next((r for r in rows if r["seeds"] == 1), None)
  for row in rows:
    for which in ("library", "model_only"):
      timed = row[which]
      timed["per_seed_step_s"] = timed["step_s"] / row["seeds"]
      timed["vs_separate_runs"] = (timed["step_s"] / (row["seeds"] * single[which]["step_s"])
                                   if single else None)
  return {"config": suite.seeds_config[0], "config_arg": suite.seeds_config[1],
          "rows": rows}


def run_precision(suite: suites_lib.Suite, *, roof: Roof) -> dict[str, Any]:
  """Model-only step of each comparison in float32 and in bfloat16 (config.compute_dtype).

  Timed interleaved on the same machine. bf16 pays on GPUs/TPUs (matrix units run it
  several times faster than fp32); a CPU without bf16 matmul units converts instead.
  The rates use the fp32 roofline, so '% peak' compares like with like only for fp32.
  """
  rows = []
  for comparison in suite.comparisons:
    builts = {dtype: jax_steps.build_cached(load_config(
        comparison.config, comparison.arg,
        overrides=comparison.overrides + (("compute_dtype", dtype),)))
              for dtype in ("float32", "bfloat16")}
    timed = time_jax_steps({dtype: (built, "model_only") for dtype, built in builts.items()},
                           suite, roof=roof)
    rows.append({"name": comparison.name, "title": comparison.title, **timed,
                 "bf16_speedup": timed["float32"]["step_s"] / timed["bfloat16"]["step_s"]})
  return {"step": "model_only", "rows": rows}


def _slope(xs, ys) -> float | None:
  """Least-squares slope of log y against log x (None with fewer than 2 points)."""
  if len(xs) < 2:
    return None
  return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


SCALING_FIELDS = {"conditions": "batch.conditions", "points": "batch.points",
                  "primary_width": "model.primary.widths"}


def run_scaling(suite: suites_lib.Suite, *, roof: Roof) -> dict[str, Any]:
  """Step time and compiled memory as one size grows, the others at the config's."""
  out = {"config": suite.scaling_config[0], "config_arg": suite.scaling_config[1]}
  for axis, sizes in suite.scaling.items():
    rows = []
    for size in sizes:
      value = (size,) if axis == "primary_width" else size
      config = load_config(*suite.scaling_config, overrides=((SCALING_FIELDS[axis], value),))
      built = jax_steps.build_cached(config)
      timed = time_jax_steps({"library": (built, "library")}, suite, roof=roof)["library"]
      rows.append({"size": size, "num_params": built.num_params,
                   "flops_train": built.step_flops()["train"], **timed})
    out[axis] = {
        "field": SCALING_FIELDS[axis], "rows": rows,
        "slope_step_s": _slope([r["size"] for r in rows], [r["step_s"] for r in rows]),
        "slope_peak_bytes": _slope([r["size"] for r in rows], [r["peak_bytes"] for r in rows]),
    }
  return out


def run_compile(suite: suites_lib.Suite) -> dict[str, Any]:
  """lower() and compile() seconds of the library step of each shipped config."""
  out = {}
  for name, arg in suite.compile_configs:
    config = load_config(name, arg)
    built = jax_steps.build_cached(config, allow_stand_in=True)
    # A new jitted step: nothing of an earlier compile of the same program is reused.
    _, times = timing.compile_jitted(built.make_library_step(), built.fresh_state(),
                                     built.train_data, built.data_keys)
    out[name if arg is None else f"{name}:{arg}"] = {
        **times, "kind": config.model.kind, "num_params": built.num_params,
        "num_seeds": config.num_seeds, "stand_in_data": built.used_stand_in_data}
  return out
