"""Which code produced a run or a report: the git commit of hypernets' checkout."""

import functools
import os
import subprocess

from hypernets.config import REPO_ROOT

# What a run's results depend on; edits elsewhere (docs, tests) do not mark it dirty.
_CODE_PATHS = ("hypernets", "configs", "launch")


@functools.lru_cache(maxsize=None)
def code_version() -> str:
  """'<short sha>' of the git checkout hypernets is imported from, plus ' (with
  uncommitted changes)' when hypernets/, configs/ or launch/ differ from that commit;
  'hypernets <version>' when it is not a checkout (an installed wheel) or git is
  missing. Read once per process: a run's code does not change while it runs."""
  # Only a .git beside the package (a directory, or a worktree's file) counts: a
  # wheel installed into a virtualenv inside some other checkout is not that code.
  if os.path.exists(os.path.join(REPO_ROOT, ".git")):
    try:
      sha = subprocess.run(["git", "-C", REPO_ROOT, "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True, check=True,
                           timeout=30).stdout.strip()
      dirty = subprocess.run(["git", "-C", REPO_ROOT, "status", "--porcelain", "--",
                              *_CODE_PATHS], capture_output=True, text=True, check=True,
                             timeout=30).stdout
      return sha + (" (with uncommitted changes)" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
      pass  # git missing, or a repository without commits
  from hypernets import __version__  # pylint: disable=g-import-not-at-top
  return f"hypernets {__version__}"
