r"""Runs one experiment on a Cloud TPU VM or pod slice with the `gcloud` CLI.

  python launch/tpu_pod.py --name=hn-v5e --zone=us-west4-a --accelerator_type=v5e-8 \
      --config=configs/synthetic.py --workdir=gs://my-bucket/runs/synthetic \
      --spot --queued --config.num_seeds=8

Checks the name is free, creates the slice (`--queued`: as a queued resource, then
waits for ACTIVE), copies this repository to every worker, provisions Python
3.12 with uv and installs the library with jax[tpu] (launch/tpu_worker.sh says
why), checks Python, jax, libtpu and the workdir on worker 0, starts
launch/main.py detached on every worker (one JAX process per host; a dropped ssh
does not end it), streams each worker's log prefixed [wI] into
<fetch_to>/logs/worker-I.log (an ssh that drops is attached again), and deletes the
slice on every way out (success, failure, Ctrl-C, SIGTERM, SIGHUP) unless --keep.
With a gs:// workdir a preempted run (a worker exits 75, or the node stops being
READY) is resumed on a new slice, at most --max_restarts times; a workdir on the
VMs' disks is fetched from worker 0 instead. `--dry_run` prints every command and
runs nothing. Extra `--config.x=y` arguments are passed on to launch/main.py.
The commands themselves are built in launch/tpu_commands.py.
"""

import os
import shlex
import signal
import subprocess
import sys
import threading
import time

from absl import app
from absl import flags

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hypernets import launcher  # pylint: disable=g-import-not-at-top,wrong-import-position
from hypernets import config_help  # pylint: disable=g-import-not-at-top,wrong-import-position
import tpu_commands as tc  # pylint: disable=g-import-not-at-top,wrong-import-position

SSH_FAILED = 255  # ssh's status when the connection, not the command, failed
_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

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
    "workdir", None, "Workdir: gs://bucket/path (survives the slice: preempted runs "
    "resume), or a path on the workers (relative: under ~/hypernets).")
_PROJECT = flags.DEFINE_string("project", None, "Google Cloud project (default: gcloud's).")
_SPOT = flags.DEFINE_bool("spot", False, "Spot (preemptible, cheaper) capacity.")
_QUEUED = flags.DEFINE_bool("queued", False, "Ask for the slice as a queued resource "
                            "and wait until it is ACTIVE (Google's way to v5e/v6e and "
                            "spot capacity).")
_QUEUE_TIMEOUT = flags.DEFINE_float("queue_timeout", 7200.0,
                                    "Seconds to wait for a queued resource to be ACTIVE.")
_MAX_RESTARTS = flags.DEFINE_integer(
    "max_restarts", 5, "With a gs:// workdir: new slices after preemptions, at most.")
_POLL = flags.DEFINE_float("poll_seconds", 30.0, "Seconds between state checks.")
_PYTHON = flags.DEFINE_string("python_version", "3.12",
                              "Python on the workers (uv-managed; jax needs >= 3.11).")
_KEEP = flags.DEFINE_bool("keep", False, "Do not delete the slice at the end.")
_FETCH_TO = flags.DEFINE_string(
    "fetch_to", None, "Local directory for the workers' logs and the fetched workdir "
    "(default: tpu_runs/<name>).")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the commands; run nothing.")
flags.mark_flags_as_required(["name", "zone", "config", "workdir"])


class StepFailed(Exception):
  """A step that cannot go on: (step, exit status, what happened)."""

  def __init__(self, step: str, status: int, detail: str = ""):
    super().__init__(f"[{step}] {detail or f'failed with exit status {status}'}")
    self.step, self.status = step, status


class Interrupted(BaseException):
  """SIGINT, SIGTERM or SIGHUP reached the launcher."""

  def __init__(self, signum: int):
    super().__init__(signal.Signals(signum).name)
    self.signum = signum


