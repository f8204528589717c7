"""Report generation from small fake gathered results."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT
from conftest import load_config
from hypernets.experiments import commands
from hypernets.experiments import report


def _write(root, name, rows):
  os.makedirs(root / name, exist_ok=True)
  (root / name / "results.json").write_text(json.dumps(rows))


def _depth_rows(metric, hyper, emb, seeds=3):
  rows = []
  for depth, (h, e) in enumerate(zip(hyper, emb), start=1):
    for method, value in (("hypernet", h), ("embedding", e)):
      rows.append({"model.kind": method, "model.f_depth": depth, "method": method,
                   metric: value, f"{metric}_std": 0.001, "num_seeds": seeds,
                   "train_mse": value / 2, "test_mse": value})
  return rows


def _by_text(claims, text, regime=None):
  return [c for c in claims if text in c.claim and (regime is None or c.regime == regime)]


def test_report_both_regimes_verdicts_figures_into_root(tmp_path):
  _write(tmp_path, "synthetic_depth",
         _depth_rows("test_rel_mse", [0.05, 0.03, 0.02, 0.015, 0.01], [0.04] * 5))
  _write(tmp_path, "synthetic_depth_online",
         _depth_rows("test_rel_mse", [0.01, 0.011, 0.012, 0.013, 0.014], [0.04] * 5))
  _write(tmp_path, "synthetic_embedding", [
      {"method": "embedding", "model.embedding_dim": e, "test_rel_mse": 0.04,
       "test_rel_mse_std": 0.002, "num_seeds": 3} for e in (4, 16, 64)])
  _write(tmp_path, "rotation_mnist_lr", [
      {"method": m, "optimizer.learning_rate": lr, "test_error": err, "test_error_std": 0.01,
       "num_seeds": 2}
      for lr in (1e-3, 1e-2) for m, err in (("hypernet", 0.3), ("embedding", 0.2))])
  sizes = [500, 1000, 2000, 4000]
  _write(tmp_path, "structured", [
      {"method": m, "total": n, "test_rel_mse": float(c * n ** -p), "num_seeds": 2}
      for m, c, p in (("hypernet", 1.0, 0.5), ("standard", 3.0, 0.25)) for n in sizes])
  claims = report.build_report(str(tmp_path), m1=4, m2=4, notes=None)
  improving = _by_text(claims, "keeps improving")
  assert [c.regime for c in improving[:2]] == ["fixed", "online"]
  assert improving[0].verdict == "holds"  # fixed: 0.05 -> 0.01
  assert improving[1].verdict == "does not hold"  # online: rises with depth
  assert "d1 0.025/0.05" in improving[0].note  # train/test MSE by depth
  assert _by_text(claims, "once f and e")[0].verdict == "holds"
  assert _by_text(claims, "larger embedding", "fixed")[0].verdict == "holds"
  assert _by_text(claims, "larger embedding", "online")[0].verdict == "not run"
  assert _by_text(claims, "across learning rates")[0].verdict == "does not hold"
  thm5 = _by_text(claims, "Thm 5")[0]
  assert thm5.verdict == "holds" and "hypernet -2.00" in thm5.measured
  # Written into the root, not into the repository.
  text = (tmp_path / "REPRODUCTION.md").read_text()
  table = text.split("\n## ")[0]
  assert table.count("\n| ") == 1 + len(claims)  # header + one row per claim
  assert "**not run**" in text and "| online |" in text and "## Per claim" in text
  for name in ("synthetic_depth", "synthetic_depth_train_test", "synthetic_embedding",
               "rotation_mnist_lr", "structured_n_vs_eps"):
    assert os.path.getsize(tmp_path / "figures" / f"{name}.png") > 1000
  assert "](figures/synthetic_depth.png)" in text


def test_one_seed_gives_no_verdict_and_says_why(tmp_path):
  _write(tmp_path, "synthetic_depth",
         _depth_rows("test_rel_mse", [0.05, 0.03, 0.02], [0.04] * 3, seeds=1))
  claims = report.build_report(str(tmp_path), notes=None)
  rows = [c for c in claims if c.verdict != "not run"]
  assert rows and all(c.verdict == "no verdict" for c in rows)
  assert all("1 seed per point" in c.note for c in rows)
  assert "1 seed per point" == rows[0].seeds


def test_missing_or_empty_root_is_one_line(tmp_path):
  with pytest.raises(report.ReportError, match="does not exist") as e:
    report.build_report(str(tmp_path / "nope"))
  assert "\n" not in str(e.value)
  with pytest.raises(report.ReportError, match="holds no results"):
    report.build_report(str(tmp_path))
  before = os.path.getmtime(os.path.join(REPO_ROOT, "REPRODUCTION.md"))
  result = subprocess.run([sys.executable, "launch/report.py", f"--root={tmp_path}/nope"],
                          cwd=REPO_ROOT, capture_output=True, text=True)
  assert result.returncode == 1
  assert result.stderr.strip().startswith("error: --root")
  assert "Traceback" not in result.stderr
  assert os.path.getmtime(os.path.join(REPO_ROOT, "REPRODUCTION.md")) == before


def test_command_is_read_back_from_config_json(tmp_path):
  config = load_config("synthetic", "small")
  config.data.regime = "online"
  config.batch.sampling = "random"
  config.model.f_depth = 5  # a sweep field: left to --sweep
  point = tmp_path / "synthetic_depth" / "p"
  point.mkdir(parents=True)
  (point / "config.json").write_text(config.to_json())
  rows = [{"method": "hypernet", "model.f_depth": 5, "workdir": str(point)}]
  command = commands.command_for(rows, config_file="configs/synthetic.py", sweep="depth",
                                 workdir="ROOT/synthetic_depth", workdir_on_disk="",
                                 fallback="planned")
  assert command == ("python launch/sweep.py --config=configs/synthetic.py:small "
                     "--config.data.regime=online --sweep=depth "
                     "--workdir=ROOT/synthetic_depth")
  config.batch.sampling = "epoch"  # data.sampling follows: one override
  config.model.primary.widths = (8,)
  (point / "config.json").write_text(config.to_json())
  command = commands.command_for(rows, config_file="configs/synthetic.py", sweep="depth",
                                 workdir="W", workdir_on_disk="", fallback="planned")
  assert "--config.batch.sampling=epoch" in command
  assert "data.sampling" not in command
  assert "--config.model.primary.widths='(8,)'" in command


def test_beyond_the_paper_and_notes_are_appended(tmp_path):
  _write(tmp_path, "synthetic_depth", _depth_rows("test_rel_mse", [0.05, 0.03], [0.04] * 2))
  notes = tmp_path / "notes.md"
  notes.write_text("General words.\n\n### why: synthetic depth\nBecause of X.\n")
  (tmp_path / "docs").mkdir()
  beyond = tmp_path / "docs" / "beyond.md"
  beyond.write_text("# Beyond\n\nNew things.\n\n## A part\n\n![fig](figures/a.png) "
                    "[paper](https://x.org/p.pdf) [up](#a-part)\n")
  report.build_report(str(tmp_path), notes=str(notes), beyond=str(beyond))
  text = (tmp_path / "REPRODUCTION.md").read_text()
  assert "*Why they differ:* Because of X." in text
  assert "## Beyond the paper\n\nNew things." in text
  # Its sections nest under the section, its links still reach their files.
  assert "\n### A part\n" in text and "\n## A part" not in text
  assert ("![fig](docs/figures/a.png) [paper](https://x.org/p.pdf) [up](#a-part)"
          in text)
  assert "General words." in text


def test_row_ids_name_the_experiment_and_survive_new_rows(tmp_path):
  def claim(experiment, text):
    return report.Claim(claim=text, command="c", measured="m", seeds="s", verdict="holds",
                        experiment=experiment)
  table = [claim("rotation", "r1"), claim("rotation", "r2"), claim("modularity", "m1")]
  ids = report.claims_lib.row_ids(table)
  assert ids == ["rotation.1", "rotation.2", "modularity.1"]
  # An experiment registered before them (rows earlier in the table) renumbers nothing.
  grown = [claim("seeds100", "s1"), claim("seeds100", "s2")] + table
  assert report.claims_lib.row_ids(grown)[2:] == ids
  assert report.claims_lib.row_ids([claim("", "x")] + table)[0] == "1"  # no experiment
  # The table and the per-claim section of a real report cite these ids.
  _write(tmp_path, "synthetic_depth",
         _depth_rows("test_rel_mse", [0.05, 0.03, 0.02], [0.04] * 3))
  claims = report.build_report(str(tmp_path), notes=None)
  ids = report.claims_lib.row_ids(claims)
  assert len(set(ids)) == len(claims)
  assert all("." in row_id for row_id in ids), ids  # every row names its experiment
  text = (tmp_path / "REPRODUCTION.md").read_text()
  improving = ids[claims.index(_by_text(claims, "keeps improving", "fixed")[0])]
  assert improving == "synthetic_depth.2"
  assert "\n| synthetic_depth.2 | hypernetwork error keeps improving" in text
  assert "synthetic_depth.2 (fixed, CPU) holds" in text  # the per-claim section


def test_pareto_frontier_keeps_only_improvements():
  rows = [{"total": n, "e": e} for n, e in ((100, 0.5), (200, 0.6), (300, 0.4), (400, 0.4))]
  eps, n = report.pareto_frontier(rows, metric="e")
  np.testing.assert_array_equal(n, [100, 300])
  np.testing.assert_array_equal(eps, [0.5, 0.4])


def test_depth_claims_say_when_embedding_improves():
  rows = _depth_rows("m", [0.05, 0.04, 0.03, 0.02], [0.09, 0.06, 0.03, 0.03])
  claims = report.depth_claims(rows, metric="m")
  assert claims[0].verdict == "partly"  # a tie at depth 3, a win at depth 4
  assert claims[2].verdict == "does not hold"
  assert "improved by" in claims[2].note


def test_assumption_claims_from_single_run_results(tmp_path):
  (tmp_path / "assumption1").mkdir()
  (tmp_path / "assumption1" / "results.json").write_text(json.dumps({
      "num_seeds": 2, "f1_f2_rms": 0.02, "f1_f2_rms_std": 0.001, "f1_y_rms": 0.04,
      "f1_y_rms_std": 0.001, "f1_f2_over_f1_y": 0.5, "f1_f2_over_f1_y_std": 0.01,
      "f1_y_over_target_std": 0.3, "per_seed": {"f1_f2_over_f1_y": [0.49, 0.51]}}))
  (tmp_path / "assumption2").mkdir()
  (tmp_path / "assumption2" / "results.json").write_text(json.dumps({
      "num_seeds": 3, "widths": [1, 2, 3, 4, 5], "test_mse_by_width": [0.9, 0.5, 0.4, 0.41, 0.3],
      "test_mse_by_width_std": [0.01] * 5, "num_width_increases_without_improvement": 1,
      "num_width_increases_not_significant": 1}))
  claims = report.build_report(str(tmp_path), out=str(tmp_path / "R.md"),
                               figures=str(tmp_path / "f"), notes=None)
  a1, a2 = claims[-2:]
  assert a1.verdict == "holds" and "below 1 in 2/2 repeats" in a1.measured
  assert a2.verdict == "partly" and "1/4 width increases" in a2.measured
  assert os.path.exists(tmp_path / "f" / "assumption2_width.png")


def test_a_stopped_sweep_is_incomplete_not_judged(tmp_path):
  _write(tmp_path, "synthetic_depth",
         _depth_rows("test_rel_mse", [0.05, 0.03, 0.02], [0.04] * 3))
  # Two of the official depth sweep's 16 points finished; nothing gathered.
  for point, version in (("model.e_depth=3,model.f_depth=3,model.kind=hypernet", "abc1234"),
                         ("model.e_depth=3,model.f_depth=3,model.kind=embedding", "def5678")):
    _write(tmp_path / "rotation_official_depth_seeds", point,
           {"test_error": 0.5, "num_seeds": 10, "train_seconds_this_run": 100.0,
            "code_version": version})
  claims = report.build_report(str(tmp_path), notes=None)
  stopped = [c for c in claims if c.experiment == "rotation_official_depth_seeds"]
  assert len(stopped) == 3 and all(c.verdict == "incomplete" for c in stopped)
  assert "2/16 points" in stopped[0].note
  assert _by_text(claims, "across learning rates")[0].verdict == "not run"
  text = (tmp_path / "REPRODUCTION.md").read_text()
  # The code column: each point's recorded commit; '-' for runs that recorded none.
  assert "| rotation_official_depth_seeds | 2 / 16 | incomplete | 200 | abc1234, def5678 |" in text
  assert "| synthetic_depth | 6 / 16 | incomplete | 0 | - |" in text  # gathered rows count
  assert "| structured | 0 / 18 | not run | - | - |" in text


def test_command_of_a_sweep_field_that_others_follow(tmp_path):
  # modularity: q_widths follows primary.widths (a FieldReference), which the sweep
  # sets per point; quick equals the default config, and the planned variant wins.
  config = load_config("modularity", "quick")
  config.model.primary.widths = (1,)
  point = tmp_path / "p"
  point.mkdir()
  (point / "config.json").write_text(config.to_json())
  rows = [{"method": "hypernet", "model.primary.widths": [1], "workdir": str(point)}]
  command = commands.command_for(rows, config_file="configs/modularity.py", sweep="primary",
                                 workdir="ROOT/modularity", workdir_on_disk="",
                                 fallback="planned", prefer="quick")
  assert command == ("python launch/sweep.py --config=configs/modularity.py:quick "
                     "--sweep=primary --workdir=ROOT/modularity")


def test_exported_records_rebuild_the_same_report_without_the_runs(tmp_path):
  """The committed records (docs/runs) stand in for a root that is gone: the same
  table (commands read back from config.json included) and the history figure,
  which reads each point's metrics.jsonl through its row's workdir."""
  root, records = tmp_path / "root", tmp_path / "records"
  config = load_config("synthetic", "small")
  config.data.regime = "online"
  rows = _depth_rows("test_rel_mse", [0.01, 0.011, 0.012], [0.04] * 3)
  for row in rows:
    point = root / "synthetic_depth_online" / f"{row['method']}_{row['model.f_depth']}"
    (point / "checkpoints" / "100").mkdir(parents=True)
    (point / "checkpoints" / "100" / "state").write_bytes(b"\0" * 4096)
    config.model.f_depth = row["model.f_depth"]
    (point / "config.json").write_text(config.to_json())
    (point / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "eval_test_rel_mse": row["test_rel_mse"] * (1 + 1 / s)}) + "\n"
        for s in (10, 100)))
    row["workdir"] = str(point)  # absolute, as sweeps.gather writes it
  _write(root, "synthetic_depth_online", rows)
  before = report.build_report(str(root), out=str(tmp_path / "A.md"),
                               figures=str(tmp_path / "figA"), notes=None)
  assert os.path.exists(tmp_path / "figA" / "synthetic_depth_steps.png")

  counts = report.export_records(str(root), str(records))
  assert counts["synthetic_depth_online"] == 1 + 6 * 2  # gathered + config, metrics per point
  assert not list(records.rglob("checkpoints"))
  gathered = json.loads((records / "synthetic_depth_online" / "results.json").read_text())
  assert {r["workdir"] for r in gathered} == {
      f"synthetic_depth_online/{r['method']}_{r['model.f_depth']}" for r in rows}
  assert "synthetic_depth_online | 13 |" in (records / "RECORDS.md").read_text()
  os.rename(root, tmp_path / "gone")
  after = report.build_report(str(records), out=str(tmp_path / "B.md"),
                              figures=str(tmp_path / "figB"), notes=None)
  assert [(c.command, c.measured, c.verdict) for c in after] == [
      (c.command, c.measured, c.verdict) for c in before]
  online = [c for c in after if c.experiment == "synthetic_depth_online"]
  assert online and all(c.command.startswith(  # read back, not the planned ':quick' command
      "python launch/sweep.py --config=configs/synthetic.py:small") for c in online)
  table = lambda p: (tmp_path / p).read_text().split("\n", 4)[4].replace("figA", "figB")
  assert table("A.md") == table("B.md")
  assert (tmp_path / "figA" / "synthetic_depth_steps.png").read_bytes() == (
      tmp_path / "figB" / "synthetic_depth_steps.png").read_bytes()

  with pytest.raises(ValueError, match="is the root being read"):
    report.export_records(str(records), str(records))
