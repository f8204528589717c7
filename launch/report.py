r"""Turns gathered sweep results into figures and a REPRODUCTION.md.

  python launch/report.py --root=/tmp/repro                 # -> /tmp/repro/REPRODUCTION.md, /tmp/repro/figures/
  python launch/report.py --root=/tmp/repro --publish       # -> ./REPRODUCTION.md, ./docs/figures/, ./docs/runs/
  python launch/report.py --root=docs/runs --publish        # rebuilds them from the committed records

`--root` holds one directory per experiment (hypernets/experiments/report.py:
EXPERIMENTS lists them with the config and sweep of each). By default everything is
written into ROOT; the committed REPRODUCTION.md and docs/figures change only with
`--publish` (or explicit --out / --figures). Publishing also copies what the report
read (each point's results.json, config.json, metrics.jsonl; not checkpoints) to
docs/runs/, so the committed report can be rebuilt at a later commit without the runs.
"""

import os
import sys

from absl import app
from absl import flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from hypernets import launcher  # pylint: disable=g-import-not-at-top,wrong-import-position
from hypernets.experiments import report  # pylint: disable=g-import-not-at-top,wrong-import-position

_ROOT = flags.DEFINE_string("root", None, "Directory of the experiments' sweep workdirs.")
_PUBLISH = flags.DEFINE_bool(
    "publish", False, "Write the repository's REPRODUCTION.md and docs/figures/ "
    "(default: ROOT/REPRODUCTION.md and ROOT/figures/).")
_OUT = flags.DEFINE_string("out", "", "Where the claims table goes (overrides the default).")
_FIGURES = flags.DEFINE_string("figures", "", "Where the PNG figures go (overrides the default).")
_NOTES = flags.DEFINE_string(
    "notes", os.path.join(REPO, "docs", "reproduction_notes.md"),
    "Hand-written discussion: '### why: <group>' sections and notes ('' for none).")
_BEYOND = flags.DEFINE_string(
    "beyond", os.path.join(REPO, "docs", "beyond_the_paper.md"),
    "Appended under 'Beyond the paper' if it exists ('' for none).")
_RECORDS = flags.DEFINE_string(
    "records", "", "Where the report's inputs are copied (default with --publish: "
    "docs/runs; none otherwise, nor when it is --root itself).")
flags.mark_flags_as_required(["root"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  out, figures, records = _OUT.value or None, _FIGURES.value or None, _RECORDS.value or None
  if _PUBLISH.value:
    out = out or os.path.join(REPO, "REPRODUCTION.md")
    figures = figures or os.path.join(REPO, "docs", "figures")
    records = records or os.path.join(REPO, "docs", "runs")
  claims = launcher.run_or_exit(
      report.build_report, _ROOT.value, out=out, figures=figures,
      notes=_NOTES.value or None, beyond=_BEYOND.value or None)
  if records and os.path.abspath(records) != os.path.abspath(_ROOT.value):
    counts = report.export_records(_ROOT.value, records)
    print(f"copied {sum(counts.values())} files of the runs to {records}")
  for claim in claims:
    print(f"{claim.verdict:>14}  [{claim.regime}, {claim.scale}] {claim.claim}")
  print(f"wrote {out or os.path.join(_ROOT.value, 'REPRODUCTION.md')}")


if __name__ == "__main__":
  app.run(main)
