"""The one loop on a toy TrainSpec: steps per call, on-device NaN detection, seeds,
preemption (in-process), resume, and a rerun of a finished run."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from hypernets.errors import PreemptedError
from hypernets.errors import TrainingDivergedError
from hypernets.parallel import sharding
from hypernets.training import loop
from hypernets.training import preemption
from hypernets.training.state import TrainState


def _toy_spec(*, nan_at_step: int | None = None, lr: float = 0.1) -> loop.TrainSpec:
  """Linear regression y = x . w* on fresh batches keyed by (seed, step)."""
  w_true = jnp.arange(1.0, 5.0)
  tx = optax.sgd(lr)

  def init(key):
    params = {"w": jax.random.normal(key, (4,))}
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=tx.init(params))

  def step(state, train_data, data_key):
    key = jax.random.fold_in(data_key, state.step)
    x = jax.random.normal(key, (16, 4))
    y = x @ train_data

    def loss_fn(params):
      loss = jnp.mean(jnp.square(x @ params["w"] - y))
      if nan_at_step is not None:  # the loss of step `nan_at_step` (1-based) is NaN
        loss = jnp.where(state.step + 1 == nan_at_step, jnp.nan, loss)
      return loss

    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    return (TrainState(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                       opt_state=opt_state), {"loss": loss})

  def evaluate(state, eval_data):
    return {"w_error": jnp.sum(jnp.square(state.params["w"] - eval_data))}

  return loop.TrainSpec(init=init, step=step, evaluate=evaluate, train_data=w_true,
                        eval_data=w_true, description="toy")


def _settings(**overrides) -> loop.LoopSettings:
  fields = dict(num_steps=40, log_every=10, eval_every=20, checkpoint_every=10,
                num_seeds=3, steps_per_call=1)
  fields.update(overrides)
  return loop.LoopSettings(**fields)


def _run(spec, settings, workdir):
  config = ml_collections.ConfigDict({"seed": settings.seed, "name": "toy"})
  mesh = sharding.create_mesh(sharding.mesh_config(config))
  return loop.run(spec, settings, mesh=mesh, config=config, workdir=str(workdir))


def _logged(workdir):
  return [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))
          if "train_loss" in line]


def test_the_loop_trains_every_seed_and_writes_results(tmp_path):
  state, results = _run(_toy_spec(), _settings(), tmp_path)
  assert state.step.tolist() == [40, 40, 40]
  assert results["w_error"] < 1e-3 and len(results["per_seed"]["w_error"]) == 3
  # The seeds start apart (different init keys) and all converge.
  assert json.loads((tmp_path / "results.json").read_text())["step"] == 40
  assert [row["step"] for row in _logged(tmp_path)] == [10, 20, 30, 40]


@pytest.mark.parametrize("steps_per_call", [0, 7])
def test_steps_per_call_auto_and_fixed_are_bit_identical_to_one(tmp_path, steps_per_call):
  one, _ = _run(_toy_spec(), _settings(steps_per_call=1), tmp_path / "one")
  other, _ = _run(_toy_spec(), _settings(steps_per_call=steps_per_call), tmp_path / "other")
  for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(other)):
    np.testing.assert_array_equal(a, b)
  # Metric sums on device: the logged means are the same numbers.
  assert _logged(tmp_path / "one") == _logged(tmp_path / "other")


@pytest.mark.parametrize("nan_at_step", [1, 7, 23])
def test_a_nan_at_step_k_is_reported_as_step_k(tmp_path, nan_at_step):
  # One call runs all 40 steps (no event before the end): the step is still exact.
  settings = _settings(log_every=40, eval_every=40, checkpoint_every=40, steps_per_call=0)
  with pytest.raises(TrainingDivergedError,
                     match=rf"training loss became nan at step {nan_at_step}\b"):
    _run(_toy_spec(nan_at_step=nan_at_step), settings, tmp_path)
  assert not (tmp_path / "results.json").exists()
  assert not os.listdir(tmp_path / "checkpoints")  # never checkpoint a diverged state


def test_preemption_checkpoints_the_step_reached_and_resumes_bit_identically(
    tmp_path, monkeypatch):
  reference, ref_results = _run(_toy_spec(), _settings(), tmp_path / "reference")
  calls = {"n": 0}

  def stop_on_third_call(self):
    calls["n"] += 1
    return calls["n"] == 3

  monkeypatch.setattr(preemption.StopRequests, "should_stop", stop_on_third_call)
  with pytest.raises(PreemptedError, match=r"stopped by a signal at step 3 of 40"):
    _run(_toy_spec(), _settings(), tmp_path / "stopped")
  steps = sorted(int(n) for n in os.listdir(tmp_path / "stopped" / "checkpoints")
                 if n.isdigit())
  assert steps == [3]  # exactly the step reached: no step of work lost
  monkeypatch.undo()
  resumed, results = _run(_toy_spec(), _settings(), tmp_path / "stopped")
  for a, b in zip(jax.tree.leaves(reference), jax.tree.leaves(resumed)):
    np.testing.assert_array_equal(a, b)
  assert results["per_seed"] == ref_results["per_seed"]
  assert results["steps_this_run"] == 37


def test_rerunning_a_finished_run_returns_its_results_without_training(tmp_path):
  _, first = _run(_toy_spec(), _settings(), tmp_path)
  state, again = _run(_toy_spec(), _settings(), tmp_path)
  assert again == json.loads(json.dumps(first))
  assert again["train_seconds_this_run"] == first["train_seconds_this_run"]
  assert state.step.tolist() == [40, 40, 40]


def test_the_step_is_traced_once_per_program_not_at_every_log(tmp_path):
  # 40 steps logged every step: the accumulator's shapes come from one trace, and each
  # distinct steps-per-call length compiles once (here all calls are one step long).
  spec = _toy_spec()
  traces = {"n": 0}
  step = spec.step

  def counting_step(*args):
    traces["n"] += 1
    return step(*args)

  spec = dataclasses.replace(spec, step=counting_step)
  _run(spec, _settings(log_every=1), tmp_path)
  assert traces["n"] <= 2, traces  # eval_shape for the accumulator + the one compile
