"""Sweep expansion, overrides, skip-finished and gathering."""

import json

import pytest

from conftest import load_config
from conftest import load_config_module
from hypernets.experiments import sweeps
from hypernets import training
from hypernets.errors import ConfigError


def test_product_and_zipit_expand_in_order():
  points = sweeps.product(sweeps.sweep("a", [1, 2]),
                          sweeps.zipit(sweeps.sweep("b", [3, 4]), sweeps.sweep("c", [5, 6])))
  assert points == [{"a": 1, "b": 3, "c": 5}, {"a": 1, "b": 4, "c": 6},
                    {"a": 2, "b": 3, "c": 5}, {"a": 2, "b": 4, "c": 6}]
  with pytest.raises(ValueError, match="equal length"):
    sweeps.zipit(sweeps.sweep("b", [1]), sweeps.sweep("c", [1, 2]))


def test_synthetic_sweeps_cover_the_paper_ranges():
  module = load_config_module("synthetic")
  depth = module.get_sweeps()["depth"]
  assert len(depth) == 16
  assert {p["model.f_depth"] for p in depth} == set(range(1, 9))
  assert all(p["model.f_depth"] == p["model.e_depth"] for p in depth)
  config = load_config("synthetic")
  for point in depth + module.get_sweeps()["embedding"]:
    sweeps.apply_point(config, point)  # every field exists


def test_apply_point_rejects_unknown_fields_and_types():
  config = load_config("synthetic", "small")
  assert sweeps.apply_point(config, {"model.f_depth": 4}).model.f_depth == 4
  assert config.model.f_depth == 2  # the original is untouched
  with pytest.raises(ConfigError, match="'model.no_such_field' does not exist"):
    sweeps.apply_point(config, {"model.no_such_field": 1})
  with pytest.raises(ConfigError, match="'model.f_depth'"):
    sweeps.apply_point(config, {"model.f_depth": "deep"})


def test_run_sweep_skips_finished_points_and_gathers(tmp_path):
  config = load_config("synthetic", "small")
  config.num_train_steps = 10
  points = sweeps.sweep("model.f_depth", [1, 2])
  calls = []

  def counting_train(cfg, workdir):
    calls.append(cfg.model.f_depth)
    return training.train_and_evaluate(cfg, workdir)

  rows = sweeps.run_sweep(config, points, str(tmp_path), train_fn=counting_train)
  assert calls == [1, 2]
  assert [row["model.f_depth"] for row in rows] == [1, 2]
  assert all("test_mse" in row and "N_f" in row for row in rows)
  assert rows[0]["N_f"] < rows[1]["N_f"]
  rows_again = sweeps.run_sweep(config, points + sweeps.sweep("model.f_depth", [3]),
                                str(tmp_path), train_fn=counting_train)
  assert calls == [1, 2, 3]  # finished points are not rerun
  assert len(rows_again) == 3
  with open(tmp_path / "results.json") as f:
    assert len(json.load(f)) == 3
  header = (tmp_path / "results.csv").read_text().splitlines()[0].split(",")
  assert header[0] == "model.f_depth" and "test_mse" in header


def test_killed_sweep_finishes_only_missing_points(tmp_path):
  config = load_config("synthetic", "small")
  config.num_train_steps = 10
  points = sweeps.sweep("model.f_depth", [1, 2, 3])
  calls = []

  def dies_at_second_point(cfg, workdir):
    calls.append(cfg.model.f_depth)
    if cfg.model.f_depth == 2 and calls.count(2) == 1:
      raise KeyboardInterrupt  # the sweep process is killed here
    return training.train_and_evaluate(cfg, workdir)

  with pytest.raises(KeyboardInterrupt):
    sweeps.run_sweep(config, points, str(tmp_path), train_fn=dies_at_second_point)
  rows = sweeps.run_sweep(config, points, str(tmp_path), train_fn=dies_at_second_point)
  assert calls == [1, 2, 2, 3]  # point 1 is not rerun
  assert [row["model.f_depth"] for row in rows] == [1, 2, 3]  # each counted once
