"""Theorem 5's structured target y(x, I) = g*(x; W h(I) + b0).

- h: [-1, 1]^m2 -> (-1, 1)^w, a random tanh MLP m2 -> selector_hidden -> w.
- g*: a fixed tanh MLP m1 -> target_primary_width -> output_dim with biases; its
  flat parameter vector theta (size N_g*) is theta(I) = W h(I) + b0.
- b0 [N_g*]: a random base, entry j ~ N(0, s_j^2) with s_j = target_gain / sqrt(fan_in)
  of the layer it belongs to (kernel and bias alike), so g* is a typical net.
- W [N_g*, w]: Gaussian, each row rescaled to L1 norm selector_scale sqrt(w) s_j.
  Since |h| < 1, |(W h(I))_j| <= selector_scale sqrt(w) s_j (Hoelder), and
  the entrywise ||W||_1 = selector_scale sqrt(w) sum_j s_j is a fixed constant of
  the target (the theorem's ||W||_1 <= c). sqrt(w) keeps the typical size of
  (W h)_j near selector_scale s_j std(h) whatever w is.
- Normalisation: over a fixed calibration draw (its own key, 256 conditions x 64
  points), each output's mean mu and std sd are measured and folded into g*'s
  output layer (its rows of W and b0 divided by sd, its bias in b0 shifted by
  -mu / sd). y keeps the exact form g*(x; W h(I) + b0) and has mean ~0, Var ~1.

x ~ U[-1, 1]^m1 and I ~ U[-1, 1]^m2; everything is drawn from `data.seed`.
"""

import math

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections

from hypernets.data.dataset import Dataset
from hypernets.data.dataset import Split


@flax.struct.dataclass
class Target:
  """The target's parameters: h's layers, W [N_g*, w], b0 [N_g*]; g*'s sizes (static)."""

  selector_layers: tuple  # ((kernel [d_in, d_out], bias [d_out]), ...) of h
  w_matrix: jax.Array  # [N_g*, w]
  b0: jax.Array  # [N_g*]
  m1: int = flax.struct.field(pytree_node=False)
  primary_width: int = flax.struct.field(pytree_node=False)
  output_dim: int = flax.struct.field(pytree_node=False)

  @property
  def num_primary_params(self) -> int:
    """N_g*: size of g*'s flat parameter vector."""
    return primary_num_params(m1=self.m1, width=self.primary_width,
                              output_dim=self.output_dim)


def primary_num_params(*, m1: int, width: int, output_dim: int) -> int:
  """N_g* of the tanh MLP m1 -> width -> output_dim with biases."""
  return m1 * width + width + width * output_dim + output_dim


def _primary_layout(*, m1: int, width: int, output_dim: int):
  """[(name, shape, fan_in)] in flat order: kernel_0, bias_0, kernel_1, bias_1."""
  return [("kernel_0", (m1, width), m1), ("bias_0", (width,), m1),
          ("kernel_1", (width, output_dim), width), ("bias_1", (output_dim,), width)]


def _unflatten(theta: jax.Array, *, m1: int, width: int, output_dim: int) -> dict:
  """theta [N_g*] -> {name: array} of g*'s layers."""
  leaves, start = {}, 0
  for name, shape, _ in _primary_layout(m1=m1, width=width, output_dim=output_dim):
    size = math.prod(shape)
    leaves[name] = theta[start:start + size].reshape(shape)
    start += size
  return leaves


def primary_apply(theta: jax.Array, x: jax.Array, *, m1: int, width: int,
                  output_dim: int) -> jax.Array:
  """g*(x; theta): theta [N_g*], x [P, m1] -> [P, output_dim]."""
  p = _unflatten(theta, m1=m1, width=width, output_dim=output_dim)
  hidden = jnp.tanh(x @ p["kernel_0"] + p["bias_0"])  # [P, width]
  return hidden @ p["kernel_1"] + p["bias_1"]


def selector(target: Target, cond: jax.Array) -> jax.Array:
  """h(I): cond [..., m2] -> [..., w], entries in (-1, 1)."""
  h = cond
  for kernel, bias in target.selector_layers:
    h = jnp.tanh(h @ kernel + bias)
  return h


def target_params(target: Target, cond: jax.Array) -> jax.Array:
  """theta(I) = W h(I) + b0: cond [..., m2] -> [..., N_g*]."""
  return selector(target, cond) @ target.w_matrix.T + target.b0


def target_function(target: Target, cond: jax.Array, x: jax.Array) -> jax.Array:
  """y(x, I) = g*(x; W h(I) + b0) for ONE condition: cond [m2], x [P, m1] -> [P, out]."""
  return primary_apply(target_params(target, cond), x, m1=target.m1,
                       width=target.primary_width, output_dim=target.output_dim)


def evaluate_target(target: Target, cond: jax.Array, x: jax.Array) -> jax.Array:
  """Batched `target_function`: cond [N, m2], x [N, P, m1] -> y [N, P, out]."""
  return jax.vmap(target_function, in_axes=(None, 0, 0))(target, cond, x)


