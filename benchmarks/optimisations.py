"""The 'before' side of the library's optimisations, kept so they can be re-measured.

Every optimisation the benchmarks called for is recorded as before / after figures,
measured side by side (interleaved repeats, one process) by the `optimisations`
section of `python -m benchmarks.run`; benchmarks/OPTIMISATIONS.md is the note.

  row_sampler   the library's samplers now draw a batch's conditioning inputs with
                `hypernets.data.dataset.choose_rows` (`jax.lax.top_k` of uniforms).
                Before, they used `jax.random.choice(key, n, (k,), replace=False)`,
                which shuffles all n indices (a sort of n keys, per seed) to keep k.
                `previous_sampler` rebuilds that sampler for the 'before' rows.
  primary_dot   alternatives to the per-example primary's batched dot_general (what
                `jax.vmap` of g(x; theta_I) lowers to), measured on the primaries of
                (a) and (c), forward + backward: none beats the dot on XLA:CPU, so
                the library keeps it (`primary_alternatives`).
"""

import functools
from typing import Callable

from typing import Any

import jax
import jax.numpy as jnp

from benchmarks import jax_steps
from benchmarks import sections
from benchmarks import suites as suites_lib
from benchmarks import timing
from hypernets import data as data_lib
from hypernets.data import dataset as dataset_lib
from hypernets.data import rotation


def _rows_by_choice(key: jax.Array, num_rows: int, num_chosen: int) -> jax.Array:
  """The library's row draw before `choose_rows`: a full shuffle, then the first k."""
  return jax.random.choice(key, num_rows, (num_chosen,), replace=False)


def sample_batch_before(split: data_lib.Split, key: jax.Array, *, num_conditions: int,
                        points_per_condition: int, step=0) -> data_lib.Split:
  """`hypernets.data.sample_batch` as it was, rows by `jax.random.choice`."""
  del step
  cond_key, point_key = jax.random.split(key)
  rows = _rows_by_choice(cond_key, split.num_conditions, num_conditions)
  return dataset_lib.take_rows(split, rows, point_key,
                               points_per_condition=points_per_condition)


def sample_rotation_batch_before(images_uint8: jax.Array, key: jax.Array, *,
                                 num_conditions: int, points_per_condition: int,
                                 mean: float, std: float,
                                 num_classes: int = 12, step=0,
                                 order_seed: int | None = None) -> data_lib.Split:
  """`rotation.sample_rotation_batch` as it was, images by `jax.random.choice`
  (random rows: the quick suite's configs do not ask for epoch order)."""
  del points_per_condition, step, order_seed
  row_key, angle_key = jax.random.split(key)
  rows = _rows_by_choice(row_key, images_uint8.shape[0], num_conditions)
  return rotation.rotation_batch(images_uint8[rows], angle_key, mean=mean, std=std,
                                 num_classes=num_classes)


def previous_sampler(sampler: Callable | None) -> Callable:
  """The pre-optimisation counterpart of a dataset's sampler (None = sample_batch)."""
  if sampler is None or sampler is data_lib.sample_batch:
    return sample_batch_before
  if (isinstance(sampler, functools.partial)
      and sampler.func is rotation.sample_rotation_batch):
    return functools.partial(sample_rotation_batch_before, **sampler.keywords)
  raise NotImplementedError(f"no previous version of sampler {sampler}")


# --------------------------------------------------------------- per-example primary


def _dot(x, w):
  """[P, K] @ [K, N]: under vmap, a dot_general with a batch dimension (the library)."""
  return x @ w


def _broadcast_reduce(x, w):
  """Multiply-and-reduce over K, no dot: sum_k x[:, k, None] * w[k]."""
  return jnp.sum(x[..., :, None] * w, axis=-2)


def _transposed(x, w):
  """(w^T x^T)^T: the dot with points as the minor (vector) dimension."""
  return jnp.einsum("kn,pk->np", w, x).T


PRIMARY_FORMULATIONS = {"dot (library)": _dot, "broadcast-reduce": _broadcast_reduce,
                        "transposed dot": _transposed}


def primary_grad_fn(matmul: Callable) -> Callable:
  """grad of the MSE of a per-example ReLU MLP g(x; theta_b), vmapped over b.

  params: list of (w [B, d_in, d_out], b [B, d_out]); x [B, P, d_0]; y [B, P, d_L].
  The primary's part of a hypernetwork's train step (f excluded).
  """

  def g(params, x):
    h = x
    for i, (w, b) in enumerate(params):
      h = matmul(h, w) + b
      if i < len(params) - 1:
        h = jax.nn.relu(h)
    return h

  def loss(params, x, y):
    return jnp.mean(jnp.square(jax.vmap(g)(params, x) - y))

  return jax.grad(loss)


