"""Baselines behind the same `fit` / `score_users` protocol: random, popularity, LightFM."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from .cf import CFConfig, LightFMFactors
from .data import InteractionData
from .errors import NotFittedError

__all__ = ["RandomRecommender", "PopularityRecommender", "LightFMRecommender"]


class RandomRecommender:
    """Uniformly random scores (seeded)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, data: InteractionData) -> RandomRecommender:
        self.n_items_ = data.n_items
        self._rng = np.random.default_rng(self.seed)
        return self

    def score_users(self, users: np.ndarray, history: sp.csr_matrix | None = None) -> np.ndarray:
        if not hasattr(self, "n_items_"):
            raise NotFittedError("call fit(data) first")
        return self._rng.random((len(users), self.n_items_))


class PopularityRecommender:
    """Scores every item by its number of training interactions."""

    def fit(self, data: InteractionData) -> PopularityRecommender:
        self.counts_ = data.item_counts().astype(np.float64)
        return self

    def score_users(self, users: np.ndarray, history: sp.csr_matrix | None = None) -> np.ndarray:
        if not hasattr(self, "counts_"):
            raise NotFittedError("call fit(data) first")
        return np.tile(self.counts_, (len(users), 1))


class LightFMRecommender:
    """LightFM (WARP by default); unknown users are folded in as the mean of their items' factors.

    Accepts any `CFConfig` field, e.g. `LightFMRecommender(no_components=32, epochs=20,
    use_item_features=True)`.
    """

    def __init__(self, **config: Any) -> None:
        self.config = CFConfig(**config)

    def fit(self, data: InteractionData) -> LightFMRecommender:
        self.cf_ = LightFMFactors(self.config).fit(data)
        return self

    def score_users(self, users: np.ndarray, history: sp.csr_matrix | None = None) -> np.ndarray:
        if not hasattr(self, "cf_"):
            raise NotFittedError("call fit(data) first")
        cf = self.cf_
        if history is None:
            return cf.predict(np.asarray(users))
        h = sp.csr_matrix(history, dtype=np.float32)
        n = np.maximum(np.asarray(h.sum(1)), 1.0)
        u = np.asarray(h @ cf.item_factors_) / n  # (B, k) mean of consumed items' factors
        return u @ cf.item_factors_.T + cf.item_biases_[None, :]
