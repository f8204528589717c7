"""What the launchers in launch/ share: bad input ends in one `error:` line, not a
traceback (`parse_flags`, `config_or_exit`, `run_or_exit`; HYPERNETS_TRACEBACK=1 shows
it), `--config` found from any directory, quiet logging unless `--verbose`.

Imports no jax: a launcher's flag errors come before the library loads.
"""

import os
import re
import sys
from typing import Any, Callable

from absl import flags

from hypernets.config import find_config_file
from hypernets.config import split_config_spec
from hypernets.errors import ConfigError
from hypernets.errors import HypernetsError
from hypernets.errors import PreemptedError




def show_traceback() -> bool:
  return os.environ.get("HYPERNETS_TRACEBACK", "") not in ("", "0")


HELP_FLAGS = ("--help", "-h", "-?", "--helpshort", "--helpfull")


def config_arg_index(argv: list[str]) -> int | None:
  """Index of the `--config=SPEC` (or `--config SPEC`: of SPEC) argument, if any."""
  for i, arg in enumerate(argv[1:], start=1):
    if arg.startswith("--config="):
      return i
    if arg == "--config" and i + 1 < len(argv):
      return i + 1
  return None


def resolve_config_arg(argv: list[str]) -> list[str]:
  """argv with `--config=PATH[:variant]` found from any directory: PATH as given if it
  exists, else its absolute path (`find_config_file`, e.g. `configs/x.py` run from
  elsewhere). A file found nowhere exits with one line naming where it looked."""
  i = config_arg_index(argv)
  if i is None:
    return list(argv)
  prefix = "--config=" if argv[i].startswith("--config=") else ""
  path, variant = split_config_spec(argv[i][len(prefix):])
  if os.path.isfile(path):
    return list(argv)
  try:
    found = find_config_file(path)
  except ConfigError as e:
    sys.exit(f"error: {e}")
  argv = list(argv)
  argv[i] = prefix + found + (f":{variant}" if variant else "")
  return argv


def error_line(e: BaseException, argv: list[str]) -> str:
  """One line for an exception raised while loading a config and its overrides."""
  message = e
  while isinstance(message, BaseException) and message.args:  # AttributeError(KeyError(...))
    message = message.args[0]
  lines = [line.strip() for line in str(message).splitlines() if line.strip()]
  name = lines[0].strip("'\"") if lines else ""
  hint = re.search(r'Did you mean "(\w+)"', str(message))
  culprits = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")
              and re.search(rf"[.=]{re.escape(name)}(=|\.|$)", a.split("=")[0] + "=")]
  if culprits:
    line = f"error: {culprits[0]} names no field of the config"
    if hint:
      line += f" (did you mean {culprits[0].rsplit('.', 1)[0]}.{hint.group(1)}?)"
    return line + "; list the fields with --show"
  return f"error: could not load the config: {lines[-1] if lines else e}"


def parse_or_exit(flag_values, argv: list[str]) -> list[str]:
  try:
    return flag_values(argv)
  except flags.Error as e:
    # ml_collections folds the config file's own traceback into the message.
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    sys.exit(f"error: {lines[-1] if lines else e}")
  except (AttributeError, KeyError, ValueError, TypeError, OSError) as e:
    if show_traceback():
      raise
    sys.exit(error_line(e, argv))


def parse_flags(argv: list[str]) -> list[str]:
  """absl flags parser for `app.run(..., flags_parser=parse_flags)`.

  - `--help`: the launcher's docstring, flags and the shipped configs (exit 0).
  - `--config=configs/x.py` is found from any directory (`resolve_config_arg`).
  - `--show`: the config's fields with defaults and comments (exit 0, runs nothing).
  - Quiet by default: warnings and errors only; `--verbose` (or `--verbosity=0`)
    shows INFO lines (per-step metrics, JAX backend probing, tfds messages).
  - Config overrides that name no field, or a config file whose get_config() raises,
    otherwise end in a traceback from inside ml_collections; here they end in one line
    naming the override.
  """
  # pylint: disable=g-import-not-at-top
  from hypernets import config_help
  # pylint: enable=g-import-not-at-top
  if any(arg in HELP_FLAGS for arg in argv[1:]):
    config_help.print_help_and_exit(argv, extra=config_help.COMMON_HELP)
  show = "--show" in argv[1:]
  verbose = "--verbose" in argv[1:]
  argv = resolve_config_arg([a for a in argv if a not in ("--show", "--verbose")])
  if show:
    config_help.show_and_exit(argv)
  return parse_or_exit(flags.FLAGS, quiet_logging_args(argv, verbose=verbose))


def quiet_logging_args(argv: list[str], *, verbose: bool = False) -> list[str]:
  """argv with `--verbosity=-1` (warnings and errors only; `verbose`: 0, INFO) unless it
  sets --verbosity itself. Passed as an argument because absl's app.run raises a
  verbosity left at its default to INFO."""
  if any(re.match(r"^--?(verbosity|v)(=|$)", arg) for arg in argv[1:]):
    return list(argv)
  return [*argv, f"--verbosity={0 if verbose else -1}"]


def run_or_exit(fn: Callable[..., Any], *args, **kwargs) -> Any:
  """fn(*args, **kwargs); a HypernetsError exits with 'error: <message>' (status 1),
  a PreemptedError with 'stopped: <message>' (status 75: rerun to resume)."""
  try:
    return fn(*args, **kwargs)
  except PreemptedError as e:
    # Not a failure: the run checkpointed and asks to be rerun (status 75).
    print(f"stopped: {e}", file=sys.stderr)
    sys.exit(PreemptedError.EXIT_CODE)
  except HypernetsError as e:
    if show_traceback():
      raise
    sys.exit(f"error: {e}")


def config_or_exit(config_flag):
  """The value of a config flag; a config file that failed to load exits with one line."""
  try:
    value = config_flag.value
    value.to_dict  # a config that failed to load raises on any attribute  # pylint: disable=pointless-statement
    return value
  except OSError as e:
    if show_traceback():
      raise
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    sys.exit(f"error: could not load the config file: {lines[-1] if lines else e}")
