"""Config fields every training config shares: devices, processes, workdir safety.

`add_run_fields(config)` adds them with their defaults; each stays overridable from
the command line (`--config.mesh.shard_seeds=True`, `--config.distributed.enabled=True`).
"""

import ml_collections


def add_run_fields(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Adds compute_dtype, steps_per_call, mesh.*, distributed.*, overwrite and debug_nans; returns config."""
  # 'bfloat16': mixed precision for GPUs/TPUs (hypernets/precision.py): float32
  # parameters, optimizer and losses; inputs, weights and theta_I in bf16 for the matmuls.
  config.compute_dtype = "float32"
  config.steps_per_call = 1  # train steps per dispatched call (lax.scan); >1 helps tiny models
  # Devices: one program over a mesh (README "Scaling out").
  config.mesh = ml_collections.ConfigDict()
  config.mesh.shape = (-1, 1)  # -1: all remaining devices
  config.mesh.axis_names = ("data", "model")
  config.mesh.shard_seeds = False  # split the seed axis (not each batch) over 'data'
  config.mesh.shard_heads = False  # split large generator heads over 'model'
  # Per-host data: each process loads only its share of the training rows, split over
  # 'data'; each device draws its share of every batch from its own rows.
  config.mesh.shard_train_data = False
  # Processes: jax.distributed.initialize (hypernets/distributed.py). 'auto' joins
  # when the environment says this is one process of several (TPU pod, launcher).
  config.distributed = ml_collections.ConfigDict()
  config.distributed.enabled = "auto"  # 'auto' | True | False
  config.distributed.coordinator_address = ""  # 'host:port' of process 0; '' = autodetect
  config.distributed.num_processes = -1  # -1: from the environment
  config.distributed.process_id = -1  # -1: from the environment
  config.overwrite = False  # a workdir of another config: move it aside (never deleted)
  config.debug_nans = False  # jax_debug_nans: find the op that made the first NaN (slow)
  return config
