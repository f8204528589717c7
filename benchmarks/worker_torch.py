"""The PyTorch worker's commands (benchmarks/workers.py): build steps, time matmuls.

Runs in its own process, never beside JAX (this module and what it imports use no JAX).
"""

import dataclasses
import sys
from typing import Any

import numpy as np
import torch

from benchmarks import timing
from benchmarks import torch_reference


def handlers(threads: int):
  """({op: handler}, steppers) for workers.serve."""
  torch.set_num_threads(threads)
  steppers: dict[str, Any] = {}

  def ping():
    return {"side": "torch", "torch": torch.__version__, "threads": torch.get_num_threads(),
            "frameworks_loaded": sorted({"jax", "torch"} & set(sys.modules))}

  def _spec(spec: dict[str, Any]) -> torch_reference.Spec:
    fields = {f.name for f in dataclasses.fields(torch_reference.Spec)}
    return torch_reference.Spec(**{k: tuple(v) if isinstance(v, list) else v
                                   for k, v in spec.items() if k in fields})

  def model_step(label: str, spec: dict[str, Any], variant: str, batch_path: str):
    """The step on a fixed pre-made batch (the .npz the JAX worker wrote)."""
    with np.load(batch_path) as batch:
      batch = {k: batch[k] for k in ("cond", "x", "y")}
    steppers[label] = torch_reference.make_train_step(_spec(spec), variant, batch)
    _, first = timing.timed(lambda: steppers[label](1))
    return {"first_step_s": first}

  def data_step(label: str, spec: dict[str, Any], variant: str, images_path: str,
                mean: float, std: float, num_classes: int, batch_size: int):
    """DataLoader (PIL rotation, normalisation) + the step, the paper's loop."""
    with np.load(images_path) as images:
      images = images["images"]
    steppers[label] = torch_reference.make_data_train_step(
        _spec(spec), variant, images, mean=mean, std=std, num_classes=num_classes,
        batch_size=batch_size)
    _, first = timing.timed(lambda: steppers[label](1))
    return {"first_step_s": first}

  def compiled_step(spec: dict[str, Any], variant: str, batch_path: str, budget_s: float,
                    warmup: int, repeats: int, min_repeat_s: float):
    with np.load(batch_path) as batch:
      batch = {k: batch[k] for k in ("cond", "x", "y")}
    return torch_reference.benchmark_compiled(
        _spec(spec), variant, batch, budget_s=budget_s, warmup=warmup, repeats=repeats,
        min_repeat_s=min_repeat_s)

  def matmul_rate(n: int, repeats: int, min_repeat_s: float):
    a, b = torch.randn(n, n), torch.randn(n, n)

    def run(num_steps):
      for _ in range(num_steps):
        torch.mm(a, b)

    step_s = timing.measure_steps(run, repeats=repeats, min_repeat_s=min_repeat_s)["step_s"]
    return {"flop_per_s": 2.0 * n ** 3 / step_s}

  return ({"ping": ping, "model_step": model_step, "data_step": data_step,
           "compiled_step": compiled_step, "matmul_rate": matmul_rate}, steppers)
