"""Stopping cleanly on SIGTERM / SIGINT (a spot VM's or Slurm's termination notice).

`StopRequests` turns the signals into a flag that the loop reads between calls of
the compiled step, so the step in flight finishes, a checkpoint of exactly the
step reached is written and metrics are flushed before the process exits (the
launchers exit with status 75: rerun to resume). A second SIGINT falls back to
Python's default (KeyboardInterrupt), so Ctrl-C twice still stops at once.

With several processes, each one checks its own flag and all agree on the step to
stop at through one small collective per call (`multihost_utils.process_allgather`
of the flags): every process calls it at the same call boundary, so they stop
together even when only one of them received the signal.
"""

import signal
import threading

from absl import logging
import jax
import numpy as np

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequests:
  """Context manager: while active, SIGTERM / SIGINT set a flag instead of killing."""

  def __init__(self):
    self._requested = None
    self._previous = {}

  def __enter__(self) -> "StopRequests":
    self._requested = threading.Event()
    if threading.current_thread() is threading.main_thread():
      for sig in _SIGNALS:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    self._previous = {}

  def _handle(self, signum, frame) -> None:
    del frame
    logging.warning("Received %s: finishing the current step, then checkpointing and "
                    "stopping (rerun the same command to resume)",
                    signal.Signals(signum).name)
    self._requested.set()
    if signum == signal.SIGINT:  # a second Ctrl-C interrupts at once
      signal.signal(signal.SIGINT, signal.default_int_handler)

  def request(self) -> None:
    """Asks the loop to stop at the next call boundary (as a signal would)."""
    self._requested.set()

  def should_stop(self) -> bool:
    """Whether this process, or (multi-process) any process, was asked to stop.

    Every process must call this at the same point of the loop.
    """
    local = self._requested.is_set()
    if jax.process_count() == 1:
      return local
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    flags = multihost_utils.process_allgather(np.asarray([local], np.int32))
    return bool(np.any(flags))
