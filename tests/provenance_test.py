"""provenance.code_version: the commit a run's results.json and the report record."""

import os
import shutil
import subprocess

import pytest

from hypernets import __version__
from hypernets import provenance

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _version_of(repo_root, monkeypatch) -> str:
  monkeypatch.setattr(provenance, "REPO_ROOT", str(repo_root))
  provenance.code_version.cache_clear()
  try:
    return provenance.code_version()
  finally:
    provenance.code_version.cache_clear()


def _git(repo, *args):
  subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@needs_git
def test_commit_and_uncommitted_code_but_not_docs(tmp_path, monkeypatch):
  for path in ("hypernets/core.py", "configs/c.py", "docs/notes.md"):
    os.makedirs(tmp_path / os.path.dirname(path), exist_ok=True)
    (tmp_path / path).write_text("x = 1\n")
  _git(tmp_path, "init", "-q")
  _git(tmp_path, "add", ".")
  _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
  sha = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "--short", "HEAD"],
                       capture_output=True, text=True, check=True).stdout.strip()
  assert _version_of(tmp_path, monkeypatch) == sha
  (tmp_path / "docs" / "notes.md").write_text("edited\n")  # not code: still clean
  assert _version_of(tmp_path, monkeypatch) == sha
  (tmp_path / "configs" / "c.py").write_text("x = 2\n")
  assert _version_of(tmp_path, monkeypatch) == f"{sha} (with uncommitted changes)"


@needs_git
def test_an_installed_package_is_its_version_even_inside_another_checkout(tmp_path,
                                                                          monkeypatch):
  # A wheel installed into a virtualenv that sits inside some git checkout: that
  # checkout's commit says nothing about the installed code.
  _git(tmp_path, "init", "-q")
  _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
       "--allow-empty", "-m", "c")
  site_packages = tmp_path / ".venv" / "lib" / "site-packages"
  site_packages.mkdir(parents=True)
  assert _version_of(site_packages, monkeypatch) == f"hypernets {__version__}"
  assert _version_of(tmp_path / "no-such-dir", monkeypatch) == f"hypernets {__version__}"
