r"""Runs one experiment on a Cloud TPU VM or pod slice with the `gcloud` CLI.

  python launch/tpu_pod.py --name=hn-v4 --zone=us-central2-b --accelerator_type=v4-32 \
      --config=configs/synthetic.py --workdir=runs/synthetic --config.num_seeds=8

Creates the slice, copies this repository to every worker and installs it
(`pip install -e . jax[tpu]`), runs `launch/main.py` on ALL workers at once (one
JAX process per host; `jax.distributed.initialize()` finds the slice, see
hypernets/parallel/distributed.py), copies the workdir back from worker 0 (only process 0
writes results.json and metrics.jsonl) and deletes the slice (unless --keep);
after a failed step the workdir is still fetched and the slice still deleted.
`--dry_run` prints every command, one per line, and runs nothing. Extra
`--config.x=y` arguments are passed on to launch/main.py.

A relative --workdir is relative to the code on each worker (~/hypernets). It is
on each worker's own disk: orbax writes every process's checkpoint shards where
that process runs, so a run that must resume on another slice wants a workdir on
shared storage (a GCS bucket mounted with gcsfuse, or NFS) on every worker, e.g.
--workdir=/gcs/my-bucket/runs/synthetic; then fetching is optional.

gcloud commands and flags follow the Cloud TPU docs (checked 2025):
  create:  https://cloud.google.com/sdk/gcloud/reference/compute/tpus/tpu-vm/create
           (--zone, --accelerator-type, --version, --spot, --preemptible)
  ssh/scp: https://cloud.google.com/sdk/gcloud/reference/compute/tpus/tpu-vm/ssh
           https://cloud.google.com/sdk/gcloud/reference/compute/tpus/tpu-vm/scp
           (--worker=all runs / copies on every host of a slice)
  runtime: https://cloud.google.com/tpu/docs/runtimes ("TPU software versions":
           v6e v2-alpha-tpuv6e, v5p v2-alpha-tpuv5, v5e v2-alpha-tpuv5-lite,
           v4 and older tpu-ubuntu2204-base)
  pods:    https://cloud.google.com/tpu/docs/jax-pods (run the same program on
           all workers; v5e slices are named v5litepod-N)
"""

import os
import re
import shlex
import subprocess
import sys

from absl import app
from absl import flags

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
from hypernets import config as config_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from hypernets import config_help  # pylint: disable=g-import-not-at-top,wrong-import-position
# What the workers need to install and run the library (copied into REMOTE_DIR).
CODE_PATHS = ("setup.py", "README.md", "hypernets", "launch", "configs")
REMOTE_DIR = "hypernets"  # on each worker, relative to the home directory

# Runtime (software) version per TPU generation (cloud.google.com/tpu/docs/runtimes).
RUNTIME_VERSIONS = {
    "v2": "tpu-ubuntu2204-base",
    "v3": "tpu-ubuntu2204-base",
    "v4": "tpu-ubuntu2204-base",
    "v5litepod": "v2-alpha-tpuv5-lite",
    "v5p": "v2-alpha-tpuv5",
    "v6e": "v2-alpha-tpuv6e",
}
# Friendly generation names -> gcloud's accelerator-type prefix.
_ALIASES = {"v5e": "v5litepod", "v5lite": "v5litepod", "v6": "v6e", "trillium": "v6e"}

_NAME = flags.DEFINE_string("name", None, "Name of the TPU VM / slice to create.")
_ZONE = flags.DEFINE_string("zone", None, "Zone, e.g. us-central2-b (v4), us-west4-a (v5e).")
_ACCELERATOR = flags.DEFINE_string(
    "accelerator_type", "v4-8", "TPU type: v4-32, v5e-8 (= v5litepod-8), v5p-8, v6e-8, ...")
_RUNTIME = flags.DEFINE_string(
    "runtime_version", None, "TPU software version (default: the one the TPU docs give "
    "for the accelerator's generation).")
_CONFIG = flags.DEFINE_string(
    "config", None, "Config file, relative to the repository root, with an optional "
    ":variant (as for launch/main.py).")
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Workdir on the workers (relative: under ~/hypernets).")
_PROJECT = flags.DEFINE_string("project", None, "Google Cloud project (default: gcloud's).")
_SPOT = flags.DEFINE_bool("spot", False, "Create a Spot (preemptible, cheaper) slice.")
_KEEP = flags.DEFINE_bool("keep", False, "Do not delete the slice at the end.")
_FETCH_TO = flags.DEFINE_string(
    "fetch_to", None, "Local directory the workdir is copied into (default: "
    "tpu_runs/<name>).")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the commands; run nothing.")
