"""Item content → frozen embedding matrices, through `encoders` (batched, cached, streamed)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from encoders import Encoder, get_encoder

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
) -> tuple[torch.Tensor, torch.Tensor]:  # (n, dim) float32, (n,) bool
    """Encode the present entries of `raw` (None = missing); missing rows are zeros."""
    present = np.array([x is not None for x in raw], dtype=bool)
    out = torch.zeros(len(raw), encoder.dim)
    idx = np.flatnonzero(present)
    if idx.size:
        vecs = encoder.encode_all([raw[i] for i in idx], batch_size, cache=cache,
                                  show_progress=show_progress)
        if vecs.shape != (idx.size, encoder.dim):
            raise DataError(f"encoder for {modality!r} returned {tuple(vecs.shape)} vectors for "
                            f"{idx.size} items; expected ({idx.size}, {encoder.dim})")
        if not torch.isfinite(vecs).all():
            bad = int((~torch.isfinite(vecs)).any(1).sum())
            raise DataError(f"encoder for {modality!r} produced NaN/inf for {bad} items; check "
                            "the content (empty files, silent audio) or the encoder weights")
        out[torch.from_numpy(idx)] = vecs
    return out, torch.from_numpy(present)
