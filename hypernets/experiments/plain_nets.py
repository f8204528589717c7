"""Plain networks of the assumption checks, with PyTorch's default initialisation.

The paper's Experiments 3 and 4 train ordinary networks (no hypernetwork): a fixed
random CNN as the target, one-hidden-layer MLPs as students or width probes. The
authors' code sets no init, so every layer here starts as PyTorch's nn.Linear /
nn.Conv2d do: weights AND biases U(+-1/sqrt(fan_in)).
"""

import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from hypernets.nets import get_activation
# PyTorch's bias init U(+-1/sqrt(fan_in)); a bias's shape does not tell its layer's fan_in.
from hypernets.nets import torch_uniform


# PyTorch's default init of Linear/Conv kernels: U(+-1/sqrt(fan_in)), i.e. variance
# 1 / (3 fan_in); flax computes fan_in of a conv kernel as k*k*C_in, as torch does.
TORCH_KERNEL_INIT = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")


def param_template(module: nn.Module, *example: jax.Array) -> Any:
  """The params pytree of module.init(key, *example) as ShapeDtypeStructs."""
  return jax.eval_shape(lambda: module.init(jax.random.key(0), *example))["params"]


def torch_init(key: jax.Array, template: Any) -> Any:
  """PyTorch's default init of a {layer: {'kernel', 'bias'}} params pytree.

  Every kernel and bias of a layer is U(+-1/sqrt(fan_in)), fan_in = the product of
  the kernel's shape except its last (output) axis: the distribution that this
  module's networks' own `init` gives, drawn in ONE random call (each threefry
  draw costs its own XLA compile, seconds per leaf on a small CPU).
  """
  leaves, treedef = jax.tree.flatten(template)
  sizes = [int(np.prod(leaf.shape)) for leaf in leaves]
  u = jax.random.uniform(key, (sum(sizes),), minval=-1.0, maxval=1.0)
  pieces = jnp.split(u, np.cumsum(sizes)[:-1])
  unit = jax.tree.unflatten(treedef, [p.reshape(l.shape) for p, l in zip(pieces, leaves)])
  params = {}
  for name, layer in unit.items():
    bound = 1.0 / math.sqrt(np.prod(template[name]["kernel"].shape[:-1]))
    params[name] = {leaf_name: a * bound for leaf_name, a in layer.items()}
  return params


class TargetCNN(nn.Module):
  """The fixed random target: [convs (VALID, stride) -> ReLU] -> flatten -> Dense.

  Maps images [batch, H, W, C] -> [batch, num_outputs]; 28x28x1 with the defaults
  gives 10x10x20 then 1x1x40 features.
  """

  channels: Sequence[int] = (20, 40)
  kernel_size: int = 10
  strides: int = 2
  num_outputs: int = 10

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel_size
    for channels in self.channels:
      fan_in = k * k * x.shape[-1]
      x = nn.Conv(channels, (k, k), strides=self.strides, padding="VALID",
                  kernel_init=TORCH_KERNEL_INIT, bias_init=torch_uniform(fan_in))(x)
      x = nn.relu(x)
    x = x.reshape(x.shape[0], -1)
    fan_in = x.shape[-1]
    return nn.Dense(self.num_outputs, kernel_init=TORCH_KERNEL_INIT,
                    bias_init=torch_uniform(fan_in))(x)


class OneHiddenMLP(nn.Module):
  """Dense(width) -> activation -> Dense(num_outputs), PyTorch's default init.

  Maps [..., d] -> [..., num_outputs]. With `active_width` w, hidden units >= w
  output exactly 0: the width-w network inside a padded one (see run_assumption2).
  """

  width: int
  num_outputs: int = 10
  activation: str = "relu"

  @nn.compact
  def __call__(self, x: jax.Array, active_width: jax.Array | int | None = None
               ) -> jax.Array:
    d = x.shape[-1]
    h = nn.Dense(self.width, kernel_init=TORCH_KERNEL_INIT, bias_init=torch_uniform(d),
                 name="Dense_0")(x)
    h = get_activation(self.activation)(h)  # [..., width]
    if active_width is not None:
      h = jnp.where(jnp.arange(self.width) < active_width, h, 0.0)
    return nn.Dense(self.num_outputs, kernel_init=TORCH_KERNEL_INIT,
                    bias_init=torch_uniform(self.width), name="Dense_1")(h)


def normalize_rows(params: dict, *, layers: Sequence[str]) -> dict:
  """Divides each unit's incoming weight vector (a kernel column [d_in]) by its norm.

  `params` is one network's {'Dense_i': {'kernel': [d_in, d_out], 'bias'}}; the
  authors' code does this to PyTorch's weight rows, the same vectors.
  """
  params = dict(params)
  for name in layers:
    kernel = params[name]["kernel"]
    params[name] = {**params[name],
                    "kernel": kernel / jnp.linalg.norm(kernel, axis=0, keepdims=True)}
  return params


def init_for_width(params: dict, *, width: jax.Array | int, max_width: int) -> dict:
  """PyTorch's init of the width-`width` net inside a `max_width` OneHiddenMLP.

  Dense_1 was drawn U(+-1/sqrt(max_width)); scaling it by sqrt(max_width / width)
  makes it U(+-1/sqrt(width)), the fan-in of the width-`width` net's output layer.
  """
  scale = jnp.sqrt(max_width / jnp.asarray(width, jnp.float32))
  return {**params, "Dense_1": jax.tree.map(lambda a: a * scale, params["Dense_1"])}


def conv_output_size(size: int, *, kernel_size: int, strides: int,
                     num_layers: int) -> int:
  """Spatial size after `num_layers` VALID convolutions (<= 0: the input is too small)."""
  for _ in range(num_layers):
    size = (size - kernel_size) // strides + 1 if size >= kernel_size else 0
  return size
