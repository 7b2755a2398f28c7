"""Baselines behind the `fit` / `score_users` protocol of `multirec.evaluation`.

    RandomRecommender(seed)        uniform random scores (a floor)
    PopularityRecommender()        number of training interactions per item
    LightFMRecommender(**cf)       LightFM via `multirec.cf.LightFMFactors`; users unknown to the
                                   model are folded in from their history
    EASERecommender(l2=None)       item-item weights in closed form (Steck 2019), λ on validation
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from .cf import CFConfig, LightFMFactors
from .data import InteractionData
from .errors import DataError, NotFittedError
from .validate import check_history_rows, check_user_indices

__all__ = ["RandomRecommender", "PopularityRecommender", "LightFMRecommender", "EASERecommender"]


def _check_data(data: InteractionData) -> None:
    if not isinstance(data, InteractionData):
        raise DataError(f"fit() expects an InteractionData, got {type(data).__name__}")


class RandomRecommender:
    """Uniform random scores; user u's scores depend only on (seed, u), not on batching."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, data: InteractionData) -> RandomRecommender:
        _check_data(data)
        self.n_users_, self.n_items_ = data.n_users, data.n_items
        return self

    def score_users(self, users: np.ndarray, history: sp.csr_matrix | None = None) -> np.ndarray:
        """(B, n_items) scores in [0, 1)."""
        if not hasattr(self, "n_items_"):
            raise NotFittedError("RandomRecommender is not fitted; call fit(data) first")
        u = check_user_indices(users, self.n_users_)
        return np.stack([np.random.default_rng([self.seed, int(x)]).random(self.n_items_) for x in u]
                        ) if u.size else np.zeros((0, self.n_items_))


class PopularityRecommender:
    """Scores every item by its number of training interactions (the same for every user)."""

    def fit(self, data: InteractionData) -> PopularityRecommender:
        _check_data(data)
        self.n_users_ = data.n_users
        self.counts_ = data.item_counts().astype(np.float64)  # (n_items,)
        return self

    def score_users(self, users: np.ndarray, history: sp.csr_matrix | None = None) -> np.ndarray:
        """(B, n_items) training counts."""
        if not hasattr(self, "counts_"):
            raise NotFittedError("PopularityRecommender is not fitted; call fit(data) first")
        u = check_user_indices(users, self.n_users_)
        return np.broadcast_to(self.counts_, (len(u), len(self.counts_))).copy()


class LightFMRecommender:
    """LightFM (WARP by default) as a baseline.

    Takes any `CFConfig` field, e.g. `LightFMRecommender(no_components=32, epochs=20,
    use_item_features=True)`; the config is validated in `fit`. Scores are
    ⟨u, i⟩ + b_u + b_i. A user given with `history` (fold-in) gets the mean factor of the
    items in its history as user vector; users with an empty history keep the model's own
    (feature-based, with `use_user_features`) representation.
    """

    def __init__(self, **config: Any) -> None:
        self.config = config

    def fit(self, data: InteractionData, show_progress: bool = False) -> LightFMRecommender:
        _check_data(data)
        self.config_ = CFConfig(**self.config)
        self.cf_ = LightFMFactors(self.config_).fit(data, show_progress=show_progress)
        return self

    def score_users(self, users: np.ndarray, history: sp.csr_matrix | None = None) -> np.ndarray:
        """(B, n_items) float32 scores."""
        if not hasattr(self, "cf_"):
            raise NotFittedError("LightFMRecommender is not fitted; call fit(data) first")
        cf = self.cf_
        u = check_user_indices(users, cf.n_users_)
        scores = cf.predict(u)  # (B, n_items)
        h = check_history_rows(history, len(u), cf.n_items_)
        if h is not None:
            h.data[:] = 1.0  # a plain mean over the consumed items
            n = np.asarray(h.sum(1)).ravel()  # (B,)
            has = n > 0
            if has.any():
                vec = np.asarray(h[has] @ cf.item_factors_) / n[has, None]  # (B', k) mean item factor
                scores[has] = vec @ cf.item_factors_.T + cf.item_biases_[None, :]
        return scores


class EASERecommender:
    """EASE: user history × item-item weights (`multirec.itemitem.fit_item_item`).

    Dense closed form up to `dense_max_items` items, neighbourhood-restricted sparse EASE
    (`neighbours` per item) above. `l2=None` picks λ from `multirec.itemitem.l2_grid` on
    `valid_fraction` of each user's training interactions (seeded), then refits on all of
    them. Items without training interactions score 0. Plain EASE (Steck 2019) by
    default; `dropout` > 0 adds the emphasised-denoising penalty (`multirec.itemitem`).
    """

    def __init__(self, l2: float | None = None, valid_fraction: float = 0.1, seed: int = 0,
                 dense_max_items: int | None = None, neighbours: int | None = None,
                 dropout: float = 0.0) -> None:
        if l2 is not None and not l2 > 0:
            raise DataError(f"l2 must be > 0 or None, got {l2!r}")
        self.l2, self.valid_fraction, self.seed = l2, valid_fraction, seed
        self.dense_max_items, self.neighbours, self.dropout = dense_max_items, neighbours, dropout

    def fit(self, data: InteractionData) -> EASERecommender:
        from . import itemitem
        from .fit import holdout_split
        from .scoring import binary

        _check_data(data)
        x = binary(data.to_csr())
        opts = dict(dense_max_items=itemitem.DENSE_MAX_ITEMS if self.dense_max_items is None
                    else self.dense_max_items,
                    neighbours=itemitem.NEIGHBOURS if self.neighbours is None else self.neighbours,
                    seed=self.seed, dropout=self.dropout)
        if self.l2 is None:
            train, valid = holdout_split(x, self.valid_fraction, self.seed)
            self.item_item_ = itemitem.fit_item_item(train, valid, **opts).refit(x)
        else:
            self.item_item_ = itemitem.fit_item_item(x, l2=float(self.l2), **opts)
        self.l2_ = self.item_item_.l2
        self.n_users_, self.x_ = data.n_users, x
        self.weights_ = self.item_item_.weights  # (n_items, n_items) ndarray or CSR
        return self

    def score_users(self, users: np.ndarray, history: sp.csr_matrix | None = None) -> np.ndarray:
        """(B, n_items) float32 scores: history @ W (training rows, or `history` when given)."""
        if not hasattr(self, "item_item_"):
            raise NotFittedError("EASERecommender is not fitted; call fit(data) first")
        u = check_user_indices(users, self.n_users_)
        h = check_history_rows(history, len(u), self.item_item_.n_items)
        return self.item_item_.scores(self.x_[u] if h is None else h)
