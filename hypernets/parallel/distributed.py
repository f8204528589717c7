"""Multi-process JAX: `maybe_initialize(config)` once per process, `is_primary()`.

Every process of a multi-host run (a Cloud TPU pod slice, several GPU processes)
runs the same program; `jax.distributed.initialize` joins them into one set of
global devices before anything touches a backend. Whether to join is read from
`config.distributed` (all fields optional):

  enabled              'auto' (default) | True | False
  coordinator_address  'host:port' of process 0 (else $JAX_COORDINATOR_ADDRESS,
                       else autodetected on Cloud TPU / Slurm / Open MPI)
  num_processes        -1: $JAX_NUM_PROCESSES, else autodetected
  process_id           -1: $JAX_PROCESS_ID, else autodetected

'auto' joins only when the environment says this is one process of several:
$JAX_COORDINATOR_ADDRESS, $HYPERNETS_DISTRIBUTED=1 (set by launch/tpu_pod.py), an
`srun` step of more than one task, an Open MPI job of more than one process, or TPU
chips on this machine (a Cloud TPU VM, where `jax.distributed.initialize()` finds
its slice). On a plain machine it does nothing. $HYPERNETS_DISTRIBUTED=0 turns
'auto' off. A Slurm job of several tasks whose batch script runs python itself
(not under `srun`) is one process: JAX finds its peers only inside an srun step
($SLURM_STEP_NODELIST), so it runs alone and says so in one log line.
"""

import glob
import os

from absl import logging
import jax
import ml_collections

from hypernets.errors import ConfigError

# Set by a launcher (launch/tpu_pod.py) on every worker of a slice: '1' joins
# (autodetecting whatever is not given), '0' never joins under 'auto'.
ENV_FLAG = "HYPERNETS_DISTRIBUTED"

_TPU_REASON = "TPU chips on this machine (Cloud TPU VM)"
_initialized_here = False


def _env_int(name: str) -> int | None:
  value = os.environ.get(name, "").strip()
  if not value:
    return None
  try:
    return int(value)
  except ValueError:
    raise ConfigError(f"${name} must be an integer, got {value!r}") from None


_PCI_DEVICES = "/sys/bus/pci/devices"
_GOOGLE_PCI_VENDOR = "0x1ae0"
_PCI_ACCELERATOR_CLASS = "0x12"  # PCI base class 0x12: processing accelerators
_slurm_reason_logged = False


def _tpu_chips_attached() -> bool:
  """TPU chips on this machine's PCI bus (sysfs only: no backend, no network)."""
  try:  # jax's own probe; a private module, so only if it is still there
    from jax._src import hardware_utils  # pylint: disable=g-import-not-at-top
    return hardware_utils.num_available_tpu_chips_and_device_id()[0] > 0
  except Exception:  # pylint: disable=broad-except
    pass
  # Public fallback: a Google PCI device of the accelerator class (a NIC from
  # Google, gVNIC, is of the network class).
  for device in glob.glob(os.path.join(_PCI_DEVICES, "*")):
    try:
      with open(os.path.join(device, "vendor")) as f:
        vendor = f.read().strip()
      with open(os.path.join(device, "class")) as f:
        device_class = f.read().strip()
    except OSError:
      continue
    if vendor == _GOOGLE_PCI_VENDOR and device_class.startswith(_PCI_ACCELERATOR_CLASS):
      return True
  return False


def _slurm_signal() -> str | None:
  """'an srun step of N tasks' inside a multi-task srun step, else None (logged once
  when a multi-task Slurm job runs python outside srun)."""
  global _slurm_reason_logged
  if "SLURM_JOB_ID" not in os.environ:
    return None
  in_step = "SLURM_STEP_ID" in os.environ and "SLURM_STEP_NODELIST" in os.environ
  if in_step:
    tasks = _env_int("SLURM_STEP_NUM_TASKS") or _env_int("SLURM_NTASKS") or 1
    return f"an srun step of {tasks} tasks" if tasks > 1 else None
  tasks = _env_int("SLURM_NTASKS") or 1
  if tasks > 1 and not _slurm_reason_logged:
    _slurm_reason_logged = True
    logging.warning("Slurm job of %d tasks, but this process is not in an srun step (no "
                    "$SLURM_STEP_ID): running as one process; start it with `srun python "
                    "launch/main.py ...` to run one process per task", tasks)
  return None


