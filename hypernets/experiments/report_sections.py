"""The report's content: claims and figures of every experiment, and the per-claim
discussion (what the theory predicts / what we measured / why they differ)."""

import os
from typing import Callable

import numpy as np

from hypernets.experiments import claims as claims_lib
from hypernets.experiments import figures as fig
from hypernets.experiments import modularity
from hypernets.experiments import theory

REL = "test MSE / Var(y)"


def _both_regimes(rows: dict, names: dict[str, str], *, x: str, metric: str) -> dict:
  """Curves of both regimes in one dict: 'hypernet (online)', ..."""
  data = {}
  for regime, name in names.items():
    if rows[name]:
      for method, curve in claims_lib.curves(rows[name], x=x, metric=metric).items():
        data[f"{method} ({regime})"] = curve
  return data


def _styles(data: dict) -> dict:
  colors = {"hypernet": "C1", "embedding": "C0", "standard": "C2"}
  return {k: {"color": colors.get(k.split()[0], None),
              "ls": "--" if "(fixed)" in k else "-"} for k in data}


def synthetic(rows, info, figures, drawn) -> list:
  """Claims 1-4 in both regimes, the lr-per-depth check and the paper-scale sweep."""
  out = []
  for regime, name in (("fixed", "synthetic_depth"), ("online", "synthetic_depth_online")):
    claims = claims_lib.depth_claims(rows[name], metric="test_rel_mse", group="synthetic depth",
                                     **info(name))
    gap = claims_lib.train_test_gap(rows[name])
    if gap and claims:
      claims[1].note = (claims[1].note + "; " if claims[1].note else "") + \
          f"hypernet train/test MSE by depth: {gap}"
    out += claims
  out += _depth_lr(rows, info, figures, drawn)
  out += claims_lib.depth_claims(rows["synthetic_depth_paper_online"], metric="test_rel_mse",
                                 group="synthetic depth", **info("synthetic_depth_paper_online"))
  for regime, name in (("fixed", "synthetic_embedding"),
                       ("online", "synthetic_embedding_online")):
    out += claims_lib.embedding_claims(rows[name], metric="test_rel_mse",
                                       group="synthetic embedding", **info(name))
  names = {"fixed": "synthetic_depth", "online": "synthetic_depth_online"}
  data = _both_regimes(rows, names, x="model.f_depth", metric="test_rel_mse")
  if data:
    drawn.append(("Synthetic: error vs depth, both regimes", fig.plot_curves(
        data, os.path.join(figures, "synthetic_depth.png"), xlabel="hidden layers of f / e",
        ylabel=REL, title="Synthetic: error vs depth (dashed: fixed)", logy=True,
        styles=_styles(data))))
  if rows["synthetic_depth"] and "train_mse" in rows["synthetic_depth"][0]:
    data = {}
    for split in ("train", "test"):
      for method, curve in claims_lib.curves(rows["synthetic_depth"], x="model.f_depth",
                                             metric=f"{split}_mse").items():
        data[f"{method} {split}"] = curve
    drawn.append(("Synthetic, fixed regime: train and test MSE vs depth", fig.plot_curves(
        data, os.path.join(figures, "synthetic_depth_train_test.png"),
        xlabel="hidden layers of f / e", ylabel="MSE", logy=True,
        title="Fixed regime: train (dashed) vs test MSE",
        styles={k: {"ls": "--" if "train" in k else "-"} for k in data})))
  runs = []
  for name, regime in (("synthetic_depth_online", "online"), ("synthetic_depth", "fixed")):
    chosen = rows[name]
    if chosen:
      depths = sorted({r["model.f_depth"] for r in chosen})
      for r in chosen:
        if r["model.f_depth"] in (depths[0], depths[-1]) and "workdir" in r:
          runs.append((f"{r['method']} depth {r['model.f_depth']} ({regime})", r["workdir"]))
  if runs:
    drawn.append(("Synthetic: test error vs steps, shallowest and deepest f / e",
                  fig.plot_histories(runs, os.path.join(figures, "synthetic_depth_steps.png"),
                                     metric="test_rel_mse", ylabel=REL,
                                     title="Error vs training steps")))
  names = {"fixed": "synthetic_embedding", "online": "synthetic_embedding_online"}
  data = _both_regimes(rows, names, x="model.embedding_dim", metric="test_rel_mse")
  if data:
    drawn.append(("Synthetic: error vs embedding size", fig.plot_curves(
        data, os.path.join(figures, "synthetic_embedding.png"), xlabel="embedding size E",
        ylabel=REL, title="Embedding method vs E (dashed: fixed)", logx=True, logy=True,
        styles=_styles(data))))
  if rows["synthetic_depth_paper_online"]:
    data = claims_lib.curves(rows["synthetic_depth_paper_online"], x="model.f_depth",
                             metric="test_rel_mse")
    drawn.append(("Synthetic, paper scale, online: error vs depth", fig.plot_curves(
        data, os.path.join(figures, "synthetic_depth_paper_online.png"),
        xlabel="hidden layers of f / e", ylabel=REL, logy=True,
        title="Paper scale (online): error vs depth")))
  return out


