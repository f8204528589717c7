"""The modularity experiment's analysis: N(eps) of the primary, per method and m2.

Rows are a gathered sweep (`sweeps.gather`) of configs/modularity.py: one row per
(data.m2, model.kind, primary width), error averaged over seeds, primary size N_g
(hypernetwork) or N_q (embedding method). For an error level eps, N(eps) is the
smallest primary whose error is <= eps, or None: NOT REACHED by any width tried
(never reported as 0 or as the largest width). Rows whose f / e were enlarged
(the bottleneck check) are kept apart (`split_bottleneck`).
"""

import dataclasses
import math
from typing import Sequence

import numpy as np

from hypernets.errors import ConfigError
from hypernets.experiments import theory

METHODS = ("hypernet", "embedding")
SIZE_NAMES = {"hypernet": "N_g", "embedding": "N_q"}


def primary_size(row: dict) -> int:
  """N_g of a hypernetwork row, N_q of an embedding-method row."""
  return int(row[SIZE_NAMES[row["method"]]])


def split_bottleneck(rows: Sequence[dict], *, base_f_width: int | None = None
                     ) -> tuple[list[dict], list[dict]]:
  """(main rows, bottleneck-check rows): the check rows set model.f_width, larger
  than the main rows' (`base_f_width`, default: the smallest f_width seen, or main
  rows set none)."""
  widths = [r["model.f_width"] for r in rows if "model.f_width" in r]
  if base_f_width is None:
    base_f_width = min(widths) if len(set(widths)) > 1 else None
  check = [r for r in rows if r.get("model.f_width") not in (None, base_f_width)]
  return [r for r in rows if r not in check], check


def curves(rows: Sequence[dict], *, metric: str) -> dict[tuple[int, str], dict]:
  """{(m2, method): {'n': [K], 'error': [K], 'std': [K]}} sorted by primary size.

  Raises ConfigError when a (m2, method) has fewer than two primary sizes: no N(eps)
  curve and no fit can come from one width.
  """
  groups = {}
  for row in rows:
    groups.setdefault((int(row["data.m2"]), row["method"]), []).append(row)
  out = {}
  for (m2, method), chosen in sorted(groups.items()):
    chosen = sorted(chosen, key=primary_size)
    sizes = [primary_size(r) for r in chosen]
    if len(set(sizes)) < 2:
      raise ConfigError(
          f"the modularity sweep has one primary width for {method} at m2={m2} "
          f"({SIZE_NAMES[method]}={sizes[0]}): N(eps) needs at least two widths")
    out[(m2, method)] = {
        "n": np.array(sizes, np.float64),
        "error": np.array([r[metric] for r in chosen], np.float64),
        "std": np.array([r.get(f"{metric}_std", 0.0) for r in chosen], np.float64)}
  return out


def size_reaching(curve: dict, eps: float) -> int | None:
  """N(eps): the smallest primary size whose (seed-mean) error is <= eps; None if
  no size reaches it."""
  reached = np.flatnonzero(curve["error"] <= eps)
  return int(curve["n"][reached[0]]) if reached.size else None


@dataclasses.dataclass
class Ratio:
  """N_q / N_g at one (m2, eps): a value, a lower bound (q not reached), or none."""

  n_g: int | None
  n_q: int | None
  n_q_max: int  # the largest q tried

  @property
  def text(self) -> str:
    if self.n_g is None:
      return "g not reached"
    if self.n_q is None:
      return f"> {self.n_q_max / self.n_g:.3g} (q not reached)"
    return f"{self.n_q / self.n_g:.3g}"

  @property
  def value(self) -> float | None:
    """The ratio, the lower bound when q was not reached, None when g was not."""
    if self.n_g is None:
      return None
    return (self.n_q or self.n_q_max) / self.n_g


def ratios(data: dict, eps_levels) -> dict[int, dict[float, Ratio]]:
  """{m2: {eps: Ratio}} from `curves` output; eps_levels: one list for every m2, or
  {m2: list}."""
  out = {}
  for m2 in sorted({m2 for m2, _ in data}):
    if (m2, "hypernet") not in data or (m2, "embedding") not in data:
      continue
    g, q = data[(m2, "hypernet")], data[(m2, "embedding")]
    out[m2] = {eps: Ratio(size_reaching(g, eps), size_reaching(q, eps), int(q["n"].max()))
               for eps in (eps_levels[m2] if isinstance(eps_levels, dict) else eps_levels)}
  return out


