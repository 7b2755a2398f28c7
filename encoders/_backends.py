"""Lazy imports of optional heavy backends with errors that name the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingBackendError

# module name -> (pip package, multirec extra)
_BACKENDS: dict[str, tuple[str, str]] = {
    "transformers": ("transformers", "text"),
    "open_clip": ("open_clip_torch", "image"),
    "PIL": ("pillow", "image"),
    "torchaudio": ("torchaudio", "audio"),
    "soundfile": ("soundfile", "audio"),
    "faiss": ("faiss-cpu", "ann"),
}


def require(module: str, what: str = "") -> ModuleType:
    """Import `module` or raise `MissingBackendError` naming the pip extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        root = module.split(".")[0]
        package, extra = _BACKENDS.get(root, (root, "all"))
        raise MissingBackendError(package, extra, what) from exc
