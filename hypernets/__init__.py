"""hypernets: pure-function hypernetworks over any Flax module.

The one idea: a *conditioned model* maps (params, I, x) -> y for ONE conditioning
input I and a batch of points x. Hypernetworks, the embedding method and a standard
network share that signature; `jax.vmap` over I gives a batch of functions.
"""

from hypernets.errors import ConfigError
from hypernets.errors import HypernetsError
from hypernets.errors import TrainingDivergedError
from hypernets.errors import WorkdirError
from hypernets.generators import PerTensorHeads
from hypernets.models import EmbeddingModel
from hypernets.models import HypernetModel
from hypernets.models import StandardModel
from hypernets.models import apply_batched
from hypernets.models import hypernetwork
from hypernets.nets import ConvNet
from hypernets.nets import MLP
from hypernets.params import count_params
from hypernets.params import parameter_counts
from hypernets.primary import Primary

__version__ = "0.1.0"
