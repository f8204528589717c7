"""Gathered sweep results -> figures and REPRODUCTION.md, one row per claim and regime.

Layout read by `build_report(root)`: each experiment's sweep ran into
root/<experiment> (EXPERIMENTS: the config and sweep of each), whose gathered
results.json holds one row per point (`sweeps.gather`). The command shown for a row
is read back from its runs' config.json (commands.py); a missing experiment is
reported as not run, nothing is invented. By default everything is written into
root (root/REPRODUCTION.md, root/figures/); launch/report.py --publish writes the
repository's REPRODUCTION.md and docs/figures instead.
"""

import dataclasses
import json
import os
import re
from typing import Sequence

import numpy as np

from hypernets import provenance
from hypernets.errors import HypernetsError
from hypernets.experiments import claims as claims_lib
from hypernets.experiments import commands
from hypernets.experiments import figures as figures_lib
from hypernets.experiments import modularity
from hypernets.experiments import run_records
from hypernets.training import workdir as workdir_lib
# The names the notebooks and tests use.
from hypernets.experiments.claims import Claim  # pylint: disable=unused-import
from hypernets.experiments.claims import curves  # pylint: disable=unused-import
from hypernets.experiments.claims import depth_claims  # pylint: disable=unused-import
from hypernets.experiments.claims import pareto_frontier  # pylint: disable=unused-import
from hypernets.experiments.claims import structured_claims  # pylint: disable=unused-import
from hypernets.experiments.figures import plot_curves  # pylint: disable=unused-import


class ReportError(HypernetsError):
  """The report cannot be written (a missing root, no results); one line."""


@dataclasses.dataclass(frozen=True)
class Experiment:
  """What ran into root/<name>: config file, sweep (None: one run), the command's
  arguments as planned (shown when no config.json can be read), regime, scale."""

  config: str
  sweep: str | None
  args: str
  regime: str = "fixed"
  scale: str = "CPU"

  def planned(self, name: str) -> str:
    launcher = "sweep.py" if self.sweep else "main.py"
    sweep = f" --sweep={self.sweep}" if self.sweep else ""
    return (f"python launch/{launcher} --config={self.config}{self.args}{sweep} "
            f"--workdir=ROOT/{name}")


EXPERIMENTS = {
    "synthetic_depth": Experiment("configs/synthetic.py", "depth", ":quick"),
    "synthetic_depth_online": Experiment("configs/synthetic.py", "depth",
                                         ":quick,regime=online", "online"),
    "synthetic_depth_lr_online": Experiment("configs/synthetic.py", "depth_lr",
                                            ":quick,regime=online", "online"),
    "synthetic_depth_paper_online": Experiment("configs/synthetic.py", "depth",
                                               ":paper,regime=online", "online", "paper"),
    "synthetic_embedding": Experiment("configs/synthetic.py", "embedding", ":quick"),
    "synthetic_embedding_online": Experiment("configs/synthetic.py", "embedding",
                                             ":quick,regime=online", "online"),
    "rotation_mnist_depth": Experiment("configs/rotation_mnist.py", "depth", ":quick"),
    "rotation_mnist_lr": Experiment("configs/rotation_mnist.py", "lr", ":quick"),
    "rotation_official": Experiment("configs/rotation_mnist.py", "methods", ":official"),
    "rotation_official_depth_seeds": Experiment(
        "configs/rotation_mnist.py", "depth", ":official --config.num_seeds=10",
        scale="paper"),
    # The paper's seed count: 100 seeds per point, one program per point.
    "rotation_official_depth_seeds100": Experiment(
        "configs/rotation_mnist.py", "depth", ":official --config.num_seeds=100",
        scale="paper"),
    "structured": Experiment("configs/structured.py", "size", ":quick"),
    "modularity": Experiment("configs/modularity.py", "primary", ":quick", "online"),
    "assumption1": Experiment("configs/assumption1.py", None, ":quick", "-"),
    "assumption2": Experiment("configs/assumption2.py", None, ":quick", "-"),
}