def environment_signal() -> str | None:
  """Why the environment asks for a multi-process run, or None (plain machine)."""
  flag = os.environ.get(ENV_FLAG, "").strip().lower()
  if flag in ("0", "false", "no"):
    return None
  if flag in ("1", "true", "yes"):
    return f"${ENV_FLAG}={flag}"
  if os.environ.get("JAX_COORDINATOR_ADDRESS"):
    return "$JAX_COORDINATOR_ADDRESS"
  slurm = _slurm_signal()
  if slurm:
    return slurm
  if (_env_int("OMPI_COMM_WORLD_SIZE") or 1) > 1:
    return "an Open MPI job of several processes"
  if _tpu_chips_attached():
    return _TPU_REASON
  return None


def _cpu_only() -> bool:
  platforms = os.environ.get("JAX_PLATFORMS") or jax.config.jax_platforms or ""
  return platforms.split(",")[0].strip() == "cpu"


def maybe_initialize(config: ml_collections.ConfigDict) -> bool:
  """Calls `jax.distributed.initialize` if config or environment ask; once per process.

  Call it first, before anything touches jax devices. Idempotent: later calls (or
  a process that someone else already initialised) return True without joining
  again.

  Args:
    config: the experiment config; `config.distributed` is optional (module doc).

  Returns:
    True if this process is part of an initialised multi-process run.

  Raises:
    ConfigError: bad `config.distributed` values, or asked to join after the
      backend was initialised.
  """
  global _initialized_here
  if _initialized_here or jax.distributed.is_initialized():
    return True
  dist = config.get("distributed", None) or ml_collections.ConfigDict()
  enabled = dist.get("enabled", "auto")
  if isinstance(enabled, str) and enabled.lower() in ("true", "false"):
    enabled = enabled.lower() == "true"
  if enabled not in ("auto", True, False):
    raise ConfigError(f"config.distributed.enabled must be 'auto', True or False, "
                      f"got {enabled!r}")
  if enabled is False:
    return False
  reason = "config.distributed.enabled=True" if enabled is True else environment_signal()
  if reason is None:
    return False

  coordinator = dist.get("coordinator_address", None) or None
  # -1 (the configs' default) and None both mean: from the environment.
  num_processes = dist.get("num_processes", None)
  process_id = dist.get("process_id", None)
  num_processes = None if num_processes in (None, -1) else num_processes
  process_id = None if process_id in (None, -1) else process_id
  if num_processes is None:
    num_processes = _env_int("JAX_NUM_PROCESSES")
  if process_id is None:
    process_id = _env_int("JAX_PROCESS_ID")

  too_late = ConfigError(f"a multi-process run was asked for ({reason}) but JAX already "
                         "started its backend; call distributed.maybe_initialize(config) "
                         "before anything touches jax devices")
  if _cpu_only():
    # Cross-process collectives on CPU (gloo is also jax 0.10's default).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  logging.info("jax.distributed.initialize(coordinator_address=%s, num_processes=%s, "
               "process_id=%s): %s", coordinator, num_processes, process_id, reason)
  try:
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)
  except RuntimeError as e:
    # The public API's own check: it refuses once a backend is up.
    if "before any JAX" in str(e):
      raise too_late from None
    raise
  except ValueError as e:
    if reason != _TPU_REASON:
      raise ConfigError(f"jax.distributed.initialize failed ({reason}): {e}") from None
    # A TPU machine that is not a Cloud TPU VM (no slice metadata): run alone.
    logging.warning("not joining a multi-process run: %s", e)
    return False
  _initialized_here = True
  logging.info("process %d of %d, %d local / %d global devices", jax.process_index(),
               jax.process_count(), jax.local_device_count(), jax.device_count())
  return True


def is_primary() -> bool:
  """True on process 0, the one that writes results, metrics and logs."""
  return jax.process_index() == 0


def barrier(name: str) -> None:
  """Waits until every process reaches `name`; nothing to wait for in a single process."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


def first_error(message: str | None) -> str | None:
  """The first process's error message (by process index) on every process, or None.

  For a step that some processes may fail alone (process 0 finds the workdir in
  use): all of them must then stop with the same line instead of the others
  waiting forever at the next barrier. A collective in a multi-process run.
  """
  if jax.process_count() == 1:
    return message
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  size = 2048
  mine = np.zeros(size, np.uint8)
  encoded = (message or "").encode()[:size]
  mine[:len(encoded)] = np.frombuffer(encoded, np.uint8)
  every = np.asarray(multihost_utils.process_allgather(mine))  # [processes, size]
  for row in every.reshape(-1, size):
    text = bytes(row).rstrip(b"\0").decode(errors="replace")
    if text:
      return text
  return None