def _depth_lr(rows, info, figures, drawn) -> list:
  """Depth claims with the learning rate chosen per depth on the validation sample."""
  name = "synthetic_depth_lr_online"
  chosen = (claims_lib.select_lr(rows[name], select_on="train_mse", metric="test_rel_mse")
            if rows[name] else [])
  claims = claims_lib.depth_claims(chosen, metric="test_rel_mse", group="synthetic depth",
                                   **info(name))
  for claim in claims:
    if claim.verdict != "not run":
      claim.claim += " (lr per depth, chosen on a validation sample)"
      lrs = ", ".join(f"{r['method'][:5]} d{r['model.f_depth']}: "
                      f"{r['optimizer.learning_rate']:g}" for r in chosen)
      claim.note = (claim.note + "; " if claim.note else "") + f"chosen lr: {lrs}"
  if chosen:
    data = claims_lib.curves(chosen, x="model.f_depth", metric="test_rel_mse")
    drawn.append(("Synthetic, online, lr chosen per depth on validation", fig.plot_curves(
        data, os.path.join(figures, "synthetic_depth_lr_online.png"),
        xlabel="hidden layers of f / e", ylabel=REL, logy=True,
        title="Online, best lr per depth (validation)")))
  return claims


def rotation(rows, info, figures, drawn) -> list:
  out = claims_lib.depth_claims(rows["rotation_mnist_depth"], metric="test_error",
                                group="rotation", **info("rotation_mnist_depth"))
  out += claims_lib.lr_claims(rows["rotation_mnist_lr"], metric="test_error",
                              group="rotation", **info("rotation_mnist_lr"))
  out += claims_lib.comparison_claim(
      rows["rotation_official"], metric="test_error", group="rotation",
      text="rotation MNIST, official protocol, depth 4: hypernetwork test error below "
           "the embedding method's", **info("rotation_official"))
  for name in ("rotation_official_depth_seeds", "rotation_official_depth_seeds100"):
    out += claims_lib.depth_claims(rows[name], metric="test_error", group="rotation",
                                   **info(name))
  for name, title in (("rotation_mnist_depth", "error vs depth"),
                      ("rotation_official_depth_seeds", "official protocol, error vs depth"),
                      ("rotation_official_depth_seeds100",
                       "official protocol, 100 seeds, error vs depth")):
    if rows[name]:
      drawn.append((f"Rotation (MNIST digits): {title}", fig.plot_curves(
          claims_lib.curves(rows[name], x="model.f_depth", metric="test_error"),
          os.path.join(figures, f"{name}.png"), xlabel="hidden layers of f / e",
          ylabel="test error", title=f"Rotation: {title}")))
  if rows["rotation_mnist_lr"]:
    drawn.append(("Rotation (MNIST digits): error vs learning rate", fig.plot_curves(
        claims_lib.curves(rows["rotation_mnist_lr"], x="optimizer.learning_rate",
                          metric="test_error"),
        os.path.join(figures, "rotation_mnist_lr.png"), xlabel="learning rate",
        ylabel="test error", title="Rotation: error vs lr", logx=True)))
  return out


