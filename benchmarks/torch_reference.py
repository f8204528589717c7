"""PyTorch (CPU) reference implementations of the benchmarked models, for comparison.

Written the way the paper's own code is (github.com/TomerGalanti/InfiniteWidthHypernets,
rotations_experiment/models.py): f is an nn.Sequential ending in one Linear that emits
all of g's weights at once; the output is sliced and viewed as per-example weight
matrices applied with `torch.bmm`. A second version writes the model for ONE example
and batches it with `torch.func.vmap`, as the JAX library does with `jax.vmap`.

Sizes come from a `Spec` derived from the same config the JAX side uses, so both
sides run the same shapes on the same pre-made batch. `make_data_train_step` adds
the paper-style input pipeline: a DataLoader whose Dataset rotates uint8 digits with
PIL (nearest, fill 0) and normalises them. This module imports torch at import time:
it runs only in the PyTorch worker process (benchmarks/workers.py), never beside JAX.
"""

import dataclasses
import multiprocessing
import os
import queue as queue_lib
import tempfile
import time
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image
import torch
from torch import nn
import torch.nn.functional as F

from benchmarks import timing

VARIANTS = ("bmm", "vmap")


@dataclasses.dataclass(frozen=True)
class Spec:
  """One benchmarked model: kind 'hypernet' or 'embedding', sizes, loss, optimizer."""

  kind: str
  d_cond: int
  d_x: int
  trunk_widths: tuple[int, ...]  # f's (or e's) hidden layers, each Linear + ReLU
  primary_dims: tuple[int, ...]  # hypernet: g's layer sizes, d_x first
  primary_bias: bool
  embedding_dim: int  # embedding: E
  q_dims: tuple[int, ...]  # embedding: q's layer sizes, d_x + E first
  q_bias: bool
  task: str  # 'classification' (log-softmax + NLL) | 'regression' (MSE)
  optimizer: str  # 'sgd' | 'adam'
  learning_rate: float


def _trunk(d_in: int, widths: Sequence[int]) -> list[nn.Module]:
  layers = []
  for width in widths:
    layers += [nn.Linear(d_in, width), nn.ReLU()]
    d_in = width
  return layers


