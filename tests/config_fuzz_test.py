"""Fuzzed command lines: every field of every shipped config, overridden at random.

Each example is what a user types: `launch/main.py --config=configs/X.py:small
--config.<field>=<value> ...` with one to three overrides drawn by hypothesis from
values of the field's type and of others (zero, negative, huge, NaN, infinite, wrong
type, empty, unknown names, the library's choices). It runs through launch/main.py's
own code in a worker process (tests/config_fuzz_worker.py) and must either train
(stopped after a few steps) or stop with ONE line starting `error:` that names what
is wrong, leaving the workdir untouched; never a traceback, a dead worker or a hang.

CI runs FUZZ_EXAMPLES examples (fixed seed). `HYPERNETS_FUZZ_EXAMPLES=3000` runs more
and, instead of stopping at the first failure, records every one and prints a
summary (outcomes, and each distinct failure with an example command line).
"""

import collections
import glob
import json
import os
import select
import shutil
import subprocess
import sys
import time

from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import pytest

from conftest import REPO_ROOT
from conftest import load_config

FUZZ_EXAMPLES = 16
LONG_EXAMPLES = int(os.environ.get("HYPERNETS_FUZZ_EXAMPLES", "0") or 0)
TIMEOUT_SECONDS = 240.0  # one example; compiling on a loaded 2-core machine is slow
CONFIGS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(REPO_ROOT,
                                                                          "configs", "*.py")))
# Fast settings every example starts from (unless it fuzzes that field itself).
# image_functions.widths: that config is a sweep (3 methods x 2 widths in :small, each
# point compiled anew); one width keeps an example well inside TIMEOUT_SECONDS on a
# loaded 2-core machine (six points ran past it: reported as hangs, though slow only).
_FAST = {"num_train_steps": "3", "log_every_steps": "1", "eval_every_steps": "3",
         "checkpoint_every_steps": "3", "num_epochs": "1", "image_functions.widths": "(4,)"}

_INTS = ["0", "-1", "1", "2", "3", "7", "64", "1000000000", "2147483648",
         "9223372036854775808", "1e3", "1.5", "nan", "inf", "abc", "", "True", "None", "(1,)"]
_FLOATS = ["0", "0.0", "-1.0", "1e-30", "0.5", "1.0", "3", "1e308", "nan", "inf", "-inf",
           "abc", "", "True", "None"]
_STRS = ["", "bogus", "nan", "1", "None", " ", "a/b", "é"]
_BOOLS = ["True", "False", "true", "0", "1", "yes", "maybe", ""]
_TUPLES = ["()", "(0,)", "(-1,)", "(1,)", "(4, 4)", "(16,)", "(1000000000,)", "(1.5,)",
           "('a',)", "abc", "(2, 2, 2, 2, 2, 2)", "((1, 2),)", "[3]", "(-1, 1)", "(1, -1)",
           "(2, 1)", "(1, 1, 1)", "('data', 'model')", "('x',)", "(nan,)"]
_UNKNOWN = ["--config.nope=1", "--config.model.nope=2", "--config.data.source.x=1",
            "--config.optimizer=adam", "--config.model.primary.widths.x=1"]


def _choices() -> dict[str, tuple]:
  """Valid values of the string fields, so examples reach past the first check."""
  # pylint: disable=g-import-not-at-top
  from hypernets import generators, models, nets, precision
  from hypernets import data as data_lib
  from hypernets.data import images
  from hypernets.experiments import assumption1
  from hypernets.training import optimizers
  # pylint: enable=g-import-not-at-top
  activations = tuple(nets.ACTIVATIONS)
  return {"model.kind": models.MODEL_KINDS, "model.generator": generators.GENERATORS,
          "model.f_init": generators.INITS, "model.primary.name": models.PRIMARY_NAMES,
          "optimizer.name": optimizers.OPTIMIZERS, "optimizer.schedule": optimizers.SCHEDULES,
          "compute_dtype": precision.COMPUTE_DTYPES, "data.source": images.SOURCES
          + ("uniform", "gaussian"), "data.name": data_lib.registered_tasks(),
          "model.activation": activations, "model.primary.activation": activations,
          "model.unit_norm_rows": assumption1.UNIT_NORM_ROWS,
          "distributed.enabled": ("auto", "True", "False"),
          "experiment": ("conditioned", "assumption1", "assumption2", "image_functions")}


def _fields(tree, prefix=""):
  for key, value in tree.items():
    if hasattr(value, "items"):
      yield from _fields(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}", value


def _catalogue() -> dict[str, list[tuple[str, list[str]]]]:
  """{config name: [(field, candidate values)]} over every field of every config."""
  choices = _choices()
  catalogue = {}
  for name in CONFIGS:
    entries = []
    for field, default in _fields(load_config(name, "small")):
      if isinstance(default, bool):
        values = _BOOLS
      elif isinstance(default, int):
        values = _INTS
      elif isinstance(default, float):
        values = _FLOATS
      elif isinstance(default, (tuple, list)):
        values = _TUPLES
      else:
        values = _STRS + list(choices.get(field, ()))
      # Any field may also get another type's values.
      entries.append((field, list(dict.fromkeys(values + ["1", "abc", "0.5", "(1,)"]))))
    catalogue[name] = entries
  return catalogue


CATALOGUE = _catalogue()


