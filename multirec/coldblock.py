"""Cold items searched exactly beside a FAISS index of narrower vectors.

A model with content neighbours (`multirec.neighbours`) scores its cold items with R more
query columns than its warm ones (the pooled content vector of the history); for a warm
item those columns are 0. Indexing every item at full width would make each of the N
stored vectors R floats wider (R = 64 + 384 with side features and MiniLM) for the few
items that use them. `multirec.index.ItemIndex` therefore keeps, when the cold items are
few, the FAISS index at the narrow width (the columns `base`, every item, the cold ones
filtered out of its results) and this block: the cold items' full vectors, scored exactly
for every query and merged with the index's results.

    >>> block = ColdBlock.split(x, extra=slice(70, 518))    # None: nothing to split off
    >>> idx, val = block.top(q, n, exclude)                 # exact top-n of the cold items
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from .ranking import topk

__all__ = ["ColdBlock", "COLD_EXACT_MAX", "merge_top", "pad_results"]

# at most this many cold items (and at most half the catalogue) are split off; each query
# scores them all exactly (50,000 × 450 floats ≈ 10 ms on one core)
COLD_EXACT_MAX = 50_000


@dataclass
class ColdBlock:
    """The cold items' full vectors and the query columns the FAISS index holds."""

    rows: np.ndarray  # (C,) int64 sorted item indices
    vectors: np.ndarray  # (C, D) float32 their full vectors (the query space)
    base: np.ndarray  # (D_b,) int64 sorted columns of the query space that FAISS indexes

    @classmethod
    def split(cls, x: np.ndarray, extra: slice | None, *,
              max_rows: int = COLD_EXACT_MAX) -> ColdBlock | None:
        """The block for item vectors `x` (N, D) whose columns `extra` are nonzero only for
        cold items; None when there is nothing to split off (no extra columns, no cold item)
        or too many cold items (more than `max_rows` or half the items: one full-width
        index is then cheaper)."""
        if extra is None:
            return None
        cols = np.arange(x.shape[1])[extra]
        if cols.size == 0:
            return None
        rows = np.flatnonzero(np.any(x[:, cols] != 0, axis=1))
        if rows.size == 0 or rows.size > max_rows or 2 * rows.size > x.shape[0]:
            return None
        base = np.setdiff1d(np.arange(x.shape[1]), cols)
        return cls(rows=rows.astype(np.int64), vectors=np.ascontiguousarray(x[rows], np.float32),
                   base=base.astype(np.int64))

    @property
    def dim(self) -> int:
        """Full width D (the query vectors')."""
        return int(self.vectors.shape[1])

    def narrow(self, x: np.ndarray) -> np.ndarray:  # (M, D) → (M, D_b) float32
        """The columns of `x` that the FAISS index holds."""
        return np.ascontiguousarray(x[:, self.base], dtype=np.float32)

    def top(self, q: np.ndarray, n: int, exclude: sp.csr_matrix | None = None
            ) -> tuple[np.ndarray, np.ndarray]:  # (B, n) int64 item indices, (B, n) float64
        """Exact top-`n` of the cold items by `⟨q, x_i⟩` for queries `q` (B, D), without the
        items `exclude` (B, n_items) marks; padded with -1 / -inf."""
        scores = q.astype(np.float64) @ self.vectors.astype(np.float64).T  # (B, C)
        sub = None if exclude is None else sp.csr_matrix(exclude)[:, self.rows]
        pos, val = topk(scores, min(n, self.rows.size), exclude=sub)
        idx = np.where(pos >= 0, self.rows[np.maximum(pos, 0)], -1)
        return pad_results(idx, val, n)

    def selector(self, faiss: Any) -> Any:
        """A FAISS `IDSelector` of every item but these (it holds the inner selector it
        negates; keep a reference to it while it is used)."""
        inner = faiss.IDSelectorBatch(self.rows.size, faiss.swig_ptr(self.rows))  # copies the ids
        outer = faiss.IDSelectorNot(inner)
        outer.referenced_objects = [inner]  # the C++ object points to `inner`
        return outer


def merge_top(idx_a: np.ndarray, val_a: np.ndarray, idx_b: np.ndarray, val_b: np.ndarray,
              n: int) -> tuple[np.ndarray, np.ndarray]:  # (B, n), (B, n)
    """The best `n` of two (B, ·) result lists of disjoint items, best first (-1 / -inf pads)."""
    idx = np.concatenate([idx_a, idx_b], axis=1)
    val = np.concatenate([val_a, val_b], axis=1).astype(np.float64)
    val = np.where(idx >= 0, val, -np.inf)
    order = np.argsort(-val, axis=1, kind="stable")[:, :n]
    top_idx, top_val = np.take_along_axis(idx, order, 1), np.take_along_axis(val, order, 1)
    return pad_results(np.where(np.isfinite(top_val), top_idx, -1), top_val, n)


def pad_results(idx: np.ndarray, val: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad (B, w) results to (B, n) with -1 / -inf."""
    extra = n - idx.shape[1]
    if extra <= 0:
        return idx, val
    return (np.pad(idx, ((0, 0), (0, extra)), constant_values=-1),
            np.pad(val, ((0, 0), (0, extra)), constant_values=-np.inf))
