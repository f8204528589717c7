"""The paper's self-supervised rotation task, as pure jittable functions.

Each example: I = the unrotated image, x = the same image rotated by an angle drawn
uniformly in [0, 360) (a fresh angle every call, as the official code draws one
every time an item is fetched), label = the nearest multiple of 360 / num_classes
degrees, circularly. As in the official code the rotation is applied to the uint8
image (nearest neighbour, fill 0, same size) and normalisation comes after.

Batch order (`batch.sampling`, epochs.py): 'random' rows per step, or 'epoch' (a
fresh permutation every epoch, the official DataLoader(shuffle=True)). Test angles
(`data.test_angles`): 'fixed' (drawn once from data.seed: every evaluation and every
run sees the same rotated test images) or 'fresh' (new angles at every evaluation,
as the official code's test loader draws them).
"""

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp

from hypernets.data import epochs
from hypernets.data import online
from hypernets.data.dataset import choose_rows
from hypernets.data.dataset import Dataset
from hypernets.data.dataset import Split
from hypernets.data.tasks import register_task
from hypernets.errors import ConfigError

TEST_ANGLES = ("fixed", "fresh")


def rotate_nearest(image: jax.Array, angle_degrees: jax.Array) -> jax.Array:
  """Rotates uint8 [H, W, C] counter-clockwise (as displayed, row 0 on top).

  Rotation is about the image centre ((H - 1) / 2, (W - 1) / 2) in pixel
  coordinates, with nearest-neighbour sampling and 0 outside the source image;
  the output has the input's shape and dtype (like PIL's `Image.rotate(angle)`).
  Multiples of 90 degrees are exact on square images (== np.rot90).
  """
  height, width = image.shape[:2]
  theta = jnp.deg2rad(jnp.mod(jnp.asarray(angle_degrees, jnp.float32), 360.0))
  cos, sin = jnp.cos(theta), jnp.sin(theta)
  cy, cx = (height - 1) / 2, (width - 1) / 2
  rows, cols = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32),
                            jnp.arange(width, dtype=jnp.float32), indexing="ij")
  # Output pixel in centred display coordinates (y up); rotate it back by -theta.
  x, y = cols - cx, cy - rows  # [H, W]
  src_x = cos * x + sin * y
  src_y = -sin * x + cos * y
  src_rows = jnp.round(cy - src_y).astype(jnp.int32)  # [H, W]
  src_cols = jnp.round(cx + src_x).astype(jnp.int32)
  inside = ((src_rows >= 0) & (src_rows < height)
            & (src_cols >= 0) & (src_cols < width))
  sampled = image[jnp.clip(src_rows, 0, height - 1), jnp.clip(src_cols, 0, width - 1)]
  return jnp.where(inside[..., None], sampled, jnp.zeros_like(sampled))


def angle_to_class(angle_degrees: jax.Array, *, num_classes: int = 12) -> jax.Array:
  """Nearest multiple of 360 / num_classes degrees, circularly: int32, same shape.

  Angles within half a bin below 360 (e.g. [345, 360) for 12 classes) go to class
  0, the bin of 0 degrees. The official code's rounding sent them to class 11; this
  is the corrected, circular version. Exact ties go to the larger angle.
  """
  bin_width = 360.0 / num_classes
  angle = jnp.mod(jnp.asarray(angle_degrees, jnp.float32), 360.0)
  return jnp.mod(jnp.floor(angle / bin_width + 0.5), num_classes).astype(jnp.int32)


def rotation_angles(key: jax.Array, *, batch_size: int) -> jax.Array:
  """The angles `rotation_batch` draws from `key`: float32 [batch_size] in [0, 360)."""
  return jax.random.uniform(key, (batch_size,), minval=0.0, maxval=360.0)


def normalize(images_uint8: jax.Array, *, mean: float, std: float) -> jax.Array:
  """uint8 [...] -> float32 (v / 255 - mean) / std, same shape."""
  return (images_uint8.astype(jnp.float32) / 255.0 - mean) / std


def rotation_batch(images_uint8: jax.Array, key: jax.Array, *, mean: float, std: float,
                   num_classes: int = 12) -> Split:
  """One rotation-prediction batch from uint8 images [B, H, W, C].

  Returns a Split with cond [B, H*W*C] float32 (the unrotated normalised image),
  x [B, 1, H*W*C] float32 (the image rotated by `rotation_angles(key)`, then
  normalised) and y [B, 1] int32 (`angle_to_class` of the angle). Pass a different
  key every step to get fresh angles.
  """
  batch_size = images_uint8.shape[0]
  angles = rotation_angles(key, batch_size=batch_size)  # [B]
  rotated = jax.vmap(rotate_nearest, in_axes=(0, 0))(images_uint8, angles)
  cond = normalize(images_uint8, mean=mean, std=std).reshape(batch_size, -1)
  x = normalize(rotated, mean=mean, std=std).reshape(batch_size, 1, -1)
  y = angle_to_class(angles, num_classes=num_classes)[:, None]
  return Split(cond=cond, x=x, y=y)


