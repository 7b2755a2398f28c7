"""Item content → frozen embedding matrices, through `encoders` (batched, cached, streamed)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from encoders import Encoder, get_encoder
from encoders.errors import EncoderInputError

from .errors import ConfigError, DataError

__all__ = ["resolve_encoder", "resolve_encoders", "encode_content"]


def resolve_encoder(spec: Any, modality: str) -> Encoder:
    """An `Encoder` from an instance, a registered name, or a `to_config()` dict."""
    if isinstance(spec, Encoder):
        return spec
    if isinstance(spec, str):
        return get_encoder(spec)
    if isinstance(spec, Mapping):
        return Encoder.from_config(dict(spec))
    raise ConfigError(
        f"encoder for modality {modality!r} must be an encoders.Encoder, a registered name "
        f"(see encoders.list_encoders()) or a config dict; got {type(spec).__name__}"
    )


def resolve_encoders(specs: Mapping[str, Any] | None) -> dict[str, Encoder]:
    """Resolve `{modality: Encoder | name | config}` to built encoders."""
    if specs is None:
        return {}
    if not isinstance(specs, Mapping):
        raise ConfigError(
            "encoders must be a dict {modality: encoder}, e.g. {'text': 'text-hash'}; "
            f"got {type(specs).__name__}"
        )
    return {str(m): resolve_encoder(s, m) for m, s in specs.items()}


def encode_content(
    encoder: Encoder,
    raw: Sequence[Any],
    *,
    batch_size: int = 32,
    cache: str | os.PathLike | None = None,
    show_progress: bool = True,
    modality: str = "",
    on_error: str = "raise",
    failed: list[int] | None = None,
    ids: Sequence[Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:  # (n, dim) float32, (n,) bool
    """Encode the present entries of `raw` (None = missing); missing rows are zeros.

    `on_error="skip"`: an entry the encoder cannot read (`EncoderInputError`: unreadable
    image/audio file, wrong type) is treated as missing and its position appended to
    `failed`; `"raise"` (default) re-raises with the position in the message.
    """
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    present = np.array([x is not None for x in raw], dtype=bool)
    out = torch.zeros(len(raw), encoder.dim)
    idx = np.flatnonzero(present)
    if idx.size:
        try:
            vecs = encoder.encode_all([raw[i] for i in idx], batch_size, cache=cache,
                                      show_progress=show_progress)
        except EncoderInputError:
            if on_error == "raise":
                _raise_first_bad(encoder, raw, idx, modality, ids)
                raise
            vecs, idx = _encode_skipping(encoder, raw, idx, cache, failed)
        _check_vectors(vecs, idx.size, encoder, modality)
        out[torch.from_numpy(idx)] = vecs
        present[:] = False
        present[idx] = True
    return out, torch.from_numpy(present)


def _check_vectors(vecs: torch.Tensor, n: int, encoder: Encoder, modality: str) -> None:
    if vecs.shape != (n, encoder.dim):
        raise DataError(f"encoder for {modality!r} returned {tuple(vecs.shape)} vectors for "
                        f"{n} items; expected ({n}, {encoder.dim})")
    if not torch.isfinite(vecs).all():
        bad = int((~torch.isfinite(vecs)).any(1).sum())
        raise DataError(f"encoder for {modality!r} produced NaN/inf for {bad} items; check "
                        "the content (empty files, silent audio) or the encoder weights")


def _raise_first_bad(encoder: Encoder, raw: Sequence[Any], idx: np.ndarray, modality: str,
                     ids: Sequence[Any] | None) -> None:
    """Find the first unreadable entry and raise naming its position and value."""
    for i in idx:
        try:
            encoder.encode([raw[i]])
        except EncoderInputError as exc:
            who = f"item {ids[int(i)]!r}" if ids is not None else f"item #{int(i)}"
            raise EncoderInputError(
                f"{modality!r} content of {who} ({str(raw[i])[:120]!r}) cannot be read: "
                f"{exc}; fix or drop it, or pass on_error='skip' to treat it as missing") from exc


def _encode_skipping(encoder: Encoder, raw: Sequence[Any], idx: np.ndarray, cache: Any,
                     failed: list[int] | None) -> tuple[torch.Tensor, np.ndarray]:
    """Encode entry by entry, leaving out the unreadable ones (their positions → `failed`)."""
    good, vecs = [], []
    for i in idx:
        try:
            vecs.append(encoder.encode_all([raw[i]], 1, cache=cache, show_progress=False))
            good.append(int(i))
        except EncoderInputError:
            if failed is not None:
                failed.append(int(i))
    if not vecs:
        return torch.zeros(0, encoder.dim), np.zeros(0, np.int64)
    return torch.cat(vecs), np.asarray(good, np.int64)
