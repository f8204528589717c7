"""Verdicts: gathered sweep rows -> one Claim per statement of the paper.

How verdicts are decided (also printed at the top of REPRODUCTION.md):
- "A beats B": A's mean is lower at every point concerned (holds), at some
  (partly), at none (does not hold).
- "improves": the last point is lower than the first by more than the sum of their
  stds and no step goes up by more than one std (holds); only the first (partly).
- "does not improve": the best point is not lower than the first by more than the
  sum of their stds.
- No verdict from one seed: with a single seed per point there is no spread to
  judge a difference against, and the row says so.
"""

import dataclasses
from typing import Sequence

import numpy as np

from hypernets.experiments import theory

NO_VERDICT = "no verdict"


@dataclasses.dataclass
class Claim:
  """One row of REPRODUCTION.md."""

  claim: str  # what the paper says
  command: str
  measured: str  # the figure, e.g. '0.012 +- 0.001 vs 0.08 +- 0.01'
  seeds: str  # e.g. '3 seeds per point'
  verdict: str  # holds | partly | does not hold | not run | no verdict
  note: str = ""
  regime: str = "-"  # fixed | online | -
  scale: str = "CPU"  # CPU | paper
  group: str = ""  # the claim family, for the per-claim discussion
  experiment: str = ""  # the report's experiment (root/<experiment>) it comes from


def row_ids(claims: Sequence[Claim]) -> list[str]:
  """REPRODUCTION.md's row ids, one per claim: '<experiment>.<k>', k counting that
  experiment's claims from 1, so that adding an experiment renumbers no other rows
  (a claim with no experiment: its position in the table)."""
  seen: dict[str, int] = {}
  ids = []
  for i, claim in enumerate(claims, 1):
    if claim.experiment:
      seen[claim.experiment] = seen.get(claim.experiment, 0) + 1
      ids.append(f"{claim.experiment}.{seen[claim.experiment]}")
    else:
      ids.append(str(i))
  return ids


