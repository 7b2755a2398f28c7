"""The one ranking kernel: masking, top-k with one tie rule, padding, NDCG@k.

Every ranking in multirec goes through here: `recommend`, the item index's exact rescoring,
validation NDCG during training, the item-item λ search, the baselines and `evaluate`.

Tie rule: items with equal scores are ordered by a seeded random permutation of the
catalogue (`tie_order(n, seed)`), the same for every user and every call with that seed.
A constant scorer therefore ranks items in random order — never by item index, which in
many data sets (ML-100K among them) correlates with popularity and would flatter it.

Scores of -inf mean "not rankable" (excluded / non-candidate items); such positions come
back as index -1 with score -inf. NaN scores are an error.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from .errors import DataError

__all__ = ["TIE_SEED", "tie_order", "check_k", "masked_scores", "topk", "ndcg_at_k",
           "stored_cells", "sample_target_rows"]

TIE_SEED = 0  # default seed of the tie-breaking permutation


def check_k(k: object, name: str = "k") -> int:
    """`k` as an int >= 1 (bools and floats are rejected)."""
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1:
        raise DataError(f"{name} must be an integer >= 1, got {k!r}")
    return int(k)


def tie_order(n: int, seed: int = TIE_SEED) -> np.ndarray:  # (n,) permutation of item indices
    """The order in which tied items are ranked: position p holds the item ranked p-th."""
    return np.random.default_rng([seed, n]).permutation(n)


def candidate_mask(candidates: np.ndarray, n_items: int) -> np.ndarray:  # (n_items,) bool
    """Boolean mask from item indices (or a boolean mask of shape (n_items,))."""
    c = np.asarray(candidates)
    if c.dtype == bool:
        if c.shape != (n_items,):
            raise DataError(f"a boolean candidates mask needs shape ({n_items},), got {c.shape}")
        mask = c
    else:
        if c.ndim != 1 or (c.size and not np.issubdtype(c.dtype, np.integer)):
            raise DataError(f"candidates must be a 1-D array of item indices, got shape {c.shape} "
                            f"dtype {c.dtype}")
        if c.size and (c.min() < 0 or c.max() >= n_items):
            bad = c[(c < 0) | (c >= n_items)][0]
            raise DataError(f"candidate item index {bad} is out of range 0..{n_items - 1}")
        mask = np.zeros(n_items, dtype=bool)
        mask[c] = True
    if not mask.any():
        raise DataError("candidates is empty; pass at least one item index (or None for all items)")
    return mask


def masked_scores(scores: np.ndarray, exclude: sp.spmatrix | None = None,
                  candidates: np.ndarray | None = None, *,
                  dtype: type = np.float64) -> np.ndarray:  # (U, n) of `dtype`
    """Copy of `scores` with excluded and non-candidate items at -inf (NaN raises).

    `dtype=np.float32` keeps float32 scores in float32 (half the memory traffic for the
    ranking; the order is the same, float32 → float64 being exact)."""
    s = np.array(scores, dtype=dtype, copy=True)
    if s.ndim != 2:
        raise DataError(f"scores must be a 2-D (users, items) array, got shape {s.shape}")
    if np.isnan(s.sum()) and np.isnan(s).any():  # the sum is NaN whenever an entry is
        r, c = np.argwhere(np.isnan(s))[0]
        raise DataError(f"scores contain {int(np.isnan(s).sum())} NaN value(s) (first at row {r}, "
                        f"item {c}); the model produced invalid scores")
    if candidates is not None:
        s[:, ~candidate_mask(candidates, s.shape[1])] = -np.inf
    if exclude is not None:
        if not sp.issparse(exclude) or exclude.shape != s.shape:
            raise DataError(f"exclude must be a sparse matrix of shape {s.shape} (users, items), got "
                            f"{type(exclude).__name__} of shape {getattr(exclude, 'shape', None)}")
        ex = sp.csr_matrix(exclude)
        r, c = ex.nonzero()
        s[r, c] = -np.inf
    return s


def _tie_rank(n: int, seed: int) -> np.ndarray:  # (n,) position of each item in the tie order
    rank = np.empty(n, np.int64)
    rank[tie_order(n, seed)] = np.arange(n)
    return rank


def topk(scores: np.ndarray, k: int, *, exclude: sp.spmatrix | None = None,
         candidates: np.ndarray | None = None, seed: int = TIE_SEED,
         masked: bool = False) -> tuple[np.ndarray, np.ndarray]:  # (U, k') int64, (U, k') float64
    """Best `k` items per row, best first: `(indices, scores)`, -1 / -inf where nothing is left.

    `k` is capped at the number of items. `masked=True` says `scores` already went through
    `masked_scores` (no copy, no checks). Cost: one partial sort of the best k + 1 per row
    (`torch.topk`: on one core half the time of `np.argpartition`); rows whose k-th score
    ties with the (k + 1)-th (rare for real models, every row for a constant scorer) are
    resolved exactly in the tie order, so which of the tied items `torch.topk` returned
    never matters.
    """
    k = check_k(k)
    s = scores if masked else masked_scores(scores, exclude, candidates)
    n_users, n = s.shape
    k = min(k, n)
    if n == 0:
        return np.zeros((n_users, 0), np.int64), np.zeros((n_users, 0))
    rank = _tie_rank(n, seed)
    if k == n:
        top = np.lexsort((np.broadcast_to(rank, s.shape), -s), axis=1)
    else:
        best_v, best_i = torch.topk(torch.from_numpy(s), k + 1, dim=1)  # (U, k + 1), best first
        top, best_v = best_i[:, :k].numpy(), best_v.numpy()  # top: (U, k)
        kth = best_v[:, k - 1:k]  # (U, 1) k-th largest score
        boundary = best_v[:, k] == best_v[:, k - 1]  # (U,) the k-th ties with an item left out
        for r in np.flatnonzero(boundary):
            row = s[r]
            above = np.flatnonzero(row > kth[r, 0])
            tied = np.flatnonzero(row == kth[r, 0])
            tied = tied[np.argsort(rank[tied], kind="stable")][: k - above.size]
            top[r] = np.concatenate([above, tied])
        order = np.lexsort((rank[top], -np.take_along_axis(s, top, 1)), axis=1)
        top = np.take_along_axis(top, order, 1)
    vals = np.take_along_axis(s, top, 1)
    return np.where(vals > -np.inf, top, -1), vals


def stored_cells(m: sp.spmatrix, cols: np.ndarray) -> np.ndarray:  # (U, k) bool
    """Whether each cell (r, cols[r, j]) is a stored entry of `m` (U, n) (explicit zeros
    included); negative columns (padding) are not. One sorted search over row · n + item
    keys, without a dense (U, n) array."""
    m = sp.csr_matrix(m)
    n = m.shape[1]
    keys = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr)) * n + m.indices
    if not m.has_sorted_indices:
        keys = np.sort(keys)
    if keys.size == 0:
        return np.zeros(cols.shape, dtype=bool)
    cells = np.arange(cols.shape[0], dtype=np.int64)[:, None] * n + np.maximum(cols, 0)
    at = np.minimum(np.searchsorted(keys, cells), keys.size - 1)
    return (keys[at] == cells) & (cols >= 0)


def ndcg_at_k(scores: np.ndarray, target: sp.spmatrix, k: int, *,
              exclude: sp.spmatrix | None = None, seed: int = TIE_SEED) -> tuple[float, int]:
    """Sum of NDCG@k over the rows with ≥ 1 rankable target item, and the number of such rows.

    The same definition as `multirec.metrics` (binary gains 1/log2(rank + 1), IDCG over
    min(k, |relevant|) hits); relevant items that are excluded do not count.
    """
    dtype = np.float32 if np.asarray(scores).dtype == np.float32 else np.float64
    s = masked_scores(scores, exclude, dtype=dtype)  # (U, n)
    top, _ = topk(s, k, seed=seed, masked=True)  # (U, kk)
    t = sp.csr_matrix(target, copy=True)
    t.sum_duplicates()
    t.eliminate_zeros()
    t_rows = np.repeat(np.arange(t.shape[0]), np.diff(t.indptr))  # (nnz,)
    ok = s[t_rows, t.indices] > -np.inf  # relevant: a target item that can be ranked
    n_rel = np.bincount(t_rows[ok], minlength=s.shape[0])  # (U,)
    keep = n_rel > 0
    if not keep.any():
        return 0.0, 0
    kk = top.shape[1]
    relevant = sp.csr_matrix((np.ones(int(ok.sum()), bool), t.indices[ok],
                              np.concatenate([[0], np.cumsum(n_rel)])), shape=t.shape)
    hits = stored_cells(relevant, top)  # (U, kk)
    disc = 1.0 / np.log2(np.arange(2, kk + 2))
    ideal = np.cumsum(disc)[np.minimum(n_rel[keep], kk) - 1]
    return float(((hits[keep] * disc).sum(1) / ideal).sum()), int(keep.sum())


def sample_target_rows(target: sp.csr_matrix, max_rows: int, seed: int) -> np.ndarray:  # (≤ max_rows,)
    """Rows of `target` with at least one item, at most `max_rows` of them (a seeded sample,
    sorted): the users that validation NDCG, the λ search and calibration look at."""
    rows = np.flatnonzero(np.diff(target.indptr))
    if rows.size > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_rows, replace=False))
    return rows