@st.composite
def command_lines(draw):
  """(config name, the --config.x=v overrides drawn, the whole argv minus --workdir)."""
  name = draw(st.sampled_from(CONFIGS))
  drawn = []
  for _ in range(draw(st.integers(1, 3))):
    if draw(st.integers(0, 15)) == 0:
      drawn.append(draw(st.sampled_from(_UNKNOWN)))
    else:
      field, values = draw(st.sampled_from(CATALOGUE[name]))
      drawn.append(f"--config.{field}={draw(st.sampled_from(values))}")
  fuzzed = {o.split("=", 1)[0][len("--config."):] for o in drawn}
  known = {field for field, _ in CATALOGUE[name]}
  fast = [f"--config.{k}={v}" for k, v in _FAST.items() if k in known and k not in fuzzed]
  argv = ["launch/main.py", f"--config={os.path.join(REPO_ROOT, 'configs', name)}.py:small",
          *fast, *drawn]
  return name, drawn, argv


class Worker:
  """tests/config_fuzz_worker.py, restarted after a crash or a hang."""

  def __init__(self, log_path: str):
    self.log_path = log_path
    self.proc = None
    self._start()

  def _start(self):
    self.log = open(self.log_path, "ab")
    self.proc = subprocess.Popen(
        [sys.executable, os.path.join(REPO_ROOT, "tests", "config_fuzz_worker.py")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, cwd=REPO_ROOT,
        env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert self._read(600) == {"ready": True}

  def _read(self, timeout):
    ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
    if not ready:
      return None
    line = self.proc.stdout.readline()
    return json.loads(line) if line else {"outcome": "died",
                                          "message": f"exit status {self.proc.wait()}"}

  def run(self, argv: list[str]) -> dict:
    self.proc.stdin.write((json.dumps({"argv": argv}) + "\n").encode())
    self.proc.stdin.flush()
    result = self._read(TIMEOUT_SECONDS)
    if result is None:
      self.close()
      result = {"outcome": "hang", "message": f"no answer in {TIMEOUT_SECONDS:g} s"}
    if result["outcome"] in ("hang", "died"):
      self._start()
    return result

  def close(self):
    if self.proc.poll() is None:
      self.proc.kill()
    self.proc.wait()
    self.log.close()


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
  w = Worker(str(tmp_path_factory.mktemp("fuzz") / "worker.log"))
  yield w
  w.close()


_FINDINGS = collections.defaultdict(list)  # long mode: problem -> command lines
_OUTCOMES = collections.Counter()


def problem(result: dict, drawn: list[str], workdir: str) -> str | None:
  """What is wrong with an example's result, or None."""
  outcome, message = result["outcome"], result.get("message", "")
  if outcome == "trained":
    return None
  if outcome != "error":
    return f"{outcome}: {message.splitlines()[0] if message else ''}"[:300]
  if "\n" in message or not message.startswith("error: "):
    return f"not one 'error:' line: {message[:200]!r}"
  if result.get("steps", 0) > 0:
    return None  # stopped after training began (a diverged loss): the workdir holds it
  if os.path.exists(workdir):
    return f"touched the workdir before stopping: {message[:200]}"
  names = [o.split("=", 1)[0][len("--"):] for o in drawn]
  leaves = [n.rsplit(".", 1)[-1] for n in names]
  if not any(n in message for n in names + leaves) and "config" not in message:
    return f"names no field: {message[:200]}"
  return None


@settings(max_examples=LONG_EXAMPLES or FUZZ_EXAMPLES, deadline=None, derandomize=True,
          database=None, suppress_health_check=list(HealthCheck))
@given(example=command_lines())
def test_fuzzed_overrides_train_or_stop_with_one_line(worker, tmp_path_factory, example):
  _, drawn, argv = example
  workdir = os.path.join(str(tmp_path_factory.getbasetemp()), f"fuzz_run_{time.time_ns()}")
  result = worker.run(argv + [f"--workdir={workdir}"])
  found = problem(result, drawn, workdir)
  diverged = result["outcome"] == "error" and result.get("steps", 0) > 0
  _OUTCOMES["stopped after training began" if diverged else result["outcome"]] += 1
  shutil.rmtree(workdir, ignore_errors=True)
  if not LONG_EXAMPLES:
    assert found is None, (found, " ".join(argv), result.get("traceback", ""))
    return
  if found is not None:
    config_arg = next(a for a in argv if a.startswith("--config="))
    _FINDINGS[found].append(" ".join([os.path.basename(config_arg)] + drawn))
  done = sum(_OUTCOMES.values())
  if done % 100 == 0:
    print(f"fuzz: {done} examples, {dict(_OUTCOMES)}, {len(_FINDINGS)} distinct problems",
          file=sys.stderr, flush=True)


def test_fuzz_summary():
  """Long mode: the count, the outcomes and every distinct problem found."""
  if not LONG_EXAMPLES:
    pytest.skip("HYPERNETS_FUZZ_EXAMPLES not set")
  lines = [f"{sum(_OUTCOMES.values())} examples: {dict(_OUTCOMES)}; "
           f"{len(_FINDINGS)} distinct problems"]
  for found, examples in sorted(_FINDINGS.items(), key=lambda kv: -len(kv[1])):
    lines.append(f"  [{len(examples)}x] {found}\n      e.g. {examples[0]}")
  report = "\n".join(lines)
  print(report)
  with open(os.environ.get("HYPERNETS_FUZZ_REPORT", os.devnull), "w") as f:
    f.write(report + "\n")
  assert not _FINDINGS, report
