"""Gathered sweep results -> figures and REPRODUCTION.md, one row per claim.

Layout read by `build_report(root)`: each experiment's sweep ran into
root/<experiment> (see EXPERIMENTS for the command of each), whose gathered
results.json holds one row per point (`sweeps.gather`). Missing experiments are
reported as not run; nothing is invented.
"""

import dataclasses
import json
import os
from typing import Sequence

import numpy as np

from hypernets.experiments import theory
from hypernets.training import workdir as workdir_lib

# Experiment directory -> the command that produced it.
EXPERIMENTS = {
    "synthetic_depth": "python launch/sweep.py --config=configs/synthetic.py:quick "
                       "--sweep=depth --workdir=ROOT/synthetic_depth",
    "synthetic_embedding": "python launch/sweep.py --config=configs/synthetic.py:quick "
                           "--sweep=embedding --workdir=ROOT/synthetic_embedding",
    "rotation_mnist_depth": "python launch/sweep.py --config=configs/rotation_mnist.py:quick "
                            "--sweep=depth --workdir=ROOT/rotation_mnist_depth",
    "rotation_mnist_lr": "python launch/sweep.py --config=configs/rotation_mnist.py:quick "
                         "--sweep=lr --workdir=ROOT/rotation_mnist_lr",
    "structured": "python launch/sweep.py --config=configs/structured.py:quick "
                  "--sweep=size --workdir=ROOT/structured",
    "assumption1": "python launch/main.py --config=configs/assumption1.py:quick "
                   "--workdir=ROOT/assumption1",
    "assumption2": "python launch/main.py --config=configs/assumption2.py:quick "
                   "--workdir=ROOT/assumption2",
}


_HEADER = """# Reproduction of 'On the Modularity of Hypernetworks'

Written by `python launch/report.py --root=ROOT` from the runs its commands produce
(ROOT is where the sweeps wrote; figures in `docs/figures/`). Every number is a
mean +- std over seeds. How verdicts are decided (`hypernets/experiments/report.py`):
- "A beats B": A's mean is lower at every point concerned (holds), at some (partly),
  at none (does not hold).
- "improves": the last point is lower than the first by more than the sum of their
  stds and no step goes up by more than one std (holds); only the first part (partly).
- "does not improve": the best point is not lower than the first by more than the
  sum of their stds.
- Thm 5: the hypernetwork needs <= 0.8x the parameters of each other method to reach
  the hardest error both reached, and its fitted N(eps) is the flattest."""


@dataclasses.dataclass
class Claim:
  """One row of REPRODUCTION.md."""

  claim: str  # what the paper says
  command: str
  measured: str  # the figure, e.g. '0.012 +- 0.001 vs 0.08 +- 0.01'
  seeds: str  # e.g. '3 seeds'
  verdict: str  # holds | does not hold | partly | not run
  note: str = ""


def load_rows(path: str) -> list[dict]:
  """The gathered rows of a sweep (its results.json; a single run's results.json
  is one row), or [] if absent."""
  if not os.path.exists(path):
    return []
  with open(path) as f:
    rows = json.load(f)
  return [rows] if isinstance(rows, dict) else rows


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


