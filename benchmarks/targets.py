"""The issues' speed targets, evaluated on a results dict of `benchmarks.run`."""

from typing import Any


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
  """The issue's targets: measured value, threshold, met or missed and by how much."""
  targets = []

  def add(name, value, threshold, higher_is_better, detail):
    met = value >= threshold if higher_is_better else value < threshold
    by = value / threshold
    targets.append({"name": name, "value": value, "threshold": threshold,
                    "comparison": ">=" if higher_is_better else "<", "met": bool(met),
                    "value_over_threshold": by, "detail": detail})

  compare = results.get("compare", {})
  # Issue 15: (a), (b) >= 3x model-only and >= 5x with data; issue 7: (c) >= 2x.
  for key, label, threshold in (("rotation_hypernet", "(a)", 3.0),
                                ("rotation_embedding", "(b)", 3.0),
                                ("synthetic_large_batch", "(c)", 2.0)):
    ratios = compare.get(key, {}).get("ratios")
    if ratios:
      add(f"{label} JAX model-only examples/s / best PyTorch eager",
          ratios["jax_model_only_vs_best_torch_eager"], threshold, True,
          f"best eager variant: {ratios['best_torch_eager']}; own processes")
  for key, label in (("rotation_hypernet", "(a)"), ("rotation_embedding", "(b)")):
    ratios = compare.get(key, {}).get("ratios") or {}
    if "jax_library_vs_torch_data_loop" in ratios:
      seeds = compare[key]["jax"].get("library_seeds")
      beside = (f"; {seeds['seeds']} seeds in one program: "
                f"{ratios['jax_library_seeds_vs_torch_data_loop']:.2f}x per-seed equivalent"
                if seeds else "")
      add(f"{label} JAX library step / PyTorch DataLoader + step (examples/s)",
          ratios["jax_library_vs_torch_data_loop"], 5.0, True,
          "on-device rotation vs PIL rotation" + beside)
  conv = results.get("conv", {}).get("rows", {})
  for name in ("heads (library)", "film (library)"):
    if name in conv:
      add(f"conv primary, {name.split()[0]}: fwd+bwd / shared weights", conv[name]["vs_shared"],
          3.0, False, "per-example kernels as batched matmuls")
  def bound(timed):
    if timed.get("attainable_fraction") is None:
      return ""
    return (f"; memory roofline allows {100 * timed['attainable_fraction']:.0f}% "
            f"({timed['intensity_flop_per_byte']:.2f} flop/B)")

  if "synthetic_large_batch" in compare:
    timed = compare["synthetic_large_batch"]["jax"]["model_only"]
    add("(c) JAX model-only FLOP/s / matmul peak", timed["roofline_fraction"], 0.5, True,
        "analytic FLOPs / step time / matmul peak" + bound(timed))
  seeds = results.get("seeds", {}).get("rows", [])
  if seeds:
    largest = max(seeds, key=lambda r: r["seeds"])
    n = largest["seeds"]
    for which, label in (("library", "library step"), ("model_only", "model-only step")):
      add(f"{n} seeds: FLOP/s / matmul peak ({label})",
          largest[which]["roofline_fraction"], 0.5, True,
          "seeds vmapped in one program" + bound(largest[which]))
    for which, label in (("library", "library step"), ("model_only", "model-only step")):
      if largest[which]["vs_separate_runs"] is not None:
        add(f"{n} seeds in one program / {n} x one seed ({label})",
            largest[which]["vs_separate_runs"], 0.5, False, "time per step")
  compile_times = results.get("compile", {})
  if compile_times:
    worst = max(compile_times, key=lambda k: compile_times[k]["total_s"])
    add("compile s, slowest shipped config", compile_times[worst]["total_s"], 10.0, False,
        f"slowest: {worst}")
  return targets
