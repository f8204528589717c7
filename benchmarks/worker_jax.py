"""The JAX worker's commands (benchmarks/workers.py): build and compile the library's
steps for a config, export the batch and images the PyTorch side needs.

Runs in its own process, never beside PyTorch.
"""

import math
import os
import sys
from typing import Any

import jax
import numpy as np

from benchmarks import jax_steps
from benchmarks import timing


def load(name: str, arg: str | None, overrides=()):
  """configs/<name>.py's get_config(arg) with `overrides` ((field, value), ...) applied."""
  config = jax_steps.load_config(name, arg)
  if overrides:
    config.update_from_flattened_dict({k: tuple(v) if isinstance(v, list) else v
                                       for k, v in overrides})
  return config


def torch_spec(built: jax_steps.Built) -> dict[str, Any]:
  """The fields of torch_reference.Spec for the same model, sizes and optimizer."""
  mc, config = built.model_config, built.config
  test = built.dataset.test
  d_cond, d_x = math.prod(test.cond.shape[1:]), math.prod(test.x.shape[2:])
  out = built.dataset.output_dim
  if mc.activation != "relu" or mc.primary.activation != "relu":
    raise NotImplementedError("the PyTorch reference uses ReLU everywhere")
  common = dict(d_cond=d_cond, d_x=d_x, task=built.dataset.task,
                optimizer=config.optimizer.name, learning_rate=config.optimizer.learning_rate)
  if mc.kind == "hypernet":
    return dict(kind="hypernet", trunk_widths=(mc.f_width,) * mc.f_depth,
                primary_dims=(d_x, *mc.primary.widths, out), primary_bias=mc.primary.use_bias,
                embedding_dim=0, q_dims=(), q_bias=False, **common)
  return dict(kind="embedding", trunk_widths=(mc.e_width,) * mc.e_depth, primary_dims=(),
              primary_bias=False, embedding_dim=mc.embedding_dim,
              q_dims=(d_x + mc.embedding_dim, *mc.q_widths, out), q_bias=mc.q_use_bias,
              **common)


def figures(built: jax_steps.Built, which: str) -> tuple[timing.JaxStepper, dict[str, Any]]:
  """(stepper over a fresh state, compile times + XLA costs) of built's step `which`."""
  state = built.fresh_state()
  jitted, data = ((built.library_step, built.train_data) if which == "library"
                  else (built.model_step, built.batch))
  if which not in built.compiled:
    built.compiled[which] = timing.compile_jitted(jitted, state, data, built.data_keys)
  compiled, compile_times = built.compiled[which]
  return (timing.JaxStepper(compiled, state, data, built.data_keys),
          {**compile_times, **timing.xla_costs(compiled)})


def handlers(threads: int):
  """({op: handler}, steppers) for workers.serve."""
  steppers: dict[str, Any] = {}

  def ping():
    return {"side": "jax", "jax": jax.__version__, "threads": threads,
            "device_kind": jax.devices()[0].device_kind,
            "frameworks_loaded": sorted({"jax", "torch"} & set(sys.modules))}

  def build(label: str, config: str, arg: str | None, overrides: list, which: list[str],
            export_dir: str | None = None):
    """Compiles the steps `which` of the config; {which: figures}, the model's sizes,
    the torch Spec fields and, with `export_dir`, the paths of batch.npz / images.npz."""
    built = jax_steps.build_cached(load(config, arg, overrides))
    out = {"steps": {}, "num_params": built.num_params, "num_seeds": built.num_seeds,
           "examples": built.config.batch.conditions * built.num_seeds,
           "flops": built.step_flops(), "kind": built.config.model.kind,
           "batch_conditions": built.config.batch.conditions,
           "batch_points": built.config.batch.points,
           "optimizer": built.config.optimizer.name,
           "matmuls": [dict(name=m.name, rows=m.rows, d_in=m.d_in, d_out=m.d_out,
                            times=m.times, input_grad=m.input_grad,
                            train_flops=m.train_flops) for m in built.matmuls()]}
    for name in which:
      steppers[f"{label}/{name}"], out["steps"][name] = figures(built, name)
    try:
      out["torch_spec"] = torch_spec(built)
    except NotImplementedError as e:
      out["torch_spec"] = None
      out["torch_spec_error"] = str(e)
    if export_dir:
      batch = {k: np.asarray(getattr(built.batch, k)) for k in ("cond", "x", "y")}
      out["batch_path"] = os.path.join(export_dir, f"{label}_batch.npz")
      np.savez(out["batch_path"], **batch)
      if built.config.data.name == "rotation":
        from hypernets.data import images as images_lib  # pylint: disable=g-import-not-at-top
        mean, std = images_lib.NORMALIZATION[built.config.data.source]
        out["images_path"] = os.path.join(export_dir, f"{label}_images.npz")
        np.savez(out["images_path"], images=np.asarray(built.train_data))
        out["rotation"] = dict(mean=float(mean), std=float(std),
                               num_classes=int(built.config.data.num_classes))
    return out

  return {"ping": ping, "build": build}, steppers
