"""Losses and metrics for a batch of predictions [..., out] against targets."""

import jax
import jax.numpy as jnp
import optax

from hypernets.errors import ConfigError

TASKS = ("regression", "classification")


def mean_squared_error(predictions: jax.Array, targets: jax.Array) -> jax.Array:
  """Mean over every element of (predictions - targets)^2; shapes must match."""
  return jnp.mean(jnp.square(predictions - targets))


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy (log-softmax + NLL): logits [..., C], labels [...] int."""
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def error_rate(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Fraction of argmax(logits) != labels."""
  return jnp.mean(jnp.argmax(logits, axis=-1) != labels)


def loss_and_metrics(task: str, predictions: jax.Array,
                     targets: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Returns (scalar loss to minimise, dict of scalar metrics including the loss).

  The loss is named after what it is: 'mse' for regression, 'nll' for
  classification (which also reports 'error').
  """
  if task == "regression":
    loss = mean_squared_error(predictions, targets)
    return loss, {"mse": loss}
  if task == "classification":
    labels = jnp.reshape(targets, predictions.shape[:-1])
    loss = cross_entropy(predictions, labels)
    return loss, {"nll": loss, "error": error_rate(predictions, labels)}
  raise ConfigError(f"unknown task {task!r}; choose one of {TASKS}")
