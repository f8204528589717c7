"""Report generation from small fake gathered results."""

import json
import os

import numpy as np

from hypernets.experiments import report


def _write(root, name, rows):
  os.makedirs(root / name, exist_ok=True)
  (root / name / "results.json").write_text(json.dumps(rows))


def _depth_rows(metric, hyper, emb):
  rows = []
  for depth, (h, e) in enumerate(zip(hyper, emb), start=1):
    rows.append({"model.kind": "hypernet", "model.f_depth": depth, "method": "hypernet",
                 metric: h, f"{metric}_std": 0.001, "num_seeds": 3})
    rows.append({"model.kind": "embedding", "model.f_depth": depth, "method": "embedding",
                 metric: e, f"{metric}_std": 0.001, "num_seeds": 3})
  return rows


def test_report_verdicts_figures_and_table(tmp_path):
  _write(tmp_path, "synthetic_depth",
         _depth_rows("test_rel_mse", [0.05, 0.03, 0.02, 0.015, 0.01], [0.04] * 5))
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
  out, figures = str(tmp_path / "REPRODUCTION.md"), str(tmp_path / "figs")
  claims = report.build_report(str(tmp_path), out=out, figures=figures, m1=4, m2=4)
  verdicts = [c.verdict for c in claims]
  # depth: hypernet wins from depth 3 (0.02 < 0.04), improves, embedding flat.
  assert verdicts[:3] == ["holds", "holds", "holds"]
  assert verdicts[3] == "holds"  # embedding does not improve with E
  assert verdicts[4:7] == ["not run"] * 3  # rotation depth missing
  assert verdicts[7] == "does not hold"  # hypernet worse at every lr in the fake data
  assert verdicts[8] == "holds"  # structured: hypernet needs the fewest parameters
  assert "hypernet -2.00" in claims[8].measured  # N ~ eps^-2 for eps ~ N^-0.5
  text = open(out).read()
  assert text.count("\n| ") == 1 + len(claims)  # header + one row per claim
  assert "**not run**" in text and "launch/sweep.py" in text
  for name in ("synthetic_depth", "synthetic_embedding", "rotation_mnist_lr",
               "structured_n_vs_eps"):
    assert os.path.getsize(os.path.join(figures, f"{name}.png")) > 1000


def test_pareto_frontier_keeps_only_improvements():
  rows = [{"total": n, "e": e} for n, e in ((100, 0.5), (200, 0.6), (300, 0.4), (400, 0.4))]
  eps, n = report.pareto_frontier(rows, metric="e")
  np.testing.assert_array_equal(n, [100, 300])
  np.testing.assert_array_equal(eps, [0.5, 0.4])


def test_depth_claims_say_when_embedding_improves():
  rows = _depth_rows("m", [0.05, 0.04, 0.03, 0.02], [0.09, 0.06, 0.03, 0.03])
  claims = report.depth_claims(rows, experiment="synthetic_depth", metric="m")
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
                               figures=str(tmp_path / "f"))
  a1, a2 = claims[-2:]
  assert a1.verdict == "holds" and "below 1 in 2/2 repeats" in a1.measured
  assert a2.verdict == "partly" and "1/4 width increases" in a2.measured
  assert os.path.exists(tmp_path / "f" / "assumption2_width.png")
