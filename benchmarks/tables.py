"""The printed tables of `python -m benchmarks.run`, from its results dict."""

from typing import Any

from benchmarks import sections


def format_table(headers: list[str], rows: list[list[Any]]) -> str:
  """Columns right-aligned except the first two; floats as given (pre-formatted)."""
  cells = [[str(c) for c in row] for row in rows]
  widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
            for i, h in enumerate(headers)]

  def line(values):
    return "  ".join(v.ljust(w) if i < 2 else v.rjust(w)
                     for i, (v, w) in enumerate(zip(values, widths)))

  return "\n".join([line(headers), "-" * len(line(headers))] + [line(r) for r in cells])


def _f(value, digits=3):
  if value is None:
    return "-"
  if isinstance(value, float) and (abs(value) >= 1e5 or (0 < abs(value) < 1e-3)):
    return f"{value:.{digits}g}"
  return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _ms(seconds):
  return "-" if seconds is None else f"{1e3 * seconds:.3f}"


def _bound(timed):
  """'attainable % (intensity)' of a JAX row: the memory roofline's ceiling."""
  if timed.get("attainable_fraction") is None:
    return "-"
  return (f"{100 * timed['attainable_fraction']:.0f} "
          f"({timed['intensity_flop_per_byte']:.1f})")


def _p(timed, divide=1):
  """' (p10-p90)' of a row's single steps (per_step), if it has them."""
  single = timed.get("per_step")
  if not single:
    return ""
  return f" ({1e3 * single['p10'] / divide:.2f}-{1e3 * single['p90'] / divide:.2f})"


def _mb(num_bytes):
  return "-" if num_bytes is None else f"{num_bytes / 2**20:.2f}"


