"""FLOP counts of one train step, derived from the model's shapes.

Only matrix products are counted, 2 m k n FLOPs for [m, k] @ [k, n] (bias adds,
activations, the loss and the optimizer update are elementwise and left out; XLA's
`cost_analysis()` counts them too and is reported beside these numbers as a
cross-check). A train step is forward + backward; the backward pass of a product
y = x W costs one product for dW and, unless x is input data (the conditioning
input I or the points x, never differentiated), one more for dx:

  train FLOPs of a product = forward FLOPs * (2 + [input needs a gradient]).

Generated weights W_I = f(I) need dW_I like any weight (it flows back into f).
"""

import dataclasses
import math
from typing import Sequence

import ml_collections


@dataclasses.dataclass(frozen=True)
class MatMul:
  """`times` products [rows, d_in] @ [d_in, d_out] per step."""

  name: str
  rows: int
  d_in: int
  d_out: int
  times: int
  input_grad: bool  # does the backward pass need d(input)?

  @property
  def forward_flops(self) -> int:
    return 2 * self.rows * self.d_in * self.d_out * self.times

  @property
  def train_flops(self) -> int:
    return self.forward_flops * (3 if self.input_grad else 2)


def mlp(name: str, dims: Sequence[int], *, rows: int, times: int,
        first_input_grad: bool) -> list[MatMul]:
  """The products of an MLP with layer sizes dims[0] -> dims[1] -> ... -> dims[-1]."""
  return [MatMul(f"{name}_{i}", rows, d_in, d_out, times,
                 first_input_grad if i == 0 else True)
          for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:]))]


def hypernet(*, d_cond: int, d_x: int, trunk_widths: Sequence[int], primary_dims: Sequence[int],
             primary_bias: bool, conditions: int, points: int) -> list[MatMul]:
  """f = trunk + one linear head per leaf of g (all generated); g = MLP primary_dims.

  Per conditioning input: the trunk runs once on I [d_cond], the heads map the
  trunk's output [w] to g's N_g weights (one [1, w] @ [w, N_g] product in total),
  and g runs on `points` points with its own weights.
  """
  del d_x  # g's first layer is primary_dims[0] = d_x
  trunk = [d_cond, *trunk_widths]
  num_generated = sum(d_in * d_out + (d_out if primary_bias else 0)
                      for d_in, d_out in zip(primary_dims[:-1], primary_dims[1:]))
  return (mlp("f_trunk", trunk, rows=1, times=conditions, first_input_grad=False)
          + [MatMul("f_heads", 1, trunk[-1], num_generated, conditions, True)]
          + mlp("g", primary_dims, rows=points, times=conditions, first_input_grad=False))


def embedding(*, d_cond: int, d_x: int, trunk_widths: Sequence[int], embedding_dim: int,
              q_dims: Sequence[int], conditions: int, points: int) -> list[MatMul]:
  """e = trunk + Dense(E); q = MLP on [x, e(I)] with layer sizes q_dims[0] = d_x + E.

  q's first layer is split as the library computes it (nets.ConditionedMLP): x's
  part per point, e(I)'s part once per conditioning input.
  """
  trunk = [d_cond, *trunk_widths, embedding_dim]
  return (mlp("e", trunk, rows=1, times=conditions, first_input_grad=False)
          + [MatMul("q_0_x", points, d_x, q_dims[1], conditions, False),
             MatMul("q_0_e", 1, embedding_dim, q_dims[1], conditions, True)]
          + mlp("q_rest", q_dims[1:], rows=points, times=conditions, first_input_grad=True))


def standard(*, d_cond: int, d_x: int, widths: Sequence[int], conditions: int,
             points: int) -> list[MatMul]:
  """net([x, I]) with I's share of the first layer computed once per I."""
  return ([MatMul("net_0_x", points, d_x, widths[0], conditions, False),
           MatMul("net_0_cond", 1, d_cond, widths[0], conditions, False)]
          + mlp("net_rest", widths, rows=points, times=conditions, first_input_grad=True))


def from_config(model_config: ml_collections.ConfigDict, *, cond_shape: Sequence[int],
                x_shape: Sequence[int], output_dim: int, conditions: int,
                points: int) -> list[MatMul]:
  """The products of one step of `model_config` (mlp primaries, 'heads' generator).

  cond_shape / x_shape: one conditioning input and one point (without batch axes).
  """
  d_cond, d_x = math.prod(cond_shape), math.prod(x_shape)
  common = dict(d_cond=d_cond, d_x=d_x, conditions=conditions, points=points)
  kind = model_config.kind
  if kind == "hypernet":
    if model_config.generator != "heads" or model_config.primary.name != "mlp":
      raise NotImplementedError("FLOP counts cover the 'heads' generator with an mlp primary")
    if model_config.generated_params != ".*":
      raise NotImplementedError("FLOP counts assume every leaf of g is generated")
    return hypernet(trunk_widths=(model_config.f_width,) * model_config.f_depth,
                    primary_dims=(d_x, *model_config.primary.widths, output_dim),
                    primary_bias=model_config.primary.use_bias, **common)
  if kind == "embedding":
    q_dims = (d_x + model_config.embedding_dim, *model_config.q_widths, output_dim)
    return embedding(trunk_widths=(model_config.e_width,) * model_config.e_depth,
                     embedding_dim=model_config.embedding_dim, q_dims=q_dims, **common)
  if kind == "standard":
    return standard(widths=(*model_config.standard_widths, output_dim), **common)
  raise NotImplementedError(f"no FLOP count for model kind {kind!r}")


def step_flops(matmuls: Sequence[MatMul], *, seeds: int = 1) -> dict[str, int]:
  """{'forward': ..., 'train': ...} FLOPs of one step of `seeds` seeds."""
  return {"forward": seeds * sum(m.forward_flops for m in matmuls),
          "train": seeds * sum(m.train_flops for m in matmuls)}
