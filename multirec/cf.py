"""LightFM (`lightfm-next`) as the collaborative-filtering component.

`LightFMFactors` trains LightFM on an `InteractionData` and exposes per-user and per-item
factors and biases:

    cf = LightFMFactors(no_components=32, epochs=20).fit(data)
    cf.item_factors_          # (n_items, 32) float32
    cf.predict(np.arange(5))  # (5, n_items) scores ⟨u, i⟩ + b_u + b_i

With `use_item_features` / `use_user_features` each entity is described by an identity
feature plus its side features (LightFM's hybrid model, rows normalised to sum 1 as LightFM
recommends), so an item that never appeared in training still gets a factor from its features.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

import numpy as np
import scipy.sparse as sp

from .config import CFConfig, is_int
from .data import FeatureMatrix, InteractionData
from .errors import ConfigError, DataError, NotFittedError, TrainingDivergedError

__all__ = ["CFConfig", "LightFMFactors"]  # CFConfig lives in multirec.config

def _features(fm: FeatureMatrix | sp.spmatrix | None, n: int, use: bool | str) -> sp.csr_matrix | None:
    """Identity ⊕ side features, each row normalised to sum 1 (LightFM's recommendation).

    None (LightFM's implicit identity) when features are off or there are none
    (`use="auto"`: on whenever features are given).
    """
    if not use or fm is None:
        return None
    feats = fm.matrix if isinstance(fm, FeatureMatrix) else sp.csr_matrix(fm, dtype=np.float32)
    if feats.shape[0] != n:
        raise DataError(f"side features have {feats.shape[0]} rows for {n} entities")
    m = sp.hstack([sp.identity(n, dtype=np.float32, format="csr"), feats]).tocsr()  # (n, n + f)
    sums = np.asarray(abs(m).sum(1)).ravel()
    return sp.diags(1.0 / np.maximum(sums, 1e-12)).dot(m).astype(np.float32).tocsr()


class LightFMFactors:
    """Train LightFM and expose its factors.

    Learned attributes (after `fit`):
        user_factors_ (n_users, k) float32, user_biases_ (n_users,) float32,
        item_factors_ (n_items, k) float32, item_biases_ (n_items,) float32 — LightFM's
        `get_user/item_representations`, i.e. feature-based where features are used;
        model_ (the `lightfm.LightFM`), n_epochs_ (passes so far, `fit_more` included),
        n_users_, n_items_,
        user_features_ / item_features_ (the feature matrices given to LightFM, or None),
        item_cold_factors_ (n_items, k) float32 or None: each item's factor from its side
        features alone (the identity feature dropped: the factor it would have if it had no
        interactions), NaN rows for items without side features; None without item features.
    """

    def __init__(self, config: CFConfig | None = None, **overrides: Any) -> None:
        if config is not None and not isinstance(config, CFConfig):
            raise ConfigError(f"config must be a CFConfig, got {type(config).__name__}; "
                              "pass fields as keyword arguments instead")
        base = config or CFConfig()
        unknown = sorted(set(overrides) - {f.name for f in fields(CFConfig)})
        if unknown:
            raise ConfigError(f"unknown CFConfig field(s) {unknown}; valid fields are "
                              f"{[f.name for f in fields(CFConfig)]}")
        self.config = CFConfig(**{**asdict(base), **overrides}) if overrides else base

    def fit(self, data: InteractionData | sp.spmatrix, show_progress: bool = False, *,
            user_features: FeatureMatrix | sp.spmatrix | None = None,
            item_features: FeatureMatrix | sp.spmatrix | None = None) -> LightFMFactors:
        """Train on interactions (entries > 0 are LightFM's positives): an `InteractionData`
        (its side features are used) or a (n_users, n_items) sparse matrix plus features."""
        from lightfm import LightFM

        if isinstance(data, InteractionData):
            interactions = data.to_csr()
            user_features = data.user_features if user_features is None else user_features
            item_features = data.item_features if item_features is None else item_features
        elif sp.issparse(data):
            interactions = sp.csr_matrix(data, dtype=np.float32)
        else:
            raise DataError(f"fit() expects an InteractionData or a scipy.sparse matrix, got "
                            f"{type(data).__name__}")
        if interactions.nnz == 0:
            raise DataError("LightFM needs at least one interaction; the data is empty")
        cfg = self.config
        n_users, n_items = interactions.shape
        interactions = interactions.tocoo()  # (n_users, n_items) float32 weights
        uf = _features(user_features, n_users, cfg.use_user_features)
        itf = _features(item_features, n_items, cfg.use_item_features)
        model = LightFM(no_components=cfg.no_components, loss=cfg.loss,
                        learning_rate=cfg.learning_rate, item_alpha=cfg.item_alpha,
                        user_alpha=cfg.user_alpha, max_sampled=cfg.max_sampled,
                        random_state=cfg.seed)
        _train(model, interactions, uf, itf, cfg, cfg.epochs, show_progress)
        self.model_ = model
        self.user_features_, self.item_features_ = uf, itf
        self._represent(interactions.shape)
        self.n_epochs_ = cfg.epochs
        return self

    def fit_more(self, interactions: sp.spmatrix, epochs: int, show_progress: bool = False
                 ) -> LightFMFactors:
        """Continue training the fitted model for `epochs` more passes over `interactions`
        (same users, items and side features as `fit`; e.g. the training part plus the
        validation interactions), keeping LightFM's per-weight learning-rate state; the
        factors are read again."""
        if not hasattr(self, "model_"):
            raise NotFittedError("LightFMFactors is not fitted; call fit(data) first")
        if not sp.issparse(interactions) or interactions.shape != (self.n_users_, self.n_items_):
            raise DataError(f"fit_more() needs a sparse ({self.n_users_}, {self.n_items_}) matrix "
                            f"(the shape fit() saw), got {getattr(interactions, 'shape', None)}")
        if not (is_int(epochs) and epochs >= 1):
            raise ConfigError(f"epochs must be an integer >= 1, got {epochs!r}")
        x = sp.coo_matrix(interactions, dtype=np.float32)
        _train(self.model_, x, self.user_features_, self.item_features_, self.config,
               int(epochs), show_progress)
        self._represent(x.shape)
        self.n_epochs_ += int(epochs)
        return self

    def _represent(self, shape: tuple[int, int]) -> None:
        """Read the factors and biases (and the items' feature-only factors) off `model_`."""
        model, uf, itf = self.model_, self.user_features_, self.item_features_
        n_users, n_items = shape
        ub, uemb = model.get_user_representations(uf)  # (n_users,), (n_users, k)
        ib, iemb = model.get_item_representations(itf)  # (n_items,), (n_items, k)
        for name, arr in (("user", uemb), ("item", iemb), ("user bias", ub), ("item bias", ib)):
            if not np.isfinite(arr).all():
                raise TrainingDivergedError(
                    f"LightFM {name} representations are NaN/inf; lower CFConfig.learning_rate "
                    f"(now {self.config.learning_rate}) or add item_alpha/user_alpha regularisation")
        self.user_factors_ = np.ascontiguousarray(uemb, dtype=np.float32)
        self.user_biases_ = np.ascontiguousarray(ub, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(iemb, dtype=np.float32)
        self.item_biases_ = np.ascontiguousarray(ib, dtype=np.float32)
        self.item_cold_factors_ = None
        if itf is not None:  # the identity columns dropped: what each item's factor would be if cold
            side = itf[:, n_items:]  # (n_items, f), same row normalisation as the hybrid model
            cold = np.asarray(side @ model.item_embeddings[n_items:], dtype=np.float32)  # (n_items, k)
            cold[np.diff(side.indptr) == 0] = np.nan  # no side features: no cold factor
            self.item_cold_factors_ = cold
        self.n_users_, self.n_items_ = n_users, n_items

    def predict(self, user_idx: np.ndarray) -> np.ndarray:
        """(B, n_items) float32 scores ⟨u, i⟩ + b_u + b_i of every item for user indices."""
        if not hasattr(self, "model_"):
            raise NotFittedError("LightFMFactors is not fitted; call fit(data) first")
        u = np.asarray(user_idx)
        if u.ndim != 1 or (u.size and not np.issubdtype(u.dtype, np.integer)):
            raise DataError(f"user_idx must be a 1-D array of user indices, got shape {u.shape} "
                            f"dtype {u.dtype}")
        if u.size and (u.min() < 0 or u.max() >= self.n_users_):
            bad = u[(u < 0) | (u >= self.n_users_)][0]
            raise DataError(f"user index {bad} is out of range 0..{self.n_users_ - 1}")
        return (self.user_factors_[u] @ self.item_factors_.T  # (B, n_items)
                + self.user_biases_[u, None] + self.item_biases_[None, :])


def _train(model: Any, interactions: sp.coo_matrix, uf: sp.csr_matrix | None,
           itf: sp.csr_matrix | None, cfg: CFConfig, epochs: int, show_progress: bool) -> None:
    """`epochs` passes of `fit_partial`; NaN/inf factors raise `TrainingDivergedError`."""
    for epoch in _epochs(epochs, show_progress):
        try:
            with np.errstate(invalid="ignore", over="ignore"):  # reported below instead
                model.fit_partial(interactions, user_features=uf, item_features=itf,
                                  num_threads=cfg.num_threads)
            diverged = not (np.isfinite(model.item_embeddings).all()
                            and np.isfinite(model.user_embeddings).all())
        except ValueError as exc:  # LightFM's own finiteness check
            if "diverged" not in str(exc):
                raise
            diverged = True
        if diverged:
            raise TrainingDivergedError(
                f"LightFM factors became NaN/inf in epoch {epoch + 1}; lower "
                f"CFConfig.learning_rate (now {cfg.learning_rate:g}, try {cfg.learning_rate / 10:g}) "
                "or add item_alpha/user_alpha regularisation")


def _epochs(n: int, show_progress: bool):
    """range(n), with a tqdm bar when asked and tqdm is installed."""
    if show_progress:
        try:
            from tqdm.auto import trange
        except ImportError:  # progress is optional
            return range(n)
        return trange(n, desc="LightFM", unit="epoch", leave=False)
    return range(n)
