"""Tasks: a task is a function `config.data -> Dataset`, found by name.

`config.data.name` is either a registered name (the built-in 'synthetic',
'structured', 'rotation', or one a user registered with `register_task`) or an
import path, 'package.module:function' or 'path/to/file.py:function', which is
imported when a run starts (so a resumed run in a fresh process finds it again).
A task function takes `data_config` and, if it wants to read only a share of the
training rows from disk, a keyword `train_shard=(index, n)`; otherwise its
training rows are sliced here (`dataset.shard_train`).

Every Dataset a task returns is checked (`check_dataset`): the splits must agree
with each other and with the model's output (one line naming the task otherwise).
"""

import functools
import importlib
import importlib.util
import inspect
import os
import sys
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from hypernets.data.dataset import Dataset
from hypernets.data.dataset import Split
from hypernets.data.dataset import shard_train
from hypernets.errors import ConfigError

TASK_KINDS = ("regression", "classification")
TaskFn = Callable[..., Dataset]
_REGISTRY: dict[str, TaskFn] = {}


def register_task(name: str, fn: TaskFn | None = None):
  """Registers `fn` (data_config -> Dataset) as task `name`; usable as a decorator.

  A name registered in-process is found only by processes that import the
  registering module: to resume a run in a fresh process, name the task by its
  import path instead (config.json records it either way).
  """
  if fn is None:
    return functools.partial(register_task, name)
  if ":" in name:
    raise ConfigError(f"task name {name!r} may not contain ':' (it marks import paths)")
  _REGISTRY[name] = fn
  return fn


def registered_tasks() -> tuple[str, ...]:
  return tuple(sorted(_REGISTRY))


def _import_module(module_name: str, spec: str):
  """The module of an import path: a dotted module, or a .py file (by path)."""
  try:
    if module_name.endswith(".py"):
      path = os.path.abspath(module_name)
      if not os.path.isfile(path):
        raise FileNotFoundError(f"no file {path}")
      unique = "hypernets_task_" + "".join(c if c.isalnum() else "_" for c in path)
      if unique not in sys.modules:
        loader_spec = importlib.util.spec_from_file_location(unique, path)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[unique] = module
        try:
          loader_spec.loader.exec_module(module)
        except BaseException:
          del sys.modules[unique]
          raise
      return sys.modules[unique]
    return importlib.import_module(module_name)
  except Exception as e:  # pylint: disable=broad-except
    first = (str(e).strip().splitlines() or [""])[0]
    raise ConfigError(f"config.data.name={spec!r}: {module_name} could not be imported "
                      f"({type(e).__name__}: {first})") from None


def find_task(name: str) -> TaskFn:
  """The task function `name` names (module docstring); ConfigError if none."""
  if not isinstance(name, str) or not name:
    raise ConfigError(f"config.data.name must be a task name or an import path, got {name!r}")
  if name in _REGISTRY:
    return _REGISTRY[name]
  if ":" not in name:
    raise ConfigError(
        f"unknown config.data.name {name!r}; choose one of {registered_tasks()} or name "
        "your task function as 'package.module:function' or 'path/to/file.py:function'")
  module_name, _, attribute = name.rpartition(":")
  module = _import_module(module_name, name)
  fn = module
  for part in attribute.split("."):
    fn = getattr(fn, part, None)
  if not callable(fn):
    raise ConfigError(f"config.data.name={name!r}: {module_name} has no callable "
                      f"{attribute!r}")
  return fn


def task_location(name: str) -> dict[str, str]:
  """How to find task `name` again: {'name', 'function': 'module:qualname'[, 'file']}."""
  fn = find_task(name)
  where = {"name": name, "function": f"{getattr(fn, '__module__', '?')}:"
                                     f"{getattr(fn, '__qualname__', repr(fn))}"}
  try:
    where["file"] = os.path.abspath(inspect.getfile(fn))
  except TypeError:
    pass
  return where


def create_dataset(data_config: ml_collections.ConfigDict, *,
                   train_shard: tuple[int, int] | None = None) -> Dataset:
  """The checked Dataset of the task `data_config.name`.

  `train_shard` (index, n): keep only that shard of the training rows (per-host
  loading; `dataset.shard_indices`); the task reads only those rows if it takes a
  `train_shard` argument, else its rows are sliced.
  """
  name = data_config.name
  fn = find_task(name)
  try:
    takes_shard = "train_shard" in inspect.signature(fn).parameters
  except (TypeError, ValueError):
    takes_shard = False
  if takes_shard:
    dataset = fn(data_config, train_shard=train_shard)
  else:
    dataset = fn(data_config)
  check_dataset(dataset, where=f"config.data.name={name!r}")
  return dataset if takes_shard else shard_train(dataset, train_shard)