def structured(rows, info, figures, drawn, *, m1, m2) -> list:
  claims, fronts = claims_lib.structured_claims(rows["structured"], metric="test_rel_mse",
                                                m1=m1, m2=m2, group="structured",
                                                **info("structured"))
  if fronts:
    data = {m: (eps, n, np.zeros_like(n)) for m, (eps, n) in fronts.items()}

    def theory_lines(ax):
      eps0, n0 = fronts["hypernet"][0][-1], fronts["hypernet"][1][-1]
      grid = np.geomspace(min(f[0].min() for f in fronts.values()),
                          max(f[0].max() for f in fronts.values()), 20)
      for label, fn, kw in (("Thm 5 hypernet", theory.thm5_hypernet_params, dict(w=1)),
                            ("Thm 5 standard", theory.thm5_standard_params, {})):
        ax.plot(grid, theory.anchor(fn, eps0=eps0, n0=n0, m1=m1, m2=m2, r=1.0, **kw)(grid),
                ls="--", lw=1, label=f"{label} (anchored)")
      sizes = np.concatenate([f[1] for f in fronts.values()])
      ax.set_ylim(sizes.min() / 3, sizes.max() * 3)

    drawn.append(("Structured target (Thm 5): N vs eps", fig.plot_curves(
        data, os.path.join(figures, "structured_n_vs_eps.png"),
        xlabel="test MSE / Var(y) reached", ylabel="fewest parameters",
        title="Structured target (Thm 5): N vs eps", logx=True, logy=True,
        extra=theory_lines)))
  return claims


def modularity_section(rows, info, figures, drawn) -> list:
  chosen = rows["modularity"]
  dims = _m1(chosen)
  claims, data, eps = modularity.claims(chosen, metric="test_rel_mse", m1=dims,
                                        group="modularity", **info("modularity"))
  if data:
    drawn.append(("Modularity: error vs primary size, one panel per m2",
                  modularity.plot_eps_vs_n(data, os.path.join(figures, "modularity_eps_vs_n.png"),
                                           m1=dims, metric_label=REL)))
    drawn.append((f"Modularity: primary size needed for eps = {eps:g} vs m2",
                  modularity.plot_n_vs_m2(data, os.path.join(figures, "modularity_n_vs_m2.png"),
                                          eps=eps)))
  return claims


def _m1(rows) -> int:
  import json  # pylint: disable=g-import-not-at-top
  for row in rows:
    path = os.path.join(row.get("workdir", ""), "config.json")
    if os.path.exists(path):
      with open(path) as f:
        return int(json.load(f)["data"]["m1"])
  return 1


def all_claims(rows: dict, *, info: Callable, figures: str, m1=None, m2=None):
  """(claims in table order, [(figure title, path)])."""
  from hypernets.experiments.report import _m1_m2  # pylint: disable=g-import-not-at-top
  drawn = []
  if m1 is None or m2 is None:
    m1, m2 = _m1_m2(rows["structured"]) or (1, 1)
  out = synthetic(rows, info, figures, drawn)
  out += rotation(rows, info, figures, drawn)
  out += structured(rows, info, figures, drawn, m1=m1, m2=m2)
  out += modularity_section(rows, info, figures, drawn)
  commands = {n: info(n)["command"] for n in ("assumption1", "assumption2")}
  out += claims_lib.assumption_claims(rows["assumption1"], rows["assumption2"],
                                      commands=commands, regime="-", scale="CPU",
                                      group="assumptions")
  if rows["assumption2"]:
    r = rows["assumption2"][0]
    drawn.append(("Assumption 2: error vs width", fig.plot_curves(
        {"one hidden layer, ELU": (np.array(r["widths"], np.float64),
                                   np.array(r["test_mse_by_width"]),
                                   np.array(r["test_mse_by_width_std"]))},
        os.path.join(figures, "assumption2_width.png"), xlabel="hidden width",
        ylabel="test MSE", title="Assumption 2: error vs width")))
  return out, drawn


def discussion(claims, why: dict[str, str], theory_text: dict[str, str]) -> str:
  """'## Per claim': for each group, what the theory / paper predicts, the rows and
  verdicts measured (by regime and scale), and why they differ (from the notes)."""
  lines = ["## Per claim: theory, measurement, why they differ", ""]
  for group, text in theory_text.items():
    members = [(row_id, c) for row_id, c in zip(claims_lib.row_ids(claims), claims)
               if c.group == group]
    if not members:
      continue
    measured = "; ".join(f"{row_id} ({c.regime}, {c.scale}) {c.verdict}"
                         for row_id, c in members)
    lines += [f"**{group}.** *Theory / paper:* {text} *Measured:* {measured}. "
              f"*Why they differ:* {why.get(group, 'not discussed in the notes.')}", ""]
  return "\n".join(lines)
