r"""Performance benchmarks: prints tables and writes a JSON file of every figure.

  python -m benchmarks.run --suite=quick --out=benchmarks/results/quick_cpu.json
  python -m benchmarks.run --suite=accelerator --out=benchmarks/results/accelerator.json

Suites (benchmarks/suites.py): smoke (CI, about a minute), quick (~12 min on a 2-core CPU),
full, accelerator (one GPU/TPU, < 8 min). Sections: the machine and its fp32 matmul
rate through XLA (the roofline, always); compare (JAX against PyTorch, each in its own
worker process: benchmarks/compare.py); precision, seeds, scaling, compile
(benchmarks/sections.py); conv (per-example conv primary: benchmarks/conv_primary.py);
optimisations (benchmarks/optimisations.py). Tables: benchmarks/tables.py; targets:
benchmarks/targets.py. See benchmarks/README.md for what each row means.
"""

import json
import os
import resource
import sys
import time
from absl import app
from absl import flags
import jax

from benchmarks import compare
from benchmarks import conv_primary
from benchmarks import loop_dispatch
from benchmarks import machine
from benchmarks import optimisations
from benchmarks import sections as sections_lib
from benchmarks import suites as suites_lib
from benchmarks import tables as tables_lib
from benchmarks import targets as targets_lib
from benchmarks import timing

SECTIONS = ("roofline", "compare", "precision", "seeds", "scaling", "compile", "conv", "loop",
            "optimisations")

_SUITE = flags.DEFINE_enum("suite", "quick", sorted(suites_lib.SUITES), "Which sizes to run.")
_OUT = flags.DEFINE_string("out", None, "Where to write the JSON results.")
_SECTIONS = flags.DEFINE_list(
    "sections", list(SECTIONS),
    "Sections to run (roofline always runs; the others need it). 'optimisations' runs "
    "only in suites that enable it (not smoke, not accelerator).")
_NO_TORCH = flags.DEFINE_bool("no_torch", False, "Skip PyTorch even if it is installed.")


def torch_available(suite: suites_lib.Suite, no_torch: bool = False) -> bool:
  """Whether the PyTorch rows run: installed (not imported here), wanted by the suite."""
  return suite.torch_rows and not no_torch and machine.torch_version() is not None


def run(suite: suites_lib.Suite, *, sections=SECTIONS, with_torch: bool) -> dict:
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
  results["roofline"] = roof
  peak = roof["peak_flop_per_s"]
  ceilings = sections_lib.Roof(peak=peak, bandwidth=roof["memory"]["peak_bytes_per_s"])
  section_s = {"roofline": time.perf_counter() - start}

  def run_compare():
    rows, workers = compare.run_compare(suite, roof=ceilings, with_torch=with_torch,
                                        threads=compare.default_threads())
    results["workers"] = workers
    if workers.get("torch_matmul_flop_per_s"):
      roof["torch_matmul_n"] = workers["torch_matmul_n"]
      roof["torch_matmul_flop_per_s"] = workers["torch_matmul_flop_per_s"]
    return rows

  runners = {
      "compare": run_compare,
      "precision": lambda: sections_lib.run_precision(suite, roof=ceilings),
      "seeds": lambda: sections_lib.run_seeds(suite, roof=ceilings),
      "scaling": lambda: sections_lib.run_scaling(suite, roof=ceilings),
      "compile": lambda: sections_lib.run_compile(suite),
      "conv": lambda: conv_primary.run_conv_primary(suite),
      "loop": lambda: loop_dispatch.run_loop(suite),
      "optimisations": lambda: optimisations.run_optimisations(suite, roof=ceilings),
  }
  for name, runner in runners.items():
    enabled = {"optimisations": suite.optimisations, "loop": suite.loop_repeats > 0}
    if name in sections and enabled.get(name, True):
      results[name], section_s[name] = timing.timed(runner)
  results["section_s"] = section_s
  results["targets"] = targets_lib.evaluate_targets(results)
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
  suite = suites_lib.SUITES[_SUITE.value]
  results = run(suite, sections=_SECTIONS.value,
                with_torch=torch_available(suite, _NO_TORCH.value))
  print(tables_lib.tables(results), flush=True)
  if _OUT.value:
    os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
    tmp = _OUT.value + ".tmp"
    with open(tmp, "w") as f:
      json.dump(results, f, indent=1, default=float)
    os.replace(tmp, _OUT.value)
    print(f"wrote {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
