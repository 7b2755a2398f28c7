"""`evaluate(model, split, k)`: one entry point for multirec models and baselines.

Any object with `fit(data)` and `score_users(users, history=None) -> (B, n_items)` scores
can be evaluated (see `Recommender`). Training (and fold-in) items are masked, every
candidate item is ranked, and the metrics of `multirec.metrics` are averaged over users.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

from .data import InteractionData
from .errors import DataError
from .metrics import METRICS, coverage, ranking_metrics
from .splits import Split

__all__ = ["Recommender", "evaluate"]


@runtime_checkable
class Recommender(Protocol):
    """What `evaluate` needs from a model."""

    def fit(self, data: InteractionData) -> Recommender: ...

    def score_users(self, users: np.ndarray, history: sp.csr_matrix | None = None
                    ) -> np.ndarray: ...  # (B, n_items)


def evaluate(model: Recommender, split: Split, k: int = 10, *, batch_size: int = 256,
             exclude_train: bool = True) -> dict[str, float]:
    """Mean metrics@k over test users with ≥1 relevant item (+ `n_users`, `coverage`)."""
    if not hasattr(model, "score_users"):
        raise DataError(f"{type(model).__name__} has no score_users(users, history=None) method")
    test = split.test.to_csr()
    train = split.train.to_csr()
    users = np.flatnonzero(np.diff(test.indptr))
    if users.size == 0:
        raise DataError("the split's test part has no interactions")
    sums = {m: 0.0 for m in METRICS}
    auc_n, n = 0, 0
    tops = []
    for s in range(0, users.size, batch_size):
        u = users[s:s + batch_size]
        history = split.fold_in[u] if split.fold_in is not None else None
        if split.kind == "cold_user":
            scores = model.score_users(u, history=history if history is not None
                                       else sp.csr_matrix((len(u), test.shape[1])))
            exclude = history
        else:
            scores = model.score_users(u)
            exclude = train[u] if exclude_train else None
        scores = np.asarray(scores, dtype=np.float64)
        res = ranking_metrics(scores, test[u], k, exclude=exclude, candidates=split.candidate_items)
        for m in METRICS:
            vals = res[m]
            if m == "auc":
                ok = ~np.isnan(vals)
                sums[m] += float(vals[ok].sum())
                auc_n += int(ok.sum())
            else:
                sums[m] += float(vals.sum())
        n += len(res["users"])
        tops.append(_topk_items(scores, exclude, split.candidate_items, k))
    out = {m: sums[m] / max(n, 1) for m in METRICS if m != "auc"}
    out["auc"] = sums["auc"] / max(auc_n, 1)
    out["n_users"] = float(n)
    tops = np.concatenate(tops)
    if split.candidate_items is None:
        out["coverage"] = coverage(tops, test.shape[1])
    else:  # fraction of the candidate items recommended at least once
        cand = np.asarray(split.candidate_items)
        out["coverage"] = float(np.isin(cand, tops).mean())
    return out


def _topk_items(scores: np.ndarray, exclude: sp.csr_matrix | None, candidates: np.ndarray | None,
                k: int) -> np.ndarray:
    s = scores.copy()
    if candidates is not None:
        keep = np.zeros(s.shape[1], bool)
        keep[candidates] = True
        s[:, ~keep] = -np.inf
    if exclude is not None and exclude.nnz:
        s[sp.csr_matrix(exclude).nonzero()] = -np.inf
    kk = min(k, s.shape[1])
    top = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
    return np.where(np.isfinite(np.take_along_axis(s, top, 1)), top, -1)
