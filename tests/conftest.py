"""Shared test helpers: load experiment configs by name; a compilation cache."""

import getpass
import os
import tempfile

# Before jax is imported. Test processes (and the launchers they start) compile the
# same small programs again and again; JAX's persistent cache, shared by every
# process of the session, compiles each once (a small launcher run: 13 s -> 5 s).
# Entries are keyed by the program, flags and jax version, so stale ones are unused.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(
    tempfile.gettempdir(), f"hypernets-tests-jax-cache-{getpass.getuser()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position

from hypernets import config as config_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config_module(name: str):
  """The module configs/<name>.py (`hypernets.config.load_config_module`)."""
  return config_lib.load_config_module(os.path.join(REPO_ROOT, "configs", f"{name}.py"))


def load_config(name: str, arg: str | None = None):
  """get_config(arg) of configs/<name>.py (`hypernets.config.load_config`)."""
  return config_lib.load_config(os.path.join(REPO_ROOT, "configs", f"{name}.py"), arg)


@pytest.fixture
def small_config():
  """The synthetic experiment's seconds-long variant."""
  return load_config("synthetic", "small")
