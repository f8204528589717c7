"""The rotation task: exact nearest-neighbour rotation, circular labels, batches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hypernets.data import images
from hypernets.data import rotation


def _random_image(size, channels=1, seed=0):
  return np.random.default_rng(seed).integers(1, 256, (*size, channels), dtype=np.uint8)


def test_rotate_by_zero_is_identity():
  image = _random_image((7, 10), channels=3)
  np.testing.assert_array_equal(rotation.rotate_nearest(image, 0.0), image)
  np.testing.assert_array_equal(rotation.rotate_nearest(image, 360.0), image)


@pytest.mark.parametrize("size", [5, 8, 28])
def test_multiples_of_90_match_rot90_counter_clockwise(size):
  image = _random_image((size, size))
  rotated = image
  for k in range(1, 5):
    rotated = rotation.rotate_nearest(rotated, 90.0)
    np.testing.assert_array_equal(rotated, np.rot90(image, k))
    np.testing.assert_array_equal(rotation.rotate_nearest(image, 90.0 * k),
                                  np.rot90(image, k))
  np.testing.assert_array_equal(rotated, image)  # four quarter turns
  # Counter-clockwise: the top-right corner moves to the top-left.
  assert rotation.rotate_nearest(image, 90.0)[0, 0, 0] == image[0, -1, 0]


def test_fill_is_zero_outside_and_dtype_kept():
  image = np.full((9, 9, 1), 200, dtype=np.uint8)
  rotated = rotation.rotate_nearest(image, 45.0)
  assert rotated.dtype == jnp.uint8 and rotated.shape == image.shape
  assert rotated[0, 0, 0] == 0 and rotated[-1, -1, 0] == 0  # corners come from outside
  assert rotated[4, 4, 0] == 200  # the centre stays


def test_matches_pil_rotate_on_real_digits():
  pil_image = pytest.importorskip("PIL.Image")
  digits = images.load_images("mnist_5k", split="test", max_examples=8)
  for digit, angle in zip(digits, (17.0, 33.3, 100.0, 222.2, 300.0, 359.0, 45.0, 1.0)):
    expected = np.asarray(pil_image.fromarray(digit[..., 0]).rotate(angle))
    np.testing.assert_array_equal(rotation.rotate_nearest(digit, angle)[..., 0], expected)


def test_angle_to_class_is_circular_nearest_bin():
  angles = jnp.array([0.0, 14.9, 15.1, 344.9, 345.1, 359.9, 30.0, 181.0, -10.0])
  classes = rotation.angle_to_class(angles)
  assert classes.dtype == jnp.int32
  assert classes.tolist() == [0, 0, 1, 11, 0, 0, 1, 6, 0]
  assert rotation.angle_to_class(jnp.array(100.0), num_classes=4).tolist() == 1


def test_rotation_batch_shapes_cond_and_labels():
  digits = jnp.asarray(images.load_images("mnist_5k", split="train", max_examples=16))
  mean, std = images.NORMALIZATION["mnist_5k"]
  make = jax.jit(lambda imgs, key: rotation.rotation_batch(imgs, key, mean=mean, std=std))
  key = jax.random.key(0)
  batch = make(digits, key)
  assert batch.cond.shape == (16, 784) and batch.cond.dtype == jnp.float32
  assert batch.x.shape == (16, 1, 784) and batch.x.dtype == jnp.float32
  assert batch.y.shape == (16, 1) and batch.y.dtype == jnp.int32
  expected_cond = (np.asarray(digits, np.float32).reshape(16, -1) / 255 - mean) / std
  np.testing.assert_allclose(batch.cond, expected_cond, rtol=1e-6, atol=1e-6)
  # x is each digit rotated by the angle drawn from the key, then normalised.
  angles = rotation.rotation_angles(key, batch_size=16)
  assert float(angles.min()) >= 0 and float(angles.max()) < 360
  rotated = jax.vmap(rotation.rotate_nearest)(digits, angles).reshape(16, 1, -1)
  np.testing.assert_allclose(batch.x, (np.asarray(rotated, np.float32) / 255 - mean) / std,
                             rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(batch.y[:, 0], rotation.angle_to_class(angles))
  assert 0 <= int(batch.y.min()) and int(batch.y.max()) < 12
  # A new key gives new angles (a fresh rotation every step), same cond.
  other = make(digits, jax.random.key(1))
  assert not np.allclose(batch.x, other.x)
  np.testing.assert_array_equal(batch.cond, other.cond)


def test_labels_cover_all_classes_over_many_draws():
  angles = rotation.rotation_angles(jax.random.key(2), batch_size=4096)
  counts = np.bincount(np.asarray(rotation.angle_to_class(angles)), minlength=12)
  assert counts.shape == (12,) and counts.min() > 4096 / 12 * 0.8
