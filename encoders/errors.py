"""Exceptions raised by the `encoders` package.

Every error subclasses a builtin (ValueError, KeyError, ImportError, RuntimeError) so callers
that already catch those keep working, and every message names the bad value and the fix.
"""

from __future__ import annotations


class EncoderError(Exception):
    """Base class of all errors raised by `encoders`."""


class MissingBackendError(EncoderError, ImportError):
    """An optional backend (transformers, open_clip, torchaudio, soundfile, ...) is absent."""

    def __init__(self, package: str, extra: str, what: str = "") -> None:
        self.package, self.extra = package, extra
        purpose = f" for {what}" if what else ""
        super().__init__(
            f"{package!r} is needed{purpose} but is not installed. "
            f"Install it with: pip install 'multirec[{extra}]'"
        )


class UnknownEncoderError(EncoderError, KeyError):
    """`get_encoder` was given a name that is not registered."""

    def __str__(self) -> str:  # KeyError would repr() the message; keep it readable
        return str(self.args[0]) if self.args else ""


class EncoderInputError(EncoderError, ValueError):
    """Raw content an encoder cannot read (wrong type, unreadable file, empty batch, ...)."""


class EncoderConfigError(EncoderError, ValueError):
    """An encoder config that cannot be built (unknown option, bad value, mismatched dims)."""


class CacheError(EncoderError, RuntimeError):
    """The embedding cache cannot be used (unwritable directory, dimension mismatch)."""