def sample_rotation_batch(images_uint8: jax.Array, key: jax.Array, *, num_conditions: int,
                          points_per_condition: int, mean: float, std: float,
                          num_classes: int = 12, step: jax.Array | int = 0,
                          order_seed: int | None = None) -> Split:
  """`num_conditions` distinct images, each rotated by a fresh random angle.

  The sampler of the rotation Dataset: images_uint8 [N, H, W, C] -> Split with
  cond [B, H*W*C], x [B, 1, H*W*C], y [B, 1]. One point per image (the paper's
  protocol), so `points_per_condition` must be 1. Rows: random per step, or with
  `order_seed` the epoch order of `step` (epochs.epoch_rows under epochs.order_key).
  """
  del points_per_condition  # checked to be 1 by the config checks
  row_key, angle_key = jax.random.split(key)
  if order_seed is None:
    rows = choose_rows(row_key, num_rows=images_uint8.shape[0], num_chosen=num_conditions)
  else:
    rows = epochs.epoch_rows(epochs.order_key(order_seed), step,
                             num_rows=images_uint8.shape[0],
                             batch_size=num_conditions)
  return rotation_batch(images_uint8[rows], angle_key, mean=mean, std=std,
                        num_classes=num_classes)


@dataclasses.dataclass(frozen=True)
class FreshTestDataset(Dataset):
  """A Dataset whose test split gets new rotation angles at every evaluation.

  `test` is the first draw, `fresh_test(k)` the draw of evaluation k. The training
  loop reads `eval_splits_at(k)` with k derived from the step (loop.TrainSpec.
  fresh_eval_data), so a resumed run sees the same angles as an uninterrupted one.
  `eval_splits` (as on any Dataset) holds draw 0, the angles of test_angles='fixed'.
  """

  fresh_test: Callable[[int], Split] | None = None

  def eval_splits_at(self, k: int) -> dict[str, Split]:
    """The evaluation splits of evaluation k: the test images at draw k's angles."""
    return {**self.eval_splits, "test": self.fresh_test(k)}


@register_task("rotation")
def create_dataset(data_config, *, train_shard: tuple[int, int] | None = None) -> Dataset:
  """The rotation-prediction task on `data_config.source` images.

  Training draws a new angle every time an image is fetched (the official code's
  protocol). Evaluation uses fixed angles drawn once from `data_config.seed`, so
  every evaluation of a run (and every run) sees the same rotated test images, or
  with `test_angles='fresh'` a FreshTestDataset (new angles at every evaluation);
  train metrics are reported on up to `num_test_examples` fixed training images.
  With `train_shard` (index, n) only that shard of the training images is read
  (dataset.shard_indices); the train-metric images are the same on every shard.
  """
  from hypernets.data import images as images_lib  # pylint: disable=g-import-not-at-top
  if online.regime_of(data_config) != "fixed":
    raise ConfigError("config.data.regime='online' needs a generated target; the "
                      "rotation task reads a finite set of images, so it stays 'fixed'")
  test_angles = data_config.get("test_angles", "fixed")
  if test_angles not in TEST_ANGLES:
    raise ConfigError(f"config.data.test_angles is {test_angles!r}; choose one of "
                      f"{TEST_ANGLES}")
  load = functools.partial(images_lib.load_images, data_config.source,
                           data_dir=data_config.data_dir or None)
  test_images = load(split="test", max_examples=data_config.num_test_examples or None)
  train_images = load(split="train", max_examples=data_config.num_train_examples or None,
                      shard=train_shard)
  num_train_eval = test_images.shape[0]
  if train_shard is None:
    train_eval_images = train_images[:num_train_eval]
  else:
    max_train = data_config.num_train_examples or None
    train_eval_images = load(split="train", max_examples=min(
        num_train_eval, max_train) if max_train else num_train_eval)
  mean, std = images_lib.NORMALIZATION[data_config.source]
  constants = dict(mean=mean, std=std, num_classes=data_config.num_classes)
  test_key, train_eval_key = jax.random.split(jax.random.key(data_config.seed))
  order_seed = (int(data_config.seed)
                if epochs.sampling_of(data_config) == "epoch" else None)
  test_images = jnp.asarray(test_images)
  test_batch = functools.partial(rotation_batch, **constants)
  common = dict(
      train=jnp.asarray(train_images), test=test_batch(test_images, test_key),
      train_eval=rotation_batch(jnp.asarray(train_eval_images), train_eval_key,
                                **constants),
      task="classification", output_dim=data_config.num_classes,
      sampler=functools.partial(sample_rotation_batch, order_seed=order_seed, **constants))
  if test_angles == "fixed":
    return Dataset(**common)
  return FreshTestDataset(
      **common, fresh_test=lambda k: test_batch(test_images, jax.random.fold_in(test_key, k)
                                                if k else test_key))
