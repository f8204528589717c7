"""The process tests/config_fuzz_test.py sends fuzzed command lines to, one at a time.

Runs each exactly as launch/main.py does (its absl flags, `launcher.parse_flags`,
`config_or_exit`, `run_or_exit(registry.run, ...)`), in one long-lived process so
that thousands of examples do not each pay for importing jax. Reads one JSON line
per example on stdin ({"argv": [...]}); answers one JSON line on the original
stdout: {"outcome": "trained" | "error" | "crash", "message": ...}. A run that
trains is stopped after MAX_STEPS progress reports (the loop calls ReportProgress
once per step). The address space is capped (MEMORY_LIMIT_BYTES) so that a huge
size fails inside this process instead of exhausting the shared machine.
"""

import importlib.util
import json
import os
import resource
import sys
import traceback

MEMORY_LIMIT_BYTES = int(os.environ.get("HYPERNETS_FUZZ_MEMORY_BYTES", 6 * 2**30))
MAX_STEPS = 5
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class EnoughSteps(BaseException):
  """Raised from the progress report: the run trained; nothing may catch it."""


def _answer(channel, result: dict) -> None:
  channel.write(json.dumps(result) + "\n")
  channel.flush()


def main() -> None:
  resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
  channel = os.fdopen(os.dup(1), "w")  # answers only; library prints go to stderr
  os.dup2(2, 1)
  sys.path.insert(0, REPO_ROOT)
  from absl import flags  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from hypernets import launcher  # pylint: disable=g-import-not-at-top,wrong-import-position
  from hypernets.training import metric_writers  # pylint: disable=g-import-not-at-top
  from hypernets.training import workdir_lock  # pylint: disable=g-import-not-at-top

  spec = importlib.util.spec_from_file_location(
      "launch_main", os.path.join(REPO_ROOT, "launch", "main.py"))
  launch_main = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(launch_main)
  jax.devices()  # the backend is up, as it is after the first example anyway
  report = metric_writers.ReportProgress.__call__
  steps = [0]

  def limited_report(self, step):
    steps[0] += 1
    if steps[0] > MAX_STEPS:
      raise EnoughSteps()
    return report(self, step)

  metric_writers.ReportProgress.__call__ = limited_report
  _answer(channel, {"ready": True})
  for line in sys.stdin:
    argv = json.loads(line)["argv"]
    steps[0] = 0
    flags.FLAGS.unparse_flags()
    for name in [f for f in flags.FLAGS if f.startswith("config.")]:
      delattr(flags.FLAGS, name)
    sys.argv = list(argv)  # ml_collections reads the overrides from sys.argv
    try:
      launcher.parse_flags(argv)
      launch_main.main([argv[0]])
      result = {"outcome": "trained", "steps": steps[0]}
    except EnoughSteps:
      result = {"outcome": "trained", "steps": steps[0]}
    except SystemExit as e:
      code = e.code
      result = ({"outcome": "error", "message": code, "steps": steps[0]}
                if isinstance(code, str) else
                {"outcome": "crash", "message": f"SystemExit({code!r})"})
    except BaseException as e:  # pylint: disable=broad-except
      result = {"outcome": "crash", "message": f"{type(e).__name__}: {e}"[:2000],
                "traceback": traceback.format_exc()[-4000:]}
    finally:
      jax.config.update("jax_debug_nans", False)  # a fuzzed debug_nans must not leak
      workdir_lock.release_all()
    _answer(channel, result)


if __name__ == "__main__":
  main()
