"""The gcloud commands of a Cloud TPU run (pure functions; launch/tpu_pod.py runs them).

gcloud commands and flags follow the Cloud TPU docs (checked 2025):
  create:  https://cloud.google.com/sdk/gcloud/reference/compute/tpus/tpu-vm/create
           (--zone, --accelerator-type, --version, --spot)
  queued:  https://cloud.google.com/sdk/gcloud/reference/compute/tpus/queued-resources/create
           (--node-id, --accelerator-type, --runtime-version, --spot); `describe`
           gives state.state (WAITING_FOR_RESOURCES, PROVISIONING, ACTIVE, FAILED,
           SUSPENDING, SUSPENDED, ...); `delete --force` deletes its node too
  ssh/scp: https://cloud.google.com/sdk/gcloud/reference/compute/tpus/tpu-vm/ssh
           https://cloud.google.com/sdk/gcloud/reference/compute/tpus/tpu-vm/scp
           (--worker=all runs / copies on every host of a slice, --worker=I on one)
  runtime: https://cloud.google.com/tpu/docs/runtimes ("TPU software versions":
           v6e v2-alpha-tpuv6e, v5p v2-alpha-tpuv5, v5e v2-alpha-tpuv5-lite,
           v4 and older tpu-ubuntu2204-base)
  pods:    https://cloud.google.com/tpu/docs/jax-pods (run the same program on
           all workers; v5e slices are named v5litepod-N)
"""

import dataclasses
import os
import re
import shlex

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What the workers need to install and run the library (copied into REMOTE_DIR).
CODE_PATHS = ("setup.py", "README.md", "hypernets", "launch", "configs")
REMOTE_DIR = "hypernets"  # on each worker, relative to the home directory
WORKER_SCRIPT = "launch/tpu_worker.sh"  # relative to REMOTE_DIR
REMOTE_RUN_DIR = "~/hypernets-run"  # tpu_worker.sh's $RUN: train.log and status
PREEMPTED = 75  # EX_TEMPFAIL: the loop stopped on SIGTERM, checkpoint written; rerun resumes

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


