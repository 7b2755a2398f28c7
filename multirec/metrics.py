"""Full-ranking metrics@k from a score matrix, vectorised over users (numpy only).

For each user every catalogue item (or only `candidates`) is ranked by score, after the
user's `exclude` items (typically the training items) are removed. Relevance is binary:
the user's test items that are still rankable ("rel" below). Definitions, per user:

    precision@k = hits@k / k
    recall@k    = hits@k / |rel|                     (standard recall, not hits / min(k, |rel|))
    ndcg@k      = DCG@k / IDCG@k, gains 1 / log2(rank + 1), IDCG over min(k, |rel|) hits
    map@k       = Σ_{i ≤ k} precision@i · rel_i / min(k, |rel|)
    hit_rate@k  = 1 if hits@k > 0 else 0
    mrr@k       = 1 / rank of the first hit in the top k (0 if none)
    auc         = P(score(relevant) > score(non-relevant)) over all rankable items, ties = 1/2
                  (NaN when every rankable item is relevant)

Ranking is by score descending, ties broken by a seeded random item order
(`multirec.ranking`, the same rule as `recommend`), never by item index.
Scores of -inf mean "not rankable" (like excluded items); NaN scores are an error.
Users without a rankable test item are left out of the result (see the `users` entry).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata

from .errors import DataError
from .ranking import check_k, masked_scores, topk

__all__ = ["METRICS", "ranking_metrics", "top_k", "coverage"]

METRICS = ("precision", "recall", "ndcg", "map", "hit_rate", "mrr", "auc")


def top_k(scores: np.ndarray, k: int, exclude: sp.spmatrix | None = None,
          candidates: np.ndarray | None = None) -> np.ndarray:
    """(U, min(k, n_items)) best item indices per row (best first; -1 where nothing is left)."""
    return topk(scores, k, exclude=exclude, candidates=candidates)[0]


def ranking_metrics(
    scores: np.ndarray,  # (U, n_items)
    test: sp.spmatrix,  # (U, n_items) relevant items (> 0)
    k: int = 10,
    exclude: sp.spmatrix | None = None,  # (U, n_items) items removed from the ranking
    candidates: np.ndarray | None = None,  # item indices to rank (None: all items)
    *,
    return_topk: bool = False,
) -> dict[str, np.ndarray]:
    """Per-user metric arrays over the users with ≥ 1 rankable test item.

    Returns {"users": (U',) row indices kept, "precision": (U',), "recall", "ndcg", "map",
    "hit_rate", "mrr", "auc"}, plus "topk" (U', min(k, n_items)) if `return_topk`.
    """
    k = check_k(k)
    if not sp.issparse(test):
        raise DataError(f"test must be a scipy.sparse matrix of relevant items, got {type(test).__name__}")
    if test.shape != np.shape(scores):
        raise DataError(f"test has shape {test.shape} but scores have shape {np.shape(scores)}; "
                        "both must be (users, items) over the same catalogue")
    s = masked_scores(scores, exclude, candidates)
    rankable = s > -np.inf  # (U, n)
    rel = (sp.csr_matrix(test) > 0).toarray() & rankable  # (U, n) relevant and rankable
    n_rel = rel.sum(1)
    users = np.flatnonzero(n_rel > 0)
    s, rel, rankable, n_rel = s[users], rel[users], rankable[users], n_rel[users]
    top = topk(s, k, masked=True)[0]  # (U', kk)
    kk = top.shape[1]
    hits = np.take_along_axis(rel, np.maximum(top, 0), 1) & (top >= 0)  # (U', kk)
    n_hits = hits.sum(1)
    disc = 1.0 / np.log2(np.arange(2, kk + 2))  # (kk,)
    ideal = np.cumsum(disc)[np.minimum(n_rel, kk) - 1]
    prec_at = np.cumsum(hits, 1) / np.arange(1, kk + 1)  # (U', kk) precision@i
    first = np.where(hits.any(1), hits.argmax(1) + 1, 0)
    out = {
        "users": users,
        "precision": n_hits / k,
        "recall": n_hits / n_rel,
        "ndcg": (hits * disc).sum(1) / ideal,
        "map": (prec_at * hits).sum(1) / np.minimum(n_rel, k),
        "hit_rate": (n_hits > 0).astype(np.float64),
        "mrr": np.where(first > 0, 1.0 / np.maximum(first, 1), 0.0),
        "auc": _auc(s, rel, rankable),
    }
    if return_topk:
        out["topk"] = top
    return out


def _auc(s: np.ndarray, rel: np.ndarray, rankable: np.ndarray) -> np.ndarray:
    """(U,) ROC AUC over rankable items (Mann–Whitney U with average ranks; NaN if no negative)."""
    if s.shape[0] == 0:
        return np.zeros(0)
    ranks = rankdata(s, axis=1)  # (U, n) average ranks; the -inf items share the lowest ranks
    n_out = (~rankable).sum(1)  # every rankable item sits above all -inf items
    n_pos = rel.sum(1)
    n_neg = rankable.sum(1) - n_pos
    rank_sum = np.where(rel, ranks, 0.0).sum(1) - n_out * n_pos  # ranks among rankable items
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return np.where(n_neg > 0, auc, np.nan)


def coverage(topk_items: np.ndarray, n_items: int) -> float:
    """Fraction of the `n_items` catalogue appearing in at least one top-k list (-1 = padding)."""
    if isinstance(n_items, bool) or not isinstance(n_items, (int, np.integer)) or n_items < 1:
        raise DataError(f"n_items must be an integer >= 1, got {n_items!r}")
    items = np.asarray(topk_items).ravel()
    items = items[items >= 0]
    if items.size and items.max() >= n_items:
        raise DataError(f"item index {int(items.max())} is out of range for n_items={n_items}")
    return float(np.unique(items).size / n_items)
