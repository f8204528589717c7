"""kind_comparison: a finished run is read back, not trained (or compiled) again."""

import copy
import json

import pytest

from conftest import load_config
from hypernets import training
from hypernets.errors import WorkdirError
from hypernets.experiments import kind_comparison
from hypernets.training import workdir as workdir_lib


def _fake_finished_run(workdir, config, *, kind, step, seconds=12.5, steps_this_run=40):
  """A workdir as train_and_evaluate leaves it, without training."""
  kind_config = copy.deepcopy(config)
  kind_config.model.kind = kind
  path = workdir / kind
  path.mkdir(parents=True)
  workdir_lib.write_json_atomic(str(path / "config.json"),
                                workdir_lib.config_to_json_dict(kind_config))
  workdir_lib.write_json_atomic(str(path / "results.json"), {
      "step": step, "num_seeds": 1, "test_mse": 0.5, "test_mse_std": 0.0,
      "param_counts": {"N_g": 193, "total": 3729}, "train_seconds_this_run": seconds,
      "steps_this_run": steps_this_run})


def _no_training(*args, **kwargs):
  raise AssertionError("a finished run was trained again")


def test_finished_runs_are_read_back_with_their_train_time(tmp_path, monkeypatch):
  config = load_config("synthetic", "small")
  _fake_finished_run(tmp_path, config, kind="hypernet", step=config.num_train_steps)
  monkeypatch.setattr(training, "train_and_evaluate", _no_training)
  lines = []
  rows = kind_comparison.compare_kinds(config, str(tmp_path), ["hypernet"],
                                       report=lines.append)
  assert rows[0]["train_seconds"] == 12.5 and rows[0]["metrics"]["test_mse"] == (0.5, 0.0)
  assert lines == [f"[1/1] hypernet: finished run found in {tmp_path}/hypernet, "
                   "not run again"]
  assert kind_comparison.format_table(rows).splitlines()[2].split()[-1] == "12.5"


def test_a_rerun_that_recorded_no_training_shows_no_time(tmp_path, monkeypatch):
  config = load_config("synthetic", "small")
  _fake_finished_run(tmp_path, config, kind="hypernet", step=config.num_train_steps,
                     seconds=0.0, steps_this_run=0)
  monkeypatch.setattr(training, "train_and_evaluate", _no_training)
  rows = kind_comparison.compare_kinds(config, str(tmp_path), ["hypernet"])
  assert rows[0]["train_seconds"] is None
  assert kind_comparison.format_table(rows).splitlines()[2].split()[-1] == "-"


def test_unfinished_or_other_runs_are_not_read_back(tmp_path):
  config = load_config("synthetic", "small")
  _fake_finished_run(tmp_path, config, kind="hypernet", step=config.num_train_steps - 1)
  hypernet = copy.deepcopy(config)
  hypernet.model.kind = "hypernet"
  assert workdir_lib.finished_results(str(tmp_path / "hypernet"), hypernet) is None
  other = copy.deepcopy(config)
  other.model.kind = "hypernet"
  other.model.f_width = 99
  with pytest.raises(WorkdirError, match="config.model.f_width"):
    workdir_lib.finished_results(str(tmp_path / "hypernet"), other)
  other.overwrite = True  # the old run is to be moved aside and trained again
  assert workdir_lib.finished_results(str(tmp_path / "hypernet"), other) is None
  assert json.loads((tmp_path / "hypernet" / "config.json").read_text())["model"]["f_width"] == 16
