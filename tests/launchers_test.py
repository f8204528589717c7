"""The TPU pod and GPU launchers' commands (dry runs; neither gcloud nor a GPU needed)."""

import importlib.util
import os
import shlex
import subprocess
import sys
import time

from absl import flags
import pytest

from conftest import REPO_ROOT


def _load_launcher(name: str):
  """launch/<name>.py as a module (launch/ is not a package), for its pure functions.

  Its absl flags are unregistered again: launchers share flag names (--config).
  """
  before = set(flags.FLAGS)
  spec = importlib.util.spec_from_file_location(f"launch_{name}",
                                                os.path.join(REPO_ROOT, "launch", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  for flag in set(flags.FLAGS) - before:
    delattr(flags.FLAGS, flag)
  return module


tpu_pod = _load_launcher("tpu_pod")
gpu = _load_launcher("gpu")


def _dry_run(script, *args, comments=False):
  """The dry run's lines split into argvs ('#' lines, which say when each runs, dropped)."""
  proc = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "launch", script), *args,
                         "--dry_run"], capture_output=True, text=True, timeout=60,
                        cwd=REPO_ROOT)
  assert proc.returncode == 0, proc.stderr[-2000:]
  lines = proc.stdout.strip().splitlines()
  if comments:
    return lines
  return [shlex.split(line) for line in lines if not line.startswith("#")]


def _ssh_command(argv):
  """The remote shell command of a `gcloud ... ssh --command=...` argv."""
  return next(a for a in argv if a.startswith("--command=")).partition("=")[2]


def _worker_script(argv):
  """['provision', 'gcs'] for `cd ~/hypernets && bash launch/tpu_worker.sh provision gcs`."""
  words = shlex.split(_ssh_command(argv).partition("&&")[2])
  return words[words.index("launch/tpu_worker.sh") + 1:]


tc = tpu_pod.tc


@pytest.mark.parametrize("friendly,accelerator,runtime,workers", [
    ("v4-32", "v4-32", "tpu-ubuntu2204-base", 4),
    ("v4-8", "v4-8", "tpu-ubuntu2204-base", 1),
    ("v5e-8", "v5litepod-8", "v2-alpha-tpuv5-lite", 1),
    ("v5litepod-16", "v5litepod-16", "v2-alpha-tpuv5-lite", 4),
    ("v5p-8", "v5p-8", "v2-alpha-tpuv5", 1),
    ("v6e-8", "v6e-8", "v2-alpha-tpuv6e", 1),
    ("v6e-64", "v6e-64", "v2-alpha-tpuv6e", 16),
])
def test_accelerator_names_map_to_gcloud_types_runtimes_and_hosts(friendly, accelerator,
                                                                  runtime, workers):
  assert tc.resolve_accelerator(friendly) == (accelerator, runtime)
  assert tc.num_workers(friendly) == workers


def test_unknown_accelerator_is_refused():
  with pytest.raises(ValueError, match="unknown TPU generation"):
    tc.resolve_accelerator("v9-8")
  with pytest.raises(ValueError, match="GENERATION-SIZE"):
    tc.resolve_accelerator("v4")


def test_v4_32_dry_run_prints_the_whole_sequence():
  lines = _dry_run("tpu_pod.py", "--name=hn", "--zone=us-central2-b",
                   "--accelerator_type=v4-32", "--config=configs/synthetic.py:small",
                   "--workdir=runs/s", "--config.num_seeds=8", "--config.model.kind=embedding")
  verbs = [line[4] for line in lines]
  assert verbs == (["describe", "create", "ssh", "scp", "ssh", "ssh"] + ["ssh"] * 8
                   + ["scp", "delete"])
  check, create, mkdir, copy, provision, preflight = lines[:6]
  starts, attaches, (fetch, delete) = lines[6:10], lines[10:14], lines[14:]
  assert check == ["gcloud", "compute", "tpus", "tpu-vm", "describe", "hn",
                   "--zone=us-central2-b", "--format=value(state)"]
  assert create == ["gcloud", "compute", "tpus", "tpu-vm", "create", "hn",
                    "--zone=us-central2-b", "--accelerator-type=v4-32",
                    "--version=tpu-ubuntu2204-base"]
  assert _ssh_command(mkdir) == "mkdir -p ~/hypernets"
  assert "--worker=all" in mkdir and "--worker=all" in copy and "--recurse" in copy
  assert os.path.join(REPO_ROOT, "hypernets") in copy and "hn:hypernets/" in copy
  assert "--worker=all" in provision and _worker_script(provision) == ["provision"]
  assert _ssh_command(provision).startswith("cd ~/hypernets && HYPERNETS_PYTHON_VERSION=3.12 ")
  assert "--worker=0" in preflight
  assert _worker_script(preflight) == ["preflight", "hypernets/runs/s"]
  for i, (start, attach) in enumerate(zip(starts, attaches)):
    assert f"--worker={i}" in start and f"--worker={i}" in attach
    assert _worker_script(start) == [
        "start", str(i), "hypernets/runs/s", "launch/main.py",
        "--config=configs/synthetic.py:small", "--workdir=runs/s", "--config.num_seeds=8",
        "--config.model.kind=embedding"]
    assert _worker_script(attach) == ["attach", "1"]
  assert fetch[5:] == ["hn:hypernets/runs/s", "tpu_runs/hn", "--recurse", "--worker=0",
                       "--zone=us-central2-b"]
  assert delete == ["gcloud", "compute", "tpus", "tpu-vm", "delete", "hn",
                    "--zone=us-central2-b", "--quiet"]


