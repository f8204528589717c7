"""`run(config, workdir)`: the entry point launchers call, by `config.experiment`.

Most experiments train a conditioned model (`training.train_and_evaluate`); the
assumption checks of the paper train plain networks (`assumption1.py`,
`assumption2.py`); all of them on the one loop (training/loop.py).
"""

import ml_collections

from hypernets.parallel import distributed
from hypernets.errors import ConfigError

EXPERIMENTS = ("conditioned", "assumption1", "assumption2", "image_functions")


def run(config: ml_collections.ConfigDict, workdir: str):
  """Runs the experiment `config.experiment` (default 'conditioned') into workdir."""
  # Joins a multi-process run (TPU pod slice, launch/gpu.py) if config.distributed
  # or the environment asks; must precede anything that touches jax devices.
  distributed.maybe_initialize(config)
  experiment = config.get("experiment", "conditioned")
  if experiment == "conditioned":
    from hypernets import training  # pylint: disable=g-import-not-at-top
    return training.train_and_evaluate(config, workdir)
  if experiment == "image_functions":
    from hypernets.experiments import image_functions  # pylint: disable=g-import-not-at-top
    return image_functions.run(config, workdir)
  if experiment == "assumption1":
    from hypernets.experiments import assumption1  # pylint: disable=g-import-not-at-top
    return assumption1.run(config, workdir)
  if experiment == "assumption2":
    from hypernets.experiments import assumption2  # pylint: disable=g-import-not-at-top
    return assumption2.run(config, workdir)
  raise ConfigError(f"unknown config.experiment {experiment!r}; choose one of {EXPERIMENTS}")
