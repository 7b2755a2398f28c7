"""Fusion of per-source item vectors (CF factor, text, image, audio, ...) into one `h_i`.

Every strategy takes the projected sources stacked as `x (B, S, d)` and a presence mask
`mask (B, S)` (False where an item lacks that source: a cold item has no CF factor, an item
without a thumbnail has no image) and returns `(B, d)`. Missing sources never contribute.

    sum     masked sum of the sources (each source keeps its own scale)
    concat  zero-filled concatenation + presence flags → 2-layer MLP
    gated   learned per-item weights, softmax over the *present* sources only

`modality_dropout` hides random present sources during training so that an item missing
a source at serving time (cold items: no CF) still gets a good representation.
"""

from __future__ import annotations

import torch
from torch import nn

from .errors import ConfigError

__all__ = ["FUSIONS", "Fusion", "SumFusion", "ConcatFusion", "GatedFusion", "make_fusion",
           "modality_dropout"]


class Fusion(nn.Module):
    """Base class: `forward(x (B, S, d), mask (B, S) bool) -> (B, d)`."""

    def __init__(self, n_sources: int, dim: int) -> None:
        super().__init__()
        self.n_sources, self.dim = n_sources, dim

    def weights(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, S)
        """Weight of each source in the output (for explanations); masked sources get 0."""
        return mask.to(x.dtype)


class SumFusion(Fusion):
    """Masked sum: `h = Σ_s mask_s · x_s`."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, d)
        return (x * mask.unsqueeze(-1).to(x.dtype)).sum(dim=1)


class ConcatFusion(Fusion):
    """Concatenate zero-filled sources and their presence flags, then a 2-layer MLP."""

    def __init__(self, n_sources: int, dim: int, hidden: int | None = None) -> None:
        super().__init__(n_sources, dim)
        hidden = hidden or 2 * dim
        self.mlp = nn.Sequential(
            nn.Linear(n_sources * (dim + 1), hidden), nn.GELU(), nn.Linear(hidden, dim)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, d)
        m = mask.to(x.dtype)  # (B, S)
        flat = torch.cat([(x * m.unsqueeze(-1)).flatten(1), m], dim=1)  # (B, S*(d+1))
        return self.mlp(flat)


class GatedFusion(Fusion):
    """Per-item attention over present sources: `h = S_present · Σ_s softmax(g_s(x_s)) x_s`.

    Scaling by the number of present sources keeps the output on the scale of `sum` fusion.
    """

    def __init__(self, n_sources: int, dim: int) -> None:
        super().__init__(n_sources, dim)
        self.gate = nn.Parameter(torch.zeros(n_sources, dim))  # per-source gate vector
        self.gate_bias = nn.Parameter(torch.zeros(n_sources))

    def weights(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, S)
        logits = (x * self.gate).sum(-1) + self.gate_bias  # (B, S)
        logits = logits.masked_fill(~mask, float("-inf"))
        w = torch.softmax(logits, dim=1).nan_to_num(0.0)  # rows with no source → 0
        return w * mask.sum(1, keepdim=True).to(x.dtype)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # (B, d)
        return (self.weights(x, mask).unsqueeze(-1) * x).sum(dim=1)


FUSIONS: dict[str, type[Fusion]] = {"sum": SumFusion, "concat": ConcatFusion, "gated": GatedFusion}


def make_fusion(name: str, n_sources: int, dim: int) -> Fusion:
    """Build a fusion module by name ('sum', 'concat' or 'gated')."""
    if name not in FUSIONS:
        raise ConfigError(f"unknown fusion {name!r}; choose one of {sorted(FUSIONS)}")
    return FUSIONS[name](n_sources, dim)


def modality_dropout(
    mask: torch.Tensor, p: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:  # (B, S) bool
    """Hide each present source with probability `p[s]`, keeping at least one per item.

    `mask (B, S)` is the presence mask and `p (S,)` the per-source drop probabilities.
    """
    drop = torch.rand(mask.shape, generator=generator, device=mask.device) < p  # (B, S)
    kept = mask & ~drop
    # Items that would lose every source keep their original sources.
    empty = ~kept.any(dim=1, keepdim=True)
    return torch.where(empty, mask, kept)
