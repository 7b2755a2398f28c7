"""Exceptions raised by `multirec`.

Each subclasses a builtin (ValueError, KeyError, RuntimeError) so existing `except` clauses
keep working; each message names the offending value and says what to do about it.
"""

from __future__ import annotations

from encoders.errors import (  # re-exported: content errors surface through multirec too
    EncoderConfigError,
    EncoderError,
    EncoderInputError,
    MissingBackendError,
)

__all__ = [
    "MultirecError", "DataError", "UnknownIDError", "ConfigError", "NotFittedError",
    "TrainingDivergedError", "ModelFileError", "DatasetError", "MissingBackendError",
    "EncoderError", "EncoderInputError", "EncoderConfigError",
]


class MultirecError(Exception):
    """Base class of all errors raised by `multirec`."""


class DataError(MultirecError, ValueError):
    """Interaction or content data that cannot be used (empty, NaN/inf, wrong shape, ...)."""


class UnknownIDError(MultirecError, KeyError):
    """A raw user or item ID that the model or data set does not know."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ConfigError(MultirecError, ValueError):
    """A hyper-parameter or option with an invalid value."""


class NotFittedError(MultirecError, RuntimeError):
    """A method that needs a trained model was called before `fit`."""


class TrainingDivergedError(MultirecError, RuntimeError):
    """The loss became NaN/inf; the model keeps the last good weights."""


class ModelFileError(MultirecError, ValueError):
    """A saved model directory that is missing, corrupt, truncated or of another format."""


class DatasetError(MultirecError, RuntimeError):
    """A data set that cannot be downloaded, verified or read."""
