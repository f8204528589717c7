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
`data.regime` (online.py): 'fixed' trains on stored rows, 'online' draws every batch
fresh from the target; both evaluate on the same test sample.
"""

import functools
import math

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections

from hypernets import flat_random
from hypernets.data import epochs
from hypernets.data import online
from hypernets.data.dataset import Dataset
from hypernets.data.dataset import Split
from hypernets.data.tasks import register_task


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


def _split_vector(vector: jax.Array, shapes) -> list[jax.Array]:
  """Consecutive slices of vector [sum of sizes], reshaped to `shapes`."""
  parts, start = [], 0
  for shape in shapes:
    size = math.prod(shape)
    parts.append(vector[start:start + size].reshape(shape))
    start += size
  return parts


def _unflatten(theta: jax.Array, *, m1: int, width: int, output_dim: int) -> dict:
  """theta [N_g*] -> {name: array} of g*'s layers."""
  layout = _primary_layout(m1=m1, width=width, output_dim=output_dim)
  return dict(zip([name for name, _, _ in layout],
                  _split_vector(theta, [shape for _, shape, _ in layout])))


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
  # One uniform draw for both (as in init_target: fewer random ops to compile).
  u = flat_random.uniform(key, (num_conditions, m2 + points * m1), minval=-1.0,
                         maxval=1.0)
  cond, x = u[:, :m2], u[:, m2:].reshape(num_conditions, points, m1)
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
  sizes_h = [m2, selector_hidden, selector_width]
  sizes_g = dict(m1=m1, width=primary_width, output_dim=output_dim)
  # s_j: the scale of parameter j of g*, target_gain / sqrt(fan_in of its layer).
  scale = jnp.concatenate([
      jnp.full((math.prod(shape),), target_gain / math.sqrt(fan_in))
      for _, shape, fan_in in _primary_layout(**sizes_g)])  # [N_g*]
  n_g = scale.shape[0]
  # All Gaussian draws come from one call: every random op adds ~0.1 s of compile
  # time on a CPU, most of this function's cost.
  shapes = [s for d_in, d_out in zip(sizes_h[:-1], sizes_h[1:])
            for s in ((d_in, d_out), (d_out,))] + [(n_g, selector_width), (n_g,)]
  normal_key, cal_key = jax.random.split(key)
  draws = _split_vector(
      jax.random.normal(normal_key, (sum(math.prod(s) for s in shapes),)), shapes)
  layers = tuple(
      (selector_gain * kernel / math.sqrt(kernel.shape[0]), 0.1 * bias)
      for kernel, bias in zip(draws[0:-2:2], draws[1:-2:2]))
  raw, b0 = draws[-2], scale * draws[-1]
  row_norm = selector_scale * math.sqrt(selector_width) * scale  # [N_g*]
  w_matrix = raw * (row_norm / jnp.abs(raw).sum(axis=1))[:, None]
  target = Target(selector_layers=layers, w_matrix=w_matrix, b0=b0,
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


def _target_kwargs(data_config: ml_collections.ConfigDict) -> dict:
  """init_target's keyword arguments from the data config."""
  return dict(m1=data_config.m1, m2=data_config.m2,
              selector_width=data_config.selector_width,
              selector_hidden=data_config.selector_hidden,
              primary_width=data_config.target_primary_width,
              output_dim=data_config.get("output_dim", 1),
              target_gain=data_config.get("target_gain", 1.5),
              selector_scale=data_config.get("selector_scale", 1.0))


# The target and both splits are built as one compiled program: run eagerly, each
# of their few dozen small ops compiles on first use (seconds on a small CPU).
@functools.partial(jax.jit, static_argnames=(
    "target_kwargs", "num_train", "num_test", "points"))
def _build(key: jax.Array, *, target_kwargs: tuple, num_train: int, num_test: int,
           points: int) -> tuple[Target, Split, Split]:
  """(target, train, test) from the seed's key; target_kwargs as sorted items."""
  target_key, train_key, test_key = jax.random.split(key, 3)
  kwargs = dict(target_kwargs)
  target = init_target(target_key, **kwargs)
  train = make_split(train_key, target, num_conditions=num_train, points=points,
                     m2=kwargs["m2"])
  test = make_split(test_key, target, num_conditions=num_test, points=points,
                    m2=kwargs["m2"])
  return target, train, test


def _build_from_config(data_config: ml_collections.ConfigDict, *,
                       num_train: int | None = None):
  return _build(jax.random.key(data_config.seed),
                target_kwargs=tuple(sorted(_target_kwargs(data_config).items())),
                num_train=num_train or data_config.num_train_conditions,
                num_test=data_config.num_test_conditions,
                points=data_config.points_per_condition)


def target_from_config(data_config: ml_collections.ConfigDict) -> Target:
  """The target that `create_dataset(data_config)` samples from."""
  return _build_from_config(data_config)[0]


@functools.partial(jax.jit, static_argnames=("num_conditions", "points"))
def draw(target: Target, key: jax.Array, *, num_conditions: int, points: int) -> Split:
  """A fresh sample from the target (the online regime's draw), jitted once per shape."""
  # m2 is the input size of h's first layer.
  return make_split(key, target, num_conditions=num_conditions, points=points,
                    m2=target.selector_layers[0][0].shape[0])


@register_task("structured")
def create_dataset(data_config: ml_collections.ConfigDict) -> Dataset:
  """Train and test splits with disjoint random conditioning inputs and points;
  online (data.regime): fresh training batches, the same test split.

  Reads seed, m1, m2, selector_width, selector_hidden, target_primary_width,
  num_train_conditions, num_test_conditions, points_per_condition and, optional,
  output_dim (1), target_gain (1.5), selector_scale (1.0), regime, sampling.
  """
  if online.regime_of(data_config) == "online":
    # The target and test split do not depend on the number of training rows.
    target, _, test = _build_from_config(data_config, num_train=1)
    test_key = jax.random.split(jax.random.key(data_config.seed), 3)[2]
    return online.online_dataset(
        target, draw, test_key=None, test=test,
        train_eval_key=jax.random.fold_in(test_key, 1),
        eval_conditions=data_config.num_test_conditions,
        points=data_config.points_per_condition, output_dim=target.output_dim)
  target, train, test = _build_from_config(data_config)
  return Dataset(train=train, test=test, task="regression",
                 output_dim=target.output_dim, sampler=epochs.split_sampler(data_config))
