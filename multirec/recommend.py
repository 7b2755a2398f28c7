"""Exact top-n recommendation over the whole catalogue, in bounded memory.

`exact_top` scores blocks of users (`scoring.logits_batch_size`: about 16 MB of logits at a
time), masks their seen items, and ranks with `multirec.ranking.topk` (one tie rule);
users unknown to the model are served by fold-in from the histories given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from .catalogue import history_matrix, ids_with_pad
from .ranking import topk
from .scoring import logits_batch_size

__all__ = ["exact_top"]


def exact_top(model: Any, raw: list[Any], n: int, filter_seen: bool, cand: np.ndarray | None,
              history: Mapping[Any, Sequence[Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-n over blocks of users (memory: one block × catalogue at a time)."""
    known = np.array([u not in history for u in raw], dtype=bool)
    uidx = np.zeros(len(raw), np.int64)
    if known.any():
        uidx[known] = model.user_map_.index([u for u, k in zip(raw, known) if k])
    ids, scores = [], []
    block = logits_batch_size(model.network.n_items)
    for s in range(0, len(raw), block):
        rows = np.arange(s, min(s + block, len(raw)))
        k = known[rows]
        old = model.user_items_[uidx[rows[k]]]
        new = history_matrix(model, [history[raw[r]] for r in rows[~k]])
        logits = np.empty((rows.size, model.network.n_items), np.float32)
        if k.any():
            logits[k] = model.scorer_.logits(uidx[rows[k]], old).cpu().numpy()
        if (~k).any():
            logits[~k] = model.scorer_.logits(None, new).cpu().numpy()
        seen = sp.vstack([old, new]).tocsr()[np.argsort(np.concatenate([rows[k], rows[~k]]))]
        idx, val = topk(logits, n, exclude=seen if filter_seen else None, candidates=cand)
        ids.append(ids_with_pad(model.item_map_, idx))
        scores.append(np.where(np.isfinite(val), 1.0 / (1.0 + np.exp(-val)), np.nan))
    return np.concatenate(ids), np.concatenate(scores)
