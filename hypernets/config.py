"""Everything about configs, in one place.

- Config files by path, from any directory: `load_config('configs/x.py:quick')`,
  `load_config_module`, `find_config_file` (the one loader: launchers, tests,
  notebooks and benchmarks use it).
- Variants of a config file: `--config=configs/x.py:quick,kind=embedding` (`parse_variants`).
- The fields every training config shares: devices, processes, workdir safety
  (`add_run_fields`), and which of them may change on resume (`RESUMABLE_FIELDS`).
- Checks before anything runs: each problem is one line naming the field (`check_*`).
(What the launchers share, one-line errors and flag parsing: hypernets/launcher.py.)

Config files import this module only: it imports no jax (the choice lists of the
checks are read from the library when a check runs).
"""

import importlib.util
import math
import numbers
import os
import types

import ml_collections

from hypernets.errors import ConfigError


def _get(config: ml_collections.ConfigDict, field: str):
  node = config
  for part in field.split("."):
    if part not in node:
      raise ConfigError(f"config.{field} is missing")
    node = node[part]
  return node


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


# Counts, sizes, steps and seeds reach jitted code as JAX's default int32.
MAX_INT = 2**31 - 1


def check_int(config, field: str, *, minimum: int) -> None:
  """Raises ConfigError unless config.<field> is an integer in [minimum, MAX_INT]."""
  value = _get(config, field)
  if not _is_int(value) or value < minimum:
    kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    raise ConfigError(f"config.{field} must be {kind}, got {value!r}")
  if value > MAX_INT:
    raise ConfigError(f"config.{field}={value} is larger than 2**31 - 1, the largest "
                      "integer JAX's int32 holds")


def check_positive_float(config, field: str) -> None:
  """Raises ConfigError unless config.<field> is a finite number > 0."""
  value = _get(config, field)
  if (not isinstance(value, numbers.Real) or isinstance(value, bool)
      or not math.isfinite(value) or value <= 0):
    raise ConfigError(f"config.{field} must be a finite number > 0, got {value!r}")


def check_widths(config, field: str) -> None:
  """Raises ConfigError unless config.<field> is a sequence of positive integers."""
  value = _get(config, field)
  if (not isinstance(value, (tuple, list))
      or not all(_is_int(w) and w >= 1 for w in value)):
    raise ConfigError(f"config.{field} must be a tuple of positive integers, got {value!r}")


def check_choice(config, field: str, choices) -> None:
  value = _get(config, field)
  if value not in choices:
    raise ConfigError(f"config.{field} is {value!r}; choose one of {tuple(choices)}")


def check_batch_fits(field: str, batch: int, rows: int, what: str) -> None:
  """Raises ConfigError unless a batch of `batch` distinct rows (config.<field>) fits in
  a training set of `rows` rows (`what` names them, e.g. 'conditioning inputs')."""
  if batch > rows:
    raise ConfigError(f"config.{field}={batch} is larger than the training set "
                      f"({rows} {what})")