_HEADER = """# Reproduction of 'On the Modularity of Hypernetworks'

Written by `python launch/report.py --root=ROOT` from the runs in ROOT ({root}), at
commit {commit}. Each row's command is read back from its runs' config.json (ROOT is
where they wrote). Every number is a mean +- std over seeds. Regimes: *fixed* trains
on a finite sample of conditioning inputs and reports held-out test error
(generalisation); *online* draws fresh data every step and reports the error on a
large fresh sample: the approximation error Thms 1-5 speak of. Scale: *CPU* rows are
sized for a 2-core CPU; *paper* rows use the paper's sizes or seed counts.
How verdicts are decided (`hypernets/experiments/claims.py`, `modularity.py`):
- "A beats B": A's mean is lower at every point concerned (holds), at some (partly),
  at none (does not hold).
- "improves": the last point is lower than the first by more than the sum of their
  stds and no step goes up by more than one std (holds); only the first part (partly).
- "does not improve": the best point is not lower than the first by more than the
  sum of their stds.
- No verdict from one seed per point (the row says why), nor from a sweep stopped
  before all its points finished (*incomplete*; "What ran" below lists every sweep).
- Thm 5: the hypernetwork needs <= 0.8x the parameters of each other method to reach
  the hardest error both reached, and its fitted N(eps) is the flattest.
- Modularity: N(eps) = the smallest primary whose error <= eps ("not reached" if none);
  N_q / N_g > 1 at all three eps levels (holds), some (partly); N_g flat in m2 (<= 2x
  from the smallest to the largest m2) and N_q growing (> 2x or not reached)."""

THEORY = {
    "synthetic depth": "the paper reports that the hypernetwork beats the embedding "
                       "method once f and e have 3+ layers and keeps improving with f's "
                       "depth, while the embedding method does not improve with e's.",
    "synthetic embedding": "the paper reports that a larger embedding does not help the "
                           "embedding method; Thm 2 bounds q for an O(1) embedding, Thm 3 "
                           "lets it grow.",
    "rotation": "the paper reports the same ordering on rotation prediction, with 100 "
                "repeats of the official protocol.",
    "structured": "Thm 5: the whole hypernetwork needs O(eps^(-m2/r) + eps^(-m1/r)) "
                  "parameters, a standard net Omega(eps^(-(m1+m2)/r)).",
    "modularity": "Thm 4: g needs N_g = O(eps^(-m1/r)) whatever m2; Thms 2-3: q needs "
                  "Omega(eps^(-(m1+m2))) (O(1) embedding) or Omega(eps^(-min(m1+m2, 2 m1))).",
    "assumptions": "the theorems assume a unique best approximator (A1) and that a neuron "
                   "more strictly helps (A2).",
}


def load_rows(path: str) -> list[dict]:
  """The gathered rows of a sweep (its results.json; a single run's results.json
  is one row), or [] if absent."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    rows = json.load(f)
  return [rows] if isinstance(rows, dict) else rows


def _notes(path: str | None) -> tuple[str, dict[str, str]]:
  """(general notes, {group: 'why they differ' text}) from a notes file whose
  '### why: <group>' sections hold the per-claim discussion."""
  if not path or not os.path.exists(path):
    return "", {}
  general, why, current = [], {}, None
  with open(path) as f:
    for line in f:
      if line.startswith("### why:"):
        current = line[len("### why:"):].strip()
        why[current] = ""
      elif current is not None and line.startswith("#"):
        current = None
        general.append(line)
      elif current is not None:
        why[current] += line
      else:
        general.append(line)
  return "".join(general).strip(), {k: v.strip() for k, v in why.items()}


def write_reproduction(claims: Sequence[Claim], path: str, *, header: str,
                       sections: Sequence[str] = ()) -> None:
  """REPRODUCTION.md: one table row per claim, then `sections` (written atomically)."""
  lines = [header, "",
           "| id | claim (paper) | regime | scale | command | measured | seeds | verdict | note |",
           "|---|---|---|---|---|---|---|---|---|"]
  for row_id, c in zip(claims_lib.row_ids(claims), claims):
    cells = [row_id, c.claim, c.regime, c.scale, f"`{c.command}`", c.measured, c.seeds,
             f"**{c.verdict}**", c.note]
    lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
  text = "\n".join(lines) + "\n"
  for section in sections:
    if section:
      text += "\n" + section.rstrip("\n") + "\n"
  workdir_lib.write_text_atomic(path, text)


def _m1_m2(rows: Sequence[dict]) -> tuple[int, int] | None:
  """(m1, m2) from the config.json of a gathered point's workdir, if there is one."""
  for row in rows:
    path = os.path.join(row.get("workdir", ""), "config.json")
    if os.path.exists(path):
      with open(path) as f:
        data = json.load(f)["data"]
      return data["m1"], data["m2"]
  return None


