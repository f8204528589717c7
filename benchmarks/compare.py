"""JAX against PyTorch on the paper's models, each framework in its own worker process.

Per comparison (benchmarks/suites.py), timed in the same interleaved rounds:
  jax library      the library's step, batch sampled on device (rotation: rotated on
                   device) inside the step;
  jax model-only   the same step on a pre-made batch;
  jax library, S seeds  (rotation) the library step with S seeds in one program: its
                   per-seed equivalent is step time / S;
  torch eager bmm / vmap   torch_reference on the same pre-made batch;
  torch data bmm   (rotation) the paper's loop: a DataLoader rotating uint8 digits with
                   PIL, normalising, then the eager bmm step.
JAX runs in one worker, PyTorch in another (benchmarks/workers.py), both pinned to
the same cores; each reports every step's seconds, so the JSON has the median and
p10/p90 of the repeats and of single steps.
"""

import os
import tempfile
from typing import Any

from benchmarks import sections
from benchmarks import suites as suites_lib
from benchmarks import timing
from benchmarks import workers


def _overrides(comparison: suites_lib.Comparison, extra=()) -> list:
  return [list(item) for item in comparison.overrides + tuple(extra)]


def _jax_row(timed: dict[str, Any], built: dict[str, Any], which: str, *,
             roof: sections.Roof) -> dict[str, Any]:
  """A JAX step's timing with its compile times, XLA costs, rates and memory roofline."""
  flops = built["flops"]["train"]
  timed = {**timed, **built["steps"][which]}
  timed.update(sections.rates(timed["step_s"], examples=built["examples"], flops=flops,
                              peak=roof.peak))
  timed.update(sections.memory_roofline(timed, flops=flops, roof=roof))
  return timed


def run_comparison(comparison: suites_lib.Comparison, suite: suites_lib.Suite, *,
                   roof: sections.Roof, jax_worker: workers.Worker,
                   torch_worker: workers.Worker | None, export_dir: str) -> dict[str, Any]:
  """Every row of one comparison, timed interleaved across the two workers."""
  name = comparison.name
  built = jax_worker.call("build", label=name, config=comparison.config, arg=comparison.arg,
                          overrides=_overrides(comparison),
                          which=["library", "model_only"], export_dir=export_dir)
  flops = built["flops"]
  result = {
      "title": comparison.title, "config": comparison.config, "config_arg": comparison.arg,
      "overrides": dict(comparison.overrides), "kind": built["kind"],
      "batch_conditions": built["batch_conditions"], "batch_points": built["batch_points"],
      "optimizer": built["optimizer"], "num_params": built["num_params"],
      "flops_forward": flops["forward"], "flops_train": flops["train"],
      "matmuls": built["matmuls"], "jax": {}, "torch": {},
  }
  runners = {f"jax/{which}": jax_worker.runner(f"{name}/{which}")
             for which in ("library", "model_only")}
  rotation = "rotation" in built
  seeds_built = None
  if rotation and suite.data_loop_seeds > 1:
    seeds = suite.data_loop_seeds
    seeds_built = jax_worker.call(
        "build", label=f"{name}/seeds", config=comparison.config, arg=comparison.arg,
        overrides=_overrides(comparison, (("num_seeds", seeds),)), which=["library"])
    runners["jax/library_seeds"] = jax_worker.runner(f"{name}/seeds/library")
  spec = built.get("torch_spec")
  first_steps = {}
  if torch_worker is not None and spec is not None:
    for variant in ("bmm", "vmap"):
      label = f"{name}/eager_{variant}"
      first_steps[f"eager_{variant}"] = torch_worker.call(
          "model_step", label=label, spec=spec, variant=variant,
          batch_path=built["batch_path"])["first_step_s"]
      runners[f"torch/eager_{variant}"] = torch_worker.runner(label)
    if rotation:
      label = f"{name}/data_bmm"
      first_steps["data_bmm"] = torch_worker.call(
          "data_step", label=label, spec=spec, variant="bmm",
          images_path=built["images_path"], batch_size=built["batch_conditions"],
          **built["rotation"])["first_step_s"]
      runners["torch/data_bmm"] = torch_worker.runner(label)
  timed = timing.measure_interleaved(runners, **sections.measure_kwargs(suite))

  for which in ("library", "model_only"):
    result["jax"][which] = _jax_row(timed[f"jax/{which}"], built, which, roof=roof)
  if seeds_built is not None:
    row = _jax_row(timed["jax/library_seeds"], seeds_built, "library", roof=roof)
    row["seeds"] = seeds_built["num_seeds"]
    row["per_seed_step_s"] = row["step_s"] / row["seeds"]
    result["jax"]["library_seeds"] = row
  if torch_worker is None:
    result["torch"] = {"skipped": "torch is not installed (or --no_torch)"}
    return result
  if spec is None:
    result["torch"] = {"skipped": built.get("torch_spec_error", "no PyTorch reference")}
    return result
  for label, first in first_steps.items():
    row = timed[f"torch/{label}"]
    row["first_step_s"] = first
    row.update(sections.rates(row["step_s"], examples=built["batch_conditions"],
                              flops=flops["train"], peak=roof.peak))
    result["torch"][label] = row
  if suite.torch_compile_budget_s > 0:
    row = torch_worker.call("compiled_step", spec=spec, variant="bmm",
                            batch_path=built["batch_path"],
                            budget_s=suite.torch_compile_budget_s,
                            **sections.measure_kwargs(suite))
    if "step_s" in row:
      row.update(sections.rates(row["step_s"], examples=built["batch_conditions"],
                                flops=flops["train"], peak=roof.peak))
    result["torch"]["compile_bmm"] = row
  else:
    result["torch"]["compile_bmm"] = {"skipped": f"not run in the {suite.name} suite"}
  result["ratios"] = _ratios(result)
  return result


