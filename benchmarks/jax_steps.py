"""The library's own train steps, built from the shipped configs, ready to time.

Everything here is what `hypernets.training.train_and_evaluate` does before its loop:
the dataset, the model and optimizer (`training.create_model_and_optimizer`), a seeds-as-a-batch
state (`create_train_state` vmapped over seed keys) and the step
`jax.jit(jax.vmap(make_train_step(...), in_axes=(0, None, 0)), donate_argnums=0)`.
Two steps are built from the same pieces:

  library     the full step: the batch is sampled on device inside the step (for the
              rotation task this includes rotating the images);
  model-only  the same `make_train_step`, given a dataset whose sampler returns a
              pre-made batch unchanged: forward + backward + update only, the fair
              comparison with a PyTorch loop that is handed ready tensors.
"""

import dataclasses
import functools
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from benchmarks import flops as flops_lib
from hypernets import config as config_lib
from hypernets import data as data_lib
from hypernets import params as params_lib
from hypernets.parallel import sharding
from hypernets import training
from hypernets.training.state import init_and_data_keys
from hypernets.errors import DatasetNotFoundError
from hypernets.errors import HypernetsError

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(name: str, arg: str | None = None) -> ml_collections.ConfigDict:
  """get_config(arg) of configs/<name>.py (`hypernets.config.load_config`)."""
  return config_lib.load_config(os.path.join(REPO_ROOT, "configs", f"{name}.py"), arg)


def _premade(batch: data_lib.Split, key: jax.Array, *, num_conditions: int,
             points_per_condition: int, step=0) -> data_lib.Split:
  """A sampler that returns its 'training set', a pre-made batch, unchanged."""
  del key, num_conditions, points_per_condition, step
  return batch


def stand_in_dataset(config: ml_collections.ConfigDict) -> data_lib.Dataset:
  """A rotation dataset of zero images of the real shape, for sources not on disk.

  Only shapes matter for compile time; the sampler is the library's own.
  """
  from hypernets.data import images as images_lib  # pylint: disable=g-import-not-at-top
  from hypernets.data import rotation  # pylint: disable=g-import-not-at-top
  shapes = {"cifar10": (32, 32, 3), "mnist": (28, 28, 1)}
  if config.data.name != "rotation" or config.data.source not in shapes:
    raise ValueError(f"no stand-in for data {config.data.name}/{config.data.get('source')}")
  mean, std = images_lib.NORMALIZATION[config.data.source]
  constants = dict(mean=mean, std=std, num_classes=config.data.num_classes)
  train = jnp.zeros((max(256, config.batch.conditions), *shapes[config.data.source]),
                    jnp.uint8)
  test = rotation.rotation_batch(train[:8], jax.random.key(0), **constants)
  return data_lib.Dataset(
      train=train, test=test, train_eval=test,
      task="classification", output_dim=config.data.num_classes,
      sampler=functools.partial(rotation.sample_rotation_batch, **constants))


@dataclasses.dataclass
class Built:
  """A config's model, optimizer, state and steps (jitted, not yet compiled)."""

  config: ml_collections.ConfigDict
  model_config: ml_collections.ConfigDict
  dataset: data_lib.Dataset
  state: Any  # TrainState, every leaf [num_seeds, ...]
  train_data: Any
  data_keys: jax.Array  # [num_seeds] keys
  library_step: Any  # jitted (state, train_data, data_keys) -> (state, metrics)
  model_step: Any  # jitted (state, batch, data_keys) -> (state, metrics)
  batch: data_lib.Split  # a pre-made batch for model_step
  num_params: int  # trainable parameters of one seed
  used_stand_in_data: bool
  make_library_step: Any  # () -> a new jitted library step (compiles afresh)
  compiled: dict = dataclasses.field(default_factory=dict)  # which -> (compiled, times)

  @property
  def num_seeds(self) -> int:
    return int(self.data_keys.shape[0])

  def matmuls(self) -> list[flops_lib.MatMul]:
    """The step's matrix products (benchmarks/flops.py), per seed."""
    test = self.dataset.test
    return flops_lib.from_config(
        self.model_config, cond_shape=test.cond.shape[1:], x_shape=test.x.shape[2:],
        output_dim=self.dataset.output_dim, conditions=self.config.batch.conditions,
        points=self.config.batch.points)

  def step_flops(self) -> dict[str, int]:
    return flops_lib.step_flops(self.matmuls(), seeds=self.num_seeds)

  def fresh_state(self):
    """A copy of the initial state (steps donate theirs), via the host: no compiles."""
    return jax.tree.map(lambda a: jax.device_put(np.array(a)), self.state)


_DATASETS: dict[str, tuple[data_lib.Dataset, bool]] = {}


