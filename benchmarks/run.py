r"""Performance benchmarks: prints tables and writes a JSON file of every figure.

  python -m benchmarks.run --suite=quick --out=benchmarks/results/quick_cpu.json

Suites (benchmarks/suites.py): smoke (seconds, CI), quick (< 10 min on a 2-core CPU),
full. Sections: the machine and its fp32 matmul rate through XLA (the roofline);
JAX (the library's own jitted step) against PyTorch on the paper's models; seeds as
a batch; scaling with batch and primary size; compile time of every shipped config.
See benchmarks/README.md for what each row means.
"""

import dataclasses
import json
import math
import os
import resource
import sys
import time
from typing import Any

from absl import app
from absl import flags
import jax
import numpy as np

from benchmarks import jax_steps
from benchmarks import machine
from benchmarks import suites as suites_lib
from benchmarks import timing

_SUITE = flags.DEFINE_enum("suite", "quick", sorted(suites_lib.SUITES), "Which sizes to run.")
_OUT = flags.DEFINE_string("out", None, "Where to write the JSON results.")
_SECTIONS = flags.DEFINE_list(
    "sections", ["roofline", "compare", "precision", "seeds", "scaling", "compile",
                 "optimisations"],
    "Sections to run (roofline always runs; the others need it). 'optimisations' runs "
    "only in suites that enable it (not smoke).")
_NO_TORCH = flags.DEFINE_bool("no_torch", False, "Skip PyTorch even if it is installed.")

SECTIONS = ("roofline", "compare", "precision", "seeds", "scaling", "compile",
            "optimisations")


def _torch_available() -> bool:
  if _NO_TORCH.value:
    return False
  try:
    import torch  # pylint: disable=g-import-not-at-top,unused-import
    return True
  except ImportError:
    return False


def _measure_kwargs(suite: suites_lib.Suite) -> dict[str, Any]:
  return dict(warmup=suite.warmup, repeats=suite.repeats, min_repeat_s=suite.min_repeat_s)


def _config(name: str, arg: str | None, overrides=()):
  config = jax_steps.load_config(name, arg)
  if overrides:
    config.update_from_flattened_dict(dict(overrides))
  return config


@dataclasses.dataclass(frozen=True)
class Roof:
  """The machine's measured ceilings: fp32 matmul FLOP/s and streaming bytes/s."""

  peak: float
  bandwidth: float | None


def _rates(step_s: float, *, examples: int, flops: float, peak: float) -> dict[str, float]:
  return {"examples_per_s": examples / step_s, "flop_per_s": flops / step_s,
          "roofline_fraction": flops / step_s / peak}


def _memory_roofline(timed: dict[str, Any], *, flops: float, roof: Roof) -> dict[str, Any]:
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
  timed.update(_rates(timed["step_s"], flops=flops, peak=roof.peak,
                      examples=built.config.batch.conditions * built.num_seeds))
  timed.update(_memory_roofline(timed, flops=flops, roof=roof))
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
  timed = timing.measure_interleaved(runners, **_measure_kwargs(suite))
  for label, (built, compiled, compile_times) in pieces.items():
    timed[label] = _jax_figures(built, timed[label], compiled, compile_times, roof=roof)
  return timed


def torch_spec(built: jax_steps.Built):
  """The PyTorch reference's Spec for the same model, sizes and optimizer."""
  from benchmarks import torch_reference  # pylint: disable=g-import-not-at-top
  mc, config = built.model_config, built.config
  test = built.dataset.test
  d_cond, d_x = math.prod(test.cond.shape[1:]), math.prod(test.x.shape[2:])
  out = built.dataset.output_dim
  if mc.activation != "relu" or mc.primary.activation != "relu":
    raise NotImplementedError("the PyTorch reference uses ReLU everywhere")
  common = dict(d_cond=d_cond, d_x=d_x, task=built.dataset.task,
                optimizer=config.optimizer.name, learning_rate=config.optimizer.learning_rate)
  if mc.kind == "hypernet":
    return torch_reference.Spec(
        kind="hypernet", trunk_widths=(mc.f_width,) * mc.f_depth,
        primary_dims=(d_x, *mc.primary.widths, out), primary_bias=mc.primary.use_bias,
        embedding_dim=0, q_dims=(), q_bias=False, **common)
  return torch_reference.Spec(
      kind="embedding", trunk_widths=(mc.e_width,) * mc.e_depth, primary_dims=(),
      primary_bias=False, embedding_dim=mc.embedding_dim,
      q_dims=(d_x + mc.embedding_dim, *mc.q_widths, out), q_bias=mc.q_use_bias, **common)