def wall_times(rows_by_name: dict[str, list[dict]]) -> str:
  """A markdown table: per experiment, points, seeds, summed compile and train time."""
  lines = ["## Wall times", "",
           "Summed over each sweep's points, from results.json (compile + training of "
           "the last process that ran each point; a shared 2-core CPU unless the notes "
           "say otherwise).", "",
           "| experiment | points | seeds per point | compile s | train s | steps/s (mean) |",
           "|---|---|---|---|---|---|"]
  for name, rows in rows_by_name.items():
    if not rows or "train_seconds_this_run" not in rows[0]:
      continue
    rates = [r["steps_per_second"] for r in rows if r.get("steps_per_second")]
    lines.append(f"| {name} | {len(rows)} | {claims_lib.seeds_text(rows).split()[0]} | "
                 f"{sum(r.get('compile_seconds', 0) for r in rows):.0f} | "
                 f"{sum(r.get('train_seconds_this_run', 0) for r in rows):.0f} | "
                 f"{np.mean(rates) if rates else float('nan'):.1f} |")
  return "\n".join(lines) if len(lines) > 6 else ""


def sweep_progress(root: str) -> dict[str, tuple[int, int, float, tuple[str, ...]]]:
  """{experiment: (points finished, points planned, summed train seconds of the
  finished points, the code versions that finished them)}: finished = the point's
  own results.json exists, planned = the experiment's sweep as its config file
  defines it (a single run: 1 point); code versions as results.json records them
  (`provenance.code_version`; runs from before that field count as '-')."""
  from hypernets import config as config_lib  # pylint: disable=g-import-not-at-top
  from hypernets.experiments import sweeps  # pylint: disable=g-import-not-at-top
  progress = {}
  for name, spec in EXPERIMENTS.items():
    if spec.sweep:
      module = config_lib.load_config_module(os.path.join(commands.REPO_ROOT, spec.config))
      variant = spec.args.split()[0].lstrip(":") or None
      dirs = [os.path.join(root, name, sweeps.point_name(point))
              for point in module.get_sweeps(variant)[spec.sweep]]
    else:
      dirs = [os.path.join(root, name)]
    finished = [load_rows(os.path.join(d, "results.json")) for d in dirs]
    finished = [rows[0] for rows in finished if rows]
    if spec.sweep:  # gathered rows whose point directories are elsewhere count too
      gathered = load_rows(os.path.join(root, name, "results.json"))
      finished = gathered if len(gathered) > len(finished) else finished
    versions = tuple(sorted({r.get("code_version", "-") for r in finished}))
    progress[name] = (len(finished), len(dirs),
                      sum(r.get("train_seconds_this_run", 0.0) for r in finished), versions)
  return progress


def progress_table(progress: dict[str, tuple[int, int, float, tuple[str, ...]]]) -> str:
  """A markdown table: per experiment, points finished of those planned, and the
  code that finished them."""
  lines = ["## What ran", "",
           "Points finished (their own results.json) of those the experiment's sweep "
           "plans; an experiment with some but not all points is *incomplete* and gets "
           "no verdict. Train s sums the finished points (the last process of each). "
           "Code: the commit each point's last process ran at, as its results.json "
           "records it ('-': not recorded, a run from before that field; the notes "
           "below say where it ran).", "",
           "| experiment | points finished / planned | status | train s (finished points) | code |",
           "|---|---|---|---|---|"]
  for name, (done, planned, seconds, versions) in progress.items():
    status = "complete" if done == planned else "incomplete" if done else "not run"
    train = f"{seconds:.0f}" if done else "-"
    code = ", ".join(versions) if done else "-"
    lines.append(f"| {name} | {done} / {planned} | {status} | {train} | {code} |")
  return "\n".join(lines)


def export_records(root: str, dest: str) -> dict[str, int]:
  """Copies the inputs of `build_report(root)` (results, configs, metrics; no
  checkpoints) of every experiment to dest (run_records.py), with dest/RECORDS.md
  saying where and at which commit they came from. Returns {experiment: files}."""
  header = (f"# The runs behind REPRODUCTION.md\n\nCopied by `python launch/report.py "
            f"--publish` from {os.path.abspath(root)} at commit {provenance.code_version()}: each "
            f"experiment's gathered results.json and each point's results.json, "
            f"config.json and metrics.jsonl (no checkpoints). Rebuild the report from "
            f"them: `python launch/report.py --root=docs/runs --publish`.")
  return run_records.export_records(root, dest, EXPERIMENTS, header=header)