def _sample_inputs(key: jax.Array, *, num_conditions: int, points: int, m1: int,
                   m2: int) -> tuple[jax.Array, jax.Array]:
  """cond [N, m2], x [N, P, m1], uniform on [-1, 1]."""
  cond_key, x_key = jax.random.split(key)
  cond = jax.random.uniform(cond_key, (num_conditions, m2), minval=-1.0, maxval=1.0)
  x = jax.random.uniform(x_key, (num_conditions, points, m1), minval=-1.0, maxval=1.0)
  return cond, x


def init_target(key: jax.Array, *, m1: int, m2: int, selector_width: int,
                selector_hidden: int, primary_width: int, output_dim: int = 1,
                target_gain: float = 1.5, selector_gain: float = 2.0,
                selector_scale: float = 1.0, calibration_conditions: int = 256,
                calibration_points: int = 64) -> Target:
  """A random target, normalised to mean ~0 and Var(y) ~1 per output (module docstring).

  h's kernels are N(0, selector_gain^2 / fan_in) (pre-activations of std ~1 on
  U[-1, 1] inputs: tanh neither linear nor saturated), its biases N(0, 0.1^2).
  """
  h_key, w_key, b_key, cal_key = jax.random.split(key, 4)
  sizes = [m2, selector_hidden, selector_width]
  layers = []
  for layer_key, d_in, d_out in zip(jax.random.split(h_key, len(sizes) - 1),
                                    sizes[:-1], sizes[1:]):
    k_key, bias_key = jax.random.split(layer_key)
    layers.append((selector_gain * jax.random.normal(k_key, (d_in, d_out))
                   / jnp.sqrt(d_in),
                   0.1 * jax.random.normal(bias_key, (d_out,))))

  sizes_g = dict(m1=m1, width=primary_width, output_dim=output_dim)
  # s_j: the scale of parameter j of g*, target_gain / sqrt(fan_in of its layer).
  scale = jnp.concatenate([
      jnp.full((math.prod(shape),), target_gain / math.sqrt(fan_in))
      for _, shape, fan_in in _primary_layout(**sizes_g)])  # [N_g*]
  b0 = scale * jax.random.normal(b_key, scale.shape)
  raw = jax.random.normal(w_key, (scale.shape[0], selector_width))
  row_norm = selector_scale * jnp.sqrt(selector_width) * scale  # [N_g*]
  w_matrix = raw * (row_norm / jnp.abs(raw).sum(axis=1))[:, None]
  target = Target(selector_layers=tuple(layers), w_matrix=w_matrix, b0=b0,
                  m1=m1, primary_width=primary_width, output_dim=output_dim)

  # Fold y -> (y - mu) / sd into g*'s output layer (kernel_1, bias_1 entries).
  cond, x = _sample_inputs(cal_key, num_conditions=calibration_conditions,
                           points=calibration_points, m1=m1, m2=m2)
  y = evaluate_target(target, cond, x).reshape(-1, output_dim)
  mu, sd = y.mean(axis=0), y.std(axis=0)  # [out]
  n_hidden = m1 * primary_width + primary_width
  n_kernel_1 = primary_width * output_dim
  # Flat kernel_1 is [width, out] row-major: entry (i, k) scales by 1 / sd[k].
  out_scale = jnp.concatenate([jnp.ones((n_hidden,)),
                               jnp.tile(1.0 / sd, primary_width),
                               1.0 / sd])  # [N_g*]
  shift = jnp.zeros_like(b0).at[n_hidden + n_kernel_1:].set(-mu / sd)
  return target.replace(w_matrix=w_matrix * out_scale[:, None],
                        b0=b0 * out_scale + shift)


def make_split(key: jax.Array, target: Target, *, num_conditions: int, points: int,
               m2: int) -> Split:
  """cond [N, m2], x [N, P, m1] uniform on [-1, 1]; y [N, P, out] = g*(x; W h(I) + b0)."""
  cond, x = _sample_inputs(key, num_conditions=num_conditions, points=points,
                           m1=target.m1, m2=m2)
  return Split(cond=cond, x=x, y=evaluate_target(target, cond, x))


def target_from_config(data_config: ml_collections.ConfigDict) -> Target:
  """The target `create_dataset(data_config)` samples (same seed, same key split)."""
  target_key = jax.random.split(jax.random.key(data_config.seed), 3)[0]
  return init_target(
      target_key, m1=data_config.m1, m2=data_config.m2,
      selector_width=data_config.selector_width,
      selector_hidden=data_config.selector_hidden,
      primary_width=data_config.target_primary_width,
      output_dim=data_config.get("output_dim", 1),
      target_gain=data_config.get("target_gain", 1.5),
      selector_scale=data_config.get("selector_scale", 1.0))


def create_dataset(data_config: ml_collections.ConfigDict) -> Dataset:
  """Train and test splits with disjoint random conditioning inputs and points."""
  _, train_key, test_key = jax.random.split(jax.random.key(data_config.seed), 3)
  target = target_from_config(data_config)
  common = dict(points=data_config.points_per_condition, m2=data_config.m2)
  return Dataset(
      train=make_split(train_key, target,
                       num_conditions=data_config.num_train_conditions, **common),
      test=make_split(test_key, target,
                      num_conditions=data_config.num_test_conditions, **common),
      task="regression", output_dim=target.output_dim)
