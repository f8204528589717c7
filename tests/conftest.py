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
# XLA:CPU's LLVM backend at -O0. The suite's programs are small and most run a few
# steps, so compiling dominates. On a cold cache, as in CI, a fresh-clone `.ci/run`
# here took 1,423 s -> 972 s of pytest (4 in-process files: 277.6 s -> 209.4 s).
# HLO passes (fusion, SPMD partitioning) are unchanged: only the generated loop code
# is less optimized. Tests that set XLA_FLAGS for a subprocess start from
# TEST_XLA_FLAGS.
TEST_XLA_FLAGS = "--xla_backend_optimization_level=0"
os.environ.setdefault("XLA_FLAGS", TEST_XLA_FLAGS)

import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position

from hypernets import config as config_lib  # pylint: disable=g-import-not-at-top,wrong-import-position

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The longest files, longest first (seconds in a 2-worker run, 2026-11-28). Each file
# runs whole on one xdist worker (--dist loadfile), in collection order: a long file
# handed out last kept the other worker idle for the last ~30 s of a 550 s suite.
LONGEST_FILES = ("notebooks_test.py",  # 187
                 "generators_test.py",  # 85
                 "kill_resume_test.py",  # 83
                 "sharding_test.py",  # 58
                 "distributed_test.py",  # 55
                 "benchmarks_test.py",  # 49
                 "foreign_primaries_test.py",  # 42
                 "train_test.py")  # 39


def pytest_collection_modifyitems(items):
  """Runs LONGEST_FILES first, the rest in their usual order."""
  rank = {name: i for i, name in enumerate(LONGEST_FILES)}
  items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # sort is stable


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
