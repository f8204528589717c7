"""What the launchers' `--help` and `--show` print (`hypernets.launcher.parse_flags`).

- `shipped_configs()`: each file in configs/ with its one-line purpose and variants,
  read from the file's docstring (nothing is imported).
- `describe_config(path, config)`: every field of a loaded config with its value, the
  default (get_config() without a variant) where the variant or an override changed
  it, and the comment written beside (or just above) the field in the config file.
"""

import ast
import dataclasses
import os
import re
import sys

from absl import flags
import ml_collections
from ml_collections import config_flags

from hypernets import config as config_lib
from hypernets import launcher
from hypernets.errors import HypernetsError


@dataclasses.dataclass(frozen=True)
class ConfigSummary:
  path: str  # relative to the repository, e.g. 'configs/synthetic.py'
  purpose: str  # the docstring's first line
  variants: str  # the docstring's 'Variants ...' paragraph, on one line ('' if none)


def _docstring(path: str) -> str:
  with open(path) as f:
    return ast.get_docstring(ast.parse(f.read())) or ""


def summarize_config_file(path: str) -> ConfigSummary:
  """The purpose and variants of a config file, from its module docstring."""
  paragraphs = re.split(r"\n\s*\n", _docstring(path).strip())
  # The first sentence of the first paragraph ('Sec. 6.2' is not a sentence end).
  purpose = re.split(r"(?<=\.)\s+(?=[A-Z])", " ".join(paragraphs[0].split()))[0]
  variants = ""
  for paragraph in paragraphs:
    if paragraph.lstrip().startswith("Variants"):
      text = re.sub(r"^Variants\s*(\([^)]*\))?\s*:?\s*", "", paragraph.strip())
      # One line: a table of 'name  meaning' rows becomes 'name: meaning; ...';
      # the paragraph ends where the sweeps are listed.
      rows = []
      for line in text.splitlines():
        if line.strip().startswith("Sweeps"):
          break
        if not line.strip():
          continue
        if rows and not re.search(r"\S\s{2,}\S", line.strip()):
          rows[-1] += " " + line.strip()  # wrapped prose continues the row above
        else:
          rows.append(re.sub(r"\s{2,}", ": ", line.strip(), count=1))
      variants = "; ".join(row.rstrip(".") for row in rows)
      break
  return ConfigSummary(os.path.relpath(path, config_lib.REPO_ROOT), purpose, variants)


def shipped_configs(configs_dir: str = config_lib.CONFIGS_DIR) -> list[ConfigSummary]:
  """One summary per configs/*.py, sorted by name."""
  return [summarize_config_file(os.path.join(configs_dir, name))
          for name in sorted(os.listdir(configs_dir))
          if name.endswith(".py") and not name.startswith("_")]


def configs_help(configs_dir: str = config_lib.CONFIGS_DIR) -> str:
  """The 'Configs' section of a launcher's --help."""
  lines = ["Configs (--config=configs/NAME.py[:VARIANT,...], found from any directory; "
           "add --show to print a config's fields):"]
  for summary in shipped_configs(configs_dir):
    lines.append(f"  {summary.path}")
    lines.append(f"      {summary.purpose}")
    if summary.variants:
      lines.append(f"      variants: {summary.variants}")
  return "\n".join(lines)


# ----------------------------------------------------------------------------
# --show: a config's fields.

_ASSIGNMENT = re.compile(r"^\s*config\.([\w.]+)\s*=")


def field_comments(path: str) -> dict[str, str]:
  """{field: comment} from the `config.x.y = ...` lines of a Python file.

  The comment is the one at the end of the line or, failing that, the block of
  comment lines just above it. The first assignment with a comment wins (the
  default's, before the variants change it).
  """
  with open(path) as f:
    lines = f.read().splitlines()
  comments: dict[str, str] = {}
  block: list[str] = []
  for line in lines:
    stripped = line.strip()
    if stripped.startswith("#"):
      block.append(stripped.lstrip("#").strip())
      continue
    match = _ASSIGNMENT.match(line)
    if match:
      inline = _inline_comment(line)
      comment = inline or " ".join(block)
      if comment and match.group(1) not in comments:
        comments[match.group(1)] = comment
    block = []
  return comments


def _inline_comment(line: str) -> str:
  """The `# ...` comment ending a line of code ('' if none); '#' in strings is kept."""
  quote = None
  for i, char in enumerate(line):
    if quote:
      if char == quote:
        quote = None
    elif char in "\"'":
      quote = char
    elif char == "#":
      return line[i + 1:].strip()
  return ""