def plot_curves(data: dict, path: str, *, xlabel: str, ylabel: str, title: str,
                logx: bool = False, logy: bool = False, extra=None) -> str:
  """Lines with +-1 std bands, one per group; written atomically as PNG. Returns path."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  for name, (xs, mean, std) in data.items():
    ax.plot(xs, mean, marker="o", label=name)
    ax.fill_between(xs, mean - std, mean + std, alpha=0.2)
  if extra is not None:
    extra(ax)
  ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
  if logx:
    ax.set_xscale("log")
  if logy:
    ax.set_yscale("log")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=120)
  plt.close(fig)
  os.replace(tmp, path)
  return path


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


def _fmt(mean: float, std: float) -> str:
  return f"{mean:.4g} +- {std:.2g}"


def _seeds(rows) -> str:
  counts = sorted({row.get("num_seeds", 1) for row in rows})
  return f"{'/'.join(map(str, counts))} seeds per point"


def _not_run(claim: str, experiment: str) -> Claim:
  return Claim(claim, EXPERIMENTS[experiment], "-", "-", "not run",
               f"no results under <root>/{experiment}")


def depth_claims(rows: Sequence[dict], *, experiment: str, metric: str,
                 depth_field: str = "model.f_depth", min_depth: int = 3) -> list[Claim]:
  """Claims on error vs depth: the hypernetwork wins from `min_depth` hidden layers
  on and improves with depth; the embedding method does not improve with depth."""
  texts = (f"hypernetwork has lower {metric} than the embedding method once f and e "
           f"have {min_depth}+ layers",
           "hypernetwork error keeps improving as f gets deeper",
           "embedding method does not improve with the depth of e")
  if not rows:
    return [_not_run(text, experiment) for text in texts]
  data = curves(rows, x=depth_field, metric=metric)
  hyper, emb = data["hypernet"], data["embedding"]
  deep = hyper[0] >= min_depth
  wins = int(np.sum(hyper[1][deep] < emb[1][deep]))
  total = int(np.sum(deep))
  verdict = "holds" if wins == total else ("partly" if wins else "does not hold")
  first, last = 0, len(hyper[0]) - 1
  c1 = Claim(texts[0], EXPERIMENTS[experiment],
             f"hypernet better at {wins}/{total} depths >= {min_depth}; at depth "
             f"{int(hyper[0][last])}: {_fmt(hyper[1][last], hyper[2][last])} vs "
             f"{_fmt(emb[1][last], emb[2][last])}", _seeds(rows), verdict)
  # "Improves": the deepest is better than the shallowest by more than the noise,
  # and every step down in error is not reversed by more than one std.
  gain = hyper[1][first] - hyper[1][last]
  noise = hyper[2][first] + hyper[2][last]
  reversals = int(np.sum(np.diff(hyper[1]) > hyper[2][1:]))
  verdict = ("holds" if gain > noise and reversals == 0 else
             "partly" if gain > noise else "does not hold")
  c2 = Claim(texts[1], EXPERIMENTS[experiment],
             f"depth {int(hyper[0][first])}: {_fmt(hyper[1][first], hyper[2][first])}, "
             f"depth {int(hyper[0][last])}: {_fmt(hyper[1][last], hyper[2][last])}; "
             f"{reversals} increase(s) beyond 1 std along the way", _seeds(rows), verdict)
  emb_gain = emb[1][first] - emb[1].min()
  emb_noise = emb[2][first] + emb[2][np.argmin(emb[1])]
  c3 = Claim(texts[2], EXPERIMENTS[experiment],
             f"shallowest {_fmt(emb[1][first], emb[2][first])}, best "
             f"{_fmt(emb[1].min(), emb[2][np.argmin(emb[1])])} at depth "
             f"{int(emb[0][np.argmin(emb[1])])}", _seeds(rows),
             "holds" if emb_gain <= emb_noise else "does not hold",
             "" if emb_gain <= emb_noise else
             f"the embedding method improved by {emb_gain:.3g} (> noise {emb_noise:.2g})")
  return [c1, c2, c3]


def embedding_claims(rows: Sequence[dict], *, metric: str) -> list[Claim]:
  """The embedding method does not improve with a larger embedding."""
  text = "embedding method does not improve with a larger embedding"
  rows = [r for r in rows if r["method"] == "embedding"]
  if not rows:
    return [_not_run(text, "synthetic_embedding")]
  xs, mean, std = curves(rows, x="model.embedding_dim", metric=metric)["embedding"]
  best = int(np.argmin(mean))
  gain, noise = mean[0] - mean[best], std[0] + std[best]
  return [Claim(text, EXPERIMENTS["synthetic_embedding"],
                f"E={int(xs[0])}: {_fmt(mean[0], std[0])}; best E={int(xs[best])}: "
                f"{_fmt(mean[best], std[best])}; E={int(xs[-1])}: {_fmt(mean[-1], std[-1])}",
                _seeds(rows), "holds" if gain <= noise else "does not hold",
                "" if gain <= noise else f"improved by {gain:.3g} (> noise {noise:.2g})")]


def lr_claims(rows: Sequence[dict], *, metric: str) -> list[Claim]:
  """The hypernetwork is better than the embedding method across learning rates."""
  text = f"hypernetwork has lower {metric} than the embedding method across learning rates"
  if not rows:
    return [_not_run(text, "rotation_mnist_lr")]
  data = curves(rows, x="optimizer.learning_rate", metric=metric)
  hyper, emb = data["hypernet"], data["embedding"]
  wins = int(np.sum(hyper[1] < emb[1]))
  verdict = ("holds" if wins == len(hyper[0]) else "partly" if wins else "does not hold")
  return [Claim(text, EXPERIMENTS["rotation_mnist_lr"],
                f"hypernet better at {wins}/{len(hyper[0])} learning rates; best "
                f"{_fmt(hyper[1].min(), hyper[2][np.argmin(hyper[1])])} vs "
                f"{_fmt(emb[1].min(), emb[2][np.argmin(emb[1])])}", _seeds(rows), verdict)]


def structured_claims(rows: Sequence[dict], *, metric: str, m1: int, m2: int,
                      r: float = 1.0) -> tuple[list[Claim], dict]:
  """Thm 5: fitted log-log slopes of N(eps) per method beside the theory's orders."""
  text = ("structured target (Thm 5): the hypernetwork reaches each error with the "
          "fewest parameters; N(eps) grows slowest for it")
  if not rows:
    return [_not_run(text, "structured")], {}
  fronts = {m: pareto_frontier([r_ for r_ in rows if r_["method"] == m], metric=metric)
            for m in sorted({r_["method"] for r_ in rows})}
  slopes = {m: theory.fit_loglog_slope(*front)[0] for m, front in fronts.items()
            if len(front[0]) >= 2 and np.ptp(front[0]) > 0}
  # Against each other method: parameters each needs to reach the hardest error
  # both reached.
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
  # Fewest parameters by a clear margin (20%) and the flattest N(eps): holds; one
  # of the two: partly.
  fewest = bool(pairs) and all(nh <= 0.8 * nm for _, nh, nm in pairs.values())
  flattest = ("hypernet" in slopes and
              all(slopes["hypernet"] > s for m, s in slopes.items() if m != "hypernet"))
  verdict = "holds" if fewest and flattest else "partly" if fewest or flattest else \
      "does not hold"
  note = ("the theory's orders are worst cases over W_{r,m}; the target here is smooth "
          "(large r), so slopes are flatter than r=1's; their ratio does not depend on r")
  if "hypernet" in slopes and "standard" in slopes:
    note += (f": measured hypernet/standard slope ratio {slopes['hypernet'] / slopes['standard']:.2f}"
             f", theory max(m1, m2)/(m1 + m2) = {max(m1, m2) / (m1 + m2):.2f}")
  return [Claim(text, EXPERIMENTS["structured"], measured, _seeds(rows), verdict, note)], fronts