def curves(rows: Sequence[dict], *, x: str, metric: str, group: str = "method"
           ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """{group value: (x [K] sorted, mean [K], std [K])} of `metric` against `x`."""
  out = {}
  for name in sorted({row[group] for row in rows}):
    chosen = sorted((row for row in rows if row[group] == name), key=lambda r: r[x])
    out[name] = (np.array([r[x] for r in chosen], np.float64),
                 np.array([r[metric] for r in chosen], np.float64),
                 np.array([r.get(f"{metric}_std", 0.0) for r in chosen], np.float64))
  return out


def pareto_frontier(rows: Sequence[dict], *, metric: str, size: str = "total"
                    ) -> tuple[np.ndarray, np.ndarray]:
  """(eps [K], N [K]): for each error level reached, the fewest parameters reaching it.

  Sorted by N; a point is kept only if it has a lower error than every smaller one.
  """
  eps, sizes, best = [], [], np.inf
  for row in sorted(rows, key=lambda r: r[size]):
    if row[metric] < best:
      best = row[metric]
      eps.append(row[metric])
      sizes.append(row[size])
  return np.array(eps, np.float64), np.array(sizes, np.float64)


def fmt(mean: float, std: float) -> str:
  return f"{mean:.4g} +- {std:.2g}"


def min_seeds(rows: Sequence[dict]) -> int:
  return min((int(row.get("num_seeds", 1)) for row in rows), default=0)


def seeds_text(rows: Sequence[dict]) -> str:
  counts = sorted({int(row.get("num_seeds", 1)) for row in rows})
  word = "seed" if counts == [1] else "seeds"
  return f"{'/'.join(map(str, counts))} {word} per point"


def guard_one_seed(claims: list[Claim], rows: Sequence[dict]) -> list[Claim]:
  """Claims from rows with a single seed per point get no verdict (the row says why)."""
  if rows and min_seeds(rows) < 2:
    for claim in claims:
      if claim.verdict != "not run":
        claim.note = ("1 seed per point: no spread to judge a difference against; "
                      f"measured says what one seed gave (verdict would be: {claim.verdict})")
        claim.verdict = NO_VERDICT
  return claims


def not_run(claim: str, command: str, **kwargs) -> Claim:
  return Claim(claim, command, "-", "-", "not run", "no results in the report's root",
               **kwargs)


def depth_claims(rows: Sequence[dict], *, metric: str, command: str = "",
                 depth_field: str = "model.f_depth", min_depth: int = 3,
                 **kwargs) -> list[Claim]:
  """Claims on error vs depth: the hypernetwork wins from `min_depth` hidden layers
  on and improves with depth; the embedding method does not improve with depth."""
  texts = (f"hypernetwork has lower {metric} than the embedding method once f and e "
           f"have {min_depth}+ layers",
           "hypernetwork error keeps improving as f gets deeper",
           "embedding method does not improve with the depth of e")
  if not rows:
    return [not_run(text, command, **kwargs) for text in texts]
  data = curves(rows, x=depth_field, metric=metric)
  hyper, emb = data["hypernet"], data["embedding"]
  deep = hyper[0] >= min_depth
  wins = int(np.sum(hyper[1][deep] < emb[1][deep]))
  total = int(np.sum(deep))
  verdict = "holds" if wins == total else ("partly" if wins else "does not hold")
  first, last = 0, len(hyper[0]) - 1
  seeds = seeds_text(rows)
  c1 = Claim(texts[0], command,
             f"hypernet better at {wins}/{total} depths >= {min_depth}; at depth "
             f"{int(hyper[0][last])}: {fmt(hyper[1][last], hyper[2][last])} vs "
             f"{fmt(emb[1][last], emb[2][last])}", seeds, verdict, **kwargs)
  # "Improves": the deepest is better than the shallowest by more than the noise,
  # and every step down in error is not reversed by more than one std.
  gain = hyper[1][first] - hyper[1][last]
  noise = hyper[2][first] + hyper[2][last]
  reversals = int(np.sum(np.diff(hyper[1]) > hyper[2][1:]))
  verdict = ("holds" if gain > noise and reversals == 0 else
             "partly" if gain > noise else "does not hold")
  best = int(np.argmin(hyper[1]))
  c2 = Claim(texts[1], command,
             f"depth {int(hyper[0][first])}: {fmt(hyper[1][first], hyper[2][first])}, "
             f"depth {int(hyper[0][last])}: {fmt(hyper[1][last], hyper[2][last])} (best: "
             f"depth {int(hyper[0][best])}); {reversals} increase(s) beyond 1 std along "
             "the way", seeds, verdict, **kwargs)
  emb_gain = emb[1][first] - emb[1].min()
  emb_noise = emb[2][first] + emb[2][np.argmin(emb[1])]
  c3 = Claim(texts[2], command,
             f"shallowest {fmt(emb[1][first], emb[2][first])}, best "
             f"{fmt(emb[1].min(), emb[2][np.argmin(emb[1])])} at depth "
             f"{int(emb[0][np.argmin(emb[1])])}", seeds,
             "holds" if emb_gain <= emb_noise else "does not hold",
             "" if emb_gain <= emb_noise else
             f"the embedding method improved by {emb_gain:.3g} (> noise {emb_noise:.2g})",
             **kwargs)
  return guard_one_seed([c1, c2, c3], rows)


def train_test_gap(rows: Sequence[dict], *, depth_field: str = "model.f_depth",
                   method: str = "hypernet") -> str:
  """'train -> test MSE by depth' for one method: where the fixed regime overfits."""
  chosen = sorted((r for r in rows if r["method"] == method), key=lambda r: r[depth_field])
  if not chosen or "train_mse" not in chosen[0]:
    return ""
  return "; ".join(f"d{int(r[depth_field])} {r['train_mse']:.3g}/{r['test_mse']:.3g}"
                   for r in chosen)


def embedding_claims(rows: Sequence[dict], *, metric: str, command: str = "",
                     **kwargs) -> list[Claim]:
  """The embedding method does not improve with a larger embedding."""
  text = "embedding method does not improve with a larger embedding"
  rows = [r for r in rows if r["method"] == "embedding"]
  if not rows:
    return [not_run(text, command, **kwargs)]
  xs, mean, std = curves(rows, x="model.embedding_dim", metric=metric)["embedding"]
  best = int(np.argmin(mean))
  gain, noise = mean[0] - mean[best], std[0] + std[best]
  return guard_one_seed([Claim(
      text, command,
      f"E={int(xs[0])}: {fmt(mean[0], std[0])}; best E={int(xs[best])}: "
      f"{fmt(mean[best], std[best])}; E={int(xs[-1])}: {fmt(mean[-1], std[-1])}",
      seeds_text(rows), "holds" if gain <= noise else "does not hold",
      "" if gain <= noise else f"improved by {gain:.3g} (> noise {noise:.2g})",
      **kwargs)], rows)


def lr_claims(rows: Sequence[dict], *, metric: str, command: str = "", **kwargs) -> list[Claim]:
  """The hypernetwork is better than the embedding method across learning rates."""
  text = f"hypernetwork has lower {metric} than the embedding method across learning rates"
  if not rows:
    return [not_run(text, command, **kwargs)]
  data = curves(rows, x="optimizer.learning_rate", metric=metric)
  hyper, emb = data["hypernet"], data["embedding"]
  wins = int(np.sum(hyper[1] < emb[1]))
  verdict = ("holds" if wins == len(hyper[0]) else "partly" if wins else "does not hold")
  return guard_one_seed([Claim(
      text, command,
      f"hypernet better at {wins}/{len(hyper[0])} learning rates; best "
      f"{fmt(hyper[1].min(), hyper[2][np.argmin(hyper[1])])} vs "
      f"{fmt(emb[1].min(), emb[2][np.argmin(emb[1])])}", seeds_text(rows), verdict,
      **kwargs)], rows)


def select_lr(rows: Sequence[dict], *, select_on: str, metric: str,
              depth_field: str = "model.f_depth") -> list[dict]:
  """Per (method, depth), the row with the lowest `select_on` (a validation
  metric, never the test one): the learning rate chosen for that depth."""
  best = {}
  for row in rows:
    key = (row["method"], row[depth_field])
    if key not in best or row[select_on] < best[key][select_on]:
      best[key] = row
  del metric
  return sorted(best.values(), key=lambda r: (r["method"], r[depth_field]))


def comparison_claim(rows: Sequence[dict], *, text: str, command: str, metric: str,
                     **kwargs) -> list[Claim]:
  """The hypernetwork has lower `metric` than the embedding method (one point each)."""
  if not rows:
    return [not_run(text, command, **kwargs)]
  by = {r["method"]: r for r in rows}
  h, e = by.get("hypernet"), by.get("embedding")
  if h is None or e is None:
    return [not_run(text, command, **kwargs)]
  verdict = "holds" if h[metric] < e[metric] else "does not hold"
  margin = (h[f"{metric}_std"] + e[f"{metric}_std"])
  note = ("" if abs(h[metric] - e[metric]) > margin else
          "the difference is within the sum of the stds")
  return guard_one_seed([Claim(
      text, command, f"hypernet {fmt(h[metric], h[f'{metric}_std'])} vs embedding "
      f"{fmt(e[metric], e[f'{metric}_std'])}", seeds_text(rows), verdict, note, **kwargs)],
      rows)


def structured_claims(rows: Sequence[dict], *, metric: str, command: str = "", m1: int,
                      m2: int, r: float = 1.0, **kwargs) -> tuple[list[Claim], dict]:
  """Thm 5: fitted log-log slopes of N(eps) per method beside the theory's orders."""
  text = ("structured target (Thm 5): the hypernetwork reaches each error with the "
          "fewest parameters; N(eps) grows slowest for it")
  if not rows:
    return [not_run(text, command, **kwargs)], {}
  fronts = {m: pareto_frontier([r_ for r_ in rows if r_["method"] == m], metric=metric)
            for m in sorted({r_["method"] for r_ in rows})}
  slopes = {m: theory.fit_loglog_slope(*front)[0] for m, front in fronts.items()
            if len(front[0]) >= 2 and np.ptp(front[0]) > 0}

  def needed(front, eps):
    return float(front[1][np.argmax(front[0] <= eps)])

  pairs = {}
  if "hypernet" in fronts:
    for m, front in fronts.items():
      if m != "hypernet":
        eps = max(front[0].min(), fronts["hypernet"][0].min())
        pairs[m] = (eps, needed(fronts["hypernet"], eps), needed(front, eps))
  theory_slopes = {
      "hypernet (Thm 5)": float(theory.predicted_slope(
          theory.thm5_hypernet_params, eps=0.1, m1=m1, m2=m2, r=r, w=1)),
      "standard (Thm 5)": float(theory.predicted_slope(
          theory.thm5_standard_params, eps=0.1, m1=m1, m2=m2, r=r)),
  }
  measured = ("; ".join(f"to reach {metric} <= {eps:.3g}: hypernet {int(nh)} vs {m} "
                        f"{int(nm)} params" for m, (eps, nh, nm) in pairs.items())
              + "; fitted slopes d log N / d log eps: "
              + ", ".join(f"{m} {s:.2f}" for m, s in slopes.items())
              + "; theory (r=1): "
              + ", ".join(f"{m} {s:.1f}" for m, s in theory_slopes.items()))
  fewest = bool(pairs) and all(nh <= 0.8 * nm for _, nh, nm in pairs.values())
  flattest = ("hypernet" in slopes and
              all(slopes["hypernet"] > s for m, s in slopes.items() if m != "hypernet"))
  verdict = ("holds" if fewest and flattest else "partly" if fewest or flattest else
             "does not hold")
  note = ("the theory's orders are worst cases over W_{r,m}; the target here is smooth "
          "(large r), so slopes are flatter than r=1's; their ratio does not depend on r")
  if "hypernet" in slopes and "standard" in slopes:
    note += (f": measured hypernet/standard slope ratio "
             f"{slopes['hypernet'] / slopes['standard']:.2f}, theory max(m1, m2)/(m1 + m2)"
             f" = {max(m1, m2) / (m1 + m2):.2f}")
  claims = [Claim(text, command, measured, seeds_text(rows), verdict, note, **kwargs)]
  return guard_one_seed(claims, rows), fronts


def assumption_claims(a1: Sequence[dict], a2: Sequence[dict], *, commands: dict,
                      **kwargs) -> list[Claim]:
  """Assumption 1 (a unique best approximator) and 2 (a neuron more always helps)."""
  claims = []
  text = ("Assumption 1: students trained from different inits converge to the same "
          "function, ‖f1 - f2‖ << ‖f1 - y‖")
  if not a1:
    claims.append(not_run(text, commands["assumption1"], experiment="assumption1", **kwargs))
  else:
    r = a1[0]
    ratios = r["per_seed"]["f1_f2_over_f1_y"]
    fit = r.get("f1_y_over_target_std", 0.0)
    all_below = all(x < 1 for x in ratios)
    verdict = ("holds" if all_below and fit < 0.5 else "partly" if all_below else
               "does not hold")
    claims.append(Claim(
        text, commands["assumption1"],
        f"‖f1 - f2‖ = {fmt(r['f1_f2_rms'], r['f1_f2_rms_std'])}, ‖f1 - y‖ = "
        f"{fmt(r['f1_y_rms'], r['f1_y_rms_std'])}, ratio "
        f"{fmt(r['f1_f2_over_f1_y'], r['f1_f2_over_f1_y_std'])}; below 1 in "
        f"{sum(x < 1 for x in ratios)}/{len(ratios)} repeats", f"{r['num_seeds']} repeats",
        verdict,
        f"‖f1 - y‖ / std(y) = {fit:.2f}: the students explain little of the target's "
        "variance, so they agree mostly on its near-constant part" if fit >= 0.5 else "",
        experiment="assumption1", **kwargs))
  text = "Assumption 2: adding a hidden neuron lowers the test error"
  if not a2:
    claims.append(not_run(text, commands["assumption2"], experiment="assumption2", **kwargs))
  else:
    r = a2[0]
    widths, mse, std = r["widths"], r["test_mse_by_width"], r["test_mse_by_width_std"]
    steps = len(widths) - 1
    bad = r["num_width_increases_without_improvement"]
    verdict = "holds" if bad == 0 else "partly" if bad <= steps // 4 else "does not hold"
    claims.append(Claim(
        text, commands["assumption2"],
        f"test MSE width {widths[0]}: {fmt(mse[0], std[0])}, width {widths[-1]}: "
        f"{fmt(mse[-1], std[-1])}; {bad}/{steps} width increases without a lower mean, "
        f"{r['num_width_increases_not_significant']}/{steps} not significant at 2 sigma",
        f"{r['num_seeds']} repeats", verdict, experiment="assumption2", **kwargs))
  return claims