def _comment_sources(path: str) -> list[str]:
  """The config file, the configs it builds on (named in it), then hypernets/config.py."""
  with open(path) as f:
    text = f.read()
  directory = os.path.dirname(path)
  others = [os.path.join(directory, name) for name in sorted(set(
      re.findall(r"[\"'](\w+\.py)[\"']", text)))
            if os.path.isfile(os.path.join(directory, name))]
  return [path, *others, os.path.abspath(config_lib.__file__)]


def _flatten(config: ml_collections.ConfigDict, prefix: str = "") -> dict:
  flat = {}
  for key in sorted(config.keys()):
    value = config[key]
    if isinstance(value, ml_collections.ConfigDict):
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def describe_config(spec: str, config: ml_collections.ConfigDict) -> str:
  """Every field of `config` (loaded from `spec` = 'path[:variant]') as
  `name = value  # comment` lines, with '(default: v)' where it differs."""
  path, variant = config_lib.split_config_spec(spec)
  path = config_lib.find_config_file(path)
  module = config_lib.load_config_module(path)
  defaults = _flatten(module.get_config(None))
  comments = {}
  for source in reversed(_comment_sources(path)):  # the config file's own win
    comments.update(field_comments(source))
  flat = _flatten(config)
  summary = summarize_config_file(path)
  lines = [f"{summary.path}{':' + variant if variant else ''}: {summary.purpose}"]
  if summary.variants:
    lines.append(f"variants: {summary.variants}")
  lines.append("fields (override any with --config.FIELD=VALUE):")
  width = min(max(len(f"{k} = {v!r}") for k, v in flat.items()), 48)
  for name, value in flat.items():
    text = f"{name} = {value!r}"
    notes = []
    if name in defaults and defaults[name] != value:
      notes.append(f"default: {defaults[name]!r}")
    elif name not in defaults:
      notes.append("not in the default config")
    if name in comments:
      notes.append(comments[name])
    lines.append((f"  {text:<{width}}" + (f"  # {'; '.join(notes)}" if notes else "")).rstrip())
  return "\n".join(lines)


# ----------------------------------------------------------------------------
# The launchers' --help and --show.


def print_help_and_exit(argv: list[str], *, flag_values=None, extra: str = "") -> None:
  """Prints the launcher's docstring, its flags and the shipped configs; exits 0."""
  flag_values = flag_values or flags.FLAGS
  main_doc = (sys.modules["__main__"].__doc__ or "").strip()
  script = os.path.basename(argv[0]) if argv else "launcher"
  flag_help = (flag_values.main_module_help() if "--helpfull" not in argv
               else flag_values.get_help())
  # absl heads each module's flags with the module's path: not needed here.
  flag_help = "\n".join(line for line in flag_help.splitlines()
                        if line.strip() and not re.match(r"^\S.*:$", line))
  text = [main_doc, "", f"Flags of {script} (--helpfull: all flags):", flag_help]
  if extra:
    text.append(extra)
  text += ["", configs_help(), ""]
  print("\n".join(text))
  sys.exit(0)


COMMON_HELP = """  --config.FIELD=VALUE: override any field of the config (list them with --show)
  --show: print the config's fields (after overrides) with defaults and comments; run nothing
  --verbose: INFO logging (per-step metrics, JAX and tfds messages); same as --verbosity=0"""


def show_and_exit(argv: list[str]) -> None:
  """--show: the config of `--config=...` and its overrides, field by field; exits 0."""
  i = launcher.config_arg_index(argv)
  if i is None:
    sys.exit("error: --show needs --config=configs/NAME.py[:VARIANT] (see --help)")
  spec = argv[i][len("--config="):] if argv[i].startswith("--config=") else argv[i]
  # A flag set of its own: the launcher's required flags (--workdir) are not needed.
  overrides = [a for a in argv[1:] if a.startswith("--config.")]
  config_argv = [argv[0], f"--config={spec}", *overrides]
  flag_values = flags.FlagValues()
  # sys_argv: where ml_collections looks for the overrides (default: sys.argv).
  config_flags.DEFINE_config_file("config", None, "", flag_values=flag_values,
                                  lock_config=True, sys_argv=config_argv)
  launcher.parse_or_exit(flag_values, config_argv)
  try:
    print(describe_config(spec, flag_values.config))
  except (HypernetsError, AttributeError, KeyError, ValueError, TypeError, OSError) as e:
    if launcher.show_traceback():
      raise
    sys.exit(launcher.error_line(e, argv))
  sys.exit(0)
