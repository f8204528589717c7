"""Every launcher command in README.md and in the docstrings of configs/*.py and
launch/*.py parses: the script and its flags exist, the config file loads with its
variant, every `--config.x=v` names a field (of the right type), a named sweep exists.
Commands with a `:small` variant also run, from another directory, and must print no
traceback, no `error:` line and no log line."""

import ast
import os
import re
import shlex
import subprocess
import sys

from absl import flags
from ml_collections import config_flags
import pytest

from conftest import REPO_ROOT
from hypernets import config as config_lib

# Flags every launcher takes besides its own: absl's and hypernets.launcher.parse_flags'.
_COMMON_FLAGS = {"help", "helpshort", "helpfull", "verbosity", "v", "show", "verbose"}
# Placeholders documents use for values the reader chooses.
_PLACEHOLDER = re.compile(r"^[A-Z][A-Z_]*$")


def _fenced_bash(text: str) -> list[str]:
  blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S)
  return [line for block in blocks for line in _join_continued(block.splitlines())]


def _join_continued(lines: list[str]) -> list[str]:
  """Lines ending in a backslash joined with the next; comments dropped."""
  joined, current = [], ""
  for line in lines:
    line = re.sub(r"\s#\s.*$", "", line).rstrip()
    if line.endswith("\\"):
      current += line[:-1] + " "
      continue
    joined.append((current + line).strip())
    current = ""
  return [line for line in joined if line]


def _docstring_commands(text: str) -> list[str]:
  lines = [l.strip() for l in text.splitlines()]
  return [l for l in _join_continued(lines) if l.startswith(("python ", "python3 "))]


def _inline_commands(text: str) -> list[str]:
  return re.findall(r"`((?:python3?) launch/[^`]+)`", text)


def _collect() -> list[tuple[str, str]]:
  """(where, command) for every launcher command in the documents."""
  found = []
  with open(os.path.join(REPO_ROOT, "README.md")) as f:
    readme = f.read()
  found += [("README.md", c) for c in _fenced_bash(readme) + _inline_commands(readme)]
  for folder in ("configs", "launch"):
    for name in sorted(os.listdir(os.path.join(REPO_ROOT, folder))):
      if not name.endswith(".py"):
        continue
      with open(os.path.join(REPO_ROOT, folder, name)) as f:
        doc = ast.get_docstring(ast.parse(f.read())) or ""
      found += [(f"{folder}/{name}", c)
                for c in _docstring_commands(doc) + _inline_commands(doc)]
  commands = []
  for where, line in found:
    for part in line.split("&&"):
      part = part.strip()
      if re.match(r"^python3? launch/\w+\.py\b", part):
        commands.append((where, part))
  return list(dict.fromkeys(commands))


COMMANDS = _collect()


def _launcher_flags(script: str) -> set[str]:
  with open(os.path.join(REPO_ROOT, "launch", script)) as f:
    source = f.read()
  return set(re.findall(r"DEFINE_\w+\(\s*\"(\w+)\"", source)) | _COMMON_FLAGS


def _parse(argv: list[str]) -> tuple[dict[str, str], list[str]]:
  """({flag: value} of `--flag[=value]` arguments, `--config.x=v` overrides)."""
  named, overrides = {}, []
  for arg in argv:
    assert arg.startswith("-"), f"positional argument {arg!r}"
    if arg.startswith("--config."):
      overrides.append(arg)
    else:
      name, _, value = arg.lstrip("-").partition("=")
      named[name] = value
  return named, overrides


def test_the_documents_have_commands_of_every_launcher():
  scripts = {re.match(r"python3? launch/(\w+\.py)", c).group(1) for _, c in COMMANDS}
  assert {"main.py", "compare.py", "sweep.py", "report.py", "gpu.py", "tpu_pod.py"} <= scripts
  assert any(":small" in c for _, c in COMMANDS)  # some run below