def _shape(a) -> tuple[int, ...]:
  return tuple(np.shape(a))


def check_dataset(dataset, *, where: str = "the task") -> None:
  """Raises ConfigError (one line) unless `dataset` is a Dataset whose splits agree.

  Checked: the task kind and output_dim; each split's cond [N, ...], x [N, P, ...],
  y [N, P, ...] leading axes; that the test split, train_eval and a batch the
  sampler draws from `train` have the same cond, x and y shapes past those axes
  and the same dtypes; y against the model's output (regression: [..., output_dim];
  classification: integer labels [N, P] or [N, P, 1]). Shapes only: works on
  traced arrays and costs one abstract evaluation of the sampler.
  """
  if not isinstance(dataset, Dataset):
    raise ConfigError(f"{where} returned {type(dataset).__name__}, not a "
                      "hypernets.data.Dataset")
  if dataset.task not in TASK_KINDS:
    raise ConfigError(f"{where}: Dataset.task is {dataset.task!r}; choose one of {TASK_KINDS}")
  if (isinstance(dataset.output_dim, bool) or not isinstance(dataset.output_dim, (int, np.integer))
      or dataset.output_dim < 1):
    raise ConfigError(f"{where}: Dataset.output_dim must be a positive integer, got "
                      f"{dataset.output_dim!r}")
  if not isinstance(dataset.test, Split):
    raise ConfigError(f"{where}: Dataset.test is a {type(dataset.test).__name__}, not a Split")
  splits = {"test": dataset.test, **(dataset.extra_eval or {})}
  if dataset.train_eval is not None:
    splits["train_eval"] = dataset.train_eval
  elif not isinstance(dataset.train, Split):
    raise ConfigError(f"{where}: Dataset.train is not a Split, so Dataset.train_eval "
                      "(the split train metrics are reported on) must be given")
  try:
    splits["a sampled training batch"] = jax.eval_shape(
        lambda train: dataset.sample(train, jax.random.key(0), num_conditions=1,
                                     points_per_condition=dataset.test.points_per_condition,
                                     step=jnp.zeros((), jnp.int32)), dataset.train)
  except Exception as e:  # pylint: disable=broad-except
    first = (str(e).strip().splitlines() or [""])[0]
    raise ConfigError(f"{where}: its sampler failed on Dataset.train "
                      f"({type(e).__name__}: {first})") from None
  for name, split in splits.items():
    if not isinstance(split, Split):
      raise ConfigError(f"{where}: {name} is a {type(split).__name__}, not a Split")
    cond, x, y = _shape(split.cond), _shape(split.x), _shape(split.y)
    if len(cond) < 1 or len(x) < 2 or len(y) < 2 or not cond[0] == x[0] == y[0] or x[1] != y[1]:
      raise ConfigError(f"{where}: {name} has cond {cond}, x {x}, y {y}; want cond [N, ...], "
                        "x [N, P, ...], y [N, P, ...] with the same N and P")
  reference = dataset.test
  for name, split in splits.items():
    for field, want_axes in (("cond", 1), ("x", 2), ("y", 2)):
      got, want = getattr(split, field), getattr(reference, field)
      if _shape(got)[want_axes:] != _shape(want)[want_axes:] or got.dtype != want.dtype:
        raise ConfigError(
            f"{where}: {name} has {field} of shape {_shape(got)} ({got.dtype}), the test "
            f"split {_shape(want)} ({want.dtype}); they differ past the leading "
            f"{'[N]' if want_axes == 1 else '[N, P]'} axes")
  y = reference.y
  if dataset.task == "regression" and _shape(y)[2:] != (dataset.output_dim,):
    raise ConfigError(f"{where}: regression targets y {_shape(y)} must end in "
                      f"output_dim={dataset.output_dim} ([N, P, output_dim])")
  if dataset.task == "classification" and (
      _shape(y)[2:] not in ((), (1,)) or not jnp.issubdtype(y.dtype, jnp.integer)):
    raise ConfigError(f"{where}: classification labels y must be integers [N, P] or "
                      f"[N, P, 1], got {_shape(y)} {y.dtype}")
