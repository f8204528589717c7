"""Persistent worker processes: JAX and PyTorch each time their steps in their own.

Two frameworks in one process fight: XLA's and torch's OpenMP thread pools share the
cores, and on 2 cores torch's steps ran ~10x slower beside JAX than alone. So the
comparison runs each side in a worker process of its own, started once per run and
pinned to the same cores (CPU affinity, OMP/MKL threads, torch.set_num_threads);
the parent (benchmarks.run) only sends commands and interleaves the sides round by
round (`timing.measure_interleaved`), so a change of machine load hits both alike.
The parent never imports torch; the torch worker never imports JAX.

Protocol: one JSON object per line. The parent writes {"op": name, ...} to the
worker's stdin; the worker answers one line on its stdout, {"ok": true, ...} or
{"ok": false, "error": "..."} (its own prints go to stderr). Every side has
"ping" and "run" ({"label", "steps"} -> {"seconds": [per-step seconds]}); the
other ops are the side's (benchmarks/worker_jax.py, benchmarks/worker_torch.py).

  python -m benchmarks.workers --side=torch   # a worker, driven through stdin
"""

import json
import os
import subprocess
import sys
import time
from typing import Any, Callable

SIDES = ("jax", "torch")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class WorkerError(RuntimeError):
  """The worker answered an error, or died."""


class Worker:
  """The parent's handle on one worker process (a context manager)."""

  def __init__(self, side: str, *, threads: int, timeout_s: float = 900.0):
    if side not in SIDES:
      raise ValueError(f"unknown worker side {side!r}; choose one of {SIDES}")
    self.side, self.threads, self.timeout_s = side, threads, timeout_s
    cpus = sorted(os.sched_getaffinity(0))[:threads] if hasattr(os, "sched_getaffinity") \
        else None
    self.cpus = cpus
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONPATH=os.pathsep.join(filter(None, [REPO_ROOT,
                                                        os.environ.get("PYTHONPATH")])))

    # The worker pins itself (no preexec_fn: forking a multithreaded JAX process and
    # running Python in the child can deadlock).
    self.proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.workers", f"--side={side}",
         f"--threads={threads}", f"--cpus={','.join(map(str, cpus or []))}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, text=True,
        cwd=REPO_ROOT, env=env)
    self.info = self.call("ping")

  def call(self, op: str, **kwargs) -> dict[str, Any]:
    """Sends one command and returns the worker's answer (raises WorkerError)."""
    if self.proc.poll() is not None:
      raise WorkerError(f"the {self.side} worker exited ({self.proc.returncode})")
    self.proc.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
    self.proc.stdin.flush()
    line = self.proc.stdout.readline()
    if not line:
      raise WorkerError(f"the {self.side} worker died during {op!r} "
                        f"(exit {self.proc.wait(timeout=10)})")
    answer = json.loads(line)
    if not answer.pop("ok", False):
      raise WorkerError(f"{self.side} worker, {op!r}: {answer.get('error')}")
    return answer

  def runner(self, label: str) -> Callable[[int], list[float]]:
    """run_steps(n) -> per-step seconds, timed in the worker (timing.measure_interleaved)."""
    return lambda steps: self.call("run", label=label, steps=int(steps))["seconds"]

  def close(self) -> None:
    if self.proc.poll() is None:
      try:
        self.call("quit")
      except (WorkerError, OSError, ValueError):
        pass
      try:
        self.proc.wait(timeout=30)
      except subprocess.TimeoutExpired:
        self.proc.kill()
        self.proc.wait()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def serve(handlers: dict[str, Callable[..., dict[str, Any]]], steppers: dict) -> None:
  """The worker's loop: read a command, answer one line, until 'quit' or EOF.

  `steppers`: label -> run(n) that runs n steps; 'run' times each step.
  """
  channel = os.fdopen(os.dup(sys.stdout.fileno()), "w")
  sys.stdout = sys.stderr  # prints must not enter the channel

  def run(label, steps):
    seconds = []
    stepper = steppers[label]
    for _ in range(steps):
      start = time.perf_counter()
      stepper(1)
      seconds.append(time.perf_counter() - start)
    return {"seconds": seconds}

  handlers = dict(handlers, run=run)
  for line in sys.stdin:
    command = json.loads(line)
    op = command.pop("op")
    if op == "quit":
      channel.write(json.dumps({"ok": True}) + "\n")
      channel.flush()
      return
    try:
      answer = {"ok": True, **handlers[op](**command)}
    except Exception as e:  # pylint: disable=broad-except
      answer = {"ok": False, "error": f"{type(e).__name__}: {e}"[:2000]}
    channel.write(json.dumps(answer, default=float) + "\n")
    channel.flush()


def main(argv: list[str]) -> None:
  flags = dict(arg.lstrip("-").split("=", 1) for arg in argv)
  side, threads = flags["side"], int(flags["threads"])
  cpus = [int(c) for c in flags.get("cpus", "").split(",") if c]
  if cpus and hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, cpus)  # before torch / XLA size their thread pools
  if side == "torch":
    from benchmarks import worker_torch  # pylint: disable=g-import-not-at-top
    handlers, steppers = worker_torch.handlers(threads)
  elif side == "jax":
    from benchmarks import worker_jax  # pylint: disable=g-import-not-at-top
    handlers, steppers = worker_jax.handlers(threads)
  else:
    sys.exit(f"error: unknown --side={side!r}; choose one of {SIDES}")
  serve(handlers, steppers)


if __name__ == "__main__":
  main(sys.argv[1:])