def frontier(curve: dict) -> tuple[np.ndarray, np.ndarray]:
  """(eps [K], N [K]): each error reached and the fewest parameters reaching it
  (points that improve on every smaller primary)."""
  eps, sizes, best = [], [], np.inf
  for n, err in zip(curve["n"], curve["error"]):
    if err < best:
      best = err
      eps.append(err)
      sizes.append(n)
  return np.array(eps), np.array(sizes)


def fitted_exponent(curve: dict) -> float | None:
  """-d log N / d log eps fitted on the frontier (N ~ eps^-k: returns k); None when
  fewer than two sizes improved on each other."""
  eps, sizes = frontier(curve)
  if len(eps) < 2 or np.ptp(np.log(eps)) == 0:
    return None
  return -theory.fit_loglog_slope(eps, sizes)[0]


def theory_exponents(*, m1: int, m2: int, r: float = 1.0) -> dict[str, float]:
  """The orders k of N ~ eps^-k: g (Thm 4, m1/r), q (Thm 2, m1+m2 at r=1; Thm 3,
  min(m1+m2, 2 m1))."""
  return {
      "g (Thm 4)": -float(theory.predicted_slope(theory.thm4_primary_params, m1=m1, r=r)),
      "q (Thm 2)": -float(theory.predicted_slope(theory.thm2_embedding_q_params, m1=m1,
                                                 m2=m2)),
      "q (Thm 3)": -float(theory.predicted_slope(theory.thm3_embedding_q_params, m1=m1,
                                                 m2=m2)),
  }


def bottleneck_effects(main: Sequence[dict], check: Sequence[dict], *, metric: str
                       ) -> list[dict]:
  """For each check row, its error next to the main row's at the same (m2, method,
  primary width): {'m2', 'method', 'n', 'base', 'doubled', 'ratio'}."""
  out = []
  for row in check:
    base = [r for r in main if r["data.m2"] == row["data.m2"]
            and r["method"] == row["method"] and primary_size(r) == primary_size(row)]
    if base:
      out.append({"m2": int(row["data.m2"]), "method": row["method"],
                  "n": primary_size(row), "base": float(base[0][metric]),
                  "doubled": float(row[metric]),
                  "ratio": float(row[metric]) / float(base[0][metric])})
  return out


def default_eps_levels(data: dict, count: int = 3, *, m2: int | None = None
                       ) -> list[float]:
  """`count` log-spaced error levels, from the worst error of any method's largest
  primary down to 1.1x the hypernetwork's best error (its floor): levels some method
  reaches, rounded to 2 significant digits. Over the curves of one `m2`, or (None)
  of all: then the lowest level is one the hypernetwork reaches at every m2."""
  data = {k: c for k, c in data.items() if m2 is None or k[0] == m2}
  best = max(c["error"].min() for (_, m), c in data.items() if m == "hypernet")
  worst = max(c["error"][-1] for c in data.values())
  lo, hi = 1.1 * best, max(worst, 2.2 * best)
  return [float(f"{v:.2g}") for v in np.geomspace(hi, lo, count)]


def n_vs_m2(data: dict, eps: float) -> dict[str, tuple[list[int], list[int | None]]]:
  """{method: (m2s, N(eps) or None)} for the 'N at fixed eps vs m2' figure."""
  out = {}
  for method in METHODS:
    m2s = sorted(m2 for m2, m in data if m == method)
    out[method] = (m2s, [size_reaching(data[(m2, method)], eps) for m2 in m2s])
  return out