def check_training_config(config: ml_collections.ConfigDict) -> None:
  """Validates the fields `train_and_evaluate` reads; raises ConfigError on the first bad one."""
  # pylint: disable=g-import-not-at-top
  from hypernets.data import images
  from hypernets.data.epochs import SAMPLINGS
  from hypernets.data.online import check_regime
  from hypernets.data.rotation import TEST_ANGLES
  from hypernets.nets import INIT_SCHEMES
  from hypernets.generators import GENERATORS
  from hypernets.generators import INITS
  from hypernets.models import MODEL_KINDS
  from hypernets.models import PRIMARY_NAMES
  from hypernets.precision import COMPUTE_DTYPES
  from hypernets.training.optimizers import check_optimizer_config
  # pylint: enable=g-import-not-at-top
  check_int(config, "seed", minimum=0)
  check_int(config, "num_seeds", minimum=1)
  check_choice(config, "model.kind", MODEL_KINDS)
  if "compute_dtype" in config:
    check_choice(config, "compute_dtype", COMPUTE_DTYPES)
  if "mesh" in config and config.mesh.get("shard_train_data") and config.mesh.shard_seeds:
    raise ConfigError("config.mesh.shard_train_data and config.mesh.shard_seeds cannot both "
                      "be set: the data axis splits either the training rows or the seeds")
  check_choice(config, "model.primary.name", PRIMARY_NAMES)
  check_widths(config, "model.primary.widths")
  if config.model.primary.name == "conv":
    check_widths(config, "model.primary.channels")
    check_int(config, "model.primary.kernel_size", minimum=1)
    check_int(config, "model.primary.strides", minimum=1)
  check_int(config, "model.param_budget", minimum=0)
  if "param_budget_tolerance" in config.model:
    check_positive_float(config, "model.param_budget_tolerance")
  kind = config.model.kind
  if kind == "hypernet":
    check_int(config, "model.f_width", minimum=1)
    check_int(config, "model.f_depth", minimum=1)
    check_choice(config, "model.generator", GENERATORS)
    check_choice(config, "model.f_init", INITS)
    check_positive_float(config, "model.f_init_scale")
    if config.model.generator == "lowrank":
      check_int(config, "model.rank", minimum=1)
    if config.model.generator == "chunked":
      check_int(config, "model.chunk_size", minimum=1)
      check_int(config, "model.chunk_embedding_dim", minimum=1)
      check_widths(config, "model.chunk_hidden")
  elif kind == "embedding":
    check_int(config, "model.e_width", minimum=1)
    check_int(config, "model.e_depth", minimum=1)
    check_int(config, "model.embedding_dim", minimum=1)
    check_widths(config, "model.q_widths")
  else:
    check_widths(config, "model.standard_widths")

  check_optimizer_config(config)

  if "steps_per_call" in config:
    check_int(config, "steps_per_call", minimum=0)
  check_int(config, "batch.conditions", minimum=1)
  check_int(config, "batch.points", minimum=1)
  for field in ("num_train_steps", "log_every_steps", "eval_every_steps",
                "checkpoint_every_steps", "max_checkpoints_to_keep",
                "eval_conditions_per_chunk"):
    check_int(config, field, minimum=1)

  check_regime(config)
  if "sampling" in config.batch:
    check_choice(config, "batch.sampling", SAMPLINGS)
  if "init_scheme" in config.model:
    check_choice(config, "model.init_scheme", INIT_SCHEMES)
  if config.data.name == "rotation":
    check_choice(config, "data.source", images.SOURCES)
    if "test_angles" in config.data:
      check_choice(config, "data.test_angles", TEST_ANGLES)
    check_int(config, "data.num_classes", minimum=2)
    check_int(config, "data.num_train_examples", minimum=0)
    check_int(config, "data.num_test_examples", minimum=0)
    if config.batch.points != 1:
      raise ConfigError("config.batch.points must be 1 for the rotation task (one "
                        f"rotated copy per image and step), got {config.batch.points}")
    # Missing data stop the run here, before its workdir is touched.
    images.check_available(config.data.source, data_dir=config.data.get("data_dir") or None)
  if config.data.name in ("synthetic", "structured"):
    fields = (("m1", "m2", "target_width") if config.data.name == "synthetic" else
              ("m1", "m2", "selector_width", "selector_hidden", "target_primary_width"))
    for field in fields + ("num_train_conditions", "num_test_conditions",
                           "points_per_condition"):
      check_int(config, f"data.{field}", minimum=1)
    for field in ("target_gain", "selector_gain", "selector_scale"):
      if field in config.data:
        check_positive_float(config, f"data.{field}")
  check_fits_in_memory(config)


# ----------------------------------------------------------------------------
# Config files by path.

# The repository: configs/ sits beside the hypernets package (`pip install -e .`).
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS_DIR = os.path.join(REPO_ROOT, "configs")


def find_config_file(path: str) -> str:
  """The absolute path of config file `path`, from any working directory.

  `path` is tried as given (relative to the current directory), then relative to
  the repository root, then as a name in configs/ ('synthetic' or 'synthetic.py').
  Raises ConfigError naming every place it looked.
  """
  candidates = [os.path.abspath(path)]
  if not os.path.isabs(path):
    candidates.append(os.path.join(REPO_ROOT, path))
    name = path if path.endswith(".py") else f"{path}.py"
    if os.sep not in name:
      candidates.append(os.path.join(CONFIGS_DIR, name))
  for candidate in dict.fromkeys(candidates):
    if os.path.isfile(candidate):
      return candidate
  raise ConfigError(f"config file {path!r} not found; looked in "
                    + ", ".join(dict.fromkeys(candidates))
                    + f" (the shipped configs are in {CONFIGS_DIR})")


