"""Parameter accounting: N_f, N_g, N_e, N_q, N_net and totals."""

from typing import Any, TYPE_CHECKING

import jax
import numpy as np

if TYPE_CHECKING:  # primary.py counts its own parameters with count_params
  from hypernets.primary import Primary

# Top-level parameter collections of each model kind, and the name of their count.
_COUNT_NAMES = {"f": "N_f", "g_shared": "N_g_shared", "e": "N_e", "q": "N_q",
                "net": "N_net"}


def count_params(tree: Any, *, batch_dims: int = 0) -> int:
  """Number of scalars in a pytree of arrays (or ShapeDtypeStructs) of ONE network:
  each leaf's first `batch_dims` axes (e.g. [num_seeds, ...]) are not counted."""
  return int(sum(np.prod(np.shape(leaf)[batch_dims:], dtype=int)
                 for leaf in jax.tree_util.tree_leaves(tree)))


def parameter_counts(params: Any, primary: "Primary | None" = None) -> dict[str, int]:
  """Counts per component of a conditioned model's `params` (the 'params' collection).

  Returns a dict with N_f (hypernetwork f), N_g_shared (g's leaves that are
  ordinary parameters: partial generation, FiLM base weights), N_e, N_q (embedding
  method), N_net (standard network) for the components present, N_g (the
  primary's size) when `primary` is given, and `total`: the number of trainable
  parameters.
  """
  counts = {}
  for key, subtree in params.items():
    counts[_COUNT_NAMES.get(key, f"N_{key}")] = count_params(subtree)
  if primary is not None:
    counts["N_g"] = primary.num_params
  counts["total"] = count_params(params)
  return counts