def num_workers(accelerator_type: str) -> int:
  """Hosts (TPU VMs) of a slice: v2-v5p count TensorCores, 8 per host; v5e and v6e
  count chips, one host up to 8 chips and 4 chips per host beyond."""
  accelerator, _ = resolve_accelerator(accelerator_type)
  generation, size = accelerator.rsplit("-", 1)
  size = int(size)
  if generation in ("v5litepod", "v6e"):
    return 1 if size <= 8 else size // 4
  return max(size // 8, 1)


@dataclasses.dataclass(frozen=True)
class Plan:
  """Everything a launch needs; the commands below are functions of it."""
  name: str
  zone: str
  accelerator_type: str
  config: str
  workdir: str
  overrides: tuple[str, ...] = ()
  project: str | None = None
  runtime_version: str | None = None
  spot: bool = False
  queued: bool = False
  keep: bool = False
  fetch_to: str | None = None
  max_restarts: int = 5
  queue_timeout: float = 7200.0
  poll_seconds: float = 30.0
  python_version: str = "3.12"
  repo_root: str = REPO_ROOT

  @property
  def in_bucket(self) -> bool:
    """A gs:// workdir outlives the slice: a preempted run resumes on a new one."""
    return "://" in self.workdir

  @property
  def workers(self) -> int:
    return num_workers(self.accelerator_type)

  @property
  def local_dir(self) -> str:
    """Where the launcher keeps the workers' logs and (local workdirs) the fetched run."""
    return self.fetch_to or os.path.join("tpu_runs", self.name)


def _common(plan: Plan) -> list[str]:
  return [f"--zone={plan.zone}"] + ([f"--project={plan.project}"] if plan.project else [])


def _tpu_vm(verb: str) -> list[str]:
  return ["gcloud", "compute", "tpus", "tpu-vm", verb]


def _queued(verb: str) -> list[str]:
  return ["gcloud", "compute", "tpus", "queued-resources", verb]


def remote_workdir(workdir: str) -> str:
  """The workdir as a path on a worker (relative paths live under ~/REMOTE_DIR)."""
  return workdir if os.path.isabs(workdir) or "://" in workdir else f"{REMOTE_DIR}/{workdir}"


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


def describe_commands(plan: Plan) -> list[list[str]]:
  """describe argvs that must each fail with NOT_FOUND before anything is created."""
  node = _tpu_vm("describe") + [plan.name] + _common(plan) + ["--format=value(state)"]
  if not plan.queued:
    return [node]
  return [_queued("describe") + [plan.name] + _common(plan) + ["--format=value(state.state)"],
          node]


def create_command(plan: Plan) -> list[str]:
  """Creates the slice directly, or (`queued`) asks for it as a queued resource."""
  accelerator, default_runtime = resolve_accelerator(plan.accelerator_type)
  runtime = plan.runtime_version or default_runtime
  spot = ["--spot"] if plan.spot else []
  if plan.queued:
    return (_queued("create") + [plan.name, f"--node-id={plan.name}"] + _common(plan)
            + [f"--accelerator-type={accelerator}", f"--runtime-version={runtime}"] + spot)
  return (_tpu_vm("create") + [plan.name] + _common(plan)
          + [f"--accelerator-type={accelerator}", f"--version={runtime}"] + spot)


def queued_state_command(plan: Plan) -> list[str]:
  """Prints the queued resource's state (ACTIVE once the slice is ready)."""
  return _queued("describe") + [plan.name] + _common(plan) + ["--format=value(state.state)"]


def node_state_command(plan: Plan) -> list[str]:
  """Prints the node's state (READY while it runs; PREEMPTED, or NOT_FOUND, after)."""
  return _tpu_vm("describe") + [plan.name] + _common(plan) + ["--format=value(state)"]


def delete_command(plan: Plan) -> list[str]:
  """Deletes the slice (queued: the queued resource and, with --force, its node)."""
  if plan.queued:
    return _queued("delete") + [plan.name] + _common(plan) + ["--force", "--quiet"]
  return _tpu_vm("delete") + [plan.name] + _common(plan) + ["--quiet"]


def ssh_command(plan: Plan, command: str, *, worker: str | int = "all") -> list[str]:
  """argv running the shell `command` on `worker` ('all': every host at once)."""
  return (_tpu_vm("ssh") + [plan.name] + _common(plan)
          + [f"--worker={worker}", f"--command={command}"])


def _in_code_dir(*words: str, env: str = "") -> str:
  """The shell line running tpu_worker.sh `words` in the code directory."""
  return f"cd ~/{REMOTE_DIR} && {env}" + shlex.join(["bash", WORKER_SCRIPT, *words])


def copy_code_commands(plan: Plan) -> list[list[str]]:
  """argvs copying CODE_PATHS of the repository into ~/REMOTE_DIR on every worker."""
  sources = [os.path.join(plan.repo_root, path) for path in CODE_PATHS]
  return [ssh_command(plan, f"mkdir -p ~/{REMOTE_DIR}"),
          _tpu_vm("scp") + sources + [f"{plan.name}:{REMOTE_DIR}/", "--recurse",
                                      "--worker=all"] + _common(plan)]


def provision_command(plan: Plan) -> list[str]:
  """Python `python_version` (uv), the library and jax[tpu] on every worker.

  A gs:// workdir adds the `gcs` extra (gcsfs: etils.epath's gs:// backend).
  """
  extras = ["gcs"] if plan.in_bucket else []
  return ssh_command(plan, _in_code_dir(
      "provision", *extras, env=f"HYPERNETS_PYTHON_VERSION={plan.python_version} "))


def preflight_command(plan: Plan) -> list[str]:
  """On worker 0: Python >= 3.11, jax >= 0.10, libtpu, the library, a writable workdir."""
  return ssh_command(plan, _in_code_dir("preflight", remote_workdir(plan.workdir)),
                     worker=0)


def start_command(plan: Plan, worker: int) -> list[str]:
  """Starts launch/main.py detached on `worker` (one JAX process per host)."""
  main = ["launch/main.py", f"--config={remote_config(plan.config, repo_root=plan.repo_root)}",
          f"--workdir={plan.workdir}", *plan.overrides]
  return ssh_command(plan, _in_code_dir("start", str(worker), remote_workdir(plan.workdir),
                                        *main), worker=worker)


def attach_command(plan: Plan, worker: int, *, from_line: int = 1) -> list[str]:
  """Streams `worker`'s log from `from_line` until the run ends; exits with its status."""
  return ssh_command(plan, _in_code_dir("attach", str(from_line)), worker=worker)


def fetch_command(plan: Plan) -> list[str]:
  """Copies the workdir from worker 0 (the writer of results) into local_dir."""
  return (_tpu_vm("scp") + [f"{plan.name}:{remote_workdir(plan.workdir)}", plan.local_dir,
                            "--recurse", "--worker=0"] + _common(plan))


def dry_run(plan: Plan) -> list[str]:
  """The whole sequence, one command a line, '#' lines saying when each runs."""
  accelerator, _ = resolve_accelerator(plan.accelerator_type)
  kind = ", ".join(filter(None, ["spot" if plan.spot else "", "queued" if plan.queued else ""]))
  lines = [f"# {plan.name}: {accelerator} ({plan.workers} worker"
           f"{'s' if plan.workers > 1 else ''}{', ' + kind if kind else ''}), "
           f"workdir {plan.workdir}"]
  lines.append("# 1. the name must be free: each describe must fail with NOT_FOUND")
  lines += [shlex.join(c) for c in describe_commands(plan)]
  lines.append("# 2. create; from here on every exit (success, failure, Ctrl-C, SIGTERM, "
               "SIGHUP, lost ssh) ends in the last step" + ("" if not plan.keep else
                                                           " (--keep: no delete)"))
  lines.append(shlex.join(create_command(plan)))
  if plan.queued:
    lines.append(f"# 3. wait for ACTIVE: every {plan.poll_seconds:g} s, at most "
                 f"{plan.queue_timeout:g} s; FAILED or SUSPENDED stops")
    lines.append(shlex.join(queued_state_command(plan)))
  lines.append("# 4. copy the code to every worker")
  lines += [shlex.join(c) for c in copy_code_commands(plan)]
  lines.append(f"# 5. Python {plan.python_version} (uv), the library and jax[tpu] on every "
               "worker")
  lines.append(shlex.join(provision_command(plan)))
  lines.append("# 6. pre-flight on worker 0: Python >= 3.11, jax, libtpu, workdir writable")
  lines.append(shlex.join(preflight_command(plan)))
  lines.append(f"# 7. start detached on each worker (nohup setsid; output in "
               f"{REMOTE_RUN_DIR}/train.log, copied to the workdir's logs/ at the end)")
  lines += [shlex.join(start_command(plan, i)) for i in range(plan.workers)]
  lines.append(f"# 8. attach: each worker's log streamed, prefixed [wI], into "
               f"{plan.local_dir}/logs/worker-I.log; an ssh that drops is attached again "
               "from the next line; ends with the run's exit status")
  lines += [shlex.join(attach_command(plan, i)) for i in range(plan.workers)]
  if plan.in_bucket:
    lines.append(f"# 9. preempted (a worker exits {PREEMPTED}, or the node is not READY):")
    lines.append(shlex.join(node_state_command(plan)))
    lines.append(f"#    delete, then again from step 2 (at most {plan.max_restarts} "
                 "restarts); the run resumes from its last checkpoint in the workdir")
    lines.append(shlex.join(delete_command(plan)))
  else:
    lines.append("# 9. fetch the workdir from worker 0 (also after a failure)")
    lines.append(shlex.join(fetch_command(plan)))
  if plan.keep:
    lines.append(f"# 10. --keep: {plan.name} is left running; delete it with:")
    lines.append("# " + shlex.join(delete_command(plan)))
  else:
    lines.append("# 10. delete")
    lines.append(shlex.join(delete_command(plan)))
  return lines
