r"""Trains one experiment config: `train_and_evaluate(config, workdir)`.

  python launch/main.py --config=configs/synthetic.py --workdir=/tmp/run \
      --config.model.kind=embedding

Prints one line when the run starts and one with its final test metrics (the workdir
keeps metrics.jsonl, TensorBoard events and results.json); --verbose adds the
per-step log lines. Rerunning the same command resumes from the last checkpoint.
"""

import json
import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hypernets.experiments import registry  # pylint: disable=g-import-not-at-top,wrong-import-position
from hypernets import config as config_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from hypernets import launcher  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file[:variant], e.g. "
                                          "configs/synthetic.py:small (list below).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints and results go.")
flags.mark_flags_as_required(["config", "workdir"])


# Shown in the last line, where results.json has them.
_SHOWN = ("test_mse", "test_rel_mse", "test_error", "test_nll", "f1_f2_over_f1_y",
          "num_width_increases_without_improvement")


def _results_line(workdir: str) -> str:
  try:
    with open(os.path.join(workdir, "results.json")) as f:
      results = json.load(f)
  except (OSError, ValueError):
    return f"done: {workdir}"
  if isinstance(results, list):  # a sweep's root (image_functions): one row per point
    return (f"done: {len(results)} points ({os.path.join(workdir, 'results.json')}; "
            "tables and figures beside it)")
  shown = ", ".join(f"{k}={results[k]:.4g}" for k in _SHOWN
                    if isinstance(results.get(k), (int, float)))
  return f"done: {shown} ({os.path.join(workdir, 'results.json')})"


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = launcher.config_or_exit(_CONFIG)
  spec = config_flags.get_config_filename(flags.FLAGS["config"])
  print(f"running {os.path.relpath(spec, config_lib.REPO_ROOT)} in {_WORKDIR.value}",
        file=sys.stderr, flush=True)
  launcher.run_or_exit(registry.run, config, _WORKDIR.value)
  print(_results_line(_WORKDIR.value))


if __name__ == "__main__":
  app.run(main, flags_parser=launcher.parse_flags)
