r"""Config of the user task in examples/sine_task.py: the synthetic config's model and
training, this task's data.

  python launch/main.py --config=examples/sine_config.py --workdir=/tmp/sine
  python launch/sweep.py --config=examples/sine_config.py --sweep=kinds --workdir=/tmp/sine_kinds
  python launch/compare.py --config=examples/sine_config.py --workdir=/tmp/sine_compare
"""

import importlib.util
import os

import ml_collections

_SYNTHETIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "configs",
                          "synthetic.py")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """configs/synthetic.py's config (variant `arg`, default 'small') on the sine task."""
  spec = importlib.util.spec_from_file_location("synthetic_config", _SYNTHETIC)
  synthetic = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(synthetic)
  config = synthetic.get_config(arg or "small")
  config.data.name = "examples.sine_task:make_dataset"  # or "examples/sine_task.py:make_dataset"
  return config


def get_sweeps(arg: str | None = None) -> dict[str, list[dict]]:
  del arg
  return {"kinds": [{"model.kind": "hypernet"}, {"model.kind": "embedding"}]}
