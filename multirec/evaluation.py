"""`evaluate(model, split, k)`: one entry point for multirec models and baselines.

Any object with `fit(data)` and `score_users(users, history=None) -> (B, n_items)` scores
can be evaluated (see `Recommender`). For each test user every candidate item is ranked
(all items, or `split.candidate_items` for cold-item splits) after the user's training and
fold-in items are masked, and the metrics of `multirec.metrics` are averaged over users.

    model = LightFMRecommender().fit(split.train)
    evaluate(model, split, k=10)   # {"precision": .., "recall": .., "ndcg": .., ..., "n_users": ..}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

from .data import InteractionData
from .errors import DataError
from .metrics import METRICS, coverage, ranking_metrics
from .splits import Split

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["Recommender", "evaluate"]


@runtime_checkable
class Recommender(Protocol):
    """What `evaluate` needs from a model."""

    def fit(self, data: InteractionData) -> Self:
        """Train on `data` (user and item indices as in `data`'s ID maps)."""
        ...

    def score_users(self, users: np.ndarray, history: sp.csr_matrix | None = None) -> np.ndarray:
        """(B, n_items) scores for user indices `users` (B,); higher is better.

        `history` (B, n_items), when given, holds the interactions of users the model did not
        see in training (fold-in for cold users); row b belongs to `users[b]`.
        """
        ...


def _positive_int(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise DataError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def evaluate(model: Recommender, split: Split, k: int = 10, *, batch_size: int = 256,
             exclude_train: bool = True) -> dict[str, float]:
    """Mean metrics@k over the test users with a rankable test item.

    Args:
        model: a fitted `Recommender` (fitted on `split.train`).
        split: from `multirec.splits`; cold-user splits pass `split.fold_in` rows as `history`.
        k: cut-off of the ranking metrics.
        batch_size: users scored per `score_users` call.
        exclude_train: mask each user's training (and fold-in) items before ranking.

    Returns:
        {"precision", "recall", "ndcg", "map", "hit_rate", "mrr", "auc"}: means over users
        (AUC over users that have a non-relevant candidate), "n_users": users evaluated,
        "coverage": fraction of the candidate items in at least one top-k list.
    """
    if not callable(getattr(model, "score_users", None)):
        raise DataError(f"{type(model).__name__} has no score_users(users, history=None) method; "
                        "see multirec.evaluation.Recommender")
    if not isinstance(split, Split):
        raise DataError(f"split must be a multirec.splits.Split, got {type(split).__name__}; make one "
                        "with random_split(data) or another function of multirec.splits")
    k, batch_size = _positive_int(k, "k"), _positive_int(batch_size, "batch_size")
    test = split.test.to_csr()  # (n_users, n_items)
    n_items = test.shape[1]
    seen = split.train.to_csr()
    if split.fold_in is not None:
        seen = seen + sp.csr_matrix(split.fold_in, dtype=np.float32)
    users = np.flatnonzero(np.diff(test.indptr))
    if users.size == 0:
        raise DataError("the split's test part has no interactions; nothing to evaluate")

    sums = dict.fromkeys(METRICS, 0.0)
    n_users = n_auc = 0
    tops = []
    for start in range(0, users.size, batch_size):
        u = users[start:start + batch_size]  # (B,)
        if split.fold_in is not None:
            scores = model.score_users(u, history=split.fold_in[u])
        else:
            scores = model.score_users(u)
        scores = np.asarray(scores)  # (B, n_items)
        if scores.shape != (len(u), n_items):
            raise DataError(f"{type(model).__name__}.score_users returned shape {scores.shape} for "
                            f"{len(u)} users; expected ({len(u)}, {n_items}) — one score per item of "
                            "the split's catalogue (was the model fitted on split.train?)")
        res = ranking_metrics(scores, test[u], k, exclude=seen[u] if exclude_train else None,
                              candidates=split.candidate_items, return_topk=True)
        for m in METRICS:
            vals = res[m][~np.isnan(res[m])]
            sums[m] += float(vals.sum())
        n_users += len(res["users"])
        n_auc += int((~np.isnan(res["auc"])).sum())
        tops.append(res["topk"])
    if n_users == 0:
        raise DataError("no test user has a test item left to rank (all are masked as training "
                        "items or are not candidates); check the split")
    out = {m: sums[m] / n_users for m in METRICS if m != "auc"}
    out["auc"] = sums["auc"] / n_auc if n_auc else float("nan")
    out["n_users"] = n_users
    top = np.concatenate(tops)
    if split.candidate_items is None:
        out["coverage"] = coverage(top, n_items)
    else:  # share of the candidate items recommended at least once
        out["coverage"] = float(np.isin(np.asarray(split.candidate_items), top).mean())
    return out
