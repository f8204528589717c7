"""Errors that the launchers turn into one clear line (no traceback)."""


class HypernetsError(Exception):
  """Base class: a problem the user can fix (bad config, bad workdir, bad data)."""


class ConfigError(HypernetsError, ValueError):
  """A config field is missing, of the wrong type or out of range."""


class WorkdirError(HypernetsError):
  """The workdir cannot be written or holds an incompatible run."""


class TrainingDivergedError(HypernetsError, FloatingPointError):
  """The loss became NaN or infinite; the last good checkpoint is kept."""


class DatasetNotFoundError(HypernetsError, FileNotFoundError):
  """A dataset is not where the config says; the message says where to put it."""


class PreemptedError(HypernetsError):
  """SIGTERM or SIGINT arrived: the loop checkpointed the step it reached and stopped.

  Launchers exit with `EXIT_CODE` (75, EX_TEMPFAIL: "try again"); rerunning the same
  command resumes from that checkpoint, bit-identically.
  """

  EXIT_CODE = 75
