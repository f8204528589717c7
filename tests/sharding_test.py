"""One program over 8 (simulated CPU) devices equals the 1-device run.

Each run is a subprocess: XLA_FLAGS must be set before jax is imported.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT

SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
sys.path.insert(0, {tests!r})
import jax
from conftest import load_config
from hypernets import training
config = load_config('synthetic', 'small')
config.num_train_steps = 20
config.log_every_steps = 1
config.model.kind = {kind!r}
config.num_seeds = {seeds}
config.mesh = dict(shape={shape}, axis_names=('data', 'model'), shard_seeds={shard_seeds},
                   shard_heads={shard_heads})
state = training.train_and_evaluate(config, {workdir!r})
losses = [row['train_mse'] for row in map(json.loads, open({workdir!r} + '/metrics.jsonl'))
          if 'train_mse' in row]
results = json.load(open({workdir!r} + '/results.json'))
# Layout of the trained state as saved (the returned state drops padding seeds).
import base64, glob
saved = json.load(open(sorted(glob.glob({workdir!r} + '/checkpoints/*/default/_sharding'))[-1]))
specs = [str(json.loads(v)['partition_spec']) for k, v in saved.items()
         if base64.b64decode(k).decode().startswith('params.')]
assert all(leaf.shape[0] == config.num_seeds for leaf in jax.tree.leaves(state.params))
print(json.dumps(dict(devices=jax.device_count(), losses=losses, specs=specs,
                      per_seed=results['per_seed']['test_mse'])))
"""


def _run(tmp_path, name, *, devices, kind="hypernet", seeds=1, shard_seeds=False,
         shard_heads=False, shape=(-1, 1)):
  env = dict(os.environ)
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  env["JAX_PLATFORMS"] = "cpu"
  code = SCRIPT.format(root=REPO_ROOT, tests=os.path.join(REPO_ROOT, "tests"), kind=kind,
                       seeds=seeds, shard_seeds=shard_seeds, shard_heads=shard_heads,
                       shape=shape,
                       workdir=str(tmp_path / name))
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        env=env, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", ["hypernet", "embedding"])
def test_eight_devices_give_the_one_device_loss_curve(tmp_path, kind):
  one = _run(tmp_path, "one", devices=1, kind=kind)
  eight = _run(tmp_path, "eight", devices=8, kind=kind)
  assert one["devices"] == 1 and eight["devices"] == 8
  assert len(one["losses"]) == 20
  np.testing.assert_allclose(eight["losses"], one["losses"], rtol=1e-5)


def test_seed_sharded_equals_unsharded(tmp_path):
  unsharded = _run(tmp_path, "unsharded", devices=8, seeds=6)
  # 4 x 2 mesh: 6 seeds padded to 8 over 'data', generator heads split over 'model'.
  sharded = _run(tmp_path, "sharded", devices=8, seeds=6, shard_seeds=True,
                 shard_heads=True, shape=(4, 2))
  assert len(sharded["per_seed"]) == len(unsharded["per_seed"]) == 6
  assert sharded["specs"] and unsharded["specs"]
  assert all("data" in spec for spec in sharded["specs"])
  assert any("model" in spec for spec in sharded["specs"])
  assert not any("data" in spec for spec in unsharded["specs"])
  np.testing.assert_allclose(sharded["per_seed"], unsharded["per_seed"], rtol=1e-5)
  np.testing.assert_allclose(sharded["losses"], unsharded["losses"], rtol=1e-5)
