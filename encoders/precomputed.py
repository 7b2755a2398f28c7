"""`precomputed`: items that already are vectors (your own embeddings, tabular features)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .base import Encoder
from .errors import EncoderInputError
from .registry import register_encoder

__all__ = ["PrecomputedEncoder"]


@register_encoder("precomputed")
class PrecomputedEncoder(Encoder):
    """Passes through 1-D float vectors of length `dim` (e.g. embeddings computed elsewhere).

        >>> enc = PrecomputedEncoder(dim=3)
        >>> enc.encode([np.ones(3), np.zeros(3)]).shape
        torch.Size([2, 3])
    """

    modality = "vector"

    def __init__(self, dim: int, normalize: bool = False) -> None:
        super().__init__()
        if not isinstance(dim, int) or dim < 1:
            raise EncoderInputError(f"dim must be a positive int, got {dim!r}")
        self.dim, self.normalize = dim, normalize

    def preprocess(self, raw_batch: Sequence[Any]) -> torch.Tensor:  # (B, dim)
        rows = []
        for pos, item in enumerate(raw_batch):
            arr = np.asarray(item.detach().cpu() if isinstance(item, torch.Tensor) else item,
                             dtype=np.float32)
            if arr.shape != (self.dim,):
                raise EncoderInputError(
                    f"precomputed item {pos} has shape {arr.shape}, expected ({self.dim},); "
                    f"pass 1-D vectors of length dim={self.dim}"
                )
            if not np.isfinite(arr).all():
                raise EncoderInputError(f"precomputed item {pos} contains NaN or inf")
            rows.append(arr)
        return torch.from_numpy(np.stack(rows))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:  # (B, dim)
        return torch.nn.functional.normalize(inputs, dim=1) if self.normalize else inputs