def create_dataset_jitted(data_config: ml_collections.ConfigDict) -> data_lib.Dataset:
  """`data_lib.create_dataset`, its array work traced once under `jax.jit`.

  Run eagerly, creating a dataset is dozens of small ops, each compiled on first
  use (about 13 s for the synthetic dataset on a 2-core CPU); traced it is one
  program. The task, sizes and sampler are the library's own; only the arrays come
  out of the jitted function. Falls back to eager creation if tracing fails.
  """
  made = {}

  def arrays():
    dataset = data_lib.create_dataset(data_config)
    made["dataset"] = dataset
    return dataset.train, dataset.test, dataset.train_eval

  try:
    train, test, train_eval = jax.jit(arrays)()
  except HypernetsError:
    raise
  except Exception:  # pylint: disable=broad-except
    # e.g. a dataset that needs concrete values; eager creation raises real errors.
    return data_lib.create_dataset(data_config)
  return dataclasses.replace(made["dataset"], train=train, test=test, train_eval=train_eval)


def dataset_for(config: ml_collections.ConfigDict, *, allow_stand_in: bool = False
                ) -> tuple[data_lib.Dataset, bool]:
  """(dataset, is_stand_in) of config.data, created once per distinct data config.

  Datasets are immutable, so benchmarks that differ only in model, batch or seeds
  share one (creating a dataset runs many small eager ops, each compiled).
  With `allow_stand_in`, a rotation source that is not on disk is replaced by
  `stand_in_dataset` (same shapes).
  """
  key = config.data.to_json()
  if key not in _DATASETS:
    try:
      _DATASETS[key] = (create_dataset_jitted(config.data), False)
    except DatasetNotFoundError:
      if not allow_stand_in:
        raise
      _DATASETS[key] = (stand_in_dataset(config), True)
  return _DATASETS[key]


def build(config: ml_collections.ConfigDict, *, allow_stand_in: bool = False,
          sampler_override: Callable | None = None) -> Built:
  """The library's pieces for `config`, as `train_and_evaluate` builds them.

  `sampler_override(dataset.sampler)` -> a sampler to use instead of the dataset's
  own (the optimisations section re-measures the previous sampler that way).
  """
  dataset, used_stand_in = dataset_for(config, allow_stand_in=allow_stand_in)
  if sampler_override is not None:
    dataset = dataclasses.replace(dataset, sampler=sampler_override(dataset.sampler))
  example = jax.tree.map(lambda a: np.asarray(a)[0], dataset.test)  # host: no compiles
  model_config, _, model, _, tx = training.create_model_and_optimizer(
      config, example, output_dim=dataset.output_dim)
  mesh = sharding.create_mesh(sharding.mesh_config(config))

  init_keys, data_keys = init_and_data_keys(config.seed, config.num_seeds)
  calibration_conds = dataset.eval_splits["train"].cond[:256]
  train_data = dataset.train
  batch_sizes = dict(batch_conditions=config.batch.conditions,
                     batch_points=config.batch.points)

  @jax.jit
  def initial(init_keys, train_data):
    """The seeds' initial states (as train_and_evaluate) and one pre-made batch."""
    state = jax.vmap(lambda k: training.create_train_state(
        model, tx, k, example, calibration_conds))(init_keys)
    batch = dataset.sample(train_data, jax.random.key(123),
                           num_conditions=config.batch.conditions,
                           points_per_condition=config.batch.points)
    return state, batch

  state, batch = initial(init_keys, train_data)

  def make_library_step():
    step = training.make_train_step(model, tx, dataset, **batch_sizes,
                                     batch_sharding=sharding.batch_sharding(mesh))
    return jax.jit(jax.vmap(step, in_axes=(0, None, 0)), donate_argnums=0)

  premade = dataclasses.replace(dataset, train=batch, sampler=_premade)
  step = training.make_train_step(model, tx, premade, **batch_sizes,
                                   batch_sharding=sharding.batch_sharding(mesh))
  model_step = jax.jit(jax.vmap(step, in_axes=(0, None, 0)), donate_argnums=0)

  num_params = params_lib.count_params(state.params, batch_dims=1)  # [num_seeds, ...] leaves
  return Built(config=config, model_config=model_config, dataset=dataset, state=state,
               train_data=train_data, data_keys=data_keys,
               library_step=make_library_step(), model_step=model_step, batch=batch,
               num_params=num_params, used_stand_in_data=used_stand_in,
               make_library_step=make_library_step)


_BUILT: dict[tuple[str, Any], Built] = {}


def build_cached(config: ml_collections.ConfigDict, *, allow_stand_in: bool = False,
                 sampler_override: Callable | None = None) -> Built:
  """`build(...)`, reused when the same config was built before in this process."""
  key = (config.to_json(), sampler_override)
  if key not in _BUILT:
    _BUILT[key] = build(config, allow_stand_in=allow_stand_in,
                        sampler_override=sampler_override)
  return _BUILT[key]
