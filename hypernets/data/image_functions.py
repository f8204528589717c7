r"""Images as functions: I = a digit image, x = a pixel coordinate, y = its intensity.

The implicit-neural-representation setting in which hypernetworks are used in
practice (functa, HyperDiffusion): each image is a function [-1, 1]^2 -> [0, 1],
and a conditioned model h_I(x) represents every image of a set at once.

A fixed random mask (`data.heldout_pixel_fraction` of the pixel positions, drawn
from `data.seed`, the same for every image) holds pixels out: the conditioning
input I is the image's observed pixels only ([N, H W (1 - fraction)], in [0, 1]),
and training sees only observed pixels. Reported:
  train           the observed pixels of the training images (the fit);
  heldout_pixels  the held-out pixels of the training images (interpolation in x);
  test            every pixel of held-out images (generalisation in I).

A task of the extension point (`hypernets.data.tasks`), not a registered name: the
config names it `hypernets.data.image_functions:create_dataset`.
"""

import jax.numpy as jnp
import ml_collections
import numpy as np

from hypernets.data import images as images_lib
from hypernets.data.dataset import Dataset
from hypernets.data.dataset import Split
from hypernets.errors import ConfigError


def pixel_coordinates(height: int, width: int) -> np.ndarray:
  """[H W, 2] (row, column) coordinates in [-1, 1], row-major (pixel (i, j) at i W + j)."""
  rows, cols = np.meshgrid(np.linspace(-1, 1, height), np.linspace(-1, 1, width),
                           indexing="ij")
  return np.stack([rows.ravel(), cols.ravel()], axis=-1).astype(np.float32)


def heldout_mask(num_pixels: int, *, fraction: float, seed: int) -> np.ndarray:
  """bool [num_pixels]: round(fraction * num_pixels) positions held out, from `seed`."""
  mask = np.zeros(num_pixels, bool)
  count = int(round(fraction * num_pixels))
  mask[np.random.default_rng(seed).permutation(num_pixels)[:count]] = True
  return mask


def image_split(images_uint8: np.ndarray, *, observed: np.ndarray,
                points: np.ndarray) -> Split:
  """Split of images [N, H, W, 1]: cond = observed pixels [N, n_obs] in [0, 1],
  x = the coordinates of `points` (bool [H W]) [N, P, 2], y = their intensities [N, P, 1]."""
  n, height, width = images_uint8.shape[:3]
  pixels = images_uint8.reshape(n, height * width).astype(np.float32) / 255.0
  coords = pixel_coordinates(height, width)[points]
  return Split(cond=jnp.asarray(pixels[:, observed]),
               x=jnp.asarray(np.broadcast_to(coords, (n,) + coords.shape)),
               y=jnp.asarray(pixels[:, points][..., None]))


def create_dataset(data_config: ml_collections.ConfigDict) -> Dataset:
  """The images-as-functions task on `data_config.source` digits (module docstring).

  Reads source, num_train_images, num_test_images (0 = all), heldout_pixel_fraction
  and seed. Training batches draw random images and random observed pixels
  (`sample_batch`).
  """
  fraction = data_config.heldout_pixel_fraction
  if not 0 < fraction < 1:
    raise ConfigError(f"config.data.heldout_pixel_fraction must be in (0, 1), got {fraction!r}")
  load = lambda split, count: images_lib.load_images(  # pylint: disable=unnecessary-lambda-assignment
      data_config.source, split=split, max_examples=count or None)
  train_images = load("train", data_config.num_train_images)
  test_images = load("test", data_config.num_test_images)
  if train_images.shape[-1] != 1:
    raise ConfigError(f"config.data.source={data_config.source!r} has colour images "
                      f"{train_images.shape[1:]}; images as functions takes grey digits")
  num_pixels = train_images.shape[1] * train_images.shape[2]
  heldout = heldout_mask(num_pixels, fraction=fraction, seed=data_config.seed)
  observed = ~heldout
  every = np.ones(num_pixels, bool)
  return Dataset(
      train=image_split(train_images, observed=observed, points=observed),
      test=image_split(test_images, observed=observed, points=every),
      extra_eval={"heldout_pixels": image_split(train_images, observed=observed,
                                                points=heldout)},
      task="regression", output_dim=1)
