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

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import scipy.sparse as sp

from .data import FeatureMatrix, InteractionData
from .errors import ConfigError, DataError, NotFittedError, TrainingDivergedError

__all__ = ["CFConfig", "LightFMFactors"]

_LOSSES = ("warp", "bpr", "logistic", "warp-kos")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_))


@dataclass
class CFConfig:
    """LightFM settings (names as in `lightfm.LightFM`; `epochs` = passes of `fit_partial`).

    Training is bit-for-bit reproducible for a given `seed` only with `num_threads=1`
    (LightFM's parallel updates are lock-free).
    """

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
        ints = {"no_components": 1, "epochs": 1, "max_sampled": 1, "num_threads": 1, "seed": 0}
        for name, low in ints.items():
            value = getattr(self, name)
            if not _is_int(value) or value < low:
                raise ConfigError(f"CFConfig.{name}={value!r}; it must be an integer >= {low}")
        if not _is_number(self.learning_rate) or not 0 < self.learning_rate < np.inf:
            raise ConfigError(f"CFConfig.learning_rate={self.learning_rate!r}; it must be a "
                              "positive number (LightFM's default is 0.05)")
        for name in ("item_alpha", "user_alpha"):
            value = getattr(self, name)
            if not _is_number(value) or not 0 <= value < np.inf:
                raise ConfigError(f"CFConfig.{name}={value!r}; it must be a number >= 0 "
                                  "(L2 penalty per example, e.g. 1e-6)")
        if self.loss not in _LOSSES:
            raise ConfigError(f"CFConfig.loss={self.loss!r}; choose one of {list(_LOSSES)}")
        for name in ("use_item_features", "use_user_features"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ConfigError(f"CFConfig.{name}={getattr(self, name)!r}; it must be True or False")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of the fields."""
        return asdict(self)


def _features(fm: FeatureMatrix | None, n: int, use: bool) -> sp.csr_matrix | None:
    """Identity ⊕ side features, each row normalised to sum 1 (LightFM's recommendation).

    None (LightFM's implicit identity) when features are off or the data has none.
    """
    if not use or fm is None:
        return None
    m = sp.hstack([sp.identity(n, dtype=np.float32, format="csr"), fm.matrix]).tocsr()  # (n, n + f)
    sums = np.asarray(abs(m).sum(1)).ravel()
    return sp.diags(1.0 / np.maximum(sums, 1e-12)).dot(m).astype(np.float32).tocsr()


class LightFMFactors:
    """Train LightFM and expose its factors.

    Learned attributes (after `fit`):
        user_factors_ (n_users, k) float32, user_biases_ (n_users,) float32,
        item_factors_ (n_items, k) float32, item_biases_ (n_items,) float32 — LightFM's
        `get_user/item_representations`, i.e. feature-based where features are used;
        model_ (the `lightfm.LightFM`), n_epochs_, n_users_, n_items_,
        user_features_ / item_features_ (the feature matrices given to LightFM, or None).
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

    def fit(self, data: InteractionData, show_progress: bool = False) -> LightFMFactors:
        """Train on `data`'s interactions (entries with weight > 0 are LightFM's positives)."""
        from lightfm import LightFM

        if not isinstance(data, InteractionData):
            raise DataError(f"fit() expects an InteractionData, got {type(data).__name__}")
        if data.nnz == 0:
            raise DataError("LightFM needs at least one interaction; the data is empty")
        cfg = self.config
        interactions = data.to_csr().tocoo()  # (n_users, n_items) float32 weights
        uf = _features(data.user_features, data.n_users, cfg.use_user_features)
        itf = _features(data.item_features, data.n_items, cfg.use_item_features)
        model = LightFM(no_components=cfg.no_components, loss=cfg.loss,
                        learning_rate=cfg.learning_rate, item_alpha=cfg.item_alpha,
                        user_alpha=cfg.user_alpha, max_sampled=cfg.max_sampled,
                        random_state=cfg.seed)
        for epoch in _epochs(cfg.epochs, show_progress):
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
        ub, uemb = model.get_user_representations(uf)  # (n_users,), (n_users, k)
        ib, iemb = model.get_item_representations(itf)  # (n_items,), (n_items, k)
        for name, arr in (("user", uemb), ("item", iemb), ("user bias", ub), ("item bias", ib)):
            if not np.isfinite(arr).all():
                raise TrainingDivergedError(
                    f"LightFM {name} representations are NaN/inf; lower CFConfig.learning_rate "
                    f"(now {cfg.learning_rate}) or add item_alpha/user_alpha regularisation")
        self.model_ = model
        self.user_factors_ = np.ascontiguousarray(uemb, dtype=np.float32)
        self.user_biases_ = np.ascontiguousarray(ub, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(iemb, dtype=np.float32)
        self.item_biases_ = np.ascontiguousarray(ib, dtype=np.float32)
        self.user_features_, self.item_features_ = uf, itf
        self.n_epochs_, self.n_users_, self.n_items_ = cfg.epochs, data.n_users, data.n_items
        return self

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


def _epochs(n: int, show_progress: bool):
    """range(n), with a tqdm bar when asked and tqdm is installed."""
    if show_progress:
        try:
            from tqdm.auto import trange
        except ImportError:  # progress is optional
            return range(n)
        return trange(n, desc="LightFM", unit="epoch", leave=False)
    return range(n)
