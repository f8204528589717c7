"""The Assumption 1 and 2 checks: end to end on the one loop, learning, resume, the
masked widths, the target, inits."""

import json
import math
import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import tensorflow_datasets as tfds

from conftest import REPO_ROOT
from conftest import load_config
from hypernets.experiments import assumption1
from hypernets.experiments import plain_nets
from hypernets.experiments import plain_training
from hypernets.experiments import registry
from hypernets.data import images
from hypernets.errors import ConfigError
from hypernets.errors import PreemptedError
from hypernets.training import preemption

A1_PER_SEED = ("f1_f2_rms", "f1_y_rms", "f2_y_rms", "f1_f2_over_f1_y", "f1_f2_mse",
               "f1_y_over_target_std", "f1_y_mse", "f2_y_mse", "train_mse",
               "init_f1_f2_rms", "init_f1_y_rms", "init_train_mse")
A2_BY_WIDTH = ("test_mse_by_width", "train_mse_by_width", "test_error_by_width")


def test_assumption1_small_writes_documented_results(tmp_path):
  config = load_config("assumption1", "small")
  returned = registry.run(config, str(tmp_path))
  results = json.loads((tmp_path / "results.json").read_text())
  assert results == json.loads(json.dumps(returned))
  for name in A1_PER_SEED:
    assert len(results["per_seed"][name]) == config.num_seeds
    assert results[name] == pytest.approx(np.mean(results["per_seed"][name]))
    assert results[f"{name}_std"] >= 0
  per_seed = results["per_seed"]
  np.testing.assert_allclose(
      per_seed["f1_f2_over_f1_y"],
      np.array(per_seed["f1_f2_rms"]) / np.array(per_seed["f1_y_rms"]), rtol=1e-6)
  np.testing.assert_allclose(np.square(per_seed["f1_y_rms"]), per_seed["f1_y_mse"],
                             rtol=1e-5)
  assert all(v > 0 for v in per_seed["f1_f2_rms"])  # different inits, different nets
  assert 0.0 <= results["frac_seeds_f1_f2_below_f1_y"] <= 1.0
  # Target: conv 1->20 k10, conv 20->40 k10, fc 40->10; student 784 -> 16 -> 10.
  assert results["param_counts"] == {
      "target": (100 * 20 + 20) + (100 * 20 * 40 + 40) + (40 * 10 + 10),
      "student": 784 * 16 + 16 + 16 * 10 + 10}
  assert results["steps"] == config.num_epochs * (256 // config.batch_size)
  assert results["seeds"] == [0, 1] and results["input_shape"] == [28, 28, 1]
  for key in ("compile_seconds", "train_seconds_this_run", "wall_seconds",
              "target_std_rms"):
    assert results[key] > 0
  assert (tmp_path / "config.json").exists()
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["16", "8"]  # each epoch of 8 steps
  lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
  assert any("eval_f1_f2_mse" in json.loads(line) for line in lines)
  assert any("train_loss" in json.loads(line) for line in lines)


def test_assumption2_small_writes_documented_results(tmp_path):
  config = load_config("assumption2", "small")
  registry.run(config, str(tmp_path))
  results = json.loads((tmp_path / "results.json").read_text())
  widths = list(config.model.widths)
  assert results["widths"] == widths
  for name in A2_BY_WIDTH:
    values = np.array(results["per_seed"][name])
    assert values.shape == (config.num_seeds, len(widths))
    np.testing.assert_allclose(results[name], values.mean(0), rtol=1e-6)
    np.testing.assert_allclose(results[f"{name}_std"], values.std(0), rtol=1e-6,
                               atol=1e-9)
  mean = np.array(results["test_mse_by_width"])
  assert results["num_width_increases_without_improvement"] == int(
      np.sum(mean[1:] >= mean[:-1]))
  assert 0 <= results["num_width_increases_not_significant"] <= len(widths) - 1
  frac = results["per_seed"]["frac_width_increases_without_improvement"]
  assert len(frac) == config.num_seeds and all(0 <= f <= 1 for f in frac)
  assert all(0 <= e <= 1 for e in results["test_error_by_width"])
  assert results["param_counts"]["by_width"] == [64 * w + w + 10 * w + 10 for w in widths]
  assert results["param_counts"]["padded"] == results["param_counts"]["by_width"][-1]
  assert results["input_dim"] == 64 and results["num_train_examples"] == 256


def test_assumption1_training_brings_both_students_to_the_target(tmp_path):
  """Training must clearly lower the students' error, and the claim's distances move
  the way training implies: both students approach y, so they approach each other."""
  config = load_config("assumption1", "small")
  config.optimizer.learning_rate = 0.1
  config.num_epochs = 10
  r = registry.run(config, str(tmp_path))
  assert r["train_mse"] < 0.25 * r["init_train_mse"]
  assert r["f1_y_rms"] < 0.5 * r["init_f1_y_rms"]
  assert r["f1_f2_rms"] < 0.5 * r["init_f1_f2_rms"]


def test_assumption2_training_lowers_every_widths_error(tmp_path):
  config = load_config("assumption2", "small")
  r = registry.run(config, str(tmp_path))
  final, init = np.array(r["train_mse_by_width"]), np.array(r["init_train_mse_by_width"])
  assert np.all(final < 0.9 * init)
  assert final[-1] < 0.5 * init[-1]
  assert np.all(np.array(r["test_mse_by_width"]) < np.array(r["init_test_mse_by_width"]))
  # Trained, a wider net fits the training set better (the direction of the claim).
  assert final[-1] < final[0]


@pytest.mark.parametrize("name", ["assumption1", "assumption2"])
def test_a_stopped_assumption_run_resumes_to_the_same_results(tmp_path, monkeypatch, name):
  config = load_config(name, "small")
  reference = registry.run(config, str(tmp_path / "reference"))
  calls = {"n": 0}

  def stop_on_second_call(self):
    calls["n"] += 1
    return calls["n"] == 2

  monkeypatch.setattr(preemption.StopRequests, "should_stop", stop_on_second_call)
  with pytest.raises(PreemptedError):
    registry.run(config, str(tmp_path / "stopped"))
  monkeypatch.undo()
  resumed = registry.run(config, str(tmp_path / "stopped"))
  assert 0 < resumed["steps_this_run"] < reference["steps_this_run"]
  assert resumed["per_seed"] == reference["per_seed"]


def _slice_width(params, width):
  """The width-`width` network's params inside a padded OneHiddenMLP's params."""
  return {"Dense_0": {"kernel": params["Dense_0"]["kernel"][:, :width],
                      "bias": params["Dense_0"]["bias"][:width]},
          "Dense_1": {"kernel": params["Dense_1"]["kernel"][:width],
                      "bias": params["Dense_1"]["bias"]}}


@pytest.mark.parametrize("width", [1, 4, 9])
def test_masked_width_net_is_exactly_the_unpadded_net(width):
  """Same function and training as the unpadded net on the same weights.

  Mathematically exact; in float32 the matmuls over 9 vs `width` hidden units may
  sum in another order (last-ulp differences), so values are compared to 1e-6
  relative. What the mask itself guarantees is checked bitwise: masked units get
  exactly zero gradient and keep their initial weights.
  """
  max_width, d = 9, 12
  padded = plain_nets.OneHiddenMLP(width=max_width, activation="elu")
  narrow = plain_nets.OneHiddenMLP(width=width, activation="elu")
  x = jax.random.normal(jax.random.key(1), (16, d))
  y = jax.nn.one_hot(jnp.arange(16) % 10, 10)
  params = plain_nets.torch_init(
      jax.random.key(0), plain_nets.param_template(padded, x))

  def loss(model, p, **kw):
    return jnp.mean(jnp.square(model.apply({"params": p}, x, **kw) - y))

  out_padded = padded.apply({"params": params}, x, active_width=width)
  out_narrow = narrow.apply({"params": _slice_width(params, width)}, x)
  chex.assert_shape(out_padded, (16, 10))
  np.testing.assert_allclose(out_padded, out_narrow, rtol=1e-6, atol=1e-7)

  # A few Adadelta steps: the first `width` units train exactly as the narrow net,
  # the masked units get zero gradients and never move.
  tx = optax.adadelta(1.0)

  @jax.jit
  def apply_update(grads, state, p):
    updates, state = tx.update(grads, state, p)
    return optax.apply_updates(p, updates), state

  grad_pad = jax.jit(jax.grad(lambda p: loss(padded, p, active_width=width)))
  grad_nar = jax.jit(jax.grad(lambda p: loss(narrow, p)))
  p_pad, p_nar = params, _slice_width(params, width)
  s_pad, s_nar = tx.init(p_pad), tx.init(p_nar)
  for _ in range(3):
    g_pad, g_nar = grad_pad(p_pad), grad_nar(p_nar)
    np.testing.assert_array_equal(g_pad["Dense_0"]["kernel"][:, width:], 0.0)
    np.testing.assert_array_equal(g_pad["Dense_1"]["kernel"][width:], 0.0)
    chex.assert_trees_all_close(_slice_width(g_pad, width), g_nar, rtol=1e-5,
                                atol=1e-7)
    p_pad, s_pad = apply_update(g_pad, s_pad, p_pad)
    p_nar, s_nar = apply_update(g_nar, s_nar, p_nar)
  chex.assert_trees_all_close(_slice_width(p_pad, width), p_nar, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(p_pad["Dense_0"]["kernel"][:, width:],
                                params["Dense_0"]["kernel"][:, width:])
  np.testing.assert_array_equal(p_pad["Dense_1"]["kernel"][width:],
                                params["Dense_1"]["kernel"][width:])


def test_init_for_width_gives_pytorch_output_layer_bound():
  max_width = 29
  model = plain_nets.OneHiddenMLP(width=max_width)
  params = plain_nets.torch_init(
      jax.random.key(3), plain_nets.param_template(model, jnp.zeros((1, 5))))
  for width in (1, 4, 29):
    narrowed = plain_nets.init_for_width(params, width=width, max_width=max_width)
    kernel = np.asarray(narrowed["Dense_1"]["kernel"])
    assert np.abs(kernel).max() <= 1 / math.sqrt(width) + 1e-6
    np.testing.assert_allclose(kernel, params["Dense_1"]["kernel"]
                               * math.sqrt(max_width / width), rtol=1e-6)
    chex.assert_trees_all_equal(narrowed["Dense_0"], params["Dense_0"])


def test_torch_init_uses_each_layers_fan_in():
  target = plain_nets.TargetCNN()
  template = plain_nets.param_template(target, jnp.zeros((1, 28, 28, 1)))
  params = plain_nets.torch_init(jax.random.key(0), template)
  chex.assert_trees_all_equal_shapes_and_dtypes(params, template)
  chex.assert_shape(params["Conv_1"]["kernel"], (10, 10, 20, 40))
  fan_ins = {"Conv_0": 10 * 10 * 1, "Conv_1": 10 * 10 * 20, "Dense_0": 40}
  for layer, fan_in in fan_ins.items():
    for leaf in params[layer].values():
      bound = 1 / math.sqrt(fan_in)
      assert np.abs(leaf).max() <= bound
      if leaf.size >= 40:  # a large sample comes close to the bound
        assert np.abs(leaf).max() > 0.8 * bound


def test_target_cnn_output_shape_and_deterministic_in_the_seed():
  config = load_config("assumption1", "small")
  target = assumption1.create_target(config)
  x = jax.random.uniform(jax.random.key(0), (5, 28, 28, 1), minval=-1, maxval=1)
  p0 = assumption1.init_target(target, seed=0, input_shape=(28, 28, 1))
  p0_again = assumption1.init_target(target, seed=0, input_shape=(28, 28, 1))
  p1 = assumption1.init_target(target, seed=1, input_shape=(28, 28, 1))
  chex.assert_trees_all_equal(p0, p0_again)
  y0 = target.apply({"params": p0}, x)
  chex.assert_shape(y0, (5, 10))
  np.testing.assert_array_equal(y0, target.apply({"params": p0_again}, x))
  assert not np.allclose(y0, target.apply({"params": p1}, x))
  # CIFAR-sized inputs: 32 -> 12 -> 2, so 2 * 2 * 40 = 160 features (authors' d).
  p_cifar = assumption1.init_target(target, seed=0, input_shape=(32, 32, 3))
  chex.assert_shape(p_cifar["Dense_0"]["kernel"], (160, 10))


@pytest.mark.parametrize("unit_norm_rows,layers",
                         [("all", ("Dense_0", "Dense_1")), ("first", ("Dense_0",))])
def test_students_have_unit_norm_rows_at_init(unit_norm_rows, layers):
  student = plain_nets.OneHiddenMLP(width=100)
  repeat_keys = jax.random.split(jax.random.key(0), 3)
  init_keys = jax.vmap(assumption1.student_keys)(repeat_keys)  # [3, 2]
  init = jax.vmap(jax.vmap(lambda k: assumption1.init_student(
      k, student=student, input_dim=784, unit_norm_rows=unit_norm_rows)))
  params = init(init_keys)  # leaves [3, 2, ...]
  for layer in ("Dense_0", "Dense_1"):
    norms = np.linalg.norm(params[layer]["kernel"], axis=-2)  # [3, 2, d_out]
    if layer in layers:
      np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    else:
      assert not np.allclose(norms, 1.0, rtol=1e-2)
  # The two students (and the repeats) start from different weights.
  kernel = params["Dense_0"]["kernel"]
  assert not np.allclose(kernel[0, 0], kernel[0, 1])
  assert not np.allclose(kernel[0, 0], kernel[1, 0])


def test_student_keys_share_data_order_only_when_asked():
  def same(a, b):
    return bool(np.all(jax.random.key_data(a) == jax.random.key_data(b)))

  key = jax.random.key(7)
  shared = assumption1.student_keys(key, same=True)
  assert same(shared[0], shared[1])
  apart = assumption1.student_keys(key)
  assert not same(apart[0], apart[1])


def test_labeled_loader_keeps_images_and_labels_aligned():
  x, labels = images.load_labeled_images("digits_8x8", split="test")
  np.testing.assert_array_equal(x, images.load_images("digits_8x8", split="test"))
  all_images, all_labels = images._digits_8x8()  # pylint: disable=protected-access
  by_image = {img.tobytes(): int(l) for img, l in zip(all_images, all_labels)}
  assert [by_image[img.tobytes()] for img in x] == labels.tolist()
  with tfds.testing.mock_data(num_examples=8):
    x, labels = images.load_labeled_images("mnist", split="train", max_examples=8)
  assert x.shape == (8, 28, 28, 1) and labels.shape == (8,)
  assert labels.min() >= 0 and labels.max() < 10


@pytest.mark.parametrize("name,field,value,message", [
    ("assumption1", "num_seeds", 0, "config.num_seeds must be a positive integer"),
    ("assumption1", "model.unit_norm_rows", "rows", "config.model.unit_norm_rows is"),
    ("assumption1", "optimizer.momentum", -0.5, "config.optimizer.momentum must be"),
    ("assumption1", "data.source", "digits_8x8", "config.model.target_kernel_size=10"),
    ("assumption1", "batch_size", 1000, "config.batch_size=1000 is larger"),
    ("assumption2", "model.widths", (3, 2), "config.model.widths must be"),
    ("assumption2", "data.source", "svhn", "config.data.source is 'svhn'"),
    ("assumption2", "optimizer.learning_rate", 0.0, "config.optimizer.learning_rate"),
])
def test_bad_field_is_one_line_naming_it(tmp_path, name, field, value, message):
  config = load_config(name, "small")
  node, *path = field.split(".")[::-1]
  parent = config
  for part in reversed(path):
    parent = parent[part]
  parent[node] = value
  with pytest.raises(ConfigError) as info:
    registry.run(config, str(tmp_path / "run"))
  assert message in str(info.value) and "\n" not in str(info.value)
  assert not os.path.exists(tmp_path / "run")


def test_launcher_prints_one_line_for_a_bad_assumption_field(tmp_path):
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "launch", "main.py"),
       "--config=configs/assumption2.py:small", f"--workdir={tmp_path}/run",
       "--config.model.activation=softmax"],
      capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
  assert proc.returncode == 1
  assert "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1].startswith(
      "error: config.model.activation is 'softmax'")