class Launcher:
  """Runs a Plan (see the module docstring); `run()` returns the exit status."""

  def __init__(self, plan: tc.Plan, *, out=None, reattach_limit: int = 5,
               reattach_backoff: float = 2.0, grace_seconds: float = 120.0):
    self.plan = plan
    self.out = out or sys.stdout
    self.reattach_limit = reattach_limit
    self.reattach_backoff = reattach_backoff
    self.grace_seconds = grace_seconds
    self._children: set[subprocess.Popen] = set()
    self._lock = threading.Lock()

  # -- output and processes ------------------------------------------------

  def say(self, text: str) -> None:
    with self._lock:
      self.out.write(text + "\n")
      self.out.flush()

  def _spawn(self, step: str, argv: list[str], **kwargs) -> subprocess.Popen:
    self.say(f"[{step}] {shlex.join(argv)}")
    # A session of its own: a Ctrl-C in the terminal reaches the launcher only,
    # which then stops its children itself and still deletes the slice.
    proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
    self._children.add(proc)
    return proc

  def _wait(self, proc: subprocess.Popen) -> int:
    status = proc.wait()  # an Interrupted leaves it in _children, to be stopped
    self._children.discard(proc)
    return status

  def call(self, step: str, argv: list[str]) -> int:
    return self._wait(self._spawn(step, argv))

  def check(self, step: str, argv: list[str]) -> None:
    status = self.call(step, argv)
    if status:
      raise StepFailed(step, status)

  def output(self, step: str, argv: list[str]) -> tuple[int, str, str]:
    """(status, stdout, stderr) of a short command (describe)."""
    proc = self._spawn(step, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    self._children.discard(proc)
    return proc.returncode, out.strip(), err.strip()

  def _stop_children(self) -> None:
    for proc in list(self._children):
      if proc.poll() is None:
        try:
          os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
          pass
    for proc in list(self._children):
      try:
        proc.wait(timeout=5)
      except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    self._children.clear()

  # -- the sequence ----------------------------------------------------------

  def run(self) -> int:
    # A signal ignored when the launcher starts stays ignored: under `nohup` a closed
    # terminal's SIGHUP must not stop the run and delete the slice.
    previous = {s: signal.signal(s, self._on_signal) for s in _SIGNALS
                if signal.getsignal(s) is not signal.SIG_IGN}
    plan, status, ours, started = self.plan, 1, False, False
    try:
      self._check_name_is_free()
      ours = True  # the name was free: whatever is created under it now is ours
      restarts = 0
      while True:
        self.check("create", tc.create_command(plan))
        if plan.queued:
          self._wait_until_active()
        for argv in tc.copy_code_commands(plan):
          self.check("copy", argv)
        self.check("provision", tc.provision_command(plan))
        self.check("preflight", tc.preflight_command(plan))
        started = True
        for worker in range(plan.workers):
          self.check("start", tc.start_command(plan, worker))
        status = self._attach()
        if status != tc.PREEMPTED:
          break
        if not plan.in_bucket:
          self.say("[preempted] the workdir was on the VMs' disks, so the run cannot resume "
                   "elsewhere; pass --workdir=gs://... for that")
          break
        if restarts == plan.max_restarts:
          self.say(f"[preempted] --max_restarts={plan.max_restarts} reached; rerun this "
                   "command to go on from the last checkpoint")
          break
        restarts += 1
        self.say(f"[preempted] deleting the slice and starting again (restart {restarts} "
                 f"of at most {plan.max_restarts}); the run resumes from its checkpoint")
        self.check("delete", tc.delete_command(plan))
        started = False
      if status:
        self.say(f"[train] the run ended with exit status {status}")
    except StepFailed as e:
      status = e.status or 1
      self.say(str(e))
    except Interrupted as e:
      status = 128 + e.signum
      self.say(f"[interrupted] {e}: stopping")
    finally:
      for s in previous:  # nothing stops the clean-up now
        signal.signal(s, signal.SIG_IGN)
      self._stop_children()
      self._clean_up(ours=ours, started=started)
      for s, handler in previous.items():
        signal.signal(s, handler)
    return status

  def _on_signal(self, signum, frame):
    del frame
    raise Interrupted(signum)

  def _check_name_is_free(self) -> None:
    for argv in tc.describe_commands(self.plan):
      status, out, err = self.output("check", argv)
      if status == 0:
        raise StepFailed("check", 1, f"{self.plan.name} already exists in {self.plan.zone} "
                         f"(state {out or '?'}); pick another --name, or delete it first")
      if "NOT_FOUND" not in err and "not found" not in err.lower():
        last = err.splitlines()[-1] if err else f"exit status {status}"
        raise StepFailed("check", status or 1, f"could not check that {self.plan.name} "
                         f"is free: {last}")

  def _wait_until_active(self) -> None:
    plan, last = self.plan, None
    deadline = time.monotonic() + plan.queue_timeout
    while True:
      status, state, err = self.output("wait", tc.queued_state_command(plan))
      if status:
        raise StepFailed("wait", status, f"describe failed: {err.splitlines()[-1:]}")
      if state != last:
        self.say(f"[wait] queued resource {plan.name}: {state}")
        last = state
      if state == "ACTIVE":
        return
      if state in ("FAILED", "SUSPENDING", "SUSPENDED"):
        raise StepFailed("wait", 1, f"queued resource {plan.name} is {state}")
      if time.monotonic() > deadline:
        raise StepFailed("wait", 1, f"queued resource {plan.name} not ACTIVE after "
                         f"{plan.queue_timeout:g} s (still {state})")
      time.sleep(plan.poll_seconds)

  def _node_ready(self) -> bool:
    status, state, _ = self.output("state", tc.node_state_command(self.plan))
    return status == 0 and state == "READY"

  def _attach(self) -> int:
    """Streams every worker's log until all runs end; returns the combined status:
    PREEMPTED if any worker was preempted or the node went away, else the first
    failure, else 0."""
    plan = self.plan
    os.makedirs(os.path.join(plan.local_dir, "logs"), exist_ok=True)
    lines = [0] * plan.workers
    statuses: dict[int, int] = {}
    reattaches = 0
    running = {i: self._attach_worker(i, lines) for i in range(plan.workers)}
    failed_at = None
    while running:
      for worker, (proc, reader) in list(running.items()):
        if proc.poll() is None:
          continue
        reader.join()
        self._children.discard(proc)
        del running[worker]
        if proc.returncode == SSH_FAILED:
          if not self._node_ready():
            self.say(f"[w{worker}] the node is no longer READY: preempted")
            statuses = {i: tc.PREEMPTED for i in range(plan.workers)}
            running.clear()
            break
          if reattaches < self.reattach_limit:
            reattaches += 1
            self.say(f"[w{worker}] ssh dropped; attaching again from line "
                     f"{lines[worker] + 1}")
            time.sleep(min(self.reattach_backoff ** reattaches, 30.0))
            running[worker] = self._attach_worker(worker, lines)
            continue
        statuses[worker] = proc.returncode
      if failed_at is None and any(statuses.values()):
        failed_at = time.monotonic()
      if failed_at is not None and running and (
          time.monotonic() - failed_at > self.grace_seconds):
        self.say(f"[attach] a worker failed {self.grace_seconds:g} s ago; not waiting "
                 "for the others")
        for proc, _ in running.values():
          os.killpg(proc.pid, signal.SIGTERM)
      time.sleep(0.2)
    self._stop_children()
    values = [statuses.get(i, 1) for i in range(plan.workers)]
    if tc.PREEMPTED in values:
      return tc.PREEMPTED
    return next((v for v in values if v), 0)

  def _attach_worker(self, worker: int, lines: list[int]):
    """An attach ssh for `worker` and the thread copying its lines out."""
    argv = tc.attach_command(self.plan, worker, from_line=lines[worker] + 1)
    proc = self._spawn("attach", argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, bufsize=1)
    log_path = os.path.join(self.plan.local_dir, "logs", f"worker-{worker}.log")

    def copy_lines():
      with open(log_path, "a") as log:
        for line in proc.stdout:
          log.write(line)
          log.flush()
          lines[worker] += 1
          self.say(f"[w{worker}] {line.rstrip()}")

    reader = threading.Thread(target=copy_lines, daemon=True)
    reader.start()
    return proc, reader

  def _clean_up(self, *, ours: bool, started: bool) -> None:
    plan = self.plan
    if started and not plan.in_bucket:
      os.makedirs(os.path.dirname(os.path.abspath(plan.local_dir)), exist_ok=True)
      if self.call("fetch", tc.fetch_command(plan)):
        self.say("[fetch] failed; the workdir may be incomplete locally")
    if not ours:
      return
    if plan.keep:
      self.say(f"[keep] {plan.name} is left running; delete it with: "
               f"{shlex.join(tc.delete_command(plan))}")
      return
    if self.call("delete", tc.delete_command(plan)):
      self.say(f"[delete] FAILED: {plan.name} may still be billing; run: "
               f"{shlex.join(tc.delete_command(plan))}")


def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
  """(argv without `--config.x=y` overrides, the overrides) for absl's parser."""
  overrides = [a for a in argv[1:] if a.startswith("--config.")]
  return [a for a in argv if a not in overrides], overrides


_OVERRIDES = []


def _parse_flags(argv: list[str]) -> list[str]:
  """--help lists the shipped configs; --config is found from any directory."""
  if any(arg in launcher.HELP_FLAGS for arg in argv[1:]):
    config_help.print_help_and_exit(argv)
  rest, overrides = split_overrides(launcher.resolve_config_arg(argv))
  _OVERRIDES.extend(overrides)
  return flags.FLAGS(rest)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  plan = tc.Plan(
      name=_NAME.value, zone=_ZONE.value, accelerator_type=_ACCELERATOR.value,
      config=_CONFIG.value, workdir=_WORKDIR.value, overrides=tuple(_OVERRIDES),
      project=_PROJECT.value, runtime_version=_RUNTIME.value, spot=_SPOT.value,
      queued=_QUEUED.value, keep=_KEEP.value, fetch_to=_FETCH_TO.value,
      max_restarts=_MAX_RESTARTS.value, queue_timeout=_QUEUE_TIMEOUT.value,
      poll_seconds=_POLL.value, python_version=_PYTHON.value)
  try:
    lines = tc.dry_run(plan)  # also checks the accelerator type and the config path
  except ValueError as e:
    sys.exit(f"error: {e}")
  if plan.max_restarts < 0:
    sys.exit("error: --max_restarts must be >= 0")
  if plan.spot and not plan.in_bucket:
    print("warning: --spot with a workdir on the VMs' disks: a preemption loses the run; "
          "--workdir=gs://BUCKET/... resumes it on a new slice", file=sys.stderr)
  if _DRY_RUN.value:
    print("\n".join(lines))
    return
  sys.exit(Launcher(plan).run())


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