def _ratios(result: dict[str, Any]) -> dict[str, Any]:
  """JAX examples/s over PyTorch's, for the targets."""
  jax_rows, torch_rows = result["jax"], result["torch"]
  eager = {k: v for k, v in torch_rows.items() if k.startswith("eager_")}
  best = min(eager, key=lambda k: eager[k]["step_s"])
  rate = jax_rows["model_only"]["examples_per_s"]
  ratios = {
      "jax_model_only_vs_torch_eager_bmm": rate / eager["eager_bmm"]["examples_per_s"],
      "jax_model_only_vs_torch_eager_vmap": rate / eager["eager_vmap"]["examples_per_s"],
      "jax_model_only_vs_best_torch_eager": rate / eager[best]["examples_per_s"],
      "best_torch_eager": best,
      "jax_library_vs_torch_eager_bmm": (jax_rows["library"]["examples_per_s"]
                                         / eager["eager_bmm"]["examples_per_s"]),
  }
  if "step_s" in torch_rows.get("compile_bmm", {}):
    ratios["jax_model_only_vs_torch_compile_bmm"] = (
        rate / torch_rows["compile_bmm"]["examples_per_s"])
  if "data_bmm" in torch_rows:
    data = torch_rows["data_bmm"]["examples_per_s"]
    ratios["jax_library_vs_torch_data_loop"] = jax_rows["library"]["examples_per_s"] / data
    if "library_seeds" in jax_rows:
      ratios["jax_library_seeds_vs_torch_data_loop"] = (
          jax_rows["library_seeds"]["examples_per_s"] / data)
  return ratios


def run_compare(suite: suites_lib.Suite, *, roof: sections.Roof, with_torch: bool,
                threads: int) -> tuple[dict[str, Any], dict[str, Any]]:
  """({comparison name: result}, the workers' description), workers started once."""
  with tempfile.TemporaryDirectory(prefix="hypernets_compare_") as export_dir, \
      workers.Worker("jax", threads=threads) as jax_worker:
    torch_worker = workers.Worker("torch", threads=threads) if with_torch else None
    try:
      results = {c.name: run_comparison(c, suite, roof=roof, jax_worker=jax_worker,
                                        torch_worker=torch_worker, export_dir=export_dir)
                 for c in suite.comparisons}
      info = {"threads": threads, "cpus": jax_worker.cpus, "jax": jax_worker.info,
              "torch": torch_worker.info if torch_worker else None}
      if torch_worker is not None:
        n = max(suite.matmul_sizes)
        info["torch_matmul_n"] = n
        info["torch_matmul_flop_per_s"] = torch_worker.call(
            "matmul_rate", n=n, repeats=suite.repeats,
            min_repeat_s=suite.min_repeat_s)["flop_per_s"]
    finally:
      if torch_worker is not None:
        torch_worker.close()
  return results, info


def default_threads() -> int:
  """Cores this process may use: each worker gets them all (the same for both)."""
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