def assumption_claims(a1: Sequence[dict], a2: Sequence[dict]) -> list[Claim]:
  """Assumption 1 (a unique best approximator) and 2 (a neuron more always helps)."""
  claims = []
  text = ("Assumption 1: students trained from different inits converge to the same "
          "function, ‖f1 - f2‖ << ‖f1 - y‖")
  if not a1:
    claims.append(_not_run(text, "assumption1"))
  else:
    r = a1[0]
    ratios = r["per_seed"]["f1_f2_over_f1_y"]
    fit = r.get("f1_y_over_target_std", 0.0)
    all_below = all(x < 1 for x in ratios)
    verdict = ("holds" if all_below and fit < 0.5 else "partly" if all_below else
               "does not hold")
    claims.append(Claim(
        text, EXPERIMENTS["assumption1"],
        f"‖f1 - f2‖ = {_fmt(r['f1_f2_rms'], r['f1_f2_rms_std'])}, ‖f1 - y‖ = "
        f"{_fmt(r['f1_y_rms'], r['f1_y_rms_std'])}, ratio "
        f"{_fmt(r['f1_f2_over_f1_y'], r['f1_f2_over_f1_y_std'])}; below 1 in "
        f"{sum(x < 1 for x in ratios)}/{len(ratios)} repeats", f"{r['num_seeds']} repeats",
        verdict,
        f"‖f1 - y‖ / std(y) = {fit:.2f}: the students explain little of the target's "
        "variance, so they agree mostly on its near-constant part" if fit >= 0.5 else ""))
  text = "Assumption 2: adding a hidden neuron lowers the test error"
  if not a2:
    claims.append(_not_run(text, "assumption2"))
  else:
    r = a2[0]
    widths, mse, std = r["widths"], r["test_mse_by_width"], r["test_mse_by_width_std"]
    steps = len(widths) - 1
    bad = r["num_width_increases_without_improvement"]
    verdict = "holds" if bad == 0 else "partly" if bad <= steps // 4 else "does not hold"
    claims.append(Claim(
        text, EXPERIMENTS["assumption2"],
        f"test MSE width {widths[0]}: {_fmt(mse[0], std[0])}, width {widths[-1]}: "
        f"{_fmt(mse[-1], std[-1])}; {bad}/{steps} width increases without a lower mean, "
        f"{r['num_width_increases_not_significant']}/{steps} not significant at 2 sigma",
        f"{r['num_seeds']} repeats", verdict))
  return claims


def write_reproduction(claims: Sequence[Claim], path: str, *, header: str = "",
                       footer: str = "") -> None:
  """REPRODUCTION.md: one table row per claim, then `footer` (written atomically)."""
  lines = [header or _HEADER, "",
           "| # | claim (paper) | command | measured | seeds | verdict | note |",
           "|---|---|---|---|---|---|---|"]
  for i, c in enumerate(claims, 1):
    cells = [str(i), c.claim, f"`{c.command}`", c.measured, c.seeds, f"**{c.verdict}**",
             c.note]
    lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
  text = "\n".join(lines) + "\n"
  if footer:
    text += "\n" + footer.rstrip("\n") + "\n"
  workdir_lib.write_text_atomic(path, text)