def primary_problem(*, conditions: int, points: int, sizes: tuple[int, ...]):
  """(params, x, y) for `primary_grad_fn`: per-example weights of an MLP of `sizes`."""
  key = jax.random.key(0)
  params = [(0.1 * jax.random.normal(jax.random.fold_in(key, i), (conditions, a, b)),
             jnp.zeros((conditions, b)))
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
  x = jax.random.normal(key, (conditions, points, sizes[0]))
  y = jnp.zeros((conditions, points, sizes[-1]))
  return params, x, y


# --------------------------------------------------------------- the section


def run_row_sampler(suite: suites_lib.Suite, *, roof: sections.Roof) -> dict[str, Any]:
  """Library step with the previous row sampler (before) and the library's (after)."""
  # Cases timed together (interleaved): each comparison alone; the seeds runs as one
  # group, so their S-seed / S x 1-seed ratio sees one machine load.
  groups = [[(c.title, sections.load_config(c.config, c.arg, c.overrides))]
            for c in suite.comparisons]
  groups.append([(f"seeds S={s}", sections.load_config(*suite.seeds_config,
                                                        overrides=(("num_seeds", s),)))
                 for s in (1, max(suite.seeds))])
  rows = []
  for group in groups:
    steps = {}
    for title, config in group:
      steps[(title, "before")] = (jax_steps.build_cached(
          config, sampler_override=previous_sampler), "library")
      steps[(title, "after")] = (jax_steps.build_cached(config), "library")
    timed = sections.time_jax_steps(steps, suite, roof=roof)
    for title, config in group:
      before, after = timed[(title, "before")], timed[(title, "after")]
      rows.append({"benchmark": title, "seeds": config.num_seeds,
                   "batch_conditions": config.batch.conditions,
                   "batch_points": config.batch.points, "before": before, "after": after,
                   "speedup": before["step_s"] / after["step_s"]})
  out = {"change": "a batch's rows by jax.lax.top_k of uniforms "
                   "(hypernets.data.dataset.choose_rows) instead of "
                   "jax.random.choice(replace=False)",
         "step": "library", "rows": rows}
  by_seeds = {r["seeds"]: r for r in rows if r["benchmark"].startswith("seeds")}
  many = max(by_seeds)
  if 1 in by_seeds and many > 1:
    out["seeds_vs_separate_runs"] = {
        "seeds": many, **{label: by_seeds[many][label]["step_s"]
                          / (many * by_seeds[1][label]["step_s"])
                          for label in ("before", "after")}}
  return out


PRIMARY_CASES = (
    ("(a) g = 784->10->12, 64 conditions x 1 point", dict(conditions=64, points=1,
                                                          sizes=(784, 10, 12))),
    ("(c) g = 10->16->1, 256 conditions x 128 points", dict(conditions=256, points=128,
                                                            sizes=(10, 16, 1))),
)


def run_primary_formulations(suite: suites_lib.Suite) -> dict[str, Any]:
  """Forward + backward of the per-example primary, each formulation of its matmul."""
  rows = []
  for title, sizes in PRIMARY_CASES:
    args = primary_problem(**sizes)
    runners = {}
    for name, matmul in PRIMARY_FORMULATIONS.items():
      compiled = jax.jit(primary_grad_fn(matmul)).lower(*args).compile()

      def run_steps(n, compiled=compiled):
        out = None
        for _ in range(n):
          out = compiled(*args)
        jax.block_until_ready(out)

      runners[name] = run_steps
    timed = timing.measure_interleaved(runners, **sections.measure_kwargs(suite))
    library = timed["dot (library)"]["step_s"]
    rows.append({"case": title, **sizes, "formulations": {
        name: {**t, "vs_library": library / t["step_s"]} for name, t in timed.items()}})
  return {"change": "per-example primary matmul: the batched dot_general of jax.vmap "
                    "(kept) against the alternatives", "adopted": "dot (library)",
          "rows": rows}


def run_optimisations(suite: suites_lib.Suite, *, roof: sections.Roof) -> dict[str, Any]:
  """Before / after figures of each optimisation (benchmarks/py)."""
  return {"row_sampler": run_row_sampler(suite, roof=roof),
          "primary_dot": run_primary_formulations(suite)}
