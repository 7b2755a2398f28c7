"""`History`: what happened while a model trained (per-epoch logs, best epoch, timing)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["History"]


@dataclass
class History:
    """What happened during training."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = -math.inf
    stopped_early: bool = False
    interrupted: bool = False
    seconds: float = 0.0
    item_item_scale: float | None = None  # multiplier of the item-item weight set on validation