def plot_eps_vs_n(data: dict, path: str, *, m1: int, metric_label: str) -> str:
  """eps vs N on log-log axes, one panel per m2, theory slopes anchored at the
  smallest primary of each method (dashed); returns path."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  m2s = sorted({m2 for m2, _ in data})
  fig, axes = plt.subplots(1, len(m2s), figsize=(3.4 * len(m2s), 3.4), sharey=True,
                           squeeze=False)
  colors = {"hypernet": "C1", "embedding": "C0"}
  for ax, m2 in zip(axes[0], m2s):
    for method in METHODS:
      if (m2, method) not in data:
        continue
      c = data[(m2, method)]
      label = f"{method} ({SIZE_NAMES[method]})"
      ax.errorbar(c["n"], c["error"], yerr=c["std"], marker="o", ms=3,
                  color=colors[method], label=label)
      order = (m1 if method == "hypernet" else min(m1 + m2, 2 * m1))
      grid = np.geomspace(c["n"].min(), c["n"].max(), 10)
      # eps ~ N^(-1/k) through the smallest primary's point (r = 1).
      ax.plot(grid, c["error"][0] * (grid / c["n"][0]) ** (-1.0 / order), ls="--", lw=1,
              color=colors[method], label=f"theory N ~ eps^-{order}" if m2 == m2s[0] else None)
    ax.set(xscale="log", yscale="log", xlabel="primary parameters N", title=f"m2 = {m2}")
    ax.grid(alpha=0.3, which="both")
  axes[0][0].set_ylabel(metric_label)
  axes[0][0].legend(fontsize=7)
  return _save(fig, path)


def plot_n_vs_m2(data: dict, path: str, *, eps: float) -> str:
  """N(eps) against m2 per method; not reached: an open marker above the largest
  size tried, with an arrow. Returns path."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(4.8, 3.6))
  colors = {"hypernet": "C1", "embedding": "C0"}
  for method, (m2s, sizes) in n_vs_m2(data, eps).items():
    top = max(data[(m2, method)]["n"].max() for m2 in m2s)
    reached = [(m, n) for m, n in zip(m2s, sizes) if n is not None]
    if reached:
      ax.plot(*zip(*reached), marker="o", color=colors[method],
              label=f"{method} ({SIZE_NAMES[method]})")
    for m, n in zip(m2s, sizes):
      if n is None:
        ax.plot([m], [top * 1.5], marker="^", mfc="none", color=colors[method])
    if any(n is None for n in sizes):
      ax.plot([], [], marker="^", mfc="none", ls="", color=colors[method],
              label=f"{method}: not reached (> {int(top)})")
  ax.set(xscale="log", yscale="log", xlabel="m2 (dimension of I)",
         ylabel=f"smallest primary reaching eps = {eps:g}", title="Primary size vs m2")
  ax.set_xticks(sorted({m2 for m2, _ in data}), labels=[str(m) for m in sorted({m2 for m2, _ in data})])
  ax.minorticks_off()
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=7)
  return _save(fig, path)


def _save(fig, path: str) -> str:
  import os  # pylint: disable=g-import-not-at-top
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=120)
  plt.close(fig)
  os.replace(tmp, path)
  return path


def summary_lines(data: dict, *, eps_levels: Sequence[float], m1: int) -> list[str]:
  """Human-readable lines: ratios per m2 and eps, fitted vs theory exponents."""
  lines = []
  for m2, by_eps in ratios(data, eps_levels).items():
    cells = ", ".join(f"eps {eps:g}: N_g {r.n_g or 'not reached'}, N_q "
                      f"{r.n_q or 'not reached'}, N_q/N_g {r.text}" for eps, r in by_eps.items())
    fits = {m: fitted_exponent(data[(m2, m)]) for m in METHODS if (m2, m) in data}
    theory_k = theory_exponents(m1=m1, m2=m2)
    fit_text = ", ".join(f"{SIZE_NAMES[m]} ~ eps^-{k:.2f}" if k is not None else
                         f"{SIZE_NAMES[m]}: no fit" for m, k in fits.items())
    lines.append(f"m2={m2}: {cells}; fitted {fit_text}; theory (r=1) "
                 + ", ".join(f"{k} {v:g}" for k, v in theory_k.items()))
  return lines


def is_finite(value) -> bool:
  return value is not None and math.isfinite(value)


