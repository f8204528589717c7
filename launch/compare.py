r"""Trains the hypernetwork, the embedding method and a standard network on one
config and prints a table (the README's main job).

  python launch/compare.py --config=configs/synthetic.py --workdir=/tmp/hypernets_main

Each kind trains into workdir/<kind>; rerunning the command resumes unfinished kinds
and reads finished ones back (no retraining). One progress line per kind goes to
stderr, the table to stdout; --verbose adds the per-step log lines.
"""

import functools
import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hypernets.experiments import kind_comparison  # pylint: disable=g-import-not-at-top,wrong-import-position
from hypernets import launcher  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file[:variant], e.g. "
                                          "configs/synthetic.py:small (list below).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Each kind runs in workdir/<kind>.")
_KINDS = flags.DEFINE_list("kinds", ["hypernet", "embedding", "standard"],
                           "Model kinds to compare.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  rows = launcher.run_or_exit(
      kind_comparison.compare_kinds, launcher.config_or_exit(_CONFIG), _WORKDIR.value,
      _KINDS.value, report=functools.partial(print, file=sys.stderr, flush=True))
  print(kind_comparison.format_table(rows))


if __name__ == "__main__":
  app.run(main, flags_parser=launcher.parse_flags)
