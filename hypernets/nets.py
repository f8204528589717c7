"""Plain Flax modules used as primaries g, trunks of f and e, q and standard nets."""

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from hypernets import flat_random
from hypernets.errors import ConfigError

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "silu": nn.silu,
    "sigmoid": nn.sigmoid,
    "tanh": jnp.tanh,
    "sine": jnp.sin,  # coordinate networks (images as functions)
    "identity": lambda x: x,
}


# How Dense/Conv layers start (`config.model.init_scheme`):
#   lecun  flax's default: kernels lecun_normal, biases 0.
#   torch  PyTorch's nn.Linear / nn.Conv default (the paper's code sets no init):
#          kernels AND biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)); for the kernel this
#          is variance_scaling(1/3, 'fan_in', 'uniform') (limit sqrt(3 * scale / fan_in)).
INIT_SCHEMES = ("lecun", "torch")


def torch_uniform(fan_in: int) -> Callable:
  """Initialiser U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's bias init)."""
  bound = 1.0 / float(fan_in) ** 0.5

  def init(key, shape, dtype=jnp.float32):
    return flat_random.uniform(key, shape, -bound, bound, dtype)

  return init


def layer_inits(scheme: str, fan_in: int) -> tuple[Callable, Callable]:
  """(kernel_init, bias_init) of a layer with `fan_in` inputs under `scheme`."""
  if scheme == "lecun":
    return nn.initializers.lecun_normal(), nn.initializers.zeros_init()
  if scheme == "torch":
    return (nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform"),
            torch_uniform(fan_in))
  raise ConfigError(f"unknown config.model.init_scheme {scheme!r}; choose one of "
                    f"{INIT_SCHEMES}")


def get_activation(name: str) -> Callable[[jax.Array], jax.Array]:
  """Returns the activation function called `name` (one of ACTIVATIONS)."""
  try:
    return ACTIVATIONS[name]
  except KeyError:
    raise ConfigError(
        f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}"
    ) from None


class MLP(nn.Module):
  """Dense layers of sizes `features`, `activation` between them.

  Maps [..., d_in] -> [..., features[-1]]. The last layer has no activation unless
  `activate_final`. Layers start as `init_scheme` says (INIT_SCHEMES).
  """

  features: Sequence[int]
  activation: str = "relu"
  use_bias: bool = True
  activate_final: bool = False
  init_scheme: str = "lecun"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    act = get_activation(self.activation)
    for i, width in enumerate(self.features):
      kernel_init, bias_init = layer_inits(self.init_scheme, x.shape[-1])
      x = nn.Dense(width, use_bias=self.use_bias, kernel_init=kernel_init,
                   bias_init=bias_init, name=f"Dense_{i}")(x)
      if i < len(self.features) - 1 or self.activate_final:
        x = act(x)
    return x


class ConvNet(nn.Module):
  """Small conv primary: convs (stride `strides`) -> flatten -> Dense(num_outputs).

  Maps images [batch, H, W, C] -> [batch, num_outputs].
  """

  channels: Sequence[int] = (8, 16)
  kernel_size: int = 3
  strides: int = 2
  num_outputs: int = 10
  activation: str = "relu"
  use_bias: bool = True
  init_scheme: str = "lecun"

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    act = get_activation(self.activation)
    for channels in self.channels:
      # A conv kernel's fan_in: its receptive field times the input channels.
      kernel_init, bias_init = layer_inits(self.init_scheme,
                                           self.kernel_size ** 2 * x.shape[-1])
      x = nn.Conv(channels, (self.kernel_size, self.kernel_size),
                  strides=self.strides, use_bias=self.use_bias,
                  kernel_init=kernel_init, bias_init=bias_init)(x)
      x = act(x)
    x = x.reshape(x.shape[0], -1)
    kernel_init, bias_init = layer_inits(self.init_scheme, x.shape[-1])
    return nn.Dense(self.num_outputs, use_bias=self.use_bias, kernel_init=kernel_init,
                    bias_init=bias_init)(x)


class ConditionedMLP(nn.Module):
  """An MLP on [x, c] for a batch of points x sharing one conditioning vector c.

  Mathematically Dense(concat([x_i, c])) for every point i, with the same parameter
  shapes, but the conditioning half of the first layer, c @ W_c + b, is computed once
  and broadcast over the points instead of once per point.

  Maps x [points, d_x], c [d_c] -> [points, features[-1]].
  """

  features: Sequence[int]
  activation: str = "relu"
  use_bias: bool = True
  init_scheme: str = "lecun"

  @nn.compact
  def __call__(self, x: jax.Array, c: jax.Array) -> jax.Array:
    d_x, d_c = x.shape[-1], c.shape[-1]
    kernel_init, bias_init = layer_inits(self.init_scheme, d_x + d_c)
    kernel = self.param("first_kernel", kernel_init, (d_x + d_c, self.features[0]))
    shift = c @ kernel[d_x:]  # [features[0]], once for all points
    if self.use_bias:
      shift = shift + self.param("first_bias", bias_init, (self.features[0],))
    h = x @ kernel[:d_x] + shift  # [points, features[0]]
    if len(self.features) == 1:
      return h
    h = get_activation(self.activation)(h)
    return MLP(self.features[1:], self.activation, self.use_bias,
               init_scheme=self.init_scheme, name="rest")(h)
