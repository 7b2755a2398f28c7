"""LightFM (`lightfm-next`) as the collaborative-filtering component.

`LightFMFactors` trains LightFM on an `InteractionData` and exposes per-user and per-item
factors and biases. With `use_item_features` / `use_user_features`, entities are described
by an identity feature plus their side features (LightFM's hybrid model), so an item that
never appeared in training still gets a factor from its features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from .data import FeatureMatrix, InteractionData
from .errors import ConfigError, DataError, TrainingDivergedError

__all__ = ["CFConfig", "LightFMFactors"]

_LOSSES = ("warp", "bpr", "logistic", "warp-kos")


@dataclass
class CFConfig:
    """LightFM settings; the defaults are tuned on a validation split of MovieLens 100K."""

    no_components: int = 64
    loss: str = "warp"
    learning_rate: float = 0.05
    epochs: int = 20
    item_alpha: float = 0.0
    user_alpha: float = 0.0
    max_sampled: int = 10
    num_threads: int = 2
    seed: int = 42
    use_item_features: bool = False
    use_user_features: bool = False

    def __post_init__(self) -> None:
        checks = {
            "no_components": isinstance(self.no_components, int) and self.no_components >= 1,
            "learning_rate": self.learning_rate > 0, "epochs": int(self.epochs) >= 1,
            "item_alpha": self.item_alpha >= 0, "user_alpha": self.user_alpha >= 0,
            "max_sampled": self.max_sampled >= 1, "num_threads": self.num_threads >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"CFConfig.{name}={getattr(self, name)!r} is out of range")
        if self.loss not in _LOSSES:
            raise ConfigError(f"CFConfig.loss={self.loss!r}; choose one of {_LOSSES}")


def _features(fm: FeatureMatrix | None, n: int, use: bool) -> sp.csr_matrix | None:
    """Identity ⊕ side features, rows normalised to sum 1 (LightFM's recommendation)."""
    if not use or fm is None:
        return None
    m = sp.hstack([sp.identity(n, dtype=np.float32, format="csr"), fm.matrix]).tocsr()
    sums = np.asarray(m.sum(1)).ravel()
    return sp.diags(1.0 / np.maximum(sums, 1e-12)).dot(m).astype(np.float32).tocsr()


class LightFMFactors:
    """Train LightFM and expose `user_factors_`, `user_biases_`, `item_factors_`, `item_biases_`."""

    def __init__(self, config: CFConfig | None = None, **overrides: Any) -> None:
        base = config or CFConfig()
        self.config = CFConfig(**{**base.__dict__, **overrides}) if overrides else base

    def fit(self, data: InteractionData, show_progress: bool = False) -> LightFMFactors:
        """Train on `data`'s interactions (weights used as LightFM sample weights)."""
        from lightfm import LightFM
        from tqdm.auto import trange

        cfg = self.config
        if data.nnz == 0:
            raise DataError("LightFM needs at least one interaction")
        coo = data.to_csr().tocoo()
        interactions = sp.coo_matrix((np.ones(coo.nnz, np.float32), (coo.row, coo.col)), shape=coo.shape)
        uf = _features(data.user_features, data.n_users, cfg.use_user_features)
        itf = _features(data.item_features, data.n_items, cfg.use_item_features)
        model = LightFM(no_components=cfg.no_components, loss=cfg.loss, learning_rate=cfg.learning_rate,
                        item_alpha=cfg.item_alpha, user_alpha=cfg.user_alpha,
                        max_sampled=cfg.max_sampled, random_state=cfg.seed)
        for _ in trange(int(cfg.epochs), disable=not show_progress, desc="LightFM", unit="epoch",
                        leave=False):
            model.fit_partial(interactions, user_features=uf, item_features=itf,
                              num_threads=cfg.num_threads)
        ub, uemb = model.get_user_representations(uf)
        ib, iemb = model.get_item_representations(itf)
        for name, arr in (("user", uemb), ("item", iemb)):
            if not np.isfinite(arr).all():
                raise TrainingDivergedError(
                    f"LightFM {name} factors became NaN/inf; lower CFConfig.learning_rate "
                    f"(now {cfg.learning_rate}) or add item_alpha/user_alpha regularisation"
                )
        self.model_ = model
        self.user_factors_, self.user_biases_ = uemb.astype(np.float32), ub.astype(np.float32)
        self.item_factors_, self.item_biases_ = iemb.astype(np.float32), ib.astype(np.float32)
        self.user_features_, self.item_features_ = uf, itf
        return self

    def predict(self, users: np.ndarray) -> np.ndarray:  # (B, n_items)
        """Scores ⟨u, i⟩ + b_u + b_i of every item for user indices `users`."""
        if not hasattr(self, "model_"):
            raise ConfigError("LightFMFactors is not fitted; call fit(data) first")
        u = np.asarray(users, dtype=np.int64)
        return (self.user_factors_[u] @ self.item_factors_.T + self.user_biases_[u, None]
                + self.item_biases_[None, :])
