r"""Turns gathered sweep results into figures and REPRODUCTION.md.

  python launch/report.py --root=/tmp/repro --out=REPRODUCTION.md --figures=docs/figures

`--root` holds one directory per experiment (hypernets/experiments/report.py: EXPERIMENTS lists
them with the command that fills each).
"""

import os
import sys

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from hypernets.experiments import report  # pylint: disable=g-import-not-at-top,wrong-import-position

_ROOT = flags.DEFINE_string("root", None, "Directory of the experiments' sweep workdirs.")
_OUT = flags.DEFINE_string("out", "REPRODUCTION.md", "Where the claims table goes.")
_FIGURES = flags.DEFINE_string("figures", "docs/figures", "Where the PNG figures go.")
_NOTES = flags.DEFINE_string("notes", "docs/reproduction_notes.md",
                             "Hand-written discussion appended to the table ('' for none).")
flags.mark_flags_as_required(["root"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  claims = report.build_report(_ROOT.value, out=_OUT.value, figures=_FIGURES.value,
                               notes=_NOTES.value or None)
  for claim in claims:
    print(f"{claim.verdict:>14}  {claim.claim}")


if __name__ == "__main__":
  app.run(main)