flags.mark_flags_as_required(["name", "zone", "config", "workdir"])


def resolve_accelerator(name: str) -> tuple[str, str]:
  """'v5e-8' -> ('v5litepod-8', 'v2-alpha-tpuv5-lite'): gcloud type and runtime."""
  match = re.fullmatch(r"([a-z0-9]+)-(\d+)", name.strip().lower())
  if not match:
    raise ValueError(f"accelerator type {name!r} is not of the form GENERATION-SIZE "
                     "(v4-32, v5e-8, ...)")
  generation = _ALIASES.get(match.group(1), match.group(1))
  if generation not in RUNTIME_VERSIONS:
    raise ValueError(f"unknown TPU generation in {name!r}; known: "
                     f"{', '.join(sorted(set(RUNTIME_VERSIONS) | set(_ALIASES)))}")
  return f"{generation}-{match.group(2)}", RUNTIME_VERSIONS[generation]


def _common(*, zone: str, project: str | None) -> list[str]:
  return [f"--zone={zone}"] + ([f"--project={project}"] if project else [])


def _tpu_vm(verb: str) -> list[str]:
  return ["gcloud", "compute", "tpus", "tpu-vm", verb]


def remote_workdir(workdir: str) -> str:
  """The workdir as a path on a worker (relative paths live under ~/REMOTE_DIR)."""
  return workdir if os.path.isabs(workdir) else f"{REMOTE_DIR}/{workdir}"


def remote_config(config: str, *, repo_root: str = REPO_ROOT) -> str:
  """The config spec as the workers see it: a local path in the repository becomes
  relative to it ('/home/me/hypernets/configs/x.py:small' -> 'configs/x.py:small')."""
  path, colon, variant = config.partition(":")
  if os.path.isabs(path):
    relative = os.path.relpath(path, repo_root)
    if relative.startswith(".."):
      raise ValueError(f"--config={config} is outside the repository {repo_root}, "
                       "which is all that is copied to the workers")
    path = relative
  return path + colon + variant


def create_command(*, name: str, zone: str, accelerator_type: str,
                   runtime_version: str | None = None, project: str | None = None,
                   spot: bool = False) -> list[str]:
  """`gcloud compute tpus tpu-vm create` argv for the (friendly) accelerator type."""
  accelerator, default_runtime = resolve_accelerator(accelerator_type)
  return (_tpu_vm("create") + [name] + _common(zone=zone, project=project)
          + [f"--accelerator-type={accelerator}",
             f"--version={runtime_version or default_runtime}"]
          + (["--spot"] if spot else []))


def ssh_command(*, name: str, zone: str, project: str | None, command: str,
                worker: str = "all") -> list[str]:
  """argv running the shell `command` on `worker` ('all': every host at once)."""
  return (_tpu_vm("ssh") + [name] + _common(zone=zone, project=project)
          + [f"--worker={worker}", f"--command={command}"])


def copy_code_commands(*, name: str, zone: str, project: str | None = None,
                       repo_root: str = REPO_ROOT) -> list[list[str]]:
  """argvs copying CODE_PATHS of `repo_root` into ~/REMOTE_DIR on every worker."""
  sources = [os.path.join(repo_root, path) for path in CODE_PATHS]
  return [
      ssh_command(name=name, zone=zone, project=project,
                  command=f"mkdir -p ~/{REMOTE_DIR}"),
      _tpu_vm("scp") + sources + [f"{name}:{REMOTE_DIR}/", "--recurse", "--worker=all"]
      + _common(zone=zone, project=project),
  ]


def install_command(*, name: str, zone: str, project: str | None = None) -> list[str]:
  """argv installing the copied library and JAX for TPU on every worker."""
  return ssh_command(name=name, zone=zone, project=project,
                     command=f"cd ~/{REMOTE_DIR} && python3 -m pip install -q -U -e . "
                             '"jax[tpu]"')