def run_comparison(comparison: suites_lib.Comparison, suite: suites_lib.Suite, *,
                   roof: Roof, with_torch: bool) -> dict[str, Any]:
  """JAX library step, JAX model-only step and the PyTorch variants on one model."""
  config = _config(comparison.config, comparison.arg, comparison.overrides)
  built = jax_steps.build_cached(config)
  flops = built.step_flops()
  examples = config.batch.conditions
  result = {
      "title": comparison.title, "config": comparison.config, "config_arg": comparison.arg,
      "overrides": dict(comparison.overrides), "kind": config.model.kind,
      "batch_conditions": config.batch.conditions, "batch_points": config.batch.points,
      "optimizer": config.optimizer.name, "num_params": built.num_params,
      "flops_forward": flops["forward"], "flops_train": flops["train"],
      "matmuls": [dict(name=m.name, rows=m.rows, d_in=m.d_in, d_out=m.d_out, times=m.times,
                       input_grad=m.input_grad, train_flops=m.train_flops)
                  for m in built.matmuls()],
      "jax": {}, "torch": {},
  }
  jax_steps_ = {which: (built, which) for which in ("library", "model_only")}
  if not with_torch:
    result["jax"] = time_jax_steps(jax_steps_, suite, roof=roof)
    result["torch"] = {"skipped": "torch is not installed (or --no_torch)"}
    return result
  from benchmarks import torch_reference  # pylint: disable=g-import-not-at-top
  spec = torch_spec(built)
  batch = {k: np.asarray(v) for k, v in
           dict(cond=built.batch.cond, x=built.batch.x, y=built.batch.y).items()}
  # JAX and eager PyTorch repeats interleaved: a change of load hits all alike.
  torch_runs, first_steps = {}, {}
  for variant in torch_reference.VARIANTS:
    run_steps = torch_reference.make_train_step(spec, variant, batch)
    _, first_steps[variant] = timing.timed(lambda: run_steps(1))  # pylint: disable=cell-var-from-loop
    torch_runs[f"eager_{variant}"] = run_steps
  timed = time_jax_steps(jax_steps_, suite, roof=roof, extra_runners=torch_runs)
  result["jax"] = {which: timed[which] for which in jax_steps_}
  for variant in torch_reference.VARIANTS:
    eager = timed[f"eager_{variant}"]
    eager["first_step_s"] = first_steps[variant]
    eager.update(_rates(eager["step_s"], examples=examples, flops=flops["train"],
                        peak=roof.peak))
    result["torch"][f"eager_{variant}"] = eager
  if suite.torch_compile_budget_s > 0:
    timed = torch_reference.benchmark_compiled(
        spec, "bmm", batch, budget_s=suite.torch_compile_budget_s, **_measure_kwargs(suite))
    if "step_s" in timed:
      timed.update(_rates(timed["step_s"], examples=examples, flops=flops["train"],
                          peak=roof.peak))
    result["torch"]["compile_bmm"] = timed
  else:
    result["torch"]["compile_bmm"] = {"skipped": f"not run in the {suite.name} suite"}
  eager = {k: v for k, v in result["torch"].items() if k.startswith("eager_")}
  best = min(eager, key=lambda k: eager[k]["step_s"])
  jax_rate = result["jax"]["model_only"]["examples_per_s"]
  result["ratios"] = {
      "jax_model_only_vs_torch_eager_bmm": jax_rate / eager["eager_bmm"]["examples_per_s"],
      "jax_model_only_vs_torch_eager_vmap": jax_rate / eager["eager_vmap"]["examples_per_s"],
      "jax_model_only_vs_best_torch_eager": jax_rate / eager[best]["examples_per_s"],
      "best_torch_eager": best,
      "jax_library_vs_torch_eager_bmm": (result["jax"]["library"]["examples_per_s"]
                                         / eager["eager_bmm"]["examples_per_s"]),
  }
  if "step_s" in result["torch"]["compile_bmm"]:
    result["ratios"]["jax_model_only_vs_torch_compile_bmm"] = (
        jax_rate / result["torch"]["compile_bmm"]["examples_per_s"])
  return result


