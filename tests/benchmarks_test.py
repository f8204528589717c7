"""`python -m benchmarks.run --suite=smoke`: runs, prints its tables and writes every
figure to JSON, with or without PyTorch installed."""

import copy
import importlib.util
import json
import subprocess
import sys

import chex
import jax
import numpy as np
import pytest

from benchmarks import optimisations
from conftest import REPO_ROOT
from hypernets import data as data_lib



HAS_TORCH = importlib.util.find_spec("torch") is not None  # what benchmarks.run checks
POSITIVE_KEYS = ("step_s", "examples_per_s", "flop_per_s", "roofline_fraction", "total_s",
                 "lower_s", "compile_s", "flops_train", "flops_forward", "peak_bytes",
                 "peak_flop_per_s", "num_params")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
  out = tmp_path_factory.mktemp("benchmarks") / "smoke.json"
  proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--suite=smoke",
                         f"--out={out}"], cwd=REPO_ROOT, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(out) as f:
    return proc.stdout, json.load(f)


def _numbers(tree, path=()):
  """(path, value) of every number in a JSON tree."""
  if isinstance(tree, dict):
    for key, value in tree.items():
      yield from _numbers(value, path + (key,))
  elif isinstance(tree, list):
    for i, value in enumerate(tree):
      yield from _numbers(value, path + (i,))
  elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
    yield path, tree


def test_every_section_is_in_the_json(smoke):
  _, results = smoke
  assert results["suite"] == "smoke"
  for key in ("machine", "settings", "roofline", "compare", "precision", "seeds", "scaling",
              "compile", "conv", "workers", "targets", "total_s"):
    assert key in results, key
  machine = results["machine"]
  for key in ("cpu_model", "cpu_cores", "jax", "device_kind", "load_average_start"):
    assert machine[key], key
  assert results["roofline"]["memory"]["peak_bytes_per_s"] > 0
  assert set(results["compare"]) == {"rotation_hypernet", "rotation_embedding",
                                     "synthetic_large_batch"}
  assert [row["name"] for row in results["precision"]["rows"]] == list(results["compare"])
  assert all(row["bf16_speedup"] > 0 for row in results["precision"]["rows"])
  assert [row["seeds"] for row in results["seeds"]["rows"]] == [1, 2]
  assert set(results["scaling"]) >= {"conditions", "points", "primary_width"}
  assert list(results["compile"]) == ["synthetic:small"]
  assert {t["name"].split()[0] for t in results["targets"]} >= {"(c)", "2", "compile", "conv"}
  assert set(results["conv"]["rows"]) == {"shared weights", "heads (library)", "film (library)",
                                          "heads, direct conv"}
  assert "optimisations" not in results  # not in the smoke suite
  assert "loop" not in results


def test_timings_and_counts_are_positive(smoke):
  _, results = smoke
  checked = 0
  for path, value in _numbers(results):
    if path[-1] in POSITIVE_KEYS:
      assert value > 0, path
      checked += 1
  assert checked > 50


def test_jax_steps_and_flop_counts(smoke):
  _, results = smoke
  for name, res in results["compare"].items():
    for which in ("library", "model_only"):
      timing = res["jax"][which]
      assert timing["step_s_min"] <= timing["step_s"] <= timing["step_s_max"], name
      assert timing["compile_s"] > 0
      assert 0 < timing["attainable_fraction"] <= 1
    # The analytic matmul count is close to (below) XLA's count of every op.
    xla = res["jax"]["model_only"]["xla_flops"]
    assert 0.5 * xla < res["flops_train"] <= 1.05 * xla, name
  single = results["seeds"]["rows"][0]
  for which in ("library", "model_only"):
    assert single[which]["vs_separate_runs"] == pytest.approx(1.0)
    assert results["seeds"]["rows"][1][which]["per_seed_step_s"] > 0


