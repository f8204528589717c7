"""Input pipelines. Every dataset is a `Dataset` of on-device arrays.

Layout of a split: cond [N, *cond_shape] (one conditioning input per row),
x [N, P, *x_shape] (P points per conditioning input), y [N, P, *y_shape].
"""

from hypernets.data.dataset import Dataset
from hypernets.data.dataset import Split
from hypernets.data.dataset import create_dataset
from hypernets.data.dataset import sample_batch
