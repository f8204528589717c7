"""One program over 8 (simulated CPU) devices: the 1-device loss curve, and a compiled
step that splits the work.

Loss curves alone cannot tell a sharded step from one where every device computes the
whole batch (sharding never changes the numbers), so the 8-device runs also have XLA
dump the compiled train step, and the tests read it: per-device shapes, collectives and
the parameters' local shapes. Each run is a subprocess: XLA_FLAGS must be set before jax
is imported.
"""

import glob
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT
from conftest import TEST_XLA_FLAGS

# Conditioning inputs per step (6 per device on 8 devices) and points per input: sizes
# no other axis of the model has, and 6 * POINTS != BATCH, so a whole batch is visible.
BATCH, POINTS = 48, 5

# One process per device count trains each run in turn; after each run the script
# moves the programs XLA dumped so far into that run's folder.
SCRIPT = """
import base64, glob, json, os, shutil, sys
sys.path.insert(0, {root!r})
sys.path.insert(0, {tests!r})
import jax
from jax._src import compiler
# The persistent cache serves every program but the train step: XLA dumps only what it
# compiles, and the step must be dumped (the rest compiled cold took ~35 s of ~75).
_cache_read = compiler._cache_read
compiler._cache_read = lambda name, *a, **k: (None, None) if 'step' in name else _cache_read(name, *a, **k)
from conftest import load_config
from hypernets import training
summaries = {{}}
for name, run in {runs!r}.items():
  config = load_config('synthetic', 'small')
  config.num_train_steps = 20
  config.log_every_steps = 1
  config.batch.conditions = {batch}
  config.batch.points = {points}
  config.model.kind = run['kind']
  config.num_seeds = run['seeds']
  config.mesh = dict(shape=run['shape'], axis_names=('data', 'model'),
                     shard_seeds=run['shard_seeds'], shard_heads=run['shard_heads'])
  workdir = os.path.join({root_dir!r}, name)
  state = training.train_and_evaluate(config, workdir)
  losses = [row['train_mse'] for row in map(json.loads, open(workdir + '/metrics.jsonl'))
            if 'train_mse' in row]
  results = json.load(open(workdir + '/results.json'))
  # Layout of the trained state as saved (the returned state drops padding seeds).
  saved = json.load(open(sorted(glob.glob(workdir + '/checkpoints/*/default/_sharding'))[-1]))
  specs = [str(json.loads(v)['partition_spec']) for k, v in saved.items()
           if base64.b64decode(k).decode().startswith('params.')]
  assert all(leaf.shape[0] == config.num_seeds for leaf in jax.tree.leaves(state.params))
  summaries[name] = dict(devices=jax.device_count(), losses=losses, specs=specs,
                         per_seed=results['per_seed']['test_mse'])
  run_dump = os.path.join({dump!r}, name)
  os.makedirs(run_dump)
  for path in glob.glob(os.path.join({dump!r}, '*.txt')):
    shutil.move(path, run_dump)
print(json.dumps(summaries))
"""

# name: (devices, run). The 1-device runs are the references: their steps see the whole
# batch and sum nothing across devices.
RUNS = {
    "one_hypernet": (1, dict(kind="hypernet")),
    "one_embedding": (1, dict(kind="embedding")),
    "eight_hypernet": (8, dict(kind="hypernet")),
    "eight_embedding": (8, dict(kind="embedding")),
    "seeds_unsharded": (8, dict(kind="hypernet", seeds=6)),
    # 4 x 2 mesh: 6 seeds padded to 8 over 'data', generator heads split over 'model'.
    "seeds_sharded": (8, dict(kind="hypernet", seeds=6, shard_seeds=True, shard_heads=True,
                              shape=(4, 2))),
}
_DEFAULTS = dict(seeds=1, shard_seeds=False, shard_heads=False, shape=(-1, 1))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """{run name: (its summary, its compiled train step's HLO text)} for every RUNS entry,
  one subprocess per device count."""
  found = {}
  for devices in sorted({devices for devices, _ in RUNS.values()}):
    runs_here = {name: {**_DEFAULTS, **run} for name, (d, run) in RUNS.items()
                 if d == devices}
    root = tmp_path_factory.mktemp(f"devices{devices}")
    dump = root / "hlo"
    env = dict(os.environ)
    # XLA writes every compiled program whose name has 'step' in it (the loop's jitted
    # step function), optimized and partitioned: the HLO each device runs.
    env["XLA_FLAGS"] = (f"{TEST_XLA_FLAGS} --xla_force_host_platform_device_count={devices} "
                        f"--xla_dump_to={dump} --xla_dump_hlo_as_text "
                        "--xla_dump_hlo_module_re=.*step.*")
    env["JAX_PLATFORMS"] = "cpu"
    code = SCRIPT.format(root=REPO_ROOT, tests=os.path.join(REPO_ROOT, "tests"),
                         runs=runs_here, batch=BATCH, points=POINTS, root_dir=str(root),
                         dump=str(dump))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, summary in summaries.items():
      assert summary["devices"] == devices, name
      found[name] = (summary, _train_step_hlo(dump / name))
  return found


