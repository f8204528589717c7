"""The machine a benchmark ran on, and its fp32 matmul rate through XLA (the roofline)."""

import datetime
import importlib.metadata
import os
import platform
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import timing


def cpu_model() -> str:
  """The CPU's model name from /proc/cpuinfo (else platform.processor())."""
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def load_average() -> list[float] | None:
  """1, 5 and 15 minute load averages (other jobs distort timings), or None."""
  try:
    return [round(v, 2) for v in os.getloadavg()]
  except OSError:
    return None


def describe() -> dict[str, Any]:
  """CPU model and cores, library versions, JAX device kind, time, load."""
  device = jax.devices()[0]
  info = {
      "cpu_model": cpu_model(),
      "cpu_cores": os.cpu_count(),
      "cpu_cores_usable": (len(os.sched_getaffinity(0))
                           if hasattr(os, "sched_getaffinity") else os.cpu_count()),
      "platform": platform.platform(),
      "python": sys.version.split()[0],
      "jax": jax.__version__,
      "jaxlib": getattr(__import__("jaxlib"), "__version__", None),
      "numpy": np.__version__,
      "device_platform": device.platform,
      "device_kind": device.device_kind,
      "num_devices": jax.device_count(),
      "xla_flags": os.environ.get("XLA_FLAGS", ""),
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "load_average_start": load_average(),
  }
  info["torch"] = torch_version()
  return info


def torch_version() -> str | None:
  """The installed torch's version, read without importing torch (whose thread pool
  would fight XLA's in this process: PyTorch runs in benchmarks/workers.py)."""
  try:
    return importlib.metadata.version("torch")
  except importlib.metadata.PackageNotFoundError:
    return None


def matmul_rate(*, sizes: tuple[int, ...], repeats: int = 5,
                min_repeat_s: float = 0.2) -> dict[str, Any]:
  """fp32 square matmul rate through XLA: FLOP/s per size (2 n^3 per product) and peak.

  The peak over `sizes` is the roofline the other benchmarks are compared with.
  """
  matmul = jax.jit(lambda a, b: a @ b)
  per_size = {}
  for n in sizes:
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    compiled = matmul.lower(a, b).compile()

    def run(num_steps, compiled=compiled, a=a, b=b):
      out = None
      for _ in range(num_steps):
        out = compiled(a, b)
      out.block_until_ready()

    result = timing.measure_steps(run, warmup=2, repeats=repeats, min_repeat_s=min_repeat_s)
    per_size[str(n)] = {"n": n, "flops": 2.0 * n ** 3, "seconds": result["step_s"],
                        "flop_per_s": 2.0 * n ** 3 / result["step_s"]}
  peak = max(v["flop_per_s"] for v in per_size.values())
  return {"per_size": per_size, "peak_flop_per_s": peak}


def memory_bandwidth(*, sizes_mib: tuple[int, ...], repeats: int = 5,
                     min_repeat_s: float = 0.2) -> dict[str, Any]:
  """Streaming rate of y = a x + b through XLA (fp32): bytes read + written per second.

  A small size stays in cache, a large one streams from memory; the maximum is the
  optimistic bandwidth of the memory roofline (attainable FLOP/s <= intensity x this).
  """
  stream = jax.jit(lambda x: x * 1.0001 + 1.0)
  per_size = {}
  for mib in sizes_mib:
    x = jnp.ones((mib * 2**20 // 4,), jnp.float32)
    compiled = stream.lower(x).compile()

    def run(num_steps, compiled=compiled, x=x):
      out = None
      for _ in range(num_steps):
        out = compiled(x)
      out.block_until_ready()

    result = timing.measure_steps(run, warmup=2, repeats=repeats, min_repeat_s=min_repeat_s)
    moved = 2.0 * x.size * 4
    per_size[str(mib)] = {"mib": mib, "bytes": moved, "seconds": result["step_s"],
                          "bytes_per_s": moved / result["step_s"]}
  return {"per_size": per_size,
          "peak_bytes_per_s": max(v["bytes_per_s"] for v in per_size.values())}
