r"""Runs one experiment on the GPUs of one machine: one process, or one per GPU.

  python launch/gpu.py --mode=single --config=configs/rotation_mnist.py:quick --workdir=/tmp/rot
  python launch/gpu.py --mode=per_gpu --config=configs/synthetic.py --workdir=/tmp/run \
      --config.num_seeds=8

Needs GPUs that `nvidia-smi -L` lists and a CUDA build of jax
(`pip install -U "jax[cuda13]"`, README "Install"); without either it stops with one
line, before running anything.

--mode=single runs launch/main.py once; that process sees every GPU and the mesh
spans them. --mode=per_gpu starts one process per GPU (CUDA_VISIBLE_DEVICES=i)
with JAX_COORDINATOR_ADDRESS=localhost:PORT, JAX_NUM_PROCESSES and JAX_PROCESS_ID
set, so `distributed.maybe_initialize` joins them into one multi-process run (the
layout of a multi-host job, on one box). All processes share the workdir; only
process 0 writes results and metrics. Their output is prefixed with [i]. If one
fails the others are stopped, and the exit status is non-zero.

--platform=cpu runs the same on CPU (JAX_PLATFORMS=cpu, CUDA_VISIBLE_DEVICES
untouched), for testing. --dry_run prints each command with its environment.
Extra `--config.x=y` arguments, and --verbose (INFO logging), are passed on to every
process.
"""

import importlib.metadata
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time

from absl import app
from absl import flags

LAUNCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(LAUNCH_DIR))
from hypernets import launcher  # pylint: disable=g-import-not-at-top,wrong-import-position
from hypernets import config_help  # pylint: disable=g-import-not-at-top,wrong-import-position

_MODE = flags.DEFINE_enum("mode", "single", ["single", "per_gpu"],
                          "One process for all GPUs, or one process per GPU.")
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "Processes for --mode=per_gpu (default: the GPUs that "
    "`nvidia-smi -L` lists).")
_PLATFORM = flags.DEFINE_enum("platform", "gpu", ["gpu", "cpu"],
                              "cpu: JAX_PLATFORMS=cpu and no CUDA_VISIBLE_DEVICES.")
_PORT = flags.DEFINE_integer("port", 0, "Coordinator port on localhost (0: a free one).")
_SCRIPT = flags.DEFINE_string("script", os.path.join(LAUNCH_DIR, "main.py"),
                              "The program every process runs.")
_CONFIG = flags.DEFINE_string("config", None, "Config file (as for launch/main.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Workdir, shared by all processes.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the commands; run nothing.")
flags.mark_flags_as_required(["config", "workdir"])


def count_gpus() -> int:
  """GPUs that `nvidia-smi -L` lists (0 if it is missing or fails)."""
  try:
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
  except (OSError, subprocess.TimeoutExpired):
    return 0
  if out.returncode:
    return 0
  return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


def has_cuda_jax() -> bool:
  """Whether a CUDA plugin of jax (`jax[cuda12]` / `jax[cuda13]`) is installed."""
  return any(re.fullmatch(r"jax[-_]cuda\d+[-_]plugin", dist.metadata["Name"] or "", re.I)
             for dist in importlib.metadata.distributions())


def gpu_problem(*, num_gpus: int, cuda_jax: bool) -> str | None:
  """Why a --platform=gpu run cannot use a GPU (one line), or None."""
  if not num_gpus:
    return ("asked for GPUs (--platform=gpu) but `nvidia-smi -L` lists none; run on a "
            "machine with NVIDIA GPUs, or pass --platform=cpu to run on the CPU")
  if not cuda_jax:
    return (f"{num_gpus} GPU(s) found but jax has no CUDA plugin, so it would run on the "
            'CPU: pip install -U "jax[cuda13]" (or "jax[cuda12]" for a CUDA 12 driver), '
            "or pass --platform=cpu")
  return None