def _train_step_hlo(dump) -> str:
  """The optimized HLO of the compiled program that takes the TrainState's optimizer
  state (the train step; evaluation and init do not)."""
  texts = [open(path).read() for path in
           sorted(glob.glob(os.path.join(dump, "*after_optimizations.txt")))]
  steps = [text for text in texts if 'op_name="state.opt_state' in text]
  assert len(steps) == 1, f"{len(steps)} compiled train steps among {len(texts)} dumped programs"
  return steps[0]


_SHAPE = r"[a-z]\w*\[([\d,]*)\]"


def _dims(shape: str) -> tuple[int, ...]:
  return tuple(int(d) for d in shape.split(",") if d)


def _entry_parameters(hlo: str) -> dict[str, tuple[int, ...]]:
  """{argument path, e.g. "state.params['f']['trunk']...": this device's shape}."""
  found = re.findall(_SHAPE + r"\{[\d,]*\} parameter\(\d+\).*?op_name=\"([^\"]*)\"", hlo)
  return {name.replace("\\'", "'"): _dims(shape) for shape, name in found}


def _dot_output_shapes(hlo: str) -> list[tuple[int, ...]]:
  """This device's output shape of every matmul in the program."""
  return [_dims(s) for s in re.findall(r"= " + _SHAPE + r"\{[\d,]*\} dot\(", hlo)]


def _all_reduced_numbers(hlo: str) -> int:
  """How many numbers the program's all-reduces sum across devices (per call)."""
  total = 0
  for operands in re.findall(r"= (.*?) all-reduce(?:-start)?\(", hlo):
    total += sum(math.prod(_dims(s)) for s in re.findall(_SHAPE, operands))
  return total


@pytest.mark.parametrize("kind", ["hypernet", "embedding"])
def test_eight_devices_give_the_one_device_loss_curve(runs, kind):
  one, one_hlo = runs[f"one_{kind}"]
  eight, eight_hlo = runs[f"eight_{kind}"]
  assert one["devices"] == 1 and eight["devices"] == 8
  assert len(one["losses"]) == 20
  np.testing.assert_allclose(eight["losses"], one["losses"], rtol=1e-5)

  # Each device applies the model to its share of the batch, BATCH / 8 conditioning
  # inputs: no matmul of the 8-device step sees the whole batch, as the 1-device one does.
  assert any(BATCH in shape for shape in _dot_output_shapes(one_hlo))
  eight_dots = _dot_output_shapes(eight_hlo)
  assert not any(BATCH in shape for shape in eight_dots), eight_dots
  assert any(shape[0] == BATCH // 8 for shape in eight_dots), eight_dots
  # ... and the gradients of the shares are summed across devices: the all-reduces carry
  # at least one number per parameter (the 1-device step has none).
  num_params = sum(math.prod(shape) for name, shape in _entry_parameters(eight_hlo).items()
                   if name.startswith("state.params"))
  assert num_params > 0
  assert _all_reduced_numbers(one_hlo) == 0
  assert _all_reduced_numbers(eight_hlo) >= num_params


def test_seed_sharded_equals_unsharded(runs):
  unsharded, unsharded_hlo = runs["seeds_unsharded"]
  sharded, sharded_hlo = runs["seeds_sharded"]
  assert len(sharded["per_seed"]) == len(unsharded["per_seed"]) == 6
  assert sharded["specs"] and unsharded["specs"]
  assert all("data" in spec for spec in sharded["specs"])
  assert any("model" in spec for spec in sharded["specs"])
  assert not any("data" in spec for spec in unsharded["specs"])
  np.testing.assert_allclose(sharded["per_seed"], unsharded["per_seed"], rtol=1e-5)
  np.testing.assert_allclose(sharded["losses"], unsharded["losses"], rtol=1e-5)

  # The compiled step holds, per device, 2 of the 8 seeds of every parameter, and half
  # of each generator head kernel [S, width, size] whose size is even (its output axis
  # split over 'model'); the unsharded step holds all 6 seeds, whole.
  full = {k: v for k, v in _entry_parameters(unsharded_hlo).items()
          if k.startswith("state.params")}
  local = {k: v for k, v in _entry_parameters(sharded_hlo).items()
           if k.startswith("state.params")}
  assert full and full.keys() == local.keys()
  heads = [k for k, shape in full.items()
           if "['head_" in k and k.endswith("['kernel']") and shape[-1] % 2 == 0]
  assert heads
  for name, shape in full.items():
    assert shape[0] == 6 and local[name][0] == 2, (name, shape, local[name])
    split = shape[:-1] + (shape[-1] // 2,)
    assert local[name][1:] == (split if name in heads else shape)[1:], (name, local[name])
