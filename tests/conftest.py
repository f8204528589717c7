"""Shared test helpers: load experiment configs by path."""

import importlib.util
import os

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config_module(name: str):
  """The module configs/<name>.py (configs/ is not a package)."""
  path = os.path.join(REPO_ROOT, "configs", f"{name}.py")
  spec = importlib.util.spec_from_file_location(f"configs_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_config(name: str, arg: str | None = None):
  """get_config(arg) of configs/<name>.py."""
  return load_config_module(name).get_config(arg)


@pytest.fixture
def small_config():
  """The synthetic experiment's seconds-long variant."""
  return load_config("synthetic", "small")