def run_seeds(suite: suites_lib.Suite, *, roof: Roof,
              sampler_override=None) -> dict[str, Any]:
  """Library and model-only steps with S seeds in one program, for each S of the suite."""
  builts = {}
  for num_seeds in suite.seeds:
    config = _config(*suite.seeds_config, overrides=(("num_seeds", num_seeds),))
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
    builts = {dtype: jax_steps.build_cached(_config(
        comparison.config, comparison.arg,
        overrides=comparison.overrides + (("compute_dtype", dtype),)))
              for dtype in ("float32", "bfloat16")}
    timed = time_jax_steps({dtype: (built, "model_only") for dtype, built in builts.items()},
                           suite, roof=roof)
    rows.append({"name": comparison.name, "title": comparison.title, **timed,
                 "bf16_speedup": timed["float32"]["step_s"] / timed["bfloat16"]["step_s"]})
  return {"step": "model_only", "rows": rows}


def run_row_sampler(suite: suites_lib.Suite, *, roof: Roof) -> dict[str, Any]:
  """Library step with the previous row sampler (before) and the library's (after)."""
  from benchmarks import optimisations  # pylint: disable=g-import-not-at-top
  # Cases timed together (interleaved): each comparison alone; the seeds runs as one
  # group, so their S-seed / S x 1-seed ratio sees one machine load.
  groups = [[(c.title, _config(c.config, c.arg, c.overrides))] for c in suite.comparisons]
  groups.append([(f"seeds S={s}", _config(*suite.seeds_config, overrides=(("num_seeds", s),)))
                 for s in (1, max(suite.seeds))])
  rows = []
  for group in groups:
    steps = {}
    for title, config in group:
      steps[(title, "before")] = (jax_steps.build_cached(
          config, sampler_override=optimisations.previous_sampler), "library")
      steps[(title, "after")] = (jax_steps.build_cached(config), "library")
    timed = time_jax_steps(steps, suite, roof=roof)
    for title, config in group:
      before, after = timed[(title, "before")], timed[(title, "after")]
      rows.append({"benchmark": title, "seeds": config.num_seeds,
                   "batch_conditions": config.batch.conditions,
                   "batch_points": config.batch.points, "before": before, "after": after,
                   "speedup": before["step_s"] / after["step_s"]})
  out = {"change": "a batch's rows by jax.lax.top_k of uniforms "
                   "(hypernets.data.dataset.choose_rows) instead of "
                   "jax.random.choice(replace=False)",
         "step": "library", "rows": rows}
  by_seeds = {r["seeds"]: r for r in rows if r["benchmark"].startswith("seeds")}
  many = max(by_seeds)
  if 1 in by_seeds and many > 1:
    out["seeds_vs_separate_runs"] = {
        "seeds": many, **{label: by_seeds[many][label]["step_s"]
                          / (many * by_seeds[1][label]["step_s"])
                          for label in ("before", "after")}}
  return out


PRIMARY_CASES = (
    ("(a) g = 784->10->12, 64 conditions x 1 point", dict(conditions=64, points=1,
                                                          sizes=(784, 10, 12))),
    ("(c) g = 10->16->1, 256 conditions x 128 points", dict(conditions=256, points=128,
                                                            sizes=(10, 16, 1))),
)


def run_primary_formulations(suite: suites_lib.Suite) -> dict[str, Any]:
  """Forward + backward of the per-example primary, each formulation of its matmul."""
  from benchmarks import optimisations  # pylint: disable=g-import-not-at-top
  rows = []
  for title, sizes in PRIMARY_CASES:
    args = optimisations.primary_problem(**sizes)
    runners = {}
    for name, matmul in optimisations.PRIMARY_FORMULATIONS.items():
      compiled = jax.jit(optimisations.primary_grad_fn(matmul)).lower(*args).compile()

      def run_steps(n, compiled=compiled):
        out = None
        for _ in range(n):
          out = compiled(*args)
        jax.block_until_ready(out)

      runners[name] = run_steps
    timed = timing.measure_interleaved(runners, **_measure_kwargs(suite))
    library = timed["dot (library)"]["step_s"]
    rows.append({"case": title, **sizes, "formulations": {
        name: {**t, "vs_library": library / t["step_s"]} for name, t in timed.items()}})
  return {"change": "per-example primary matmul: the batched dot_general of jax.vmap "
                    "(kept) against the alternatives", "adopted": "dot (library)",
          "rows": rows}


