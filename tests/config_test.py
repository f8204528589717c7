"""hypernets/config.py and config_help.py: config files by path from any directory,
the launchers' one-line errors, quiet logging, --help and --show."""

import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT
from hypernets import config as config_lib
from hypernets import launcher
from hypernets import config_help
from hypernets.errors import ConfigError

SHIPPED = sorted(n for n in os.listdir(os.path.join(REPO_ROOT, "configs")) if n.endswith(".py"))


def test_config_files_are_found_from_any_directory(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  expected = os.path.join(REPO_ROOT, "configs", "synthetic.py")
  for spelling in ("configs/synthetic.py", "synthetic.py", "synthetic", expected):
    assert config_lib.find_config_file(spelling) == expected
  config = config_lib.load_config("configs/synthetic.py:small")
  assert config.num_train_steps == 40  # the variant was applied
  assert config_lib.load_config("configs/synthetic.py", "small").num_train_steps == 40
  assert config_lib.load_config("configs/synthetic.py").num_train_steps == 6000


def test_a_missing_config_file_names_where_it_looked(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  with pytest.raises(ConfigError) as error:
    config_lib.find_config_file("configs/nope.py")
  message = str(error.value)
  assert "\n" not in message
  assert str(tmp_path / "configs" / "nope.py") in message
  assert os.path.join(REPO_ROOT, "configs", "nope.py") in message


def test_a_config_loading_another_by_path_gets_its_defaults():
  cifar = config_lib.load_config(os.path.join(REPO_ROOT, "configs", "rotation_cifar10.py"))
  assert cifar.data.source == "cifar10" and cifar.model.embedding_dim == 10 * 3072 + 10


def test_typo_in_an_override_is_one_clean_line_with_the_hint():
  # What ml_collections raises for --config.model.knd=embedding.
  error = AttributeError(KeyError("'knd'\nDid you mean \"kind\" instead of \"knd\"?"))
  line = launcher.error_line(error, ["main.py", "--config=c.py", "--config.model.knd=embedding"])
  assert line == ("error: --config.model.knd names no field of the config "
                  "(did you mean --config.model.kind?); list the fields with --show")
  plain = launcher.error_line(AttributeError("'nope'"), ["m", "--config.model.nope=1"])
  assert plain.startswith("error: --config.model.nope names no field of the config")


def test_logging_is_quiet_unless_asked():
  assert launcher.quiet_logging_args(["m", "--workdir=w"]) == ["m", "--workdir=w",
                                                                 "--verbosity=-1"]
  assert launcher.quiet_logging_args(["m"], verbose=True) == ["m", "--verbosity=0"]
  for explicit in ("--verbosity=1", "-v=1", "--verbosity"):
    assert launcher.quiet_logging_args(["m", explicit]) == ["m", explicit]


def test_every_shipped_config_has_a_purpose_and_variants():
  summaries = config_help.shipped_configs()
  assert [os.path.basename(s.path) for s in summaries] == SHIPPED
  for summary in summaries:
    assert summary.purpose and "\n" not in summary.purpose, summary
    assert "quick" in summary.variants, summary  # every config has its CPU-sized variant


def test_show_gives_values_defaults_and_comments():
  spec = os.path.join(REPO_ROOT, "configs", "synthetic.py") + ":small"
  config = config_lib.load_config(spec)
  config.model.kind = "embedding"
  lines = config_help.describe_config(spec, config).splitlines()
  by_field = {l.split(" = ")[0].strip(): l for l in lines if " = " in l}
  assert set(by_field) >= {"model.f_width", "data.m1", "mesh.shape", "optimizer.name"}
  assert "= 16" in by_field["model.f_width"] and "default: 64" in by_field["model.f_width"]
  assert "default: 'hypernet'" in by_field["model.kind"]
  assert by_field["data.m1"].endswith("# dim of x")  # the comment beside the field
  assert "-1: all remaining devices" in by_field["mesh.shape"]  # from add_run_fields


def _launch(script, *args, cwd):
  return subprocess.run([sys.executable, os.path.join(REPO_ROOT, "launch", script), *args],
                        capture_output=True, text=True, timeout=120, cwd=cwd)


def test_help_lists_the_configs_and_exits_0(tmp_path):
  proc = _launch("main.py", "--help", cwd=tmp_path)
  assert proc.returncode == 0, proc.stderr[-1000:]
  for name in SHIPPED:
    assert f"configs/{name}" in proc.stdout
  for flag in ("--config", "--workdir", "--show", "--verbose", "variants:"):
    assert flag in proc.stdout
  # A docstring's wrapped variants line reads as prose, not as 'mnist_5k,; CPU-sized'.
  assert ",;" not in proc.stdout and "quick (mnist_5k, CPU-sized)" in proc.stdout


def test_show_from_another_directory_runs_nothing(tmp_path):
  proc = _launch("main.py", "--config=configs/synthetic.py:small", "--show",
                 "--config.model.f_width=7", cwd=tmp_path)
  assert proc.returncode == 0, proc.stderr[-1000:]
  assert "model.f_width = 7" in proc.stdout and "default: 64" in proc.stdout
  assert os.listdir(tmp_path) == []


def test_sweep_from_another_directory_is_one_line(tmp_path):
  proc = _launch("sweep.py", "--config=configs/synthetic.py:small", "--sweep=nope",
                 f"--workdir={tmp_path}/w", cwd=tmp_path)
  assert proc.returncode == 1
  assert "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines() == [
      "error: unknown --sweep='nope'; this config defines ['depth', 'depth_lr', 'embedding']"]