def tables(results: dict[str, Any]) -> str:
  m, roof = results["machine"], results["roofline"]
  out = [f"suite={results['suite']}  cpu={m['cpu_model']} ({m['cpu_cores']} cores)  "
         f"jax={m['jax']}  device={m['device_kind']}  torch={m['torch']}  "
         f"load average at start={m['load_average_start']}"]
  out.append("\nRoofline: fp32 matmul through XLA")
  rows = [[f"{v['n']}x{v['n']}", "jax", _ms(v["seconds"]), f"{v['flop_per_s'] / 1e9:.1f}"]
          for v in roof["per_size"].values()]
  if roof.get("torch_matmul_flop_per_s"):
    n = roof["torch_matmul_n"]
    rows.append([f"{n}x{n}", "torch", "-", f"{roof['torch_matmul_flop_per_s'] / 1e9:.1f}"])
  out.append(format_table(["matmul", "impl", "ms", "GFLOP/s"], rows))
  memory = roof.get("memory")
  if memory:
    out.append(format_table(["stream y = a x + b", "impl", "ms", "GB/s"], [
        [f"{v['mib']} MiB", "jax", _ms(v["seconds"]), f"{v['bytes_per_s'] / 1e9:.1f}"]
        for v in memory["per_size"].values()]))
  out.append(f"peak (the roofline below): {roof['peak_flop_per_s'] / 1e9:.1f} GFLOP/s"
             + (f"; bandwidth {memory['peak_bytes_per_s'] / 1e9:.1f} GB/s (bound % = "
                "min(peak, FLOPs / XLA bytes accessed x bandwidth) / peak)" if memory else ""))

  if "compare" in results:
    workers = results.get("workers", {})
    out.append("\nJAX (the library's jitted step) vs PyTorch (CPU), each in its own worker "
               f"process, {workers.get('threads', '?')} threads each, repeats interleaved; "
               "examples = conditioning inputs per second; step ms = median of the "
               "repeats (p10-p90 of single steps)")
    rows = []
    for res in results["compare"].values():
      title = res["title"]
      shape = f"B={res['batch_conditions']} P={res['batch_points']}"
      labels = {"library": "jax library step (on-device sampling)",
                "model_only": "jax model-only (pre-made batch)",
                "library_seeds": "jax library step, {seeds} seeds (per-seed equivalent)"}
      torch_bmm = res["torch"].get("eager_bmm", {}).get("examples_per_s")
      for which, label in labels.items():
        if which not in res["jax"]:
          continue
        r = res["jax"][which]
        step = r["per_seed_step_s"] if which == "library_seeds" else r["step_s"]
        rows.append([title, label.format(seeds=r.get("seeds")), shape, f"{r['total_s']:.2f}",
                     _ms(step) + _p(r, r.get("seeds", 1)), f"{r['examples_per_s']:.0f}",
                     f"{r['flop_per_s'] / 1e9:.1f}", f"{100 * r['roofline_fraction']:.1f}",
                     _bound(r), f"{r['examples_per_s'] / torch_bmm:.2f}" if torch_bmm else "-"])
      for variant, r in res["torch"].items():
        if not isinstance(r, dict):
          continue
        label = f"torch {variant.replace('_', ' ')}"
        if variant == "data_bmm":
          label = "torch DataLoader (PIL rotation) + eager bmm"
        if "step_s" not in r:
          rows.append([title, label, shape, "-", "skipped: " + r.get("skipped", ""),
                       "", "", "", "", ""])
          continue
        compile_s = f"{r['first_step_s']:.2f}" if variant.startswith("compile") else "-"
        rows.append([title, label, shape, compile_s, _ms(r["step_s"]) + _p(r),
                     f"{r['examples_per_s']:.0f}", f"{r['flop_per_s'] / 1e9:.1f}",
                     f"{100 * r['roofline_fraction']:.1f}", "",
                     f"{r['examples_per_s'] / torch_bmm:.2f}"])
      rows.append([title, "GFLOP per step: analytic / XLA cost_analysis (model-only)", "",
                   "", "", "", f"{res['flops_train'] / 1e9:.4f}",
                   _f(res["jax"]["model_only"]["xla_flops"] / 1e9
                      if res["jax"]["model_only"]["xla_flops"] else None, 4), "", ""])
    out.append(format_table(["benchmark", "implementation", "batch", "compile s", "step ms",
                             "examples/s", "GFLOP/s", "% peak", "bound % (flop/B)",
                             "vs torch bmm"], rows))

  if "conv" in results:
    c = results["conv"]
    out.append(f"\nConv primary g (ConvNet {tuple(c['channels'])}, 3x3 stride 2, + Dense) on "
               f"{tuple(c['image_shape'])} images, {c['conditions']} conditioning inputs x "
               f"{c['images']} images: jitted forward + backward")
    rows = [[name, f"{r['compile_s']:.2f}", _ms(r["step_s"]), f"{r['vs_shared']:.2f}"]
            for name, r in c["rows"].items()]
    out.append(format_table(["g's weights", "compile s", "step ms", "vs shared"], rows))

  if "loop" in results:
    lp = results["loop"]
    cfg = lp["config"]
    out.append(f"\nThe whole training loop: configs/{cfg['name']}.py"
               f"{':' + cfg['arg'] if cfg['arg'] else ''}, {cfg['num_train_steps']} steps, "
               f"log every {cfg['log_every_steps']}, eval every {cfg['eval_every_steps']}, "
               f"checkpoint every {cfg['checkpoint_every_steps']}; runs alternated")
    rows = [[label, f"{lp[key]['steps_per_second']['median']:.1f}",
             f"{lp[key]['steps_per_second']['p10']:.1f}-{lp[key]['steps_per_second']['p90']:.1f}",
             f"{lp[key]['wall_s']['median']:.2f}", str(lp[key]["wall_s"]["n"])]
            for key, label in (("one_step_per_call", "steps_per_call=1"),
                               ("auto", "steps_per_call=0 (auto)"))]
    out.append(format_table(["dispatch", "steps/s", "p10-p90", "wall s", "runs"], rows))
    out.append(f"auto / one step per call: {lp['speedup_auto_over_one']:.2f}x")

  if "precision" in results:
    out.append("\nMixed precision (--config.compute_dtype=bfloat16: fp32 parameters and "
               "optimizer, bf16 matmuls), model-only step, timed interleaved")
    rows = [[r["title"], _ms(r["float32"]["step_s"]), _ms(r["bfloat16"]["step_s"]),
             f"{r['bf16_speedup']:.2f}", f"{r['bfloat16']['total_s']:.2f}"]
            for r in results["precision"]["rows"]]
    out.append(format_table(["benchmark", "float32 ms", "bfloat16 ms", "bf16 speed-up",
                             "bf16 compile s"], rows))

  if "seeds" in results:
    out.append(f"\nSeeds as a batch: configs/{results['seeds']['config']}.py"
               f"{':' + results['seeds']['config_arg'] if results['seeds']['config_arg'] else ''}"
               ", S seeds vmapped in one program")
    rows = []
    for r in results["seeds"]["rows"]:
      for which, label in (("library", "library step"), ("model_only", "model-only")):
        t = r[which]
        rows.append([str(r["seeds"]), label, _ms(t["step_s"]), _ms(t["per_seed_step_s"]),
                     _f(t["vs_separate_runs"]), f"{t['flop_per_s'] / 1e9:.2f}",
                     f"{100 * t['roofline_fraction']:.1f}", _bound(t), f"{t['total_s']:.2f}",
                     _mb(t["peak_bytes"])])
    out.append(format_table(["seeds", "step", "step ms", "ms per seed", "vs S x 1 seed",
                             "GFLOP/s", "% peak", "bound % (flop/B)", "compile s", "MiB"],
                            rows))

  if "optimisations" in results:
    rs = results["optimisations"]["row_sampler"]
    out.append(f"\nOptimisation (benchmarks/OPTIMISATIONS.md): {rs['change']}; {rs['step']} "
               "step, before / after measured interleaved")
    rows = [[r["benchmark"], f"S={r['seeds']} B={r['batch_conditions']} P={r['batch_points']}",
             _ms(r["before"]["step_s"]), _ms(r["after"]["step_s"]), f"{r['speedup']:.2f}"]
            for r in rs["rows"]]
    out.append(format_table(["benchmark", "shape", "before ms", "after ms", "speedup"], rows))
    if "seeds_vs_separate_runs" in rs:
      v = rs["seeds_vs_separate_runs"]
      out.append(f"{v['seeds']} seeds in one program / {v['seeds']} x one seed (library "
                 f"step): before {v['before']:.3f}, after {v['after']:.3f}")
    pd = results["optimisations"]["primary_dot"]
    out.append(f"\nMeasured, not adopted: {pd['change']} (forward + backward of g only)")
    rows = [[r["case"], name, _ms(t["step_s"]), f"{t['vs_library']:.2f}"]
            for r in pd["rows"] for name, t in r["formulations"].items()]
    out.append(format_table(["primary", "formulation", "ms", "speed vs library"], rows))

  if "scaling" in results:
    sc = results["scaling"]
    out.append(f"\nScaling: library step of configs/{sc['config']}.py"
               f"{':' + sc['config_arg'] if sc['config_arg'] else ''}, one size varied "
               "(memory: XLA buffer assignment, arguments + outputs - aliased + temporaries)")
    rows = []
    for axis in sections.SCALING_FIELDS:
      if axis not in sc:
        continue
      for r in sc[axis]["rows"]:
        rows.append([axis, sc[axis]["field"], str(r["size"]), str(r["num_params"]),
                     _ms(r["step_s"]), f"{r['flop_per_s'] / 1e9:.2f}",
                     f"{100 * r['roofline_fraction']:.1f}", _mb(r["peak_bytes"]),
                     f"{r['total_s']:.2f}"])
      rows.append([axis, "log-log slope", "", "", _f(sc[axis]["slope_step_s"], 2), "", "",
                   _f(sc[axis]["slope_peak_bytes"], 2), ""])
    out.append(format_table(["axis", "field", "size", "params", "step ms", "GFLOP/s",
                             "% peak", "MiB", "compile s"], rows))

  if "compile" in results:
    out.append("\nCompile time of the library step (jit(vmap(step)).lower(...).compile())")
    rows = [[name, r["kind"], f"{r['lower_s']:.2f}", f"{r['compile_s']:.2f}",
             f"{r['total_s']:.2f}", str(r["num_params"]),
             "zeros of the real shape" if r["stand_in_data"] else "real"]
            for name, r in results["compile"].items()]
    out.append(format_table(["config", "kind", "lower s", "compile s", "total s", "params",
                             "data"], rows))

  if results.get("targets"):
    out.append("\nTargets")
    rows = [[t["name"], f"{t['comparison']} {_f(t['threshold'])}", _f(t["value"]),
             "met" if t["met"] else "MISSED", f"{t['value_over_threshold']:.2f}x", t["detail"]]
            for t in results["targets"]]
    out.append(format_table(["target", "needs", "measured", "", "of threshold", "note"],
                            rows))
  out.append("\nseconds per section: " + ", ".join(
      f"{k} {v:.0f}" for k, v in results.get("section_s", {}).items()))
  out.append(f"total {results['total_s']:.0f} s; load average at end "
             f"{results['machine'].get('load_average_end')}")
  return "\n".join(out)
