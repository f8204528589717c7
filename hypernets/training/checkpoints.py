"""Orbax checkpoints in `workdir/checkpoints` with restore-or-initialize.

The workdir may be a bucket URL (`gs://bucket/run`): orbax writes there itself
(TensorStore's GCS driver for the arrays, etils.epath for the rest), which is
what lets a run preempted on one TPU slice resume on another.
"""

import logging as logging_std

from absl import logging
import flax.serialization
import jax
import orbax.checkpoint as ocp

from hypernets.errors import WorkdirError
from hypernets.training import files


class _DropOrbaxInfo(logging_std.Filter):
  """Orbax logs several INFO lines per save; keep its warnings and errors only."""

  def filter(self, record: logging_std.LogRecord) -> bool:
    return record.levelno >= logging_std.WARNING or "/orbax/" not in record.pathname


def quiet_orbax_info_logs() -> None:
  """Drops orbax's INFO records from the absl log (idempotent)."""
  absl_logger = logging.get_absl_logger()
  if not any(isinstance(f, _DropOrbaxInfo) for f in absl_logger.filters):
    absl_logger.addFilter(_DropOrbaxInfo())


def create_manager(workdir: str, *, max_to_keep: int) -> ocp.CheckpointManager:
  """A CheckpointManager over `workdir/checkpoints` (created if needed; local or URL)."""
  quiet_orbax_info_logs()
  return ocp.CheckpointManager(
      files.join(files.absolute(workdir), "checkpoints"),
      options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
      item_handlers=ocp.StandardCheckpointHandler())


def _shapes_by_path(tree) -> dict[str, tuple[int, ...]]:
  return {jax.tree_util.keystr(path, simple=True, separator="/"): tuple(leaf.shape)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _describe_mismatch(saved: dict, wanted: dict) -> str | None:
  """First difference between two {path: shape} maps, or None."""
  # Name a parameter before its optimizer-state twin.
  for path in sorted(set(saved) | set(wanted), key=lambda p: (not p.startswith("params"), p)):
    if path not in saved:
      return f"{path} is not in the checkpoint"
    if path not in wanted:
      return f"the checkpoint has {path}, which this model lacks"
    if saved[path] != wanted[path]:
      return f"{path} has shape {saved[path]} in the checkpoint, {wanted[path]} here"
  return None


def restore_or_initialize(manager: ocp.CheckpointManager, state):
  """Returns the latest complete checkpoint restored into `state`'s structure, or `state`.

  Orbax only lists checkpoints whose write was finalised, so a half-written one is
  never restored. A checkpoint whose tree or shapes differ from `state` (a run of a
  different config) raises WorkdirError naming the directory.
  """
  step = manager.latest_step()
  if step is None:
    return state
  where = f"checkpoint {manager.directory}/{step}"
  hint = ("move it away to resume from the checkpoint before it" if
          len(manager.all_steps()) > 1 else "move it away to start afresh")
  try:
    metadata = manager.item_metadata(step)
  except Exception as e:  # pylint: disable=broad-except
    raise WorkdirError(f"{where} is unreadable (corrupt or truncated?): "
                       f"{_first_line(e)}; {hint}") from e
  mismatch = _describe_mismatch(_shapes_by_path(getattr(metadata, "tree", metadata)),
                                _shapes_by_path(state))
  if mismatch:
    raise WorkdirError(f"{where} does not fit this config's model (a run of a "
                       f"different config?): {mismatch}")
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  saved_fields = getattr(metadata, "tree", metadata)
  try:
    missing_empty = _missing_empty_fields(state, saved_fields)
    if missing_empty:
      restored = _restore_without(manager, step, state, abstract, missing_empty)
    else:
      restored = manager.restore(step, args=ocp.args.StandardRestore(abstract))
  except Exception as e:  # pylint: disable=broad-except
    # Orbax and TensorStore raise many types for damaged files.
    raise WorkdirError(f"{where} could not be restored (corrupt or truncated?): "
                       f"{_first_line(e)}; {hint}") from e
  logging.info("Restored checkpoint at step %d from %s", step, manager.directory)
  return restored


def _missing_empty_fields(state, saved) -> list[str]:
  """Top-level fields of `state` without leaves (e.g. a TrainState's empty
  model_state) that a checkpoint written before they existed lacks."""
  fields = flax.serialization.to_state_dict(state)
  if not isinstance(fields, dict) or not isinstance(saved, dict):
    return []
  return [k for k, v in fields.items() if k not in saved and not jax.tree_util.tree_leaves(v)]


def _restore_without(manager, step, state, abstract, fields):
  """Restores the checkpoint into `state` but for `fields`, which keep their values.

  The target keeps each saved field's own pytree (an optax state stays a tuple of
  NamedTuples), so orbax matches it to the saved tree as it matches a whole state;
  a state dict would turn those tuples into dicts, which orbax refuses.
  """
  if isinstance(state, dict):
    wanted = {name: value for name, value in abstract.items() if name not in fields}
    return {**state, **manager.restore(step, args=ocp.args.StandardRestore(wanted))}
  wanted = {name: getattr(abstract, name)
            for name in flax.serialization.to_state_dict(abstract) if name not in fields}
  restored = manager.restore(step, args=ocp.args.StandardRestore(wanted))
  return state.replace(**restored)  # a flax.struct dataclass, as TrainState


def _first_line(error: Exception) -> str:
  lines = [line for line in str(error).splitlines() if line.strip()]
  return (lines[0] if lines else type(error).__name__)[:200]


def save(manager: ocp.CheckpointManager, step: int, state) -> None:
  """Saves `state` at `step` (asynchronously; `manager.wait_until_finished()` to block)."""
  manager.save(step, args=ocp.args.StandardSave(state))