def load_config_module(path: str) -> types.ModuleType:
  """The module of config file `path` (see `find_config_file`; configs/ is not a package)."""
  path = find_config_file(path)
  name = os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(f"hypernets_configs_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def split_config_spec(spec: str) -> tuple[str, str | None]:
  """'configs/x.py:quick,kind=embedding' -> ('configs/x.py', 'quick,kind=embedding')."""
  path, _, variant = spec.partition(":")
  return path, (variant or None)


def load_config(spec: str, variant: str | None = None) -> ml_collections.ConfigDict:
  """get_config(variant) of the config file `spec` = 'path[:variant]'.

  `variant` (e.g. 'small') is used when `spec` names none. The path is found from any
  working directory (`find_config_file`).
  """
  path, spec_variant = split_config_spec(spec)
  return load_config_module(path).get_config(spec_variant or variant)



_BYTES_PER_PARAMETER = 16  # float32 value, gradient and two Adam moments
_LARGEST_IMAGE = 32 * 32 * 3  # pixels of the largest image source (CIFAR-10)


def _memory_bytes() -> int | None:
  """This machine's physical memory, or None where the OS does not say."""
  try:
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
  except (ValueError, OSError, AttributeError):
    return None


def _format_bytes(n: float) -> str:
  for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
    if n < 1000 or unit == "PB":
      return f"{n:.3g} {unit}"
    n /= 1000
  return f"{n:.3g} PB"


def _dense_weights(sizes: list[int]) -> int:
  """Weights and biases of an MLP with layer sizes [in, hidden..., out]."""
  return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def _repeated_dense_weights(d_in: int, width: int, depth: int) -> int:
  """_dense_weights([d_in] + [width] * depth) without building the list (a fuzzed
  depth of 10**9 would fill the memory it is meant to protect)."""
  if depth <= 0:
    return 0
  return d_in * width + width + (depth - 1) * (width * width + width)


def check_fits_in_memory(config: ml_collections.ConfigDict, *,
                         memory_bytes: int | None = None) -> None:
  """Stops sizes that cannot fit in this machine's memory, before anything is allocated.

  Estimates (from the size fields alone, so it runs before any data or model
  exists) the training and test sets, the data's target networks and the model's
  parameters with their gradient and optimizer state for every seed; raises
  ConfigError naming the fields of the first estimate larger than `memory_bytes`
  (default: physical memory). A guard against sizes off by orders of magnitude
  (a width of 2**31 crashed XLA mid-run), not a precise budget: generators that
  emit fewer numbers than per-tensor heads are counted as heads.
  """
  data, model = config.data, config.model
  estimates = []  # (bytes, what, fields)
  if model.get("param_budget", 0) > 0:  # the budget picks the width, whatever the data
    estimates.append((_BYTES_PER_PARAMETER * model.param_budget * config.num_seeds,
                      f"{model.param_budget:.3g} parameters x {config.num_seeds} seed(s) "
                      "with gradients and optimizer state",
                      "config.model.param_budget and config.num_seeds"))
  if "batch" in config and _is_int(config.batch.get("conditions")) and _is_int(
      config.batch.get("points")):
    # A batch's points [S, B, P, x] with their activations: at least 4 bytes a number,
    # with 64 numbers per point as a floor for x, the output and one hidden layer.
    estimates.append((4 * 64 * config.num_seeds * config.batch.conditions
                      * config.batch.points, "a training batch of "
                      f"{config.batch.conditions} x {config.batch.points} points x "
                      f"{config.num_seeds} seed(s)",
                      "config.batch.conditions, batch.points and config.num_seeds"))
  if data.name in ("synthetic", "structured"):
    for split in ("train", "test"):
      rows = data[f"num_{split}_conditions"] * data.points_per_condition
      estimates.append((4 * (rows * (data.m1 + 1) + data[f"num_{split}_conditions"] * data.m2),
                        f"the {split} set", f"config.data.num_{split}_conditions, "
                        "points_per_condition, m1 and m2"))
    if data.name == "structured":
      target = _dense_weights([data.m1, data.target_primary_width, 1])
      selector = _dense_weights([data.m2, data.selector_hidden, data.selector_width])
      estimates.append((4 * (selector + data.selector_width * target), "the target network",
                        "config.data.selector_hidden, selector_width and "
                        "target_primary_width"))
    x_dim, cond_dim, out_dim = data.m1, data.m2, 1
  elif data.name == "rotation":
    x_dim = cond_dim = _LARGEST_IMAGE
    out_dim = data.num_classes
  else:  # a task named by import path: its sizes are unknown here, 1 is a floor
    x_dim = cond_dim = out_dim = 1
  widths = list(model.primary.widths)
  primary = _dense_weights([x_dim] + widths + [out_dim])
  if model.kind == "hypernet":
    trunk = _repeated_dense_weights(cond_dim, model.f_width, model.f_depth)
    parameters, fields = trunk + model.f_width * primary, "f_width, f_depth and the primary"
  elif model.kind == "embedding":
    trunk = (_repeated_dense_weights(cond_dim, model.e_width, model.e_depth)
             + _dense_weights([model.e_width if model.e_depth else cond_dim,
                               model.embedding_dim]))
    parameters = trunk + _dense_weights([x_dim + model.embedding_dim] + list(model.q_widths)
                                        + [out_dim])
    fields = "e_width, e_depth, embedding_dim and q_widths"
  else:
    parameters = _dense_weights([x_dim + cond_dim] + list(model.standard_widths) + [out_dim])
    fields = "standard_widths"
  estimates.append((_BYTES_PER_PARAMETER * parameters * config.num_seeds,
                    f"about {parameters:.3g} parameters x {config.num_seeds} seed(s) with "
                    "gradients and optimizer state", f"config.model.{fields} (widths "
                    f"{widths}, output size {out_dim}) and config.num_seeds"))
  check_estimates(estimates, memory_bytes=memory_bytes)


def check_estimates(estimates, *, memory_bytes: int | None = None) -> None:
  """Raises ConfigError for the first (bytes, what, fields) estimate larger than
  `memory_bytes` (default: physical memory; no check where the OS does not say)."""
  memory_bytes = memory_bytes or _memory_bytes()
  if not memory_bytes:
    return
  for need, what, fields in estimates:
    if need > memory_bytes:
      raise ConfigError(f"{fields} ask for {what}: {_format_bytes(need)}, more than this "
                        f"machine's {_format_bytes(memory_bytes)} of memory")


# ----------------------------------------------------------------------------
# Variants of a config file.


def parse_variants(arg: str | None, *, known: set[str], config_name: str) -> dict[str, str]:
  """'quick,kind=embedding' -> {'quick': '', 'kind': 'embedding'}.

  Raises ValueError naming the config file and the known variants for any other key.
  """
  options = {}
  for item in filter(None, (arg or "").split(",")):
    key, _, value = item.partition("=")
    options[key.strip()] = value.strip()
  unknown = set(options) - set(known)
  if unknown:
    raise ValueError(f"unknown configs/{config_name}.py variant(s) {sorted(unknown)}; "
                     f"known: {', '.join(sorted(known))}")
  return options


# ----------------------------------------------------------------------------
# Fields every training config shares.

# Fields that may change when a run is resumed: they change how often things are
# reported or how the run is driven, not what is computed.
RESUMABLE_FIELDS = frozenset({
    "log_every_steps", "eval_every_steps", "checkpoint_every_steps",
    "max_checkpoints_to_keep", "eval_conditions_per_chunk", "overwrite", "debug_nans",
    "steps_per_call",
    # Resuming on other hardware: the same computation, laid out differently.
    "mesh.shape", "mesh.axis_names", "mesh.shard_seeds", "mesh.shard_heads",
    "distributed.enabled", "distributed.coordinator_address", "distributed.num_processes",
    "distributed.process_id",
})


def add_run_fields(config: ml_collections.ConfigDict, *,
                   compute_dtype: bool = True) -> ml_collections.ConfigDict:
  """Adds compute_dtype (if asked), steps_per_call, mesh.*, distributed.*, overwrite
  and debug_nans; returns config."""
  if compute_dtype:
    # 'bfloat16': mixed precision for GPUs/TPUs (hypernets/precision.py): float32
    # parameters, optimizer and losses; inputs, weights and theta_I in bf16 for the matmuls.
    config.compute_dtype = "float32"
  # Train steps per dispatched call (lax.scan); 0 = up to the next log / eval /
  # checkpoint event, so one call per log interval (bit-identical to one per call).
  config.steps_per_call = 0
  # Devices: one program over a mesh (README "Scaling out").
  config.mesh = ml_collections.ConfigDict()
  config.mesh.shape = (-1, 1)  # -1: all remaining devices
  config.mesh.axis_names = ("data", "model")
  config.mesh.shard_seeds = False  # split the seed axis (not each batch) over 'data'
  config.mesh.shard_heads = False  # split large generator heads over 'model'
  # Per-host data: each process loads only its share of the training rows, split over
  # 'data'; each device draws its share of every batch from its own rows.
  config.mesh.shard_train_data = False
  # Processes: jax.distributed.initialize (hypernets/parallel/distributed.py). 'auto' joins
  # when the environment says this is one process of several (TPU pod, launcher).
  config.distributed = ml_collections.ConfigDict()
  config.distributed.enabled = "auto"  # 'auto' | True | False
  config.distributed.coordinator_address = ""  # 'host:port' of process 0; '' = autodetect
  config.distributed.num_processes = -1  # -1: from the environment
  config.distributed.process_id = -1  # -1: from the environment
  config.overwrite = False  # a workdir of another config: move it aside (never deleted)
  config.debug_nans = False  # jax_debug_nans: find the op that made the first NaN (slow)
  return config
