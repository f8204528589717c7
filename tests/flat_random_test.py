"""hypernets.flat_random draws exactly what jax.random draws (recorded results depend
on it), for shapes whose shaped draw XLA:CPU compiles slowly and for edge shapes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hypernets import flat_random

SHAPES = [(64, 16, 10), (64, 10), (3, 1, 2), (5,), (0, 3), ()]


@pytest.mark.parametrize("shape", SHAPES)
def test_flat_draws_have_the_bits_of_shaped_draws(shape):
  key = jax.random.key(7)
  np.testing.assert_array_equal(flat_random.uniform(key, shape, -1.0, 1.0),
                                jax.random.uniform(key, shape, minval=-1.0, maxval=1.0))
  np.testing.assert_array_equal(flat_random.normal(key, shape),
                                jax.random.normal(key, shape))
  np.testing.assert_array_equal(flat_random.randint(key, shape, 0, 17),
                                jax.random.randint(key, shape, 0, 17))
  np.testing.assert_array_equal(flat_random.uniform(key, shape, dtype=jnp.bfloat16),
                                jax.random.uniform(key, shape, dtype=jnp.bfloat16))



@pytest.mark.parametrize("partitionable", [True, False])
def test_both_threefry_modes(partitionable):
  jax.config.update("jax_threefry_partitionable", partitionable)
  try:
    key = jax.random.key(3)
    np.testing.assert_array_equal(flat_random.normal(key, (7, 5, 3)),
                                  jax.random.normal(key, (7, 5, 3)))
  finally:
    jax.config.update("jax_threefry_partitionable", True)
