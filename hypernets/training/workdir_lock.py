"""One writer per workdir: a lock taken before anything is written, held until exit.

On a local (or NFS) disk it is an OS file lock, `fcntl.flock` on `workdir/.lock`:
the kernel releases it when the process ends however it ends (SIGKILL, OOM, a
lost machine's NFS lease), so a crash never leaves a stale lock behind. The file
itself stays and says who held it last; only the lock on it counts.

A bucket (`gs://`) has no locks. There the lock is a lease: the object
`workdir/.lock` names its holder and a heartbeat the holder rewrites every
HEARTBEAT_SECONDS. Another process refuses while the heartbeat is younger than
LEASE_SECONDS and takes over an older one (a holder that died without releasing,
e.g. a preempted VM). Two processes that start within a few seconds of each other
both write their claim, wait SETTLE_SECONDS and read it back: the object keeps the
last write (GCS is strongly consistent), so exactly one sees its own claim.
"""

import atexit
import dataclasses
import errno
import fcntl
import json
import os
import socket
import threading
import time
import uuid

from hypernets.errors import WorkdirError
from hypernets.training import files

LOCK_NAME = ".lock"
LEASE_SECONDS = 120.0
HEARTBEAT_SECONDS = 30.0
SETTLE_SECONDS = 2.0


@dataclasses.dataclass
class _Held:
  """A lock this process holds: a file descriptor (local) or a lease thread (bucket)."""
  fd: int | None = None
  lease: "_Lease | None" = None


_held: dict[str, _Held] = {}  # absolute workdir -> the lock this process holds on it
_guard = threading.Lock()


def busy_message(workdir: str, holder: dict) -> str:
  """The one line a second process stops with."""
  return (f"workdir {workdir} is in use by process {holder.get('pid', '?')} on "
          f"{holder.get('host', '?')} since {holder.get('since', '?')}; wait for it, or "
          "use another --workdir")


def _holder_record(token: str) -> dict:
  return {"pid": os.getpid(), "host": socket.gethostname(),
          "since": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "token": token,
          "heartbeat": time.time()}


def try_acquire(workdir: str) -> str | None:
  """Takes the lock of `workdir` (which must exist) for this process.

  Returns None when this process holds it (also when it already did), else the
  busy message naming the holder. Raises OSError if the lock file cannot be made.
  """
  workdir = files.absolute(workdir)
  with _guard:
    held = _held.get(workdir)
    if held is not None and _still_valid(workdir, held):
      return None
    if held is not None:  # the directory was replaced under us: that lock guards nothing
      _drop(held)
      del _held[workdir]
    if files.is_url(workdir):
      lease = _Lease(files.join(workdir, LOCK_NAME))
      busy = lease.acquire()
      if busy is not None:
        return busy_message(workdir, busy)
      _held[workdir] = _Held(lease=lease)
      return None
    busy, fd = _flock(os.path.join(workdir, LOCK_NAME))
    if busy is not None:
      return busy_message(workdir, busy)
    _held[workdir] = _Held(fd=fd)
    return None


def acquire(workdir: str) -> None:
  """try_acquire, raising WorkdirError (the busy message) if another process holds it."""
  busy = try_acquire(workdir)
  if busy is not None:
    raise WorkdirError(busy)


def release(workdir: str) -> None:
  """Gives the lock of `workdir` back (no-op if this process does not hold it)."""
  with _guard:
    held = _held.pop(files.absolute(workdir), None)
    if held is not None:
      _drop(held)


def holds(workdir: str) -> bool:
  return files.absolute(workdir) in _held


def _drop(held: _Held) -> None:
  if held.fd is not None:
    os.close(held.fd)  # the kernel drops the flock with the last descriptor
  if held.lease is not None:
    held.lease.release()


def _still_valid(workdir: str, held: _Held) -> bool:
  """Whether a held local lock is on the file now at workdir/.lock (not a moved one)."""
  if held.fd is None:
    return True
  try:
    now = os.stat(os.path.join(workdir, LOCK_NAME))
  except FileNotFoundError:
    return False
  mine = os.fstat(held.fd)
  return (now.st_ino, now.st_dev) == (mine.st_ino, mine.st_dev)


def _flock(path: str) -> tuple[dict | None, int | None]:
  """(None, fd) with the lock on `path` taken, or (holder, None) if another has it."""
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # never inherited by children
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError as e:
    if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
      os.close(fd)
      raise
    holder = _read_local_holder(fd)
    os.close(fd)
    return holder, None
  record = json.dumps(_holder_record(token=uuid.uuid4().hex)) + "\n"
  os.ftruncate(fd, 0)
  os.pwrite(fd, record.encode(), 0)
  return None, fd


def _read_local_holder(fd: int) -> dict:
  """The holder's record; it writes it just after locking, so wait a moment for it."""
  deadline = time.monotonic() + 2.0
  while True:
    try:
      return json.loads(os.pread(fd, 4096, 0).decode())
    except ValueError:
      if time.monotonic() > deadline:
        return {}
      time.sleep(0.05)


class _Lease:
  """The lease of a bucket workdir (module docstring): claim, heartbeat, release."""

  def __init__(self, path: str):
    self.path = path
    self.token = uuid.uuid4().hex
    self._record = _holder_record(self.token)
    self._stop = threading.Event()
    self._thread = None

  def _read(self) -> dict | None:
    try:
      return json.loads(files.read_text(self.path))
    except (FileNotFoundError, ValueError):
      return None

  def _write(self) -> None:
    self._record["heartbeat"] = time.time()
    files.write_bytes_atomic(self.path, json.dumps(self._record).encode())

  def acquire(self) -> dict | None:
    """None once this process holds the lease, else the current holder's record."""
    current = self._read()
    if current is not None and time.time() - current.get("heartbeat", 0) < LEASE_SECONDS:
      return current
    self._write()
    time.sleep(SETTLE_SECONDS)
    current = self._read()
    if current is None or current.get("token") != self.token:
      return current or {}
    self._thread = threading.Thread(target=self._beat, daemon=True,
                                    name="hypernets-workdir-lease")
    self._thread.start()
    atexit.register(self.release)
    return None

  def _beat(self) -> None:
    while not self._stop.wait(HEARTBEAT_SECONDS):
      try:
        self._write()
      except OSError:
        pass  # a missed beat is retried; LEASE_SECONDS spans several

  def release(self) -> None:
    if self._stop.is_set():
      return
    self._stop.set()
    if self._thread is not None:
      self._thread.join(timeout=5)
    current = self._read()
    if current is not None and current.get("token") == self.token:
      files.remove(self.path)


def release_all() -> None:
  """Gives back every lock this process holds (a long-lived process between runs)."""
  for workdir in list(_held):
    release(workdir)
