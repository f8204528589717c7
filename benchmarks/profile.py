r"""Where a benchmark's step spends its time: XLA ops ranked by time per step.

  python -m benchmarks.profile --case=a            # (a) rotation hypernet, model-only
  python -m benchmarks.profile --case=c --step=library
  python -m benchmarks.profile --case=seeds100

Runs the compiled step under `jax.profiler` and sums the duration of every XLA op
(thunk) in the trace, per step; each op is printed with its HLO shape and the
source operation it came from (`metadata.op_name`). Ops can overlap (XLA:CPU runs
independent ops on its two threads), so the column does not add up to the step.
Evidence for benchmarks/README.md ("Targets") and benchmarks/OPTIMISATIONS.md.
"""

import collections
import glob
import gzip
import json
import re
import tempfile

from absl import app
from absl import flags
import jax

from benchmarks import jax_steps
from benchmarks import timing

CASES = {
    "a": ("rotation_mnist", None, ()),
    "b": ("rotation_mnist", "kind=embedding", ()),
    "c": ("synthetic", None, (("batch.conditions", 256), ("batch.points", 128))),
    "seeds100": ("synthetic", None, (("num_seeds", 100),)),
}

_CASE = flags.DEFINE_enum("case", "a", sorted(CASES), "Which benchmark to profile.")
_STEP = flags.DEFINE_enum("step", "model_only", ["model_only", "library"], "Which step.")
_STEPS = flags.DEFINE_integer("steps", 20, "Steps to trace.")
_TOP = flags.DEFINE_integer("top", 15, "Ops to print.")


def op_times(run_steps, *, num_steps: int) -> dict[str, float]:
  """{XLA op name: seconds per step} over a `jax.profiler` trace of `run_steps(n)`."""
  with tempfile.TemporaryDirectory() as trace_dir:
    jax.profiler.start_trace(trace_dir)
    run_steps(num_steps)
    jax.profiler.stop_trace()
    paths = glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True)
    if not paths:
      raise RuntimeError("jax.profiler wrote no trace")
    with gzip.open(paths[0]) as f:
      events = json.load(f)["traceEvents"]
  totals = collections.Counter()
  for event in events:
    name = event.get("name", "")
    # XLA ops are named like fusions and dots; skip runtime/python events.
    if event.get("ph") == "X" and re.match(r"^[a-z][\w\-]*(\.\d+)?$", name):
      totals[name] += event["dur"] * 1e-6 / num_steps
  return dict(totals)


def describe_ops(hlo_text: str) -> dict[str, str]:
  """{op name: 'shape  (op_name metadata)'} from a compiled module's HLO text."""
  out = {}
  for line in hlo_text.splitlines():
    match = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = (\S+) ", line)
    if match:
      source = re.search(r'op_name="([^"]+)"', line)
      out[match.group(1)] = match.group(2) + (f"  {source.group(1)}" if source else "")
  return out


def main(argv):
  del argv
  name, arg, overrides = CASES[_CASE.value]
  config = jax_steps.load_config(name, arg)
  if overrides:
    config.update_from_flattened_dict(dict(overrides))
  built = jax_steps.build(config)
  jitted, data = ((built.model_step, built.batch) if _STEP.value == "model_only"
                  else (built.library_step, built.train_data))
  compiled, _ = timing.compile_jitted(jitted, built.state, data, built.data_keys)
  stepper = timing.JaxStepper(compiled, built.fresh_state(), data, built.data_keys)
  step_s = timing.measure_steps(stepper)["step_s"]
  ops = op_times(stepper, num_steps=_STEPS.value)
  shapes = describe_ops(compiled.as_text())
  print(f"case {_CASE.value} ({name}{':' + arg if arg else ''}, {_STEP.value} step): "
        f"{1e3 * step_s:.3f} ms per step (median); top XLA ops, ms per step:")
  for op, seconds in sorted(ops.items(), key=lambda kv: -kv[1])[:_TOP.value]:
    print(f"{1e3 * seconds:8.3f}  {100 * seconds / step_s:5.1f}%  {op:28s} "
          f"{shapes.get(op, '')[:150]}")


if __name__ == "__main__":
  app.run(main)