def test_v5e_8_spot_queued_gcs_dry_run_recreates_on_preemption():
  """The README's Cloud TPU walk-through, command by command."""
  lines = _dry_run("tpu_pod.py", "--name=hn5", "--zone=us-west4-a",
                   "--accelerator_type=v5e-8", "--config=configs/synthetic.py",
                   "--workdir=gs://my-bucket/runs/synthetic", "--project=my-proj", "--spot",
                   "--queued", "--max_restarts=3", "--config.num_seeds=8", comments=True)
  commands = [shlex.split(line) for line in lines if not line.startswith("#")]
  steps = [" ".join(c[3:5]) for c in commands]
  assert steps == ["queued-resources describe", "tpu-vm describe", "queued-resources create",
                   "queued-resources describe", "tpu-vm ssh", "tpu-vm scp", "tpu-vm ssh",
                   "tpu-vm ssh", "tpu-vm ssh", "tpu-vm ssh", "tpu-vm describe",
                   "queued-resources delete", "queued-resources delete"]
  assert all("--project=my-proj" in c and "--zone=us-west4-a" in c for c in commands)
  assert commands[2][5:] == ["hn5", "--node-id=hn5", "--zone=us-west4-a", "--project=my-proj",
                             "--accelerator-type=v5litepod-8",
                             "--runtime-version=v2-alpha-tpuv5-lite", "--spot"]
  assert commands[3][-1] == "--format=value(state.state)"
  assert _worker_script(commands[6]) == ["provision", "gcs"]  # gcsfs for gs:// workdirs
  assert _worker_script(commands[7]) == ["preflight", "gs://my-bucket/runs/synthetic"]
  assert "--workdir=gs://my-bucket/runs/synthetic" in _worker_script(commands[8])
  assert commands[-1][5:] == ["hn5", "--zone=us-west4-a", "--project=my-proj", "--force",
                              "--quiet"]
  text = "\n".join(lines)
  assert "scp" not in " ".join(commands[-3])  # nothing to fetch: the run is in the bucket
  assert "exits 75" in text and "at most 3 restarts" in text


def test_keep_prints_the_delete_it_leaves_to_you():
  lines = _dry_run("tpu_pod.py", "--name=hn5", "--zone=us-west4-a",
                   "--accelerator_type=v5e-8", "--config=configs/synthetic.py",
                   "--workdir=/data/run", "--keep", "--fetch_to=/tmp/results", comments=True)
  commands = [shlex.split(line) for line in lines if not line.startswith("#")]
  assert not any(c[4] == "delete" for c in commands)
  assert commands[-1][5:7] == ["hn5:/data/run", "/tmp/results"]
  assert lines[-1] == "# gcloud compute tpus tpu-vm delete hn5 --zone=us-west4-a --quiet"


def test_plan_commands_config_paths_and_runtime_override():
  plan = tc.Plan(name="t", zone="z", accelerator_type="v4-8",
                 config=os.path.join(REPO_ROOT, "configs", "synthetic.py:quick"),
                 workdir="w", overrides=("--config.seed=3",), runtime_version="my-runtime",
                 repo_root=REPO_ROOT)
  assert "--version=my-runtime" in tc.create_command(plan)
  start = _worker_script(tc.start_command(plan, 0))
  assert "--config=configs/synthetic.py:quick" in start  # made relative to the repository
  assert start[-1] == "--config.seed=3"
  assert _worker_script(tc.attach_command(plan, 0, from_line=42)) == ["attach", "42"]
  with pytest.raises(ValueError, match="outside the repository"):
    tc.remote_config("/elsewhere/x.py", repo_root=REPO_ROOT)


