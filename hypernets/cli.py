"""What the launchers share: bad input ends in one clear line, not a traceback.

Set HYPERNETS_TRACEBACK=1 to see the full traceback instead.
"""

import os
import re
import sys
from typing import Any, Callable

from absl import flags

from hypernets.errors import HypernetsError


def _show_traceback() -> bool:
  return os.environ.get("HYPERNETS_TRACEBACK", "") not in ("", "0")


def parse_flags(argv: list[str]) -> list[str]:
  """absl flags parser for `app.run(..., flags_parser=parse_flags)`.

  Config overrides that name no field, or a config file whose get_config() raises,
  otherwise end in a traceback from inside ml_collections; here they end in one line
  naming the override.
  """
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    # ml_collections folds the config file's own traceback into the message.
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    sys.exit(f"error: {lines[-1] if lines else e}")
  except (AttributeError, KeyError, ValueError, TypeError, OSError) as e:
    if _show_traceback():
      raise
    name = str(e).strip("'\"")
    culprits = [a for a in argv[1:] if a.startswith("--config.")
                and re.search(rf"[.=]{re.escape(name)}(=|\.|$)", a.split("=")[0] + "=")]
    if culprits:
      sys.exit(f"error: {culprits[0].split('=')[0]} names no field of the config")
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    sys.exit(f"error: could not load the config: {lines[-1] if lines else e}")


def run_or_exit(fn: Callable[..., Any], *args, **kwargs) -> Any:
  """fn(*args, **kwargs); a HypernetsError exits with 'error: <message>' (status 1)."""
  try:
    return fn(*args, **kwargs)
  except HypernetsError as e:
    if _show_traceback():
      raise
    sys.exit(f"error: {e}")


def config_or_exit(config_flag):
  """The value of a config flag; a config file that failed to load exits with one line."""
  try:
    value = config_flag.value
    value.to_dict  # a config that failed to load raises on any attribute  # pylint: disable=pointless-statement
    return value
  except OSError as e:
    if _show_traceback():
      raise
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    sys.exit(f"error: could not load the config file: {lines[-1] if lines else e}")