def free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def process_commands(*, mode: str, num_processes: int, platform: str, port: int,
                     script: str, args: list[str]) -> list[tuple[dict[str, str], list[str]]]:
  """(extra environment, argv) of every process to start.

  Args:
    mode: 'single' (one process) or 'per_gpu' (`num_processes` processes).
    num_processes: processes for 'per_gpu'; ignored for 'single'.
    platform: 'gpu' (per_gpu pins process i to GPU i) or 'cpu' (JAX_PLATFORMS=cpu).
    port: coordinator port on localhost.
    script: the program each process runs.
    args: its arguments (--config, --workdir, overrides).
  """
  argv = [sys.executable, script, *args]
  platform_env = {"JAX_PLATFORMS": "cpu"} if platform == "cpu" else {}
  if mode == "single":
    return [(platform_env, argv)]
  if mode != "per_gpu":
    raise ValueError(f"unknown mode {mode!r}; choose single or per_gpu")
  if num_processes < 1:
    raise ValueError(f"num_processes must be at least 1, got {num_processes}")
  commands = []
  for i in range(num_processes):
    env = dict(platform_env, JAX_COORDINATOR_ADDRESS=f"localhost:{port}",
               JAX_NUM_PROCESSES=str(num_processes), JAX_PROCESS_ID=str(i))
    if platform == "gpu":
      env["CUDA_VISIBLE_DEVICES"] = str(i)
    commands.append((env, argv))
  return commands


def format_command(env: dict[str, str], argv: list[str]) -> str:
  """'K=V ... argv' as a shell line."""
  return shlex.join([f"{k}={v}" for k, v in env.items()] + argv)


def _forward(stream, prefix: str) -> None:
  for line in iter(stream.readline, ""):
    sys.stdout.write(prefix + line)
    sys.stdout.flush()


def run_processes(commands: list[tuple[dict[str, str], list[str]]], *,
                  grace_seconds: float = 10.0) -> int:
  """Starts every command, waits for all; the first failure stops the rest.

  Returns:
    0 if all exited 0, else the first non-zero exit status.
  """
  if len(commands) == 1:
    env, argv = commands[0]
    return subprocess.call(argv, env={**os.environ, **env})
  procs, threads = [], []
  for i, (env, argv) in enumerate(commands):
    proc = subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    thread = threading.Thread(target=_forward, args=(proc.stdout, f"[{i}] "), daemon=True)
    thread.start()
    procs.append(proc)
    threads.append(thread)
  status = 0
  try:
    while True:
      codes = [p.poll() for p in procs]
      failed = [code for code in codes if code not in (None, 0)]
      if failed or None not in codes:
        status = failed[0] if failed else 0
        break
      time.sleep(0.2)
  finally:
    running = [p for p in procs if p.poll() is None]
    for p in running:  # a failed peer (or Ctrl-C) leaves the others waiting in collectives
      p.terminate()
    deadline = time.monotonic() + grace_seconds
    for p in running:
      try:
        p.wait(timeout=max(deadline - time.monotonic(), 0.1))
      except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    for thread in threads:
      thread.join(timeout=5)
  for i, p in enumerate(procs):
    if p.returncode:
      print(f"process {i} exited with status {p.returncode}", file=sys.stderr)
  return status or next((p.returncode for p in procs if p.returncode), 0)


_OVERRIDES = []


def _parse_flags(argv: list[str]) -> list[str]:
  """absl parsing of the launcher's flags; `--config.x=y` overrides (and --verbose) are
  set aside for the processes.

  --help lists the shipped configs; --config is found from any directory.
  """
  if any(arg in launcher.HELP_FLAGS for arg in argv[1:]):
    config_help.print_help_and_exit(argv)
  argv = launcher.resolve_config_arg(argv)
  overrides = [a for a in argv[1:] if a.startswith("--config.") or a == "--verbose"]
  _OVERRIDES.extend(overrides)
  return flags.FLAGS([a for a in argv if a not in overrides])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  num_processes = _NUM_PROCESSES.value
  if _PLATFORM.value == "gpu" and not _DRY_RUN.value:
    problem = gpu_problem(num_gpus=count_gpus(), cuda_jax=has_cuda_jax())
    if problem:
      sys.exit(f"error: {problem}")
  if _MODE.value == "per_gpu" and num_processes is None:
    num_processes = count_gpus() if _PLATFORM.value == "gpu" else 0
    if not num_processes:
      sys.exit("error: no GPUs found (`nvidia-smi -L` lists none); pass --num_processes"
               + ("" if _PLATFORM.value == "gpu" else " with --platform=cpu"))
  try:
    commands = process_commands(
        mode=_MODE.value, num_processes=num_processes or 1, platform=_PLATFORM.value,
        port=_PORT.value or free_port(), script=_SCRIPT.value,
        args=[f"--config={_CONFIG.value}", f"--workdir={_WORKDIR.value}", *_OVERRIDES])
  except ValueError as e:
    sys.exit(f"error: {e}")
  if _DRY_RUN.value:
    for env, argv_ in commands:
      print(format_command(env, argv_))
    return
  sys.exit(run_processes(commands))


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
