"""Full-ranking metrics@k, vectorised over users.

Every catalogue item (or only `candidates`) is ranked for each user; items in `exclude`
(the user's training items) are removed first. Relevance is binary. Definitions:

    precision@k = hits / k             recall@k = hits / |rel|
    ndcg@k      = DCG / IDCG, IDCG over min(k, |rel|) relevant items, gains 1/log2(rank+1)
    map@k       = Σ_{i≤k} P@i·rel_i / min(k, |rel|)
    hit_rate@k  = 1 if any hit         mrr@k = 1 / rank of the first hit (0 if none)
    auc         = P(score(relevant) > score(irrelevant)) over all unmasked candidates
                  (ties count 1/2)

Users without relevant items are skipped. Ties in scores are broken by item index.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata

from .errors import DataError

__all__ = ["ranking_metrics", "coverage", "METRICS"]

METRICS = ("precision", "recall", "ndcg", "map", "hit_rate", "mrr", "auc")


def _prepare(scores: np.ndarray, exclude: sp.csr_matrix | None, candidates: np.ndarray | None
             ) -> np.ndarray:
    s = np.array(scores, dtype=np.float64, copy=True)
    if s.ndim != 2:
        raise DataError(f"scores must be 2-D (users, items), got shape {s.shape}")
    if np.isnan(s).any():
        raise DataError("scores contain NaN; the model produced invalid scores")
    if candidates is not None:
        keep = np.zeros(s.shape[1], dtype=bool)
        keep[np.asarray(candidates, dtype=np.int64)] = True
        s[:, ~keep] = -np.inf
    if exclude is not None and exclude.nnz:
        r, c = sp.csr_matrix(exclude).nonzero()
        s[r, c] = -np.inf
    return s


def ranking_metrics(
    scores: np.ndarray,  # (U, n_items)
    test: sp.csr_matrix,  # (U, n_items) relevant items
    k: int = 10,
    exclude: sp.csr_matrix | None = None,  # (U, n_items) items removed from the ranking
    candidates: np.ndarray | None = None,  # item indices to rank (None: all)
) -> dict[str, np.ndarray]:
    """Per-user metric arrays (only users with ≥1 relevant, rankable item), plus `users`."""
    if k < 1:
        raise DataError(f"k must be >= 1, got {k}")
    test = sp.csr_matrix(test)
    if test.shape != np.shape(scores):
        raise DataError(f"test has shape {test.shape} but scores have shape {np.shape(scores)}")
    s = _prepare(scores, exclude, candidates)
    rel = (test > 0).toarray() & np.isfinite(s)  # (U, n): relevant and rankable
    n_rel = rel.sum(1)
    users = np.flatnonzero(n_rel > 0)
    s, rel, n_rel = s[users], rel[users], n_rel[users]
    kk = min(k, s.shape[1])
    # top-k by score desc, ties by item index asc
    part = np.argpartition(-s, kk - 1, axis=1)[:, :kk] if kk < s.shape[1] else \
        np.tile(np.arange(s.shape[1]), (len(s), 1))
    top_s = np.take_along_axis(s, part, 1)
    order = np.lexsort((part, -top_s))  # sorts the last axis
    top = np.take_along_axis(part, order, 1)
    top_s = np.take_along_axis(top_s, order, 1)
    # boundary ties: argpartition may pick any of equal-scored items; fix with a full sort
    kth = top_s[:, -1:]
    tied = ((s == kth).sum(1) > (top_s == kth).sum(1)) if kk < s.shape[1] else np.zeros(len(s), bool)
    for r in np.flatnonzero(tied):
        full = np.lexsort((np.arange(s.shape[1]), -s[r]))[:kk]
        top[r], top_s[r] = full, s[r, full]
    hits = np.take_along_axis(rel, top, 1) & np.isfinite(top_s)  # (U', k)
    disc = 1.0 / np.log2(np.arange(2, kk + 2))
    n_hits = hits.sum(1)
    ideal = np.cumsum(disc)[np.minimum(n_rel, kk) - 1]
    prec_at = np.cumsum(hits, 1) / np.arange(1, kk + 1)
    first = np.where(hits.any(1), hits.argmax(1) + 1, 0)
    out = {
        "users": users,
        "precision": n_hits / k,
        "recall": n_hits / n_rel,
        "ndcg": (hits * disc).sum(1) / ideal,
        "map": (prec_at * hits).sum(1) / np.minimum(n_rel, k),
        "hit_rate": (n_hits > 0).astype(np.float64),
        "mrr": np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0),
    }
    out["auc"] = _auc(s, rel)
    return out


def _auc(s: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """Per-user ROC AUC over finite-scored items (Mann–Whitney U, ties = 1/2)."""
    auc = np.full(len(s), np.nan)
    for r in range(len(s)):
        ok = np.isfinite(s[r])
        pos = rel[r] & ok
        n_pos, n_neg = int(pos.sum()), int(ok.sum() - pos.sum())
        if n_pos == 0 or n_neg == 0:
            continue
        ranks = rankdata(s[r, ok])
        auc[r] = (ranks[pos[ok]].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return auc


def coverage(top_items: np.ndarray, n_items: int) -> float:
    """Fraction of the catalogue that appears in at least one top-k list (-1 = padding)."""
    items = np.asarray(top_items).ravel()
    return float(np.unique(items[items >= 0]).size / max(n_items, 1))
