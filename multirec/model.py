"""`MultimodalRecommender`: the facade. Parameters as passed; `fit` → `multirec.fit`;
serving → `multirec.scoring`; growing the catalogue → `multirec.catalogue`; explanations
and text search → `multirec.explain`; saving → `multirec.io`.

    p(u, i) = σ(⟨h_u, h_i⟩ + b_u + b_i + b)

    >>> model = MultimodalRecommender(encoders={"text": "text-hash"}).fit(data)
    >>> ids, scores = model.recommend(["user_0001"], n=10)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from . import catalogue, explain
from .config import MODEL_DEFAULTS, ModelConfig, TrainConfig
from .data import InteractionData
from .errors import ConfigError, DataError, NotFittedError
from .fit import run_fit
from .recommend import exact_top
from .scoring import Scorer
from .validate import check_history, check_id_list, check_items_arg, check_n, check_user_ids

if TYPE_CHECKING:
    import pandas as pd

    from .index import ItemIndex

__all__ = ["MultimodalRecommender"]

_TRAIN_FIELDS = [f.name for f in fields(TrainConfig)]
_MODEL_DEFAULTS = MODEL_DEFAULTS


class MultimodalRecommender(nn.Module):
    """Multimodal recommender with a scikit-learn-style API (`fit` returns self).

    Args:
        encoders: `{modality: encoder}` where encoder is an `encoders.Encoder`, a registered
            name (`encoders.list_encoders()`) or a config dict. Modalities must match the
            keys of `InteractionData.content`. Empty/None → collaborative filtering only.
        dim: size of the shared space of `h_u` and `h_i`.
        fusion: "sum", "concat" or "gated" (see `multirec.fusion`).
        cf: LightFM settings (`multirec.config.CFConfig`, a dict of its fields), True for the
            defaults, or False/None to train without LightFM factors. Its seed follows
            `seed` unless given.
        use_id_embeddings: learn a per-item residual for items seen in training.
        use_user_cf: add the projected LightFM user factor to the user vector.
        item_item: add item-item scores (EASE weights from the training interactions;
            dense up to `itemitem.DENSE_MAX_ITEMS` items, sparse neighbourhood EASE above)
            to the logit with a learned weight: True/"auto" (on) or False.
        item_item_l2: EASE's L2 penalty λ; None picks it on the validation interactions.
        item_item_dropout: drop probability p of emphasised denoising (Steck 2020): each
            item's EASE penalty is λ + p / (1 − p) · its number of interactions. 0 is plain
            EASE; the default 0.5 raised the item-item term's NDCG@10 by 0.5–1.8%
            (`multirec.itemitem.DROPOUT`).
        encode_batch_size: batch size for content encoding.
        cache_dir: embedding cache directory (None: no cache).
        on_error: "raise" (default) or "skip": an unreadable image/audio file is then treated
            as a missing modality of that item, with one warning; `content_report_` lists the
            item IDs per modality.
        **train: any `TrainConfig` field (epochs, lr, negatives, seed, device, num_threads, ...).
    """

    def __init__(self, encoders: Mapping[str, Any] | None = None, **params: Any) -> None:
        super().__init__()
        unknown = sorted(set(params) - set(_MODEL_DEFAULTS) - set(_TRAIN_FIELDS))
        if unknown:
            raise ConfigError(f"unknown argument(s) {unknown} for MultimodalRecommender; model "
                              f"options are {sorted(_MODEL_DEFAULTS)}, training options "
                              f"{sorted(_TRAIN_FIELDS)}")
        self._params = {"encoders": encoders, **params}
        self._resolve()  # checks every setting now (device too), not after LightFM ran
        self.index_: ItemIndex | None = None

    # ------------------------------------------------------------------ parameters
    def get_params(self, deep: bool = False) -> dict[str, Any]:
        """Constructor arguments as passed (scikit-learn convention; `clone` works)."""
        return {**{k: v for k, v in _MODEL_DEFAULTS.items()},
                **{f.name: f.default for f in fields(TrainConfig)}, **self._params}

    def set_params(self, **params: Any) -> MultimodalRecommender:
        bad = sorted(set(params) - set(_MODEL_DEFAULTS) - set(_TRAIN_FIELDS))
        if bad:
            raise ConfigError(f"unknown parameter(s) {bad}; see get_params()")
        old = dict(self._params)
        self._params.update(params)
        try:
            self._resolve()
        except Exception:
            self._params = old
            raise
        return self

    def __getattr__(self, name: str) -> Any:  # parameters read as attributes: model.dim
        params = self.__dict__.get("_params")
        if params is not None and (name in _MODEL_DEFAULTS or name in _TRAIN_FIELDS):
            return self.get_params()[name]
        return super().__getattr__(name)

    @property
    def train_config(self) -> TrainConfig:
        return self._resolve().train

    def _resolve(self) -> ModelConfig:
        return ModelConfig.from_params(self.get_params())

    # ------------------------------------------------------------------ fitting
    def fit(self, data: InteractionData, valid: InteractionData | None = None, *,
            callbacks: Sequence[Any] = ()) -> MultimodalRecommender:
        """Encode content, train LightFM, then train the towers; returns self.

        `valid` (same ID maps as `data`) drives early stopping; by default a
        `valid_fraction` of `data`'s interactions is held out for that and used as
        history afterwards. With content (or item side features) a `cold_valid_items`
        share of the warm items is also held out as simulated new items to select the
        epoch on cold-item validation too. With `refit=True` (the default) LightFM, EASE
        and the towers are then retrained on all interactions for the chosen epochs
        (above 10,000 items, `refit_warm_start="auto"`, continued from the validation
        model for a quarter of them; with `refit=False` the carved items are folded back in). With
        `popularity_prior=True` (the default) a popularity prior for short histories is
        chosen on validation users made into new users (`multirec.prior`).
        """
        if not isinstance(data, InteractionData):
            raise DataError(f"fit() expects an InteractionData, got {type(data).__name__}; build "
                            "one with InteractionData.from_dataframe(df, 'user', 'item')")
        if data.nnz == 0:
            raise DataError("fit() got no interactions; check the rating threshold and the input")
        self.restore_fitted(run_fit(self._resolve(), data, valid, callbacks,
                                 on_built=lambda net: setattr(self, "network", net)))
        return self

    def restore_fitted(self, fitted: Any) -> None:
        """Take a fitted state (`multirec.fit.Fitted`): what `fit` and loading end with."""
        self.network = fitted.network
        self.item_item_ = fitted.item_item
        self.user_items_ = fitted.user_items
        self.user_map_, self.item_map_ = fitted.user_map, fitted.item_map
        self.encoders_ = dict(fitted.encoders)  # built encoders (more are built on first use)
        self.encoder_configs_ = fitted.encoder_configs
        self.modalities_ = list(fitted.encoder_configs)
        self.history_ = fitted.history
        self.fit_config_ = fitted.fit_config
        self.content_report_ = dict(fitted.fit_config.get("content_report", {}))
        self.scorer_ = Scorer(self.network, self.item_item_)
        self.index_ = None  # an index of a previous fit is stale

    def check_fitted(self) -> None:
        """Raise `NotFittedError` unless the model was fitted or loaded."""
        if "network" not in self._modules:
            raise NotFittedError("this MultimodalRecommender is not fitted yet; call fit(data) "
                                 "or MultimodalRecommender.from_pretrained(path)")

    @property
    def device(self) -> torch.device:
        return self.network.global_bias.device

    # ------------------------------------------------------------------ scoring
    def score_users(self, users: np.ndarray, history: sp.csr_matrix | None = None,
                    batch_size: int | None = None) -> np.ndarray:  # (B, n_items)
        """Logits of every catalogue item for user *indices* (the evaluation protocol); with
        `history` (B, n_items) the users are treated as unknown (fold-in from those rows)."""
        self.check_fitted()
        return self.scorer_.score_users(users, history, self.user_items_, batch_size)

    def recommend(self, user_ids: Any, n: int = 10, *, filter_seen: bool = True,
                  items: Sequence[Any] | None = None,
                  history: Mapping[Any, Sequence[Any]] | None = None,
                  as_frame: bool = False) -> Any:
        """Top-`n` items for each user: `(item_ids, scores)` with raw IDs and probabilities.

        `user_ids` is one raw ID (→ arrays of shape (n,)) or a sequence (→ (B, n)).
        `items` restricts the candidates to those raw item IDs. `history` gives the items
        of users unknown to the model (`{user_id: [item_ids]}`), served by fold-in without
        retraining. `n` is capped at the catalogue size; rows with fewer eligible items
        are padded with None / NaN. Equal scores are ordered by `multirec.ranking`'s seeded
        tie rule. `as_frame=True` returns a long DataFrame `user, item, score, rank`.
        """
        self.check_fitted()
        n, items, history = check_n(n), check_items_arg(items), check_history(history)
        raw, scalar = check_user_ids(user_ids)
        if self.index_ is not None:  # see build_index
            ids, probs = self.index_.recommend(self, user_ids, n, filter_seen=filter_seen,
                                               items=items, history=history)
        else:
            cand = None if items is None else self.item_map_.index(items)
            ids, probs = exact_top(self, raw, n, filter_seen, cand, history or {})
            if scalar:
                ids, probs = ids[0], probs[0]
        if not as_frame:
            return ids, probs
        from .frames import recommendations_frame

        return recommendations_frame(raw, np.atleast_2d(ids), np.atleast_2d(probs))

    def score(self, user_ids: Any, item_ids: Sequence[Any] | None = None) -> np.ndarray:  # (N,)
        """Probability σ(logit) for each (user, item) pair; `user_ids` may be a DataFrame
        with `user` and `item` columns (then `item_ids` is None)."""
        self.check_fitted()
        if item_ids is None and hasattr(user_ids, "columns"):
            from .frames import pairs_from_frame

            user_ids, item_ids = pairs_from_frame(user_ids)
        users, items = check_id_list(user_ids, "user_ids"), check_id_list(item_ids, "item_ids")
        if len(users) != len(items):
            raise DataError(f"score() needs as many users as items, got {len(users)} and {len(items)}")
        uidx, iidx = self.user_map_.index(users), self.item_map_.index(items)
        out = np.empty(len(users), np.float32)
        for u in np.unique(uidx):
            pos = np.flatnonzero(uidx == u)
            out[pos] = self.score_users(np.array([u]))[0, iidx[pos]]
        return 1.0 / (1.0 + np.exp(-out))

    def item_vectors(self) -> np.ndarray:  # (n_items, d)
        """Fused item vectors `h_i` for the whole catalogue."""
        self.check_fitted()
        return self.scorer_.item_vectors()

    def similar_items(self, item_id: Any, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Items whose fused vectors are closest (cosine) to `item_id`'s: `(item_ids, sims)`."""
        self.check_fitted()
        return explain.similar_items(self, item_id, check_n(n))

    def similar_users(self, user_id: Any, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Users whose user vectors are closest (cosine) to `user_id`'s: `(user_ids, sims)`."""
        self.check_fitted()
        return explain.similar_users(self, user_id, check_n(n))

    def build_index(self, kind: str = "flat", **kw: Any) -> ItemIndex:
        """Build an item index that `recommend` uses from now on (`self.index_`); returns it.

        `kind`: "flat" (exact, FAISS brute force), "ivf" or "hnsw" (approximate, for large
        catalogues); `**kw`: see `multirec.index.ItemIndex.from_vectors`. Needs
        `pip install "multirec[ann]"`. `fit` and `add_items` drop the index.
        """
        from .index import ItemIndex

        self.check_fitted()
        self.index_ = ItemIndex.build(self, kind, **kw)
        return self.index_

    # ------------------------------------------------------------------ growing, explaining
    def encoder(self, modality: str) -> Any:
        """The encoder of `modality`, built from its saved config on first use."""
        self.check_fitted()
        return catalogue.encoder(self, modality)

    def add_items(self, content: Mapping[str, Mapping[Any, Any]]) -> np.ndarray:
        """Add or update items from content only (`{modality: {item_id: raw}}`), all or
        nothing; no retraining. New items are cold (scored from their content). Returns
        their indices."""
        self.check_fitted()
        return catalogue.add_items(self, content)

    def add_users(self, interactions: Mapping[Any, Sequence[Any]] | pd.DataFrame) -> np.ndarray:
        """Add users (or extend histories) from `{user_id: [item_ids]}` or a DataFrame with
        `user` and `item` columns; served by fold-in, no retraining."""
        self.check_fitted()
        return catalogue.add_users(self, interactions)

    def explain(self, user_id: Any, item_id: Any) -> dict[str, Any]:
        """Break the score of (user, item) down by source (see `multirec.explain.explain`)."""
        self.check_fitted()
        return explain.explain(self, user_id, item_id)

    def search(self, text: str, n: int = 10, *, modality: str | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Items matching a text query, no interactions needed (see `multirec.explain.search`)."""
        self.check_fitted()
        return explain.search(self, text, n, modality=modality)

    # ------------------------------------------------------------------ persistence
    def get_config(self) -> dict[str, Any]:
        """JSON-able constructor arguments (encoders as configs)."""
        ii = getattr(self, "item_item_", None)
        return self._resolve().to_dict(getattr(self, "encoder_configs_", None),
                                       None if ii is None else ii.l2)

    def save_pretrained(self, directory: str | os.PathLike, **kw: Any) -> None:
        """Save to `directory` atomically (JSON + safetensors, no pickle; see `multirec.io`)."""
        from .io import save_model

        self.check_fitted()
        save_model(self, directory, **kw)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: str = "cpu",
                        **kw: Any) -> MultimodalRecommender:
        """Load a model saved with `save_pretrained` (format version and checksums checked).

        Custom encoders are rebuilt by their registered name: import their module first.
        """
        from .io import load_model

        return load_model(cls, directory, device=device, **kw)

    def extra_repr(self) -> str:
        p = self._params
        fitted = "network" in self._modules
        size = f", users={self.network.n_users}, items={self.network.n_items}" if fitted else ""
        return f"modalities={list(p.get('encoders') or {})}, dim={self.dim}, fusion={self.fusion!r}{size}"