@pytest.mark.parametrize("where,command", COMMANDS, ids=[c for _, c in COMMANDS])
def test_documented_command_parses(where, command):
  argv = shlex.split(command)
  script = argv[1].removeprefix("launch/")
  assert os.path.isfile(os.path.join(REPO_ROOT, "launch", script)), (where, command)
  named, overrides = _parse(argv[2:])
  unknown = set(named) - _launcher_flags(script)
  assert not unknown, f"{where}: {command}: no flag(s) {sorted(unknown)}"
  if "config" not in named:
    assert "help" in named or not overrides, (where, command)
    return
  path, variant = config_lib.split_config_spec(named["config"])
  assert os.path.isfile(os.path.join(REPO_ROOT, path)), f"{where}: no config file {path}"
  # The config and its overrides, parsed as the launchers parse them (types checked).
  spec = os.path.join(REPO_ROOT, path) + (f":{variant}" if variant else "")
  config_argv = ["prog", f"--config={spec}", *overrides]
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=flag_values,
                                  lock_config=True, sys_argv=config_argv)
  flag_values(config_argv)
  config = flag_values.config
  assert config is not None
  if named.get("sweep") and not _PLACEHOLDER.match(named["sweep"]):
    sweeps = config_lib.load_config_module(os.path.join(REPO_ROOT, path)).get_sweeps(variant)
    for name in named["sweep"].split("|"):
      assert name in sweeps, f"{where}: {command}: no sweep {name!r}"


SMALL = [(w, c) for w, c in COMMANDS if ":small" in c]


@pytest.mark.parametrize("where,command", SMALL, ids=[c for _, c in SMALL])
def test_small_documented_command_runs_cleanly(where, command, tmp_path):
  argv = shlex.split(command)
  argv = [sys.executable, os.path.join(REPO_ROOT, argv[1]),
          *[f"--workdir={tmp_path}/run" if a.startswith("--workdir=") else a
            for a in argv[2:]]]
  proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=tmp_path)
  assert proc.returncode == 0, f"{where}: {command}\n{proc.stderr[-2000:]}"
  output = proc.stdout + proc.stderr
  assert "Traceback" not in output and "error:" not in output, output[-2000:]
  # No absl/python log lines (I/W/E...): a newcomer takes them for errors.
  logs = [l for l in output.splitlines() if re.match(r"^[IWEF]\d{4} |^(WARNING|ERROR):", l)]
  assert not logs, logs


def test_cited_repository_files_exist():
  """Every repository path cited in README.md, docs/*.md and configs' docstrings exists."""
  texts = {"README.md": open(os.path.join(REPO_ROOT, "README.md")).read()}
  for name in os.listdir(os.path.join(REPO_ROOT, "docs")):
    if name.endswith(".md"):
      texts[f"docs/{name}"] = open(os.path.join(REPO_ROOT, "docs", name)).read()
  for name in os.listdir(os.path.join(REPO_ROOT, "configs")):
    if name.endswith(".py"):
      texts[f"configs/{name}"] = open(os.path.join(REPO_ROOT, "configs", name)).read()
  roots = ("hypernets/", "configs/", "launch/", "tests/", "docs/", "benchmarks/", "colabs/")
  missing = []
  for where, text in texts.items():
    for cited in re.findall(r"[\w./-]+\.(?:md|py|ipynb|json|png)\b", text):
      cited = cited.rstrip(".")
      if cited.startswith(roots) or cited.endswith(".md") and "/" not in cited:
        if "*" in cited or "<" in cited or "x_test" in cited:
          continue
        if not os.path.exists(os.path.join(REPO_ROOT, cited)):
          missing.append(f"{where}: {cited}")
  assert not missing, missing


def test_no_unfilled_placeholder_in_the_documents():
  """A line that is only an ALL_CAPS token (e.g. FUZZ_FINDINGS, left for a figure to
  be filled in) or a TODO/TBD marker reads as a finished sentence to nobody."""
  paths = ["README.md", "REPRODUCTION.md", os.path.join("tests", "README.md"),
           os.path.join("benchmarks", "README.md")]
  paths += [os.path.join("docs", n) for n in os.listdir(os.path.join(REPO_ROOT, "docs"))
            if n.endswith(".md")]
  found = []
  for path in paths:
    with open(os.path.join(REPO_ROOT, path)) as f:
      for number, line in enumerate(f, 1):
        if re.fullmatch(r"[A-Z][A-Z0-9]*_[A-Z0-9_]+", line.strip()) or re.search(
            r"\b(TODO|TBD|FIXME)\b", line):
          found.append(f"{path}:{number}: {line.strip()}")
  assert not found, found
