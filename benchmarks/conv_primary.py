"""A conv primary g under a hypernetwork: per-example kernels against shared ones.

g = nets.ConvNet (two 3x3 convs, stride 2, + Dense) on images [H, W, C]; B
conditioning inputs I (vectors) x P images each; loss = MSE against zeros; timed:
jitted value-and-grad of the loss with respect to every trainable parameter.

  shared weights       g alone, one set of parameters for all B x P images
  heads (library)      f = PerTensorHeads emits every conv kernel per I: the convs
                       run as slices + batched matmuls (hypernets/per_example_conv.py)
  film (library)       FiLM: g's shared kernels scaled per I (per-example kernels too)
  heads, direct conv   the same model with g applied without the hook: XLA's feature-
                       grouped convolution under vmap (the library before
                       per_example_conv), timed apart with a single repeat (seconds/step)
"""

import functools
from typing import Any

import jax
import jax.numpy as jnp

from benchmarks import sections
from benchmarks import suites as suites_lib
from benchmarks import timing
from hypernets import models
from hypernets import nets
from hypernets import primary as primary_lib

COND_DIM = 16


def _problem(case: suites_lib.ConvCase):
  key = jax.random.key(0)
  x = jax.random.normal(key, (case.conditions, case.images, *case.image_shape))
  cond = jax.random.normal(jax.random.fold_in(key, 1), (case.conditions, COND_DIM))
  module = nets.ConvNet(channels=case.channels, kernel_size=3, strides=2, num_outputs=10)
  return module, cond, x


def grad_fns(case: suites_lib.ConvCase) -> dict[str, tuple[Any, tuple]]:
  """{row: (jitted value-and-grad, its arguments)} for every row of the section."""
  module, cond, x = _problem(case)
  g = primary_lib.from_linen(module, x[0])

  def mse(out):
    return jnp.mean(jnp.square(out))

  def shared(params, x):
    return mse(module.apply({"params": params}, x.reshape(-1, *x.shape[2:])))

  fns = {"shared weights": (jax.jit(jax.value_and_grad(shared)), (g.init(jax.random.key(1)), x))}
  for generator in ("heads", "film"):
    model = models.hypernetwork(g, generator=generator, trunk_widths=(64, 64))
    variables = model.init(jax.random.key(2), cond[0], x[0])

    def library(variables, cond, x, model=model):
      return mse(jax.vmap(functools.partial(model.apply, variables))(cond, x))

    fns[f"{generator} (library)"] = (jax.jit(jax.value_and_grad(library)),
                                     (variables, cond, x))
    if generator == "heads":
      def direct(variables, cond, x, model=model):
        def one(c, xb):
          theta = model.apply(variables, c, method=models.HypernetModel.generate)
          return g.apply(theta, xb)  # no per_example_conv hook
        return mse(jax.vmap(one)(cond, x))

      fns["heads, direct conv"] = (jax.jit(jax.value_and_grad(direct)), (variables, cond, x))
  return fns


def _runner(compiled, args):
  def run_steps(n):
    out = None
    for _ in range(n):
      out = compiled(*args)
    jax.block_until_ready(out)
  return run_steps


def run_conv_primary(suite: suites_lib.Suite) -> dict[str, Any]:
  """Forward + backward of each row; 'vs shared' = step time / shared weights' time."""
  case = suite.conv_case
  runners, compile_s, direct = {}, {}, None
  for name, (fn, args) in grad_fns(case).items():
    compiled, times = timing.compile_jitted(fn, *args)
    compile_s[name] = times["total_s"]
    if name == "heads, direct conv":
      direct = _runner(compiled, args)
    else:
      runners[name] = _runner(compiled, args)
  timed = timing.measure_interleaved(runners, **sections.measure_kwargs(suite))
  if direct is not None and suite.conv_direct:
    timed["heads, direct conv"] = timing.measure_steps(direct, warmup=1, repeats=1,
                                                       min_repeat_s=0.0)
  shared = timed["shared weights"]["step_s"]
  rows = {name: {**t, "compile_s": compile_s[name], "vs_shared": t["step_s"] / shared}
          for name, t in timed.items()}
  return {"conditions": case.conditions, "images": case.images,
          "image_shape": list(case.image_shape), "channels": list(case.channels),
          "rows": rows}