def run_optimisations(suite: suites_lib.Suite, *, roof: Roof) -> dict[str, Any]:
  """Before / after figures of each optimisation (benchmarks/optimisations.py)."""
  return {"row_sampler": run_row_sampler(suite, roof=roof),
          "primary_dot": run_primary_formulations(suite)}


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
      config = _config(*suite.scaling_config, overrides=((SCALING_FIELDS[axis], value),))
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
    config = _config(name, arg)
    built = jax_steps.build_cached(config, allow_stand_in=True)
    # A new jitted step: nothing of an earlier compile of the same program is reused.
    _, times = timing.compile_jitted(built.make_library_step(), built.fresh_state(),
                                     built.train_data, built.data_keys)
    out[name if arg is None else f"{name}:{arg}"] = {
        **times, "kind": config.model.kind, "num_params": built.num_params,
        "num_seeds": config.num_seeds, "stand_in_data": built.used_stand_in_data}
  return out


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
  """The issue's targets: measured value, threshold, met or missed and by how much."""
  targets = []

  def add(name, value, threshold, higher_is_better, detail):
    met = value >= threshold if higher_is_better else value < threshold
    by = value / threshold
    targets.append({"name": name, "value": value, "threshold": threshold,
                    "comparison": ">=" if higher_is_better else "<", "met": bool(met),
                    "value_over_threshold": by, "detail": detail})

  compare = results.get("compare", {})
  for key, label in (("rotation_hypernet", "(a)"), ("synthetic_large_batch", "(c)")):
    ratios = compare.get(key, {}).get("ratios")
    if ratios:
      add(f"{label} JAX model-only examples/s / best PyTorch eager",
          ratios["jax_model_only_vs_best_torch_eager"], 2.0, True,
          f"best eager variant: {ratios['best_torch_eager']}")
  def bound(timed):
    if timed.get("attainable_fraction") is None:
      return ""
    return (f"; memory roofline allows {100 * timed['attainable_fraction']:.0f}% "
            f"({timed['intensity_flop_per_byte']:.2f} flop/B)")

  if "synthetic_large_batch" in compare:
    timed = compare["synthetic_large_batch"]["jax"]["model_only"]
    add("(c) JAX model-only FLOP/s / matmul peak", timed["roofline_fraction"], 0.5, True,
        "analytic FLOPs / step time / matmul peak" + bound(timed))
  seeds = results.get("seeds", {}).get("rows", [])
  if seeds:
    largest = max(seeds, key=lambda r: r["seeds"])
    n = largest["seeds"]
    for which, label in (("library", "library step"), ("model_only", "model-only step")):
      add(f"{n} seeds: FLOP/s / matmul peak ({label})",
          largest[which]["roofline_fraction"], 0.5, True,
          "seeds vmapped in one program" + bound(largest[which]))
    for which, label in (("library", "library step"), ("model_only", "model-only step")):
      if largest[which]["vs_separate_runs"] is not None:
        add(f"{n} seeds in one program / {n} x one seed ({label})",
            largest[which]["vs_separate_runs"], 0.5, False, "time per step")
  compile_times = results.get("compile", {})
  if compile_times:
    worst = max(compile_times, key=lambda k: compile_times[k]["total_s"])
    add("compile s, slowest shipped config", compile_times[worst]["total_s"], 10.0, False,
        f"slowest: {worst}")
  return targets


# ----------------------------------------------------------------------------- tables


def format_table(headers: list[str], rows: list[list[Any]]) -> str:
  """Columns right-aligned except the first two; floats as given (pre-formatted)."""
  cells = [[str(c) for c in row] for row in rows]
  widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
            for i, h in enumerate(headers)]

  def line(values):
    return "  ".join(v.ljust(w) if i < 2 else v.rjust(w)
                     for i, (v, w) in enumerate(zip(values, widths)))

  return "\n".join([line(headers), "-" * len(line(headers))] + [line(r) for r in cells])


