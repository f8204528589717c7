"""Images as functions: hypernetwork vs FiLM vs embedding method at matched primary size.

`run(config, workdir)` trains every (method, width) point of
`config.image_functions` into workdir/<point> (finished points are skipped, killed
ones resume), then writes workdir/image_functions.json (one row per point: PSNR per
split, mean and std over seeds), workdir/image_functions.md (the table),
psnr_vs_primary.png and reconstructions.png. PSNR = 10 log10(1 / MSE) of
intensities in [0, 1], from each seed's mean squared error over all pixels of the
split. The data come from the task named by `config.data.name`
(hypernets/data/image_functions.py) through the task extension point.
"""

import json
import math
import os

import jax
import ml_collections
import numpy as np

from hypernets import data as data_lib
from hypernets import models
from hypernets import training
from hypernets.config import check_widths
from hypernets.data import image_functions as task_lib
from hypernets.errors import ConfigError
from hypernets.experiments import sweeps
from hypernets.training import checkpoints
from hypernets.training import state as state_lib
from hypernets.training import steps
from hypernets.training import workdir as workdir_lib

SPLITS = (("train", "observed pixels"), ("heldout_pixels", "held-out pixels"),
          ("test", "held-out images"))


def mlp_params(widths, *, d_in: int, d_out: int = 1) -> int:
  """Parameters of an MLP d_in -> widths -> d_out with biases."""
  sizes = (d_in,) + tuple(widths) + (d_out,)
  return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def matched_q_width(width: int, *, embedding_dim: int) -> int:
  """Hidden width of q (2 layers on [x, e(I)]) whose N_q is closest to g's N_g (width w)."""
  target = mlp_params((width, width), d_in=2)
  return min(range(1, 4 * width + 2), key=lambda w: abs(
      mlp_params((w, w), d_in=2 + embedding_dim) - target))


# family_activation: the model family, and g's (q's) activation.
METHODS = tuple(f"{family}_{activation}" for family in ("hypernet", "film", "embedding")
                for activation in ("relu", "sine"))


def check_fields(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError (one line) unless image_functions.methods and .widths are
  non-empty tuples of known methods and positive widths."""
  methods = config.image_functions.methods
  if (not isinstance(methods, (tuple, list)) or not methods
      or any(m not in METHODS for m in methods)):
    raise ConfigError(f"config.image_functions.methods must be a non-empty tuple of "
                      f"{METHODS}, got {methods!r}")
  root = {"image_functions": config.image_functions}
  check_widths(root, "image_functions.widths")


def points(config: ml_collections.ConfigDict) -> list[dict]:
  """The sweep points: one per (method, width), each a 'conditioned' run."""
  check_fields(config)
  out = []
  for method in config.image_functions.methods:
    family, _, activation = method.partition("_")
    for width in config.image_functions.widths:
      point = {"experiment": "conditioned", "model.primary.activation": activation,
               "model.primary.widths": (width, width)}
      if family == "embedding":
        q = matched_q_width(width, embedding_dim=config.model.embedding_dim)
        point.update({"model.kind": "embedding", "model.q_widths": (q, q)})
      else:
        point.update({"model.kind": "hypernet",
                      "model.generator": "film" if family == "film" else "heads"})
      out.append(point)
  return out


def _method(point) -> str:
  family = ("embedding" if point["model.kind"] == "embedding" else
            "film" if point["model.generator"] == "film" else "hypernet")
  return f"{family}_{point['model.primary.activation']}"


def psnr(mse) -> np.ndarray:
  return -10.0 * np.log10(np.asarray(mse, np.float64))


def summarize(config, workdir: str) -> list[dict]:
  """One row per finished point: method, width, primary/total params, PSNR mean/std."""
  rows = []
  for point in points(config):
    path = os.path.join(workdir, sweeps.point_name(point), "results.json")
    if not os.path.exists(path):
      continue
    with open(path) as f:
      results = json.load(f)
    counts = results["param_counts"]
    row = {"method": _method(point), "width": point["model.primary.widths"][0],
           "primary_params": counts.get("N_g", counts.get("N_q")),
           "total_params": counts["total"], "point": sweeps.point_name(point)}
    for split, _ in SPLITS:
      values = psnr(results["per_seed"][f"{split}_mse"])
      row[f"psnr_{split}"], row[f"psnr_{split}_std"] = float(values.mean()), float(values.std())
    rows.append(row)
  return rows


def format_table(rows: list[dict], *, num_seeds: int) -> str:
  """Markdown table of `summarize` rows (PSNR in dB, mean +- std over seeds)."""
  head = ("| method | g / q width | primary params | total params | "
          + " | ".join(f"PSNR {name} (dB)" for _, name in SPLITS) + " |")
  lines = [head, "|" + "---|" * (4 + len(SPLITS))]
  for row in rows:
    cells = [f"{row[f'psnr_{s}']:.2f} +- {row[f'psnr_{s}_std']:.2f}" if num_seeds > 1
             else f"{row[f'psnr_{s}']:.2f}" for s, _ in SPLITS]
    primary = ("N_q" if row["method"].startswith("embedding") else "N_g")
    lines.append(f"| {row['method']} | {row['width']} | {primary} = {row['primary_params']:,} | "
                 f"{row['total_params']:,} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def plot_psnr(rows: list[dict], path: str) -> str:
  """PSNR on held-out images and held-out pixels vs primary parameters, per method."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharex=True)
  for ax, (split, name) in zip(axes, (SPLITS[2], SPLITS[1])):
    for method in dict.fromkeys(r["method"] for r in rows):
      mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["primary_params"])
      n = np.array([r["primary_params"] for r in mine])
      mean = np.array([r[f"psnr_{split}"] for r in mine])
      std = np.array([r[f"psnr_{split}_std"] for r in mine])
      ax.plot(n, mean, marker="o", label=method,
              linestyle="--" if method.endswith("sine") else "-")
      ax.fill_between(n, mean - std, mean + std, alpha=0.15)
    ax.set_xscale("log")
    ax.set_xlabel("primary parameters (N_g; N_q for the embedding method)")
    ax.set_ylabel(f"PSNR on {name} (dB)")
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def final_model_and_state(point_config, point_dir: str, dataset):
  """(model, TrainState with a leading seed axis) restored from a finished point."""
  example = jax.tree.map(lambda a: a[0], dataset.test)
  _, _, model, _, tx = steps.create_model_and_optimizer(point_config, example,
                                                        output_dim=dataset.output_dim)
  init_keys, _ = state_lib.init_and_data_keys(point_config.seed, point_config.num_seeds)
  conds = dataset.eval_splits["train"].cond[:256]
  state = jax.jit(jax.vmap(lambda k: steps.create_train_state(model, tx, k, example, conds)))(
      init_keys)
  manager = checkpoints.create_manager(point_dir, max_to_keep=1)
  try:
    state = checkpoints.restore_or_initialize(manager, state)
  finally:
    manager.close()
  return model, state