def _data_dims(rows: Sequence[dict]) -> tuple[int, int] | None:
  """(m1, m2) from the config.json of a gathered point's workdir, if there is one."""
  for row in rows:
    path = os.path.join(row.get("workdir", ""), "config.json")
    if os.path.exists(path):
      with open(path) as f:
        data = json.load(f)["data"]
      return data["m1"], data["m2"]
  return None


def build_report(root: str, *, out: str, figures: str, m1: int | None = None,
                 m2: int | None = None, notes: str | None = None) -> list[Claim]:
  """Reads root/<experiment>/results.json, draws figures, writes `out`. Returns claims.

  m1, m2: the structured target's dimensions (default: read from its runs' configs).
  notes: a markdown file appended after the table (the discussion of the runs).
  """
  rows = {name: load_rows(os.path.join(root, name, "results.json")) for name in EXPERIMENTS}
  if m1 is None or m2 is None:
    m1, m2 = _data_dims(rows["structured"]) or (1, 1)
  claims = []
  claims += depth_claims(rows["synthetic_depth"], experiment="synthetic_depth",
                         metric="test_rel_mse")
  claims += embedding_claims(rows["synthetic_embedding"], metric="test_rel_mse")
  claims += depth_claims(rows["rotation_mnist_depth"], experiment="rotation_mnist_depth",
                         metric="test_error", min_depth=3)
  claims += lr_claims(rows["rotation_mnist_lr"], metric="test_error")
  structured, fronts = structured_claims(rows["structured"], metric="test_rel_mse",
                                         m1=m1, m2=m2)
  claims += structured
  claims += assumption_claims(rows["assumption1"], rows["assumption2"])
  if rows["assumption2"]:
    r = rows["assumption2"][0]
    plot_curves({"one hidden layer, ELU": (np.array(r["widths"], np.float64),
                                          np.array(r["test_mse_by_width"]),
                                          np.array(r["test_mse_by_width_std"]))},
                os.path.join(figures, "assumption2_width.png"), xlabel="hidden width",
                ylabel="test MSE", title="Assumption 2: error vs width")
  if rows["synthetic_depth"]:
    plot_curves(curves(rows["synthetic_depth"], x="model.f_depth", metric="test_rel_mse"),
                os.path.join(figures, "synthetic_depth.png"), xlabel="hidden layers of f / e",
                ylabel="test MSE / Var(y)", title="Synthetic: error vs depth", logy=True)
  if rows["synthetic_embedding"]:
    plot_curves(curves(rows["synthetic_embedding"], x="model.embedding_dim",
                       metric="test_rel_mse"),
                os.path.join(figures, "synthetic_embedding.png"), xlabel="embedding size E",
                ylabel="test MSE / Var(y)", title="Synthetic: error vs embedding size",
                logx=True, logy=True)
  if rows["rotation_mnist_depth"]:
    plot_curves(curves(rows["rotation_mnist_depth"], x="model.f_depth", metric="test_error"),
                os.path.join(figures, "rotation_mnist_depth.png"),
                xlabel="hidden layers of f / e", ylabel="test error",
                title="Rotation (MNIST digits): error vs depth")
  if rows["rotation_mnist_lr"]:
    plot_curves(curves(rows["rotation_mnist_lr"], x="optimizer.learning_rate",
                       metric="test_error"),
                os.path.join(figures, "rotation_mnist_lr.png"), xlabel="learning rate",
                ylabel="test error", title="Rotation (MNIST digits): error vs lr", logx=True)
  if fronts:
    data = {m: (eps, n, np.zeros_like(n)) for m, (eps, n) in fronts.items()}

    def theory_lines(ax):
      eps0, n0 = fronts["hypernet"][0][-1], fronts["hypernet"][1][-1]
      grid = np.geomspace(min(f[0].min() for f in fronts.values()),
                          max(f[0].max() for f in fronts.values()), 20)
      for name, fn, kw in (("Thm 5 hypernet", theory.thm5_hypernet_params, dict(w=1)),
                           ("Thm 5 standard", theory.thm5_standard_params, {})):
        ax.plot(grid, theory.anchor(fn, eps0=eps0, n0=n0, m1=m1, m2=m2, r=1.0, **kw)(grid),
                ls="--", lw=1, label=f"{name} (anchored)")
      # The theory's orders (r = 1) are far steeper than any measurable range:
      # keep the measured points in view.
      sizes = np.concatenate([f[1] for f in fronts.values()])
      ax.set_ylim(sizes.min() / 3, sizes.max() * 3)

    plot_curves(data, os.path.join(figures, "structured_n_vs_eps.png"),
                xlabel="test MSE / Var(y) reached", ylabel="fewest parameters",
                title="Structured target (Thm 5): N vs eps", logx=True, logy=True,
                extra=theory_lines)
  footer = ""
  if notes and os.path.exists(notes):
    with open(notes) as f:
      footer = f.read()
  write_reproduction(claims, out, footer=footer)
  return claims
