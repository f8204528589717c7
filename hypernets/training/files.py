"""Files of a workdir on a local disk or in a bucket (`gs://...`), one API for both.

Local paths go through `os` (atomic renames, `fcntl` locks); URLs (`gs://`, `s3://`)
through `etils.epath`, the path layer orbax itself uses (on GCS it needs `gcsfs`,
the `gcs` extra of setup.py). Object stores have no rename and no append: a
write of one object is atomic there (it appears whole when the upload ends), and
appending means rewriting the object (`AppendFile`).
"""

import os
import tempfile
from typing import IO

URL_MARK = "://"


def is_url(path: str) -> bool:
  """True for `gs://bucket/run` (any `scheme://`), False for a local path."""
  return URL_MARK in str(path)


def _epath(path: str):
  from etils import epath  # pylint: disable=g-import-not-at-top
  return epath.Path(path)


def absolute(path: str) -> str:
  """A local path made absolute; a URL as given (without a trailing '/')."""
  path = str(path)
  return path.rstrip("/") if is_url(path) else os.path.abspath(path)


def join(path: str, *names: str) -> str:
  return os.path.join(path, *names)  # posix joining is right for URLs too


def exists(path: str) -> bool:
  return _epath(path).exists() if is_url(path) else os.path.exists(path)


def makedirs(path: str) -> None:
  """Creates `path` and its parents (a no-op in a bucket that has no directories)."""
  if is_url(path):
    _epath(path).mkdir(parents=True, exist_ok=True)
  else:
    os.makedirs(path, exist_ok=True)


def read_text(path: str) -> str:
  if is_url(path):
    return _epath(path).read_text()
  with open(path) as f:
    return f.read()


def read_bytes(path: str) -> bytes:
  if is_url(path):
    return _epath(path).read_bytes()
  with open(path, "rb") as f:
    return f.read()


def remove(path: str) -> None:
  """Removes the file `path`; a missing one is fine."""
  try:
    if is_url(path):
      _epath(path).unlink()
    else:
      os.remove(path)
  except FileNotFoundError:
    pass


def rename(path: str, new_path: str) -> None:
  """Moves a file or directory (in a bucket: copies every object, then deletes)."""
  if is_url(path):
    _epath(path).rename(new_path)
  else:
    os.rename(path, new_path)


def check_writable(directory: str) -> None:
  """Raises OSError unless a file can be created in `directory` (created if needed)."""
  makedirs(directory)
  if is_url(directory):
    probe = _epath(join(directory, f".write_test_{os.getpid()}"))
    probe.write_text("")
    probe.unlink()
  else:
    with tempfile.NamedTemporaryFile(dir=directory, prefix=".write_test_"):
      pass


def write_bytes_atomic(path: str, data: bytes) -> None:
  """Writes `data` to `path` so that a reader sees the old file or the new one,
  never half of one: locally through a temporary file and a rename; in a bucket
  one object upload is already all-or-nothing."""
  if is_url(path):
    _epath(path).write_bytes(data)
    return
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp_")
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


class AppendFile:
  """A file opened for appending (text, or bytes with `binary`), locally or in a bucket.

  Locally it is a plain file in append mode. In a bucket the existing object is
  read once, new data are kept in memory, and `flush()` uploads the whole object
  again (an object cannot be appended to); metric logs are small enough for that.
  """

  def __init__(self, path: str, *, binary: bool = False):
    self.path = path
    self._binary = binary
    self._local: IO | None = None
    self._data = bytearray()
    self._dirty = False
    if is_url(path):
      if exists(path):
        self._data += read_bytes(path)
    else:
      self._local = open(path, "ab" if binary else "a")

  def write(self, data: str | bytes) -> None:
    if self._local is not None:
      self._local.write(data)
    else:
      self._data += data if self._binary else data.encode()
      self._dirty = True

  def flush(self) -> None:
    if self._local is not None:
      self._local.flush()
    elif self._dirty:
      write_bytes_atomic(self.path, bytes(self._data))
      self._dirty = False

  def close(self) -> None:
    self.flush()
    if self._local is not None:
      self._local.close()
      self._local = None