def train_command(*, name: str, zone: str, config: str, workdir: str,
                  overrides: list[str] = (), project: str | None = None) -> list[str]:
  """argv running launch/main.py on every worker at once (one JAX process per host).

  HYPERNETS_DISTRIBUTED=1 makes `distributed.maybe_initialize` join the slice.
  """
  main = ["python3", "launch/main.py", f"--config={config}", f"--workdir={workdir}",
          *overrides]
  command = f"cd ~/{REMOTE_DIR} && HYPERNETS_DISTRIBUTED=1 {shlex.join(main)}"
  return ssh_command(name=name, zone=zone, project=project, command=command)


def fetch_command(*, name: str, zone: str, workdir: str, destination: str,
                  project: str | None = None) -> list[str]:
  """argv copying the workdir from worker 0 (the writer of results) to `destination`."""
  return (_tpu_vm("scp") + [f"{name}:{remote_workdir(workdir)}", destination, "--recurse",
                            "--worker=0"] + _common(zone=zone, project=project))


def delete_command(*, name: str, zone: str, project: str | None = None) -> list[str]:
  return _tpu_vm("delete") + [name] + _common(zone=zone, project=project) + ["--quiet"]


def pod_commands(*, name: str, zone: str, accelerator_type: str, config: str,
                 workdir: str, overrides: list[str] = (), runtime_version: str | None = None,
                 project: str | None = None, spot: bool = False, keep: bool = False,
                 fetch_to: str | None = None,
                 repo_root: str = REPO_ROOT) -> list[tuple[str, list[str]]]:
  """Every step of a run as (step name, argv): create, copy, install, train, fetch, delete.

  The last ('delete') is left out with `keep`.
  """
  where = dict(name=name, zone=zone, project=project)
  steps = [("create", create_command(accelerator_type=accelerator_type,
                                     runtime_version=runtime_version, spot=spot, **where))]
  steps += [("copy", argv) for argv in copy_code_commands(repo_root=repo_root, **where)]
  steps += [("install", install_command(**where)),
            ("train", train_command(config=remote_config(config, repo_root=repo_root),
                                    workdir=workdir,
                                    overrides=list(overrides), **where)),
            ("fetch", fetch_command(workdir=workdir,
                                    destination=fetch_to or os.path.join("tpu_runs", name),
                                    **where))]
  if not keep:
    steps.append(("delete", delete_command(**where)))
  return steps


def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
  """(argv without `--config.x=y` overrides, the overrides) for absl's parser."""
  overrides = [a for a in argv[1:] if a.startswith("--config.")]
  return [a for a in argv if a not in overrides], overrides


def run_steps(steps: list[tuple[str, list[str]]]) -> int:
  """Runs the steps in order; returns the first non-zero exit status (or 0).

  After a failure only 'fetch' (what a failed run left, e.g. its checkpoints) and
  'delete' still run, and only for a slice this run created: the name may be
  someone else's.
  """
  status, created = 0, False
  for step, argv in steps:
    if status and (step not in ("fetch", "delete") or not created):
      continue
    print(f"[{step}] {shlex.join(argv)}", flush=True)
    rc = subprocess.call(argv)
    if rc:
      print(f"[{step}] failed with exit status {rc}", file=sys.stderr, flush=True)
      status = status or rc
    elif step == "create":
      created = True
  return status


_OVERRIDES = []


def _parse_flags(argv: list[str]) -> list[str]:
  """--help lists the shipped configs; --config is found from any directory."""
  if any(arg in config_lib.HELP_FLAGS for arg in argv[1:]):
    config_help.print_help_and_exit(argv)
  rest, overrides = split_overrides(config_lib.resolve_config_arg(argv))
  _OVERRIDES.extend(overrides)
  return flags.FLAGS(rest)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  fetch_to = _FETCH_TO.value or os.path.join("tpu_runs", _NAME.value)
  try:
    steps = pod_commands(name=_NAME.value, zone=_ZONE.value,
                         accelerator_type=_ACCELERATOR.value, config=_CONFIG.value,
                         workdir=_WORKDIR.value, overrides=_OVERRIDES,
                         runtime_version=_RUNTIME.value, project=_PROJECT.value,
                         spot=_SPOT.value, keep=_KEEP.value, fetch_to=fetch_to)
  except ValueError as e:
    sys.exit(f"error: {e}")
  if _DRY_RUN.value:
    for _, argv_ in steps:
      print(shlex.join(argv_))
    return
  os.makedirs(os.path.dirname(os.path.abspath(fetch_to)), exist_ok=True)  # scp needs it
  sys.exit(run_steps(steps))


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