def _rebase_links(text: str, from_dir: str, to_dir: str) -> str:
  """Markdown links and images of `text` (written in from_dir) relative to to_dir;
  absolute, URL and '#anchor' targets are left alone."""

  def rebase(match):
    target = match.group(2)
    if re.match(r"^([a-z]+:|/|#)", target):
      return match.group(0)
    return f"{match.group(1)}({os.path.relpath(os.path.join(from_dir, target), to_dir)})"

  return re.sub(r"(!?\[[^\]]*\])\(([^)\s]+)\)", rebase, text)


def build_report(root: str, *, out: str | None = None, figures: str | None = None,
                 notes: str | None = None, beyond: str | None = None,
                 m1: int | None = None, m2: int | None = None) -> list[Claim]:
  """Reads root/<experiment>/results.json, draws figures, writes `out`. Returns claims.

  out / figures default to root/REPRODUCTION.md and root/figures. notes: a markdown
  file whose '### why: <group>' sections explain each claim group (the rest is
  appended as notes); beyond: a markdown file appended under "Beyond the paper".
  m1, m2: the structured target's dimensions (default: read from its runs).
  Raises ReportError (one line) when root does not exist or holds no results.
  """
  if not os.path.isdir(root):
    raise ReportError(f"--root {root} does not exist (it should hold one directory per "
                      f"experiment: {', '.join(EXPERIMENTS)})")
  # Point directories are looked up under root, so a copied root or the committed
  # records (docs/runs, run_records.py) read like the root the runs wrote.
  rows = {name: run_records.localize_rows(load_rows(os.path.join(root, name, "results.json")),
                                          root, name)
          for name in EXPERIMENTS}
  if not any(rows.values()):
    raise ReportError(f"--root {root} holds no results.json of any experiment "
                      f"({', '.join(EXPERIMENTS)})")
  out = out or os.path.join(root, "REPRODUCTION.md")
  figures = figures or os.path.join(root, "figures")

  def info(name):
    spec = EXPERIMENTS[name]
    command = commands.command_for(
        rows[name], config_file=spec.config, sweep=spec.sweep,
        workdir=f"ROOT/{name}", workdir_on_disk=os.path.join(root, name),
        fallback=spec.planned(name),
        prefer=spec.args.split()[0].lstrip(":").split(",")[0] or None)
    return dict(command=command, regime=spec.regime, scale=spec.scale, experiment=name)

  from hypernets.experiments import report_sections  # pylint: disable=g-import-not-at-top
  claims, drawn = report_sections.all_claims(rows, info=info, figures=figures, m1=m1, m2=m2)
  progress = sweep_progress(root)
  for claim in claims:
    done, planned, _, _ = progress.get(claim.experiment, (0, 0, 0, ()))
    if claim.verdict == "not run" and done:
      claim.verdict = "incomplete"
      claim.note = (f"the sweep stopped after {done}/{planned} points (no results.json "
                    f"gathered): no verdict from part of a sweep; the finished points "
                    f"are in ROOT/{claim.experiment}")
  general, why = _notes(notes)
  paragraphs = report_sections.discussion(claims, why, THEORY)
  figure_lines = ["## Figures", ""] + [
      f"- {title}: ![{title}]({os.path.relpath(path, os.path.dirname(os.path.abspath(out)))})"
      for title, path in drawn]
  sections = [paragraphs, "\n".join(figure_lines) if drawn else "",
              wall_times(rows), progress_table(progress),
              ("## Notes on the runs\n\n" + general) if general else ""]
  if beyond and os.path.exists(beyond):
    with open(beyond) as f:
      text = f.read().strip()
    if text.startswith("# "):  # its own title gives way to the section's
      text = text.split("\n", 1)[1].strip() if "\n" in text else ""
    text = _rebase_links(text, os.path.dirname(os.path.abspath(beyond)),
                         os.path.dirname(os.path.abspath(out)))
    # Its sections sit under this one: '## X' becomes '### X'.
    text = re.sub(r"^(#{2,5}) ", r"#\1 ", text, flags=re.MULTILINE)
    sections.append("## Beyond the paper\n\n" + text)
  header = _HEADER.format(root=os.path.abspath(root), commit=provenance.code_version())
  write_reproduction(claims, out, header=header, sections=sections)
  return claims