def plot_reconstructions(config, workdir: str, path: str) -> str:
  """Held-out test images (top), their observed pixels, then each method's
  reconstruction (seed 0) at width `figure_width`."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  dataset = data_lib.create_dataset(config.data)
  count = config.image_functions.figure_images
  test = jax.tree.map(lambda a: a[:count], dataset.test)
  side = int(round(math.sqrt(test.x.shape[1])))
  chosen = [p for p in points(config)
            if p["model.primary.widths"][0] == config.image_functions.figure_width]
  pictures = [("image", np.asarray(test.y).reshape(count, side, side))]
  heldout = task_lib.heldout_mask(side * side, fraction=config.data.heldout_pixel_fraction,
                                  seed=config.data.seed)
  shown = np.where(heldout, np.nan, np.asarray(test.y)[..., 0])  # held out: blank
  pictures.append(("observed", shown.reshape(count, side, side)))
  for point in chosen:
    point_dir = os.path.join(workdir, sweeps.point_name(point))
    if not os.path.exists(os.path.join(point_dir, "results.json")):
      continue
    model, state = final_model_and_state(sweeps.apply_point(config, point), point_dir, dataset)
    first = jax.tree.map(lambda a: a[0], state)
    out = models.apply_batched(model, {"params": first.params, **first.model_state},
                               test.cond, test.x)
    pictures.append((_method(point), np.clip(np.asarray(out), 0, 1).reshape(count, side, side)))
  fig, axes = plt.subplots(len(pictures), count, figsize=(1.1 * count, 1.2 * len(pictures)),
                           squeeze=False)
  cmap = plt.get_cmap("gray").with_extremes(bad="tab:red")  # held out, 'observed' row
  for r, (label, images) in enumerate(pictures):
    for c in range(count):
      axes[r, c].imshow(images[c], cmap=cmap, vmin=0, vmax=1)
      axes[r, c].set_xticks([])
      axes[r, c].set_yticks([])
    axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def run(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  """Trains every point, then writes the rows, table and figures (module docstring)."""
  sweeps.run_sweep(config, points(config), workdir, train_fn=training.train_and_evaluate)
  rows = summarize(config, workdir)
  workdir_lib.write_json_atomic(os.path.join(workdir, "image_functions.json"), rows)
  workdir_lib.write_text_atomic(os.path.join(workdir, "image_functions.md"),
                                format_table(rows, num_seeds=config.num_seeds) + "\n")
  plot_psnr(rows, os.path.join(workdir, "psnr_vs_primary.png"))
  plot_reconstructions(config, workdir, os.path.join(workdir, "reconstructions.png"))
  return rows