def claims(rows: Sequence[dict], *, metric: str, m1: int, command: str = "",
           eps_levels: Sequence[float] | None = None, **kwargs):
  """(claims, curves, common eps) of the modularity sweep: per m2, N_q / N_g at
  three eps levels (`eps_levels`, or levels within that m2's reach); N(eps) against
  m2 at the common eps (the middle given level, or the lowest level every m2's g
  reaches); the 2x-f/e bottleneck check."""
  from hypernets.experiments import claims as claims_lib  # pylint: disable=g-import-not-at-top
  texts = ("Thms 2-4 (modularity): the hypernetwork's primary g reaches each error with "
           "fewer parameters than the embedding method's q (N_q / N_g > 1)",
           "Thm 4 vs Thms 2-3: the g needed for a fixed error does not grow with m2; "
           "the q needed does",
           "f and e are large enough not to be the bottleneck (2x wider: error within "
           "-33%)")
  if not rows:
    return [claims_lib.not_run(t, command, **kwargs) for t in texts], {}, []
  main, check = split_bottleneck(rows)
  data = curves(main, metric=metric)
  m2s = sorted({m2 for m2, _ in data})
  # Per m2, levels within that m2's reach (the hypernetwork's floor, set by f, rises
  # with m2); the m2 trend at one level every m2's g reaches.
  levels = {m2: list(eps_levels) if eps_levels else default_eps_levels(data, m2=m2)
            for m2 in m2s}
  common = (eps_levels[len(eps_levels) // 2] if eps_levels else
            default_eps_levels(data)[-1])
  out = []
  for m2, by_eps in ratios(data, levels).items():
    values = [r.value for r in by_eps.values()]
    wins = sum(v is not None and v > 1 for v in values)
    fits = {m: fitted_exponent(data[(m2, m)]) for m in METHODS}
    theory_k = theory_exponents(m1=m1, m2=m2)
    measured = "; ".join(f"eps {eps:g}: N_g {r.n_g or 'not reached'}, N_q "
                         f"{r.n_q or 'not reached'}, N_q/N_g {r.text}"
                         for eps, r in by_eps.items())
    measured += ("; fitted exponents k (N ~ eps^-k): "
                 + ", ".join(f"{SIZE_NAMES[m]} {k:.2f}" if k is not None else
                             f"{SIZE_NAMES[m]} none" for m, k in fits.items())
                 + "; theory (r=1): " + ", ".join(f"{k} {v:g}" for k, v in theory_k.items()))
    verdict = ("holds" if wins == len(values) else "partly" if wins else "does not hold")
    out.append(claims_lib.Claim(f"{texts[0]}, m2 = {m2}", command, measured,
                                claims_lib.seeds_text(main), verdict, **kwargs))
  mid = common
  trend = n_vs_m2(data, mid)
  (m2s_g, n_g), (m2s_q, n_q) = trend["hypernet"], trend["embedding"]
  g_flat = n_g[0] is not None and n_g[-1] is not None and n_g[-1] <= 2 * n_g[0]
  q_grows = n_q[0] is not None and (n_q[-1] is None or n_q[-1] > 2 * n_q[0])
  shown = lambda ns: ", ".join("not reached" if n is None else str(n) for n in ns)
  out.append(claims_lib.Claim(
      texts[1], command,
      f"at eps {mid:g}, m2 = {', '.join(map(str, m2s_g))}: N_g {shown(n_g)}; "
      f"N_q {shown(n_q)}", claims_lib.seeds_text(main),
      "holds" if g_flat and q_grows else "partly" if g_flat or q_grows else "does not hold",
      "flat: N at the largest m2 <= 2x N at the smallest; grows: > 2x or not reached",
      **kwargs))
  effects = bottleneck_effects(main, check, metric=metric)
  if effects:
    ok = all(e["ratio"] >= 0.67 for e in effects)
    out.append(claims_lib.Claim(
        texts[2], command, "; ".join(
            f"m2={e['m2']} {e['method']} N={e['n']}: {e['base']:.3g} -> {e['doubled']:.3g}"
            for e in effects), claims_lib.seeds_text(check),
        "holds" if ok else "does not hold", **kwargs))
  return claims_lib.guard_one_seed(out, rows), data, common