def _f(value, digits=3):
  if value is None:
    return "-"
  if isinstance(value, float) and (abs(value) >= 1e5 or (0 < abs(value) < 1e-3)):
    return f"{value:.{digits}g}"
  return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _ms(seconds):
  return "-" if seconds is None else f"{1e3 * seconds:.3f}"


def _bound(timed):
  """'attainable % (intensity)' of a JAX row: the memory roofline's ceiling."""
  if timed.get("attainable_fraction") is None:
    return "-"
  return (f"{100 * timed['attainable_fraction']:.0f} "
          f"({timed['intensity_flop_per_byte']:.1f})")


def _mb(num_bytes):
  return "-" if num_bytes is None else f"{num_bytes / 2**20:.2f}"


def tables(results: dict[str, Any]) -> str:
  m, roof = results["machine"], results["roofline"]
  out = [f"suite={results['suite']}  cpu={m['cpu_model']} ({m['cpu_cores']} cores)  "
         f"jax={m['jax']}  device={m['device_kind']}  torch={m['torch']}  "
         f"load average at start={m['load_average_start']}"]
  out.append("\nRoofline: fp32 matmul through XLA")
  rows = [[f"{v['n']}x{v['n']}", "jax", _ms(v["seconds"]), f"{v['flop_per_s'] / 1e9:.1f}"]
          for v in roof["per_size"].values()]
  if roof.get("torch_matmul_flop_per_s"):
    n = roof["torch_matmul_n"]
    rows.append([f"{n}x{n}", "torch", "-", f"{roof['torch_matmul_flop_per_s'] / 1e9:.1f}"])
  out.append(format_table(["matmul", "impl", "ms", "GFLOP/s"], rows))
  memory = roof.get("memory")
  if memory:
    out.append(format_table(["stream y = a x + b", "impl", "ms", "GB/s"], [
        [f"{v['mib']} MiB", "jax", _ms(v["seconds"]), f"{v['bytes_per_s'] / 1e9:.1f}"]
        for v in memory["per_size"].values()]))
  out.append(f"peak (the roofline below): {roof['peak_flop_per_s'] / 1e9:.1f} GFLOP/s"
             + (f"; bandwidth {memory['peak_bytes_per_s'] / 1e9:.1f} GB/s (bound % = "
                "min(peak, FLOPs / XLA bytes accessed x bandwidth) / peak)" if memory else ""))

  if "compare" in results:
    out.append("\nJAX (the library's jitted step) vs PyTorch (CPU, same machine, same run); "
               "examples = conditioning inputs per second")
    rows = []
    for res in results["compare"].values():
      title = res["title"]
      shape = f"B={res['batch_conditions']} P={res['batch_points']}"
      labels = {"library": "jax library step (on-device sampling)",
                "model_only": "jax model-only (pre-made batch)"}
      torch_bmm = res["torch"].get("eager_bmm", {}).get("examples_per_s")
      for which, label in labels.items():
        r = res["jax"][which]
        rows.append([title, label, shape, f"{r['total_s']:.2f}", _ms(r["step_s"]),
                     f"{r['examples_per_s']:.0f}", f"{r['flop_per_s'] / 1e9:.1f}",
                     f"{100 * r['roofline_fraction']:.1f}", _bound(r),
                     f"{r['examples_per_s'] / torch_bmm:.2f}" if torch_bmm else "-"])
      for variant, r in res["torch"].items():
        if not isinstance(r, dict):
          continue
        label = f"torch {variant.replace('_', ' ')}"
        if "step_s" not in r:
          rows.append([title, label, shape, "-", "skipped: " + r.get("skipped", ""),
                       "", "", "", "", ""])
          continue
        compile_s = f"{r['first_step_s']:.2f}" if variant.startswith("compile") else "-"
        rows.append([title, label, shape, compile_s, _ms(r["step_s"]),
                     f"{r['examples_per_s']:.0f}", f"{r['flop_per_s'] / 1e9:.1f}",
                     f"{100 * r['roofline_fraction']:.1f}", "",
                     f"{r['examples_per_s'] / torch_bmm:.2f}"])
      rows.append([title, "GFLOP per step: analytic / XLA cost_analysis (model-only)", "",
                   "", "", "", f"{res['flops_train'] / 1e9:.4f}",
                   _f(res["jax"]["model_only"]["xla_flops"] / 1e9
                      if res["jax"]["model_only"]["xla_flops"] else None, 4), "", ""])
    out.append(format_table(["benchmark", "implementation", "batch", "compile s", "step ms",
                             "examples/s", "GFLOP/s", "% peak", "bound % (flop/B)",
                             "vs torch bmm"], rows))

  if "precision" in results:
    out.append("\nMixed precision (--config.compute_dtype=bfloat16: fp32 parameters and "
               "optimizer, bf16 matmuls), model-only step, timed interleaved")
    rows = [[r["title"], _ms(r["float32"]["step_s"]), _ms(r["bfloat16"]["step_s"]),
             f"{r['bf16_speedup']:.2f}", f"{r['bfloat16']['total_s']:.2f}"]
            for r in results["precision"]["rows"]]
    out.append(format_table(["benchmark", "float32 ms", "bfloat16 ms", "bf16 speed-up",
                             "bf16 compile s"], rows))

  if "seeds" in results:
    out.append(f"\nSeeds as a batch: configs/{results['seeds']['config']}.py"
               f"{':' + results['seeds']['config_arg'] if results['seeds']['config_arg'] else ''}"
               ", S seeds vmapped in one program")
    rows = []
    for r in results["seeds"]["rows"]:
      for which, label in (("library", "library step"), ("model_only", "model-only")):
        t = r[which]
        rows.append([str(r["seeds"]), label, _ms(t["step_s"]), _ms(t["per_seed_step_s"]),
                     _f(t["vs_separate_runs"]), f"{t['flop_per_s'] / 1e9:.2f}",
                     f"{100 * t['roofline_fraction']:.1f}", _bound(t), f"{t['total_s']:.2f}",
                     _mb(t["peak_bytes"])])
    out.append(format_table(["seeds", "step", "step ms", "ms per seed", "vs S x 1 seed",
                             "GFLOP/s", "% peak", "bound % (flop/B)", "compile s", "MiB"],
                            rows))

  if "optimisations" in results:
    rs = results["optimisations"]["row_sampler"]
    out.append(f"\nOptimisation (benchmarks/OPTIMISATIONS.md): {rs['change']}; {rs['step']} "
               "step, before / after measured interleaved")
    rows = [[r["benchmark"], f"S={r['seeds']} B={r['batch_conditions']} P={r['batch_points']}",
             _ms(r["before"]["step_s"]), _ms(r["after"]["step_s"]), f"{r['speedup']:.2f}"]
            for r in rs["rows"]]
    out.append(format_table(["benchmark", "shape", "before ms", "after ms", "speedup"], rows))
    if "seeds_vs_separate_runs" in rs:
      v = rs["seeds_vs_separate_runs"]
      out.append(f"{v['seeds']} seeds in one program / {v['seeds']} x one seed (library "
                 f"step): before {v['before']:.3f}, after {v['after']:.3f}")
    pd = results["optimisations"]["primary_dot"]
    out.append(f"\nMeasured, not adopted: {pd['change']} (forward + backward of g only)")
    rows = [[r["case"], name, _ms(t["step_s"]), f"{t['vs_library']:.2f}"]
            for r in pd["rows"] for name, t in r["formulations"].items()]
    out.append(format_table(["primary", "formulation", "ms", "speed vs library"], rows))

  if "scaling" in results:
    sc = results["scaling"]
    out.append(f"\nScaling: library step of configs/{sc['config']}.py"
               f"{':' + sc['config_arg'] if sc['config_arg'] else ''}, one size varied "
               "(memory: XLA buffer assignment, arguments + outputs - aliased + temporaries)")
    rows = []
    for axis in SCALING_FIELDS:
      if axis not in sc:
        continue
      for r in sc[axis]["rows"]:
        rows.append([axis, sc[axis]["field"], str(r["size"]), str(r["num_params"]),
                     _ms(r["step_s"]), f"{r['flop_per_s'] / 1e9:.2f}",
                     f"{100 * r['roofline_fraction']:.1f}", _mb(r["peak_bytes"]),
                     f"{r['total_s']:.2f}"])
      rows.append([axis, "log-log slope", "", "", _f(sc[axis]["slope_step_s"], 2), "", "",
                   _f(sc[axis]["slope_peak_bytes"], 2), ""])
    out.append(format_table(["axis", "field", "size", "params", "step ms", "GFLOP/s",
                             "% peak", "MiB", "compile s"], rows))

  if "compile" in results:
    out.append("\nCompile time of the library step (jit(vmap(step)).lower(...).compile())")
    rows = [[name, r["kind"], f"{r['lower_s']:.2f}", f"{r['compile_s']:.2f}",
             f"{r['total_s']:.2f}", str(r["num_params"]),
             "zeros of the real shape" if r["stand_in_data"] else "real"]
            for name, r in results["compile"].items()]
    out.append(format_table(["config", "kind", "lower s", "compile s", "total s", "params",
                             "data"], rows))

  if results.get("targets"):
    out.append("\nTargets")
    rows = [[t["name"], f"{t['comparison']} {_f(t['threshold'])}", _f(t["value"]),
             "met" if t["met"] else "MISSED", f"{t['value_over_threshold']:.2f}x", t["detail"]]
            for t in results["targets"]]
    out.append(format_table(["target", "needs", "measured", "", "of threshold", "note"],
                            rows))
  out.append("\nseconds per section: " + ", ".join(
      f"{k} {v:.0f}" for k, v in results.get("section_s", {}).items()))
  out.append(f"total {results['total_s']:.0f} s; load average at end "
             f"{results['machine'].get('load_average_end')}")
  return "\n".join(out)