class BmmHypernet(nn.Module):
  """f(I) -> all of g's weights in one Linear; g applied per example with torch.bmm.

  forward(cond [B, d_cond], x [B, P, d_x]) -> [B, P, out].
  """

  def __init__(self, spec: Spec):
    super().__init__()
    self.dims, self.bias = spec.primary_dims, spec.primary_bias
    self.sizes = []
    for d_in, d_out in zip(self.dims[:-1], self.dims[1:]):
      self.sizes += [d_in * d_out] + ([d_out] if self.bias else [])
    self.f = nn.Sequential(*_trunk(spec.d_cond, spec.trunk_widths),
                           nn.Linear(spec.trunk_widths[-1], sum(self.sizes)))

  def forward(self, cond: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    batch = cond.shape[0]
    pieces = iter(torch.split(self.f(cond), self.sizes, dim=1))  # each [B, size]
    h = x
    num_layers = len(self.dims) - 1
    for i, (d_in, d_out) in enumerate(zip(self.dims[:-1], self.dims[1:])):
      h = torch.bmm(h, next(pieces).view(batch, d_in, d_out))  # [B, P, d_out]
      if self.bias:
        h = h + next(pieces).view(batch, 1, d_out)
      if i < num_layers - 1:
        h = torch.relu(h)
    return h


class VmapHypernet(nn.Module):
  """The same model written for one example and batched with torch.func.vmap."""

  def __init__(self, spec: Spec):
    super().__init__()
    self.inner = BmmHypernet(spec)

  def one(self, cond: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """cond [d_cond], x [P, d_x] -> [P, out]."""
    inner = self.inner
    pieces = iter(torch.split(inner.f(cond), inner.sizes))
    h = x
    num_layers = len(inner.dims) - 1
    for i, (d_in, d_out) in enumerate(zip(inner.dims[:-1], inner.dims[1:])):
      h = h @ next(pieces).view(d_in, d_out)
      if inner.bias:
        h = h + next(pieces)
      if i < num_layers - 1:
        h = torch.relu(h)
    return h

  def forward(self, cond: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.func.vmap(self.one)(cond, x)


class EmbeddingNet(nn.Module):
  """q([x, e(I)]): e = trunk + Linear(E); q an MLP on the concatenation (per point).

  forward(cond [B, d_cond], x [B, P, d_x]) -> [B, P, out].
  """

  def __init__(self, spec: Spec):
    super().__init__()
    self.e = nn.Sequential(*_trunk(spec.d_cond, spec.trunk_widths),
                           nn.Linear(spec.trunk_widths[-1], spec.embedding_dim))
    layers = []
    for i, (d_in, d_out) in enumerate(zip(spec.q_dims[:-1], spec.q_dims[1:])):
      layers.append(nn.Linear(d_in, d_out, bias=spec.q_bias))
      if i < len(spec.q_dims) - 2:
        layers.append(nn.ReLU())
    self.q = nn.Sequential(*layers)

  def forward(self, cond: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    e = self.e(cond)  # [..., E]
    e = e.unsqueeze(-2).expand(*x.shape[:-1], e.shape[-1])  # [..., P, E]
    return self.q(torch.cat([x, e], dim=-1))


class VmapEmbeddingNet(nn.Module):
  """The embedding model for one example, batched with torch.func.vmap."""

  def __init__(self, spec: Spec):
    super().__init__()
    self.inner = EmbeddingNet(spec)

  def forward(self, cond: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.func.vmap(self.inner)(cond, x)


def create_model(spec: Spec, variant: str) -> nn.Module:
  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
  if spec.kind == "hypernet":
    return BmmHypernet(spec) if variant == "bmm" else VmapHypernet(spec)
  if spec.kind == "embedding":
    return EmbeddingNet(spec) if variant == "bmm" else VmapEmbeddingNet(spec)
  raise ValueError(f"no PyTorch reference for kind {spec.kind!r}")


def loss_fn(spec: Spec) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
  """Mean log-softmax NLL over classes (labels [B, P]) or mean squared error."""
  if spec.task == "classification":
    return lambda out, y: F.nll_loss(F.log_softmax(out.reshape(-1, out.shape[-1]), dim=-1),
                                     y.reshape(-1))
  return lambda out, y: F.mse_loss(out, y)


def create_optimizer(spec: Spec, params) -> torch.optim.Optimizer:
  if spec.optimizer == "sgd":
    return torch.optim.SGD(params, lr=spec.learning_rate)
  if spec.optimizer == "adam":
    return torch.optim.Adam(params, lr=spec.learning_rate)
  raise ValueError(f"no PyTorch optimizer {spec.optimizer!r}")


def to_tensors(batch: dict[str, np.ndarray]) -> tuple[torch.Tensor, ...]:
  """(cond [B, d_cond] float32, x [B, P, d_x] float32, y) from numpy arrays."""
  cond = torch.from_numpy(np.array(batch["cond"], np.float32))  # copies: writable
  x = torch.from_numpy(np.array(batch["x"], np.float32))
  y = np.asarray(batch["y"])
  y = torch.from_numpy(np.array(y, np.int64 if y.dtype.kind in "iu" else np.float32))
  return cond.reshape(cond.shape[0], -1), x.reshape(x.shape[0], x.shape[1], -1), y


def make_train_step(spec: Spec, variant: str, batch: dict[str, np.ndarray], *,
                    compile_model: bool = False, seed: int = 0) -> Callable[[int], None]:
  """run(num_steps): forward + backward + optimizer update on the fixed batch."""
  torch.manual_seed(seed)
  model = create_model(spec, variant)
  optimizer = create_optimizer(spec, model.parameters())
  cond, x, y = to_tensors(batch)
  objective = loss_fn(spec)

  def loss_of(cond, x, y):
    return objective(model(cond, x), y)

  if compile_model:
    loss_of = torch.compile(loss_of)

  def run(num_steps: int) -> None:
    for _ in range(num_steps):
      optimizer.zero_grad(set_to_none=True)
      loss = loss_of(cond, x, y)
      loss.backward()
      optimizer.step()

  return run


class RotatedImages(torch.utils.data.Dataset):
  """Item i: (cond = image i normalised [H*W*C], x = image i rotated by a fresh
  uniform angle in [0, 360) with PIL (nearest, fill 0) and normalised [1, H*W*C],
  y = the nearest multiple of 360 / num_classes degrees, circularly [1])."""

  def __init__(self, images_uint8: np.ndarray, *, mean: float, std: float,
               num_classes: int, seed: int = 0):
    self.images, self.mean, self.std = images_uint8, mean, std
    self.num_classes = num_classes
    self.rng = np.random.default_rng(seed)

  def __len__(self) -> int:
    return len(self.images)

  def _normalise(self, image: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(image.astype(np.float32)) / 255.0 - self.mean) / self.std

  def label(self, angle: float) -> int:
    """The nearest multiple of 360 / num_classes degrees, circularly (ties upward)."""
    return int(np.floor(angle / (360.0 / self.num_classes) + 0.5)) % self.num_classes

  @staticmethod
  def rotate(image: np.ndarray, angle: float) -> np.ndarray:
    """image [H, W, C] uint8 rotated counter-clockwise by PIL (nearest, fill 0)."""
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    return np.asarray(pil.rotate(angle, resample=Image.NEAREST, fillcolor=0)).reshape(
        image.shape)

  def __getitem__(self, i: int):
    image = self.images[i]  # [H, W, C] uint8
    angle = float(self.rng.uniform(0.0, 360.0))
    rotated = self.rotate(image, angle)
    return (self._normalise(image).reshape(-1), self._normalise(rotated).reshape(1, -1),
            torch.tensor([self.label(angle)]))


def make_data_train_step(spec: Spec, variant: str, images_uint8: np.ndarray, *,
                         mean: float, std: float, num_classes: int, batch_size: int,
                         seed: int = 0) -> Callable[[int], None]:
  """run(num_steps): next DataLoader batch (shuffled, rotated on the host) + the step.

  The paper's loop: `for cond, x, y in loader: step`. One process, no loader
  workers (the thread count is the comparison's; workers would add processes).
  """
  torch.manual_seed(seed)
  model = create_model(spec, variant)
  optimizer = create_optimizer(spec, model.parameters())
  objective = loss_fn(spec)
  loader = torch.utils.data.DataLoader(
      RotatedImages(images_uint8, mean=mean, std=std, num_classes=num_classes, seed=seed),
      batch_size=batch_size, shuffle=True, drop_last=True, num_workers=0)
  batches = iter(loader)

  def run(num_steps: int) -> None:
    nonlocal batches
    for _ in range(num_steps):
      try:
        cond, x, y = next(batches)
      except StopIteration:  # a new epoch
        batches = iter(loader)
        cond, x, y = next(batches)
      optimizer.zero_grad(set_to_none=True)
      loss = objective(model(cond, x), y)
      loss.backward()
      optimizer.step()

  return run


def benchmark(spec: Spec, variant: str, batch: dict[str, np.ndarray], *,
              compile_model: bool = False, **measure_kwargs) -> dict[str, Any]:
  """{'step_s', ..., 'first_step_s'} of the variant's train step (warm-up excluded)."""
  run = make_train_step(spec, variant, batch, compile_model=compile_model)
  _, first = timing.timed(lambda: run(1))  # includes torch.compile's compilation
  result = timing.measure_steps(run, **measure_kwargs)
  result["first_step_s"] = first
  return result


def _compiled_child(spec, variant, batch, measure_kwargs, out_queue):
  torch.set_num_threads(measure_kwargs.pop("threads"))
  try:
    out_queue.put(("ok", benchmark(spec, variant, batch, compile_model=True,
                                   **measure_kwargs)))
  except Exception as e:  # pylint: disable=broad-except
    out_queue.put(("error", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"))


def benchmark_compiled(spec: Spec, variant: str, batch: dict[str, np.ndarray], *,
                       budget_s: float, **measure_kwargs) -> dict[str, Any]:
  """`benchmark` with torch.compile, in a child process stopped after `budget_s`.

  Returns the result, or {'skipped': reason} if compilation and timing did not
  finish within the budget or failed.
  """
  context = multiprocessing.get_context("spawn")
  out_queue = context.Queue()
  kwargs = dict(measure_kwargs, threads=torch.get_num_threads())
  child = context.Process(target=_compiled_child,
                          args=(spec, variant, batch, kwargs, out_queue), daemon=True)
  start = time.perf_counter()
  # A fresh inductor cache: the first step is a cold compile, as on a new machine.
  with tempfile.TemporaryDirectory(prefix="torchinductor_") as cache_dir:
    previous = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache_dir
    try:
      child.start()
    finally:
      if previous is None:
        del os.environ["TORCHINDUCTOR_CACHE_DIR"]
      else:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = previous
    try:
      status, value = out_queue.get(timeout=budget_s)
    except queue_lib.Empty:
      status, value = "timeout", f"did not finish within {budget_s:.0f} s"
    finally:
      if child.is_alive():
        child.terminate()
      child.join(timeout=10)
  if status != "ok":
    return {"skipped": value, "wall_s": time.perf_counter() - start}
  value["wall_s"] = time.perf_counter() - start
  return value
