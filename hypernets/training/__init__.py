"""The one training loop and what it is made of.

loop.py is the one loop: it trains any `TrainSpec` (an init, a pure step and an
evaluation for one seed). `train_and_evaluate(config, workdir)` (conditioned.py)
trains a conditioned model on it; the assumption experiments build their own specs.
state.py holds the train state and seed helpers, steps.py the conditioned models'
loss / step / evaluation, checkpoints.py, metric_writers.py and workdir.py what a
run leaves in its workdir, optimizers.py and losses.py what the configs name.
"""

from hypernets.training.conditioned import train_and_evaluate
from hypernets.training.state import TrainState
from hypernets.training.state import seed_keys
from hypernets.training.state import summarize_seeds
from hypernets.training.steps import check_batch_fits
from hypernets.training.steps import create_model_and_optimizer
from hypernets.training.steps import create_train_state
from hypernets.training.steps import make_eval_fn
from hypernets.training.steps import make_loss_fn
from hypernets.training.steps import make_train_step
