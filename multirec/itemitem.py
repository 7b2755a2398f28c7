"""Full-rank item-item weights (EASE, Steck 2019) for the warm part of the catalogue.

    W = I - P · diag(1 / diag(P)),   P = (XᵀX + λI)⁻¹,   diag(W) = 0

`user_history @ W` scores every item from the items a user consumed; the network adds it,
scaled by a learned weight, to the two-tower logit. The closed form costs one n_items ×
n_items inverse, so it is used for catalogues up to a few thousand items ("auto").
λ is chosen on the validation interactions (never the test set).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch

from .training import _ndcg

__all__ = ["ease_weights", "select_l2", "AUTO_MAX_ITEMS", "DEFAULT_L2_GRID", "ITEM_ITEM_SCALES"]

AUTO_MAX_ITEMS = 6000  # item_item="auto" enables the term up to this many items (W: n² floats)
# multipliers of the learned item-item weight tried on validation after training (0: off)
ITEM_ITEM_SCALES = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
DEFAULT_L2_GRID = (25.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0)


def _gram(x: sp.csr_matrix) -> np.ndarray:  # (n, n) float64
    x = sp.csr_matrix(x, dtype=np.float64)
    x.data[:] = 1.0
    return (x.T @ x).toarray()


def ease_weights(x: sp.csr_matrix, l2: float, gram: np.ndarray | None = None) -> torch.Tensor:
    """EASE weights `W (n_items, n_items)` (float32, zero diagonal) from binary interactions."""
    if l2 <= 0:
        raise ValueError(f"item_item_l2 must be > 0, got {l2!r}")
    g = (_gram(x) if gram is None else gram).copy()
    g[np.diag_indices_from(g)] += l2
    p = np.linalg.inv(g)
    w = -p / np.diag(p)
    np.fill_diagonal(w, 0.0)
    return torch.from_numpy(w.astype(np.float32))


def select_l2(train: sp.csr_matrix, valid: sp.csr_matrix, grid: Sequence[float] = DEFAULT_L2_GRID,
              k: int = 10) -> float:
    """The λ in `grid` whose EASE weights (fit on `train`) rank `valid` best (NDCG@k)."""
    users = np.flatnonzero(np.diff(valid.indptr))
    if users.size == 0:
        return float(np.median(grid))
    gram = _gram(train)
    hist = sp.csr_matrix(train[users], dtype=np.float32)
    hist.data[:] = 1.0
    k = min(k, train.shape[1] - 1)
    best, best_score = float(grid[0]), -np.inf
    for l2 in grid:
        scores = torch.from_numpy(np.asarray(hist @ ease_weights(train, l2, gram).numpy()))
        scores[hist.nonzero()] = -np.inf  # (U, n_items), training items masked
        total, n = _ndcg(scores, valid[users], k)
        score = total / max(n, 1)
        if score > best_score:
            best, best_score = float(l2), score
    return best
