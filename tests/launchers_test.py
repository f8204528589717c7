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


def _dry_run(script, *args):
  proc = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "launch", script), *args,
                         "--dry_run"], capture_output=True, text=True, timeout=60,
                        cwd=REPO_ROOT)
  assert proc.returncode == 0, proc.stderr[-2000:]
  return [shlex.split(line) for line in proc.stdout.strip().splitlines()]


def _ssh_command(argv):
  """The remote shell command of a `gcloud ... ssh --command=...` argv."""
  return next(a for a in argv if a.startswith("--command=")).partition("=")[2]


@pytest.mark.parametrize("friendly,accelerator,runtime", [
    ("v4-32", "v4-32", "tpu-ubuntu2204-base"),
    ("v5e-8", "v5litepod-8", "v2-alpha-tpuv5-lite"),
    ("v5litepod-16", "v5litepod-16", "v2-alpha-tpuv5-lite"),
    ("v5p-8", "v5p-8", "v2-alpha-tpuv5"),
    ("v6e-8", "v6e-8", "v2-alpha-tpuv6e"),
])
def test_accelerator_names_map_to_gcloud_types_and_runtimes(friendly, accelerator, runtime):
  assert tpu_pod.resolve_accelerator(friendly) == (accelerator, runtime)


def test_unknown_accelerator_is_refused():
  with pytest.raises(ValueError, match="unknown TPU generation"):
    tpu_pod.resolve_accelerator("v9-8")
  with pytest.raises(ValueError, match="GENERATION-SIZE"):
    tpu_pod.resolve_accelerator("v4")


def test_v4_32_dry_run_prints_the_whole_sequence():
  lines = _dry_run("tpu_pod.py", "--name=hn", "--zone=us-central2-b",
                   "--accelerator_type=v4-32", "--config=configs/synthetic.py:small",
                   "--workdir=runs/s", "--config.num_seeds=8", "--config.model.kind=embedding")
  assert [line[:5] for line in lines] == [["gcloud", "compute", "tpus", "tpu-vm", verb]
                                          for verb in ("create", "ssh", "scp", "ssh", "ssh",
                                                       "scp", "delete")]
  create, mkdir, copy, install, train, fetch, delete = lines
  assert create == ["gcloud", "compute", "tpus", "tpu-vm", "create", "hn",
                    "--zone=us-central2-b", "--accelerator-type=v4-32",
                    "--version=tpu-ubuntu2204-base"]
  assert _ssh_command(mkdir) == "mkdir -p ~/hypernets"
  assert "--worker=all" in mkdir and "--worker=all" in copy and "--recurse" in copy
  assert os.path.join(REPO_ROOT, "hypernets") in copy and "hn:hypernets/" in copy
  assert "pip install" in _ssh_command(install) and "--worker=all" in install
  assert "--worker=all" in train
  remote = shlex.split(_ssh_command(train).partition("&&")[2])
  assert remote == ["HYPERNETS_DISTRIBUTED=1", "python3", "launch/main.py",
                    "--config=configs/synthetic.py:small", "--workdir=runs/s",
                    "--config.num_seeds=8", "--config.model.kind=embedding"]
  assert fetch[5:] == ["hn:hypernets/runs/s", "tpu_runs/hn", "--recurse", "--worker=0",
                       "--zone=us-central2-b"]
  assert delete == ["gcloud", "compute", "tpus", "tpu-vm", "delete", "hn",
                    "--zone=us-central2-b", "--quiet"]


def test_v5e_8_dry_run_with_keep_spot_and_project_deletes_nothing():
  lines = _dry_run("tpu_pod.py", "--name=hn5", "--zone=us-west4-a",
                   "--accelerator_type=v5e-8", "--config=configs/synthetic.py",
                   "--workdir=/gcs/bucket/run", "--project=my-proj", "--spot", "--keep",
                   "--fetch_to=/tmp/results")
  verbs = [line[4] for line in lines]
  assert verbs == ["create", "ssh", "scp", "ssh", "ssh", "scp"]
  assert lines[0] == ["gcloud", "compute", "tpus", "tpu-vm", "create", "hn5",
                      "--zone=us-west4-a", "--project=my-proj",
                      "--accelerator-type=v5litepod-8", "--version=v2-alpha-tpuv5-lite",
                      "--spot"]
  assert all("--project=my-proj" in line for line in lines)
  assert "--workdir=/gcs/bucket/run" in _ssh_command(lines[4])
  assert lines[5][5:7] == ["hn5:/gcs/bucket/run", "/tmp/results"]


def test_pod_commands_pure_function_steps_and_runtime_override():
  steps = tpu_pod.pod_commands(name="t", zone="z", accelerator_type="v4-8",
                               config=os.path.join(REPO_ROOT, "configs", "synthetic.py:quick"),
                               workdir="w", overrides=["--config.seed=3"],
                               runtime_version="my-runtime", repo_root=REPO_ROOT)
  assert [name for name, _ in steps] == ["create", "copy", "copy", "install", "train",
                                         "fetch", "delete"]
  assert "--version=my-runtime" in steps[0][1]
  train = _ssh_command(steps[4][1])
  assert "--config=configs/synthetic.py:quick" in train  # made relative to the repository
  assert train.endswith("--config.seed=3")
  keep = tpu_pod.pod_commands(name="t", zone="z", accelerator_type="v4-8", config="c.py",
                              workdir="w", keep=True)
  assert [name for name, _ in keep][-1] == "fetch"
  with pytest.raises(ValueError, match="outside the repository"):
    tpu_pod.remote_config("/elsewhere/x.py", repo_root=REPO_ROOT)


def test_run_steps_deletes_only_a_slice_it_created(monkeypatch):
  calls = []

  def fake_call(argv):
    calls.append(argv[0])
    return {"create-ok": 0, "create-bad": 1, "train": 2}.get(argv[0], 0)

  monkeypatch.setattr(tpu_pod.subprocess, "call", fake_call)
  steps = [("create", ["create-ok"]), ("train", ["train"]), ("fetch", ["fetch"]),
           ("delete", ["delete"])]
  assert tpu_pod.run_steps(steps) == 2
  assert calls == ["create-ok", "train", "fetch", "delete"]  # keep what it left, free it
  calls.clear()
  assert tpu_pod.run_steps([("create", ["create-bad"])] + steps[1:]) == 1
  assert calls == ["create-bad"]  # the name may belong to someone else's slice


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
