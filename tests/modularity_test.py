"""The modularity analysis on fake sweep results with a known answer, and its config."""

import os

import numpy as np
import pytest

from conftest import load_config
from conftest import load_config_module
from hypernets.errors import ConfigError
from hypernets.experiments import modularity

# Primary sizes of the fake sweep: g (N_g) and q (N_q) at three widths each.
N_G, N_Q = (13, 49, 193), (77, 305, 1217)


def _rows(*, q_errors, g_errors=None, m2s=(2, 8), seeds=3):
  """Rows as sweeps.gather writes them; g's error follows N_g ~ eps^-2 exactly."""
  g_errors = g_errors or [n ** -0.5 for n in N_G]
  rows = []
  for m2 in m2s:
    for method, sizes, errors in (("hypernet", N_G, g_errors),
                                  ("embedding", N_Q, q_errors[m2])):
      for n, err in zip(sizes, errors):
        rows.append({"data.m2": m2, "model.kind": method, "method": method,
                     modularity.SIZE_NAMES[method]: n, "test_rel_mse": err,
                     "test_rel_mse_std": 0.0, "num_seeds": seeds})
  return rows


Q_ERRORS = {2: [0.2, 0.05, 0.005], 8: [0.5, 0.3, 0.2]}


def test_n_of_eps_ratios_and_not_reached():
  data = modularity.curves(_rows(q_errors=Q_ERRORS), metric="test_rel_mse")
  g2 = data[(2, "hypernet")]
  # g's errors: 13^-0.5 = 0.277, 49^-0.5 = 0.143, 193^-0.5 = 0.072.
  assert modularity.size_reaching(g2, 0.3) == 13
  assert modularity.size_reaching(g2, 0.143) == 49
  assert modularity.size_reaching(g2, 0.1) == 193
  assert modularity.size_reaching(g2, 0.01) is None  # not reached: None, never 0
  r = modularity.ratios(data, [0.15, 0.1, 0.01])
  assert r[2][0.15].n_g == 49 and r[2][0.15].n_q == 305
  assert r[2][0.15].text == f"{305 / 49:.3g}"
  assert r[2][0.1].n_q == 305 and r[2][0.1].value == pytest.approx(305 / 193)
  assert r[2][0.01].text == "g not reached" and r[2][0.01].value is None
  assert r[8][0.15].n_q is None  # q's best at m2 = 8 is 0.2
  assert r[8][0.15].text == f"> {1217 / 49:.3g} (q not reached)"
  assert modularity.ratios(data, [0.2])[8][0.2].n_q == 1217
  # Default levels: from max(worst largest primary, 2.2 floor) to 1.1x g's floor (0.072).
  assert modularity.default_eps_levels(data, m2=2) == [0.16, 0.11, 0.079]
  assert modularity.default_eps_levels(data, m2=8)[0] == 0.2
  trend = modularity.n_vs_m2(data, 0.1)
  assert trend["hypernet"] == ([2, 8], [193, 193])
  assert trend["embedding"] == ([2, 8], [305, None])


def test_fitted_exponent_recovers_a_power_law_and_theory_orders():
  data = modularity.curves(_rows(q_errors=Q_ERRORS), metric="test_rel_mse")
  assert modularity.fitted_exponent(data[(2, "hypernet")]) == pytest.approx(2.0)
  flat = _rows(q_errors={2: [0.1, 0.1, 0.1], 8: [0.1, 0.1, 0.1]})
  assert modularity.fitted_exponent(modularity.curves(flat, metric="test_rel_mse")[
      (2, "embedding")]) is None  # no size improved on a smaller one: no fit
  k = modularity.theory_exponents(m1=4, m2=8)
  assert k == {"g (Thm 4)": pytest.approx(4), "q (Thm 2)": pytest.approx(12),
               "q (Thm 3)": pytest.approx(8)}


def test_claims_verdicts_and_bottleneck_rows(tmp_path):
  rows = _rows(q_errors=Q_ERRORS)
  # The bottleneck check: f twice as wide at the largest m2, about the same error.
  check = [dict(r, **{"model.f_width": 256}) for r in rows
           if r["data.m2"] == 8 and modularity.primary_size(r) in (13, 77)]
  main = [dict(r, **{"model.f_width": 128}) if r["data.m2"] == 8 else r for r in rows]
  claims, data, eps = modularity.claims(main + check, metric="test_rel_mse", m1=4,
                                        eps_levels=[0.2, 0.1, 0.08])
  assert eps == 0.1  # the m2 trend at the middle given level
  per_m2 = [c for c in claims if "N_q / N_g > 1" in c.claim]
  assert [c.verdict for c in per_m2] == ["holds", "holds"]
  assert "not reached" in per_m2[1].measured and "theory (r=1)" in per_m2[1].measured
  trend = [c for c in claims if "does not grow with m2" in c.claim][0]
  assert trend.verdict == "holds"  # N_g flat, N_q not reached at m2 = 8
  bottleneck = [c for c in claims if "bottleneck" in c.claim][0]
  assert bottleneck.verdict == "holds" and "0.277 -> 0.277" in bottleneck.measured
  for path in (modularity.plot_eps_vs_n(data, str(tmp_path / "a.png"), m1=4,
                                        metric_label="e"),
               modularity.plot_n_vs_m2(data, str(tmp_path / "b.png"), eps=0.1)):
    assert os.path.getsize(path) > 1000
  one_seed, _, _ = modularity.claims(_rows(q_errors=Q_ERRORS, seeds=1),
                                     metric="test_rel_mse", m1=4)
  assert {c.verdict for c in one_seed} == {"no verdict"}


def test_one_width_is_refused_in_one_line():
  rows = [r for r in _rows(q_errors=Q_ERRORS)
          if not (r["method"] == "embedding" and r["data.m2"] == 8
                  and modularity.primary_size(r) != 77)]
  with pytest.raises(ConfigError, match="one primary width for embedding at m2=8") as e:
    modularity.curves(rows, metric="test_rel_mse")
  assert "\n" not in str(e.value)
  module = load_config_module("modularity")
  with pytest.raises(ConfigError, match="at least two") as e:
    module.get_sweeps("widths=16")
  assert "\n" not in str(e.value)


def test_modularity_config_and_sweep():
  module = load_config_module("modularity")
  config = load_config("modularity", "quick")
  assert config.data.regime == "online" and config.data.name == "structured"
  assert config.model.q_widths == config.model.primary.widths  # one width for g and q
  points = module.get_sweeps("quick")["primary"]
  assert len(points) == 4 * 2 * 7 + 4
  assert sorted({p["data.m2"] for p in points}) == [2, 4, 8, 16]
  check = [p for p in points if "model.f_width" in p]
  assert {p["model.f_width"] for p in check} == {2 * config.model.f_width}
  assert module.get_sweeps("small,widths=1/2/8")["primary"][0]["model.primary.widths"] == (1,)
  config.model.f_width = 7  # e follows f (one knob for "f and e twice as wide")
  assert config.model.e_width == 7