def run(suite: suites_lib.Suite, *, sections=SECTIONS, with_torch: bool) -> dict[str, Any]:
  """Every section of `suite`; returns the results dict (see benchmarks/README.md)."""
  start = time.perf_counter()
  results = {"suite": suite.name, "machine": machine.describe(),
             "settings": {"warmup_steps": suite.warmup, "repeats": suite.repeats,
                          "min_repeat_s": suite.min_repeat_s, "statistic": "median",
                          "torch_compile_budget_s": suite.torch_compile_budget_s,
                          "jax_compilation_cache_dir":
                              jax.config.jax_compilation_cache_dir or None}}
  roof = machine.matmul_rate(sizes=suite.matmul_sizes, repeats=suite.repeats,
                             min_repeat_s=suite.min_repeat_s)
  roof["memory"] = machine.memory_bandwidth(sizes_mib=suite.bandwidth_sizes_mib,
                                            repeats=suite.repeats,
                                            min_repeat_s=suite.min_repeat_s)
  if with_torch:
    n = max(suite.matmul_sizes)
    roof["torch_matmul_n"] = n
    roof["torch_matmul_flop_per_s"] = machine.torch_matmul_rate(
        n=n, repeats=suite.repeats, min_repeat_s=suite.min_repeat_s)
  results["roofline"] = roof
  peak = roof["peak_flop_per_s"]
  ceilings = Roof(peak=peak, bandwidth=roof["memory"]["peak_bytes_per_s"])
  section_s = {"roofline": time.perf_counter() - start}
  runners = {
      "compare": lambda: {c.name: run_comparison(c, suite, roof=ceilings,
                                                 with_torch=with_torch)
                          for c in suite.comparisons},
      "precision": lambda: run_precision(suite, roof=ceilings),
      "seeds": lambda: run_seeds(suite, roof=ceilings),
      "scaling": lambda: run_scaling(suite, roof=ceilings),
      "compile": lambda: run_compile(suite),
      "optimisations": lambda: run_optimisations(suite, roof=ceilings),
  }
  for name, runner in runners.items():
    if name in sections and (name != "optimisations" or suite.optimisations):
      results[name], section_s[name] = timing.timed(runner)
  results["section_s"] = section_s
  results["targets"] = evaluate_targets(results)
  results["machine"]["load_average_end"] = machine.load_average()
  results["machine"]["max_rss_mib"] = (
      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
  results["total_s"] = time.perf_counter() - start
  return results


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  unknown = set(_SECTIONS.value) - set(SECTIONS)
  if unknown:
    sys.exit(f"error: unknown --sections {sorted(unknown)}; choose from {SECTIONS}")
  results = run(suites_lib.SUITES[_SUITE.value], sections=_SECTIONS.value,
                with_torch=_torch_available())
  print(tables(results), flush=True)
  if _OUT.value:
    os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
    tmp = _OUT.value + ".tmp"
    with open(tmp, "w") as f:
      json.dump(results, f, indent=1, default=float)
    os.replace(tmp, _OUT.value)
    print(f"wrote {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
