r"""Runs a sweep defined beside a config, each point into its own workdir.

  python launch/sweep.py --config=configs/synthetic.py --sweep=depth \
      --workdir=/tmp/synthetic_depth

Points already finished are skipped, so rerunning the same command completes a
killed sweep. Results are gathered into workdir/results.json and results.csv.
"""

import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hypernets.experiments import sweeps  # pylint: disable=g-import-not-at-top,wrong-import-position
from hypernets.experiments import registry  # pylint: disable=g-import-not-at-top,wrong-import-position
from hypernets import config as config_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from hypernets import launcher  # pylint: disable=g-import-not-at-top,wrong-import-position
from hypernets.errors import HypernetsError  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file[:variant], e.g. "
                                          "configs/synthetic.py:small (list below).",
                                          lock_config=True)
_SWEEP = flags.DEFINE_string("sweep", None, "Name of a sweep in the config's get_sweeps().")
_WORKDIR = flags.DEFINE_string("workdir", None, "Each point runs in workdir/<point>.")
flags.mark_flags_as_required(["config", "sweep", "workdir"])


def _load_sweeps() -> dict:
  spec = config_flags.get_config_filename(flags.FLAGS["config"])
  path, arg = config_lib.split_config_spec(spec)
  module = config_lib.load_config_module(path)
  if not hasattr(module, "get_sweeps"):
    raise HypernetsError(f"{path} defines no get_sweeps()")
  return module.get_sweeps(arg)


def _run():
  all_sweeps = _load_sweeps()
  if _SWEEP.value not in all_sweeps:
    raise HypernetsError(f"unknown --sweep={_SWEEP.value!r}; this config defines "
                         f"{sorted(all_sweeps)}")
  return sweeps.run_sweep(launcher.config_or_exit(_CONFIG), all_sweeps[_SWEEP.value], _WORKDIR.value,
                          train_fn=registry.run)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  rows = launcher.run_or_exit(_run)
  print(f"{len(rows)} points gathered in {os.path.join(_WORKDIR.value, 'results.csv')}")


if __name__ == "__main__":
  app.run(main, flags_parser=launcher.parse_flags)
