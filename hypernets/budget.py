"""Parameter-budget matching: choose a width so a model has a given total size."""

import copy
import math

from absl import logging
import jax
import ml_collections

from hypernets import models
from hypernets import params as params_lib
from hypernets.errors import ConfigError

# The width each kind adjusts to meet a budget (its depth is kept).
BUDGET_KNOBS = {"hypernet": "f_width", "embedding": "e_width", "standard": "standard_widths"}


def total_params(model_config: ml_collections.ConfigDict, *, example_cond: jax.Array,
                 example_x: jax.Array, output_dim: int) -> int:
  """Trainable parameters of the model `model_config` describes (no arrays are made)."""
  model, _ = models.create_model(model_config, example_cond=example_cond,
                                 example_x=example_x, output_dim=output_dim)
  variables = jax.eval_shape(model.init, jax.random.key(0), example_cond, example_x)
  return params_lib.count_params(variables["params"])


def _with_width(model_config, width: int):
  config = copy.deepcopy(model_config)
  knob = BUDGET_KNOBS[config.kind]
  if knob == "standard_widths":
    config.standard_widths = (width,) * len(config.standard_widths)
  else:
    config[knob] = width
  return config


def _quadratic_guess(count, target_total: int) -> int:
  """The width at which a total a w^2 + b w + c, fitted to the counts at widths 1, 2
  and 3, reaches target_total (at least 1). An MLP's total is exactly such a quadratic in
  its hidden width; for any other model this is only where the search starts."""
  c1, c2, c3 = count(1), count(2), count(3)
  a = (c3 - 2 * c2 + c1) / 2
  b = c2 - c1 - 3 * a
  c = c1 - a - b
  if a > 0:
    width = (-b + math.sqrt(max(b * b - 4 * a * (c - target_total), 0.0))) / (2 * a)
  elif b > 0:
    width = (target_total - c) / b
  else:
    width = 1
  return max(1, int(width))


def match_budget(model_config: ml_collections.ConfigDict, *, target_total: int,
                 example_cond: jax.Array, example_x: jax.Array, output_dim: int,
                 tolerance: float = 0.02, max_width: int = 1 << 16
                 ) -> tuple[ml_collections.ConfigDict, int]:
  """A copy of `model_config` whose width knob (BUDGET_KNOBS) gives ~target_total params.

  The total grows with the width, so the closest width is found by a search bracketing
  target_total, started where a quadratic through the totals at widths 1-3 reaches it
  (exact for MLPs: 5 model traces instead of ~17 from width 1). Returns (config, total).
  Raises ConfigError if the closest total is off by more than `tolerance` (relative),
  e.g. when one width step is too coarse, or if it needs a width above `max_width`.
  """
  counts = {}

  def count(width: int) -> int:
    if width not in counts:
      counts[width] = total_params(_with_width(model_config, width),
                                   example_cond=example_cond, example_x=example_x,
                                   output_dim=output_dim)
    return counts[width]

  guess = min(_quadratic_guess(count, target_total), max_width)
  # Bracket: count(lo) < target <= count(hi), or lo == hi == 1 when width 1 is enough.
  if count(guess) < target_total:  # gallop up
    lo, step = guess, 1
    while True:
      if lo >= max_width:
        raise ConfigError(f"config.model.param_budget={target_total} needs "
                          f"{BUDGET_KNOBS[model_config.kind]} > {max_width}")
      hi = min(guess + step, max_width)
      if count(hi) >= target_total:
        break
      lo, step = hi, step * 2
  else:  # gallop down
    lo = hi = guess
    step = 1
    while hi > 1:
      lo = max(1, guess - step)
      if count(lo) < target_total:
        break
      hi, step = lo, step * 2
  while hi - lo > 1:  # bisection keeps the bracket
    mid = (lo + hi) // 2
    if count(mid) < target_total:
      lo = mid
    else:
      hi = mid
  width = min((lo, hi), key=lambda w: abs(count(w) - target_total))
  total = count(width)
  if abs(total - target_total) > tolerance * target_total:
    raise ConfigError(
        f"config.model.param_budget={target_total} cannot be met within "
        f"{tolerance:.0%} by config.model.{BUDGET_KNOBS[model_config.kind]} for "
        f"kind {model_config.kind!r}: closest is {total} (width {width})")
  return _with_width(model_config, width), total


def apply_param_budget(model_config: ml_collections.ConfigDict, *, example_cond: jax.Array,
                       example_x: jax.Array, output_dim: int
                       ) -> tuple[ml_collections.ConfigDict, dict]:
  """`model_config` with its width knob set to meet `model_config.param_budget` (if > 0).

  Returns (model config, {knob: chosen width}) ({} when no budget is set). The
  tolerance is `model_config.param_budget_tolerance` (default 2%).
  """
  if not model_config.param_budget:
    return model_config, {}
  matched, total = match_budget(
      model_config, target_total=model_config.param_budget,
      tolerance=model_config.get("param_budget_tolerance", 0.02),
      example_cond=example_cond, example_x=example_x, output_dim=output_dim)
  knob = BUDGET_KNOBS[model_config.kind]
  logging.info("Parameter budget %d: model.%s = %s (%d parameters)",
               model_config.param_budget, knob, matched[knob], total)
  return matched, {knob: matched[knob]}
