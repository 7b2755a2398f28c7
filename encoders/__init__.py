"""encoders: pluggable content encoders (text, image, audio, or your own) → vectors.

Standalone: depends on torch only. Heavy backends (transformers, open_clip, torchaudio) are
imported when an encoder that needs them is built, so `import encoders` stays fast.

    >>> import encoders
    >>> encoders.list_encoders()            # doctest: +SKIP
    ['audio', 'image', 'text']
    >>> enc = encoders.get_encoder("text", model_name_or_path="bert-base-uncased")
"""

from . import audio, image, precomputed, simple, tags, text  # noqa: E402,F401  (register the built-in encoders)
from .base import Encoder, batched, content_hash
from .errors import (
    CacheError,
    EncoderConfigError,
    EncoderError,
    EncoderInputError,
    MissingBackendError,
    UnknownEncoderError,
)
from .packaged import is_packaged, packaged_reference, resolve_packaged
from .projection import Projection
from .registry import get_encoder, get_encoder_class, list_encoders, register_encoder

__all__ = [
    "Encoder", "Projection", "register_encoder", "get_encoder", "get_encoder_class",
    "list_encoders", "batched", "content_hash", "EncoderError", "MissingBackendError",
    "UnknownEncoderError", "EncoderInputError", "EncoderConfigError", "CacheError",
    "is_packaged", "packaged_reference", "resolve_packaged",
]
