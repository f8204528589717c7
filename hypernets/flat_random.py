"""`jax.random.uniform/normal/randint` drawn as one flat vector, then reshaped.

Why: XLA:CPU takes seconds to compile the threefry bits of some multi-dimensional
shapes and a fraction of a second for the same count drawn flat (one core, jax 0.10:
uniform [64, 16, 10] 6.0 s, [64, 10] 2.0 s, [10240] 0.4 s; measured by
`python -m benchmarks.random_compile`). Threefry, with or without
`jax_threefry_partitionable`, makes element i of a draw from the key and i's row-major
index alone, so the flat draw reshaped has exactly the bits of the shaped one
(tests/flat_random_test.py): recorded results do not move. Data generation runs
these ops eagerly, one compile each; shaped, they were most of a synthetic run's
start-up (its dataset took 22.7 s to build, 5.2 s flat).
"""

import math

import jax
import jax.numpy as jnp


def uniform(key: jax.Array, shape, minval=0.0, maxval=1.0,
            dtype=jnp.float32) -> jax.Array:
  """`jax.random.uniform(key, shape, dtype, minval, maxval)`, bit for bit: [*shape]."""
  shape = tuple(shape)
  flat = jax.random.uniform(key, (math.prod(shape),), dtype, minval, maxval)
  return flat.reshape(shape)


def normal(key: jax.Array, shape, dtype=jnp.float32) -> jax.Array:
  """`jax.random.normal(key, shape, dtype)`, bit for bit: [*shape]."""
  shape = tuple(shape)
  return jax.random.normal(key, (math.prod(shape),), dtype).reshape(shape)


def randint(key: jax.Array, shape, minval, maxval, dtype=jnp.int32) -> jax.Array:
  """`jax.random.randint(key, shape, minval, maxval, dtype)`, bit for bit: [*shape]."""
  shape = tuple(shape)
  return jax.random.randint(key, (math.prod(shape),), minval, maxval, dtype).reshape(shape)
