"""Name → encoder class registry: `@register_encoder`, `get_encoder`, `list_encoders`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from .base import Encoder
from .errors import EncoderConfigError, UnknownEncoderError

__all__ = ["register_encoder", "get_encoder", "get_encoder_class", "list_encoders"]

_REGISTRY: dict[str, type[Encoder]] = {}
E = TypeVar("E", bound=type[Encoder])


def register_encoder(name: str, *, exist_ok: bool = False) -> Callable[[E], E]:
    """Class decorator that makes an `Encoder` subclass available as `get_encoder(name)`.

    Registering a name that is taken by another class raises, unless `exist_ok=True`
    (which replaces it).
    """
    if not isinstance(name, str) or not name.strip():
        raise EncoderConfigError(f"encoder name must be a non-empty string, got {name!r}")

    def decorator(cls: E) -> E:
        if not (isinstance(cls, type) and issubclass(cls, Encoder)):
            raise EncoderConfigError(
                f"@register_encoder({name!r}) must decorate an Encoder subclass, got {cls!r}"
            )
        taken = _REGISTRY.get(name)
        if taken is not None and taken is not cls and not exist_ok:
            raise EncoderConfigError(
                f"encoder name {name!r} is already registered to {taken.__module__}."
                f"{taken.__qualname__}; pick another name or pass exist_ok=True to replace it"
            )
        cls.registry_name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def get_encoder_class(name: str) -> type[Encoder]:
    """The class registered under `name`; unknown names raise with the list of known ones."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownEncoderError(
            f"unknown encoder {name!r}; registered encoders: {', '.join(list_encoders())}. "
            "Register your own with @encoders.register_encoder(name)."
        ) from None


def get_encoder(name: str, **kwargs: Any) -> Encoder:
    """Build the encoder registered under `name` with constructor `kwargs`."""
    return get_encoder_class(name)(**kwargs)


def list_encoders() -> list[str]:
    """Sorted names of all registered encoders."""
    return sorted(_REGISTRY)