def test_gpu_per_gpu_dry_run_shows_one_command_per_process():
  lines = _dry_run("gpu.py", "--mode=per_gpu", "--num_processes=2",
                   "--config=configs/synthetic.py:small", "--workdir=/tmp/w",
                   "--config.num_seeds=2")
  assert len(lines) == 2
  envs = [dict(a.split("=", 1) for a in line if "=" in a and a.split("=")[0].isupper())
          for line in lines]
  assert [env["JAX_PROCESS_ID"] for env in envs] == ["0", "1"]
  assert [env["CUDA_VISIBLE_DEVICES"] for env in envs] == ["0", "1"]
  assert envs[0]["JAX_COORDINATOR_ADDRESS"] == envs[1]["JAX_COORDINATOR_ADDRESS"]
  assert envs[0]["JAX_COORDINATOR_ADDRESS"].startswith("localhost:")
  assert all(env["JAX_NUM_PROCESSES"] == "2" for env in envs)
  for line in lines:
    assert line[-4].endswith(os.path.join("launch", "main.py"))
    assert line[-3:] == ["--config=configs/synthetic.py:small", "--workdir=/tmp/w",
                         "--config.num_seeds=2"]


def test_gpu_cpu_platform_and_single_mode():
  commands = gpu.process_commands(mode="per_gpu", num_processes=3, platform="cpu", port=9,
                                  script="s.py", args=["--workdir=w"])
  assert len(commands) == 3
  assert all(env["JAX_PLATFORMS"] == "cpu" and "CUDA_VISIBLE_DEVICES" not in env
             for env, _ in commands)
  single = gpu.process_commands(mode="single", num_processes=8, platform="gpu", port=9,
                                script="s.py", args=["--workdir=w"])
  assert single == [({}, [sys.executable, "s.py", "--workdir=w"])]


def test_gpu_run_processes_stops_the_others_when_one_fails():
  sleeper = [sys.executable, "-c", "import time; print('waiting', flush=True); time.sleep(60)"]
  failer = [sys.executable, "-c", "import sys; sys.exit(3)"]
  start = time.monotonic()
  assert gpu.run_processes([({}, sleeper), ({}, failer)], grace_seconds=5) == 3
  assert time.monotonic() - start < 30
  assert gpu.run_processes([({}, [sys.executable, "-c", "pass"])] * 2) == 0


def test_gpu_per_gpu_without_gpus_or_count_is_one_clear_line():
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "launch", "gpu.py"), "--mode=per_gpu",
       "--config=configs/synthetic.py:small", "--workdir=w", "--platform=cpu", "--dry_run"],
      capture_output=True, text=True, timeout=60)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1].startswith("error: no GPUs found")


def test_gpu_check_says_what_is_missing():
  assert gpu.gpu_problem(num_gpus=2, cuda_jax=True) is None
  no_gpu = gpu.gpu_problem(num_gpus=0, cuda_jax=True)
  assert "nvidia-smi -L` lists none" in no_gpu and "--platform=cpu" in no_gpu
  no_cuda = gpu.gpu_problem(num_gpus=2, cuda_jax=False)
  assert 'jax[cuda13]' in no_cuda and "2 GPU(s) found" in no_cuda
  assert "\n" not in no_gpu + no_cuda


@pytest.mark.skipif(gpu.count_gpus() > 0, reason="this machine has GPUs")
def test_gpu_single_without_gpus_stops_before_running(tmp_path):
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "launch", "gpu.py"), "--mode=single",
       "--config=configs/synthetic.py:small", f"--workdir={tmp_path}/w"],
      capture_output=True, text=True, timeout=60)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines() == [
      "error: " + gpu.gpu_problem(num_gpus=0, cuda_jax=gpu.has_cuda_jax())]
  assert not os.path.exists(tmp_path / "w")


def test_gpu_help_lists_the_configs():
  proc = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "launch", "gpu.py"),
                         "--help"], capture_output=True, text=True, timeout=60)
  assert proc.returncode == 0
  assert "--mode" in proc.stdout and "configs/rotation_mnist.py" in proc.stdout
