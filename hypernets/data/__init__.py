"""Input pipelines. Every dataset is a `Dataset` of on-device arrays.

Layout of a split: cond [N, *cond_shape] (one conditioning input per row),
x [N, P, *x_shape] (P points per conditioning input), y [N, P, *y_shape].
A task is a function `config.data -> Dataset` (tasks.py); the built-in ones
register below, exactly as a user's task would.
"""

from hypernets.data.dataset import Dataset
from hypernets.data.dataset import Split
from hypernets.data.dataset import sample_batch
from hypernets.data.tasks import check_dataset
from hypernets.data.tasks import create_dataset
from hypernets.data.tasks import register_task
from hypernets.data.tasks import registered_tasks
# The built-in tasks register themselves when imported.
from hypernets.data import rotation  # pylint: disable=g-bad-import-order,unused-import
from hypernets.data import structured  # pylint: disable=g-bad-import-order,unused-import
from hypernets.data import synthetic  # pylint: disable=g-bad-import-order,unused-import