def test_each_side_ran_in_its_own_worker(smoke):
  _, results = smoke
  workers = results["workers"]
  assert workers["jax"]["frameworks_loaded"] == ["jax"]
  if HAS_TORCH:
    assert workers["torch"]["frameworks_loaded"] == ["torch"]
    assert workers["torch"]["threads"] == workers["threads"]
  for res in results["compare"].values():
    for row in res["jax"].values():
      single = row["per_step"]
      assert 0 < single["p10"] <= single["median"] <= single["p90"]
  assert results["compare"]["rotation_hypernet"]["jax"]["library_seeds"]["seeds"] == 2


def test_torch_rows_are_timed_or_skipped(smoke):
  _, results = smoke
  for name, res in results["compare"].items():
    if HAS_TORCH:
      variants = ["eager_bmm", "eager_vmap"] + (["data_bmm"] if "rotation" in name else [])
      for variant in variants:
        assert res["torch"][variant]["examples_per_s"] > 0
        assert res["torch"][variant]["per_step"]["p90"] > 0
      assert "skipped" in res["torch"]["compile_bmm"]  # not run in the smoke suite
      assert res["ratios"]["jax_model_only_vs_torch_eager_bmm"] > 0
      if "rotation" in name:
        assert res["ratios"]["jax_library_seeds_vs_torch_data_loop"] > 0
    else:
      assert "skipped" in res["torch"]
      assert "ratios" not in res


def test_prints_the_tables(smoke):
  stdout, _ = smoke
  for heading in ("Roofline", "JAX (the library's jitted step) vs PyTorch", "Mixed precision",
                  "Seeds as a batch",
                  "Scaling", "Compile time", "Conv primary", "Targets"):
    assert heading in stdout, heading
  assert "jax model-only (pre-made batch)" in stdout


def test_tables_and_targets_without_torch(smoke):
  from benchmarks import tables  # pylint: disable=g-import-not-at-top
  from benchmarks import targets  # pylint: disable=g-import-not-at-top
  _, results = smoke
  results = copy.deepcopy(results)
  for res in results["compare"].values():
    res["torch"] = {"skipped": "torch is not installed (or --no_torch)"}
    res.pop("ratios", None)
  results["targets"] = targets.evaluate_targets(results)
  assert not any("PyTorch" in t["name"] for t in results["targets"])
  table = tables.tables(results)
  assert "jax library step (on-device sampling)" in table
  assert "torch eager" not in table


def test_previous_sampler_matches_the_library_sampler_but_for_rows():
  """The optimisations section's 'before' sampler draws batches of the same form."""
  n, points = 50, 6
  split = data_lib.Split(cond=np.arange(n, dtype=np.float32)[:, None],
                         x=np.arange(n * points, dtype=np.float32).reshape(n, points, 1),
                         y=np.zeros((n, points, 1), np.float32))
  key = jax.random.key(0)
  before = optimisations.previous_sampler(None)(split, key, num_conditions=20,
                                               points_per_condition=points)
  after = data_lib.sample_batch(split, key, num_conditions=20, points_per_condition=points)
  for batch in (before, after):
    rows = np.asarray(batch.cond[:, 0]).astype(int)
    assert len(set(rows)) == 20  # without replacement
    np.testing.assert_array_equal(batch.x, split.x[rows])


def test_primary_formulations_compute_the_same_gradient():
  args = optimisations.primary_problem(conditions=3, points=4, sizes=(5, 7, 2))
  args = (args[0], args[1], args[1][..., :2])  # a non-zero target
  grads = {name: jax.jit(optimisations.primary_grad_fn(fn))(*args)
           for name, fn in optimisations.PRIMARY_FORMULATIONS.items()}
  reference = grads.pop("dot (library)")
  assert set(grads) == {"broadcast-reduce", "transposed dot"}
  for grad in grads.values():
    chex.assert_trees_all_close(grad, reference, rtol=1e-4, atol=1e-6)
