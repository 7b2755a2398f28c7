"""`Projection`: maps an encoder's output (in_dim) into the shared space (out_dim)."""

from __future__ import annotations

import torch
from torch import nn

from .errors import EncoderConfigError

__all__ = ["Projection"]


class Projection(nn.Module):
    """Linear + LayerNorm, or a 2-layer MLP (Linear → GELU → Dropout → Linear) + LayerNorm.

    Args:
        in_dim: encoder output size.
        out_dim: shared space size `d`.
        hidden: hidden width of the MLP; None gives a single linear layer.
        dropout: dropout on the input (and inside the MLP).
        norm: apply LayerNorm to the output.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int | None = None,
                 dropout: float = 0.0, norm: bool = True) -> None:
        super().__init__()
        for label, value in (("in_dim", in_dim), ("out_dim", out_dim)):
            if not isinstance(value, int) or value < 1:
                raise EncoderConfigError(f"Projection {label} must be a positive int, got {value!r}")
        if hidden is not None and (not isinstance(hidden, int) or hidden < 1):
            raise EncoderConfigError(f"Projection hidden must be a positive int or None, got {hidden!r}")
        if not 0.0 <= dropout < 1.0:
            raise EncoderConfigError(f"Projection dropout must be in [0, 1), got {dropout!r}")
        self.in_dim, self.out_dim, self.hidden = in_dim, out_dim, hidden
        self.dropout = nn.Dropout(dropout)
        if hidden is None:
            self.net: nn.Module = nn.Linear(in_dim, out_dim)
        else:
            self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                     nn.Linear(hidden, out_dim))
        self.norm = nn.LayerNorm(out_dim) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, in_dim) -> (B, out_dim)
        if x.shape[-1] != self.in_dim:
            raise EncoderConfigError(
                f"Projection expected inputs with last dimension {self.in_dim}, got "
                f"{tuple(x.shape)}; the encoder's dim does not match this projection"
            )
        return self.norm(self.net(self.dropout(x)))
