r"""Trains one experiment config: `train_and_evaluate(config, workdir)`.

  python launch/main.py --config=configs/synthetic.py --workdir=/tmp/run \
      --config.model.kind=embedding
"""

import os
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hypernets.experiments import registry  # pylint: disable=g-import-not-at-top,wrong-import-position
from hypernets import config as config_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints and results go.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config_lib.run_or_exit(registry.run, config_lib.config_or_exit(_CONFIG), _WORKDIR.value)


if __name__ == "__main__":
  app.run(main, flags_parser=config_lib.parse_flags)
