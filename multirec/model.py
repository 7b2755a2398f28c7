"""`MultimodalRecommender`: LightFM factors + fused item content → sigmoid head.

    p(u, i) = σ(⟨h_u, h_i⟩ + b_u + b_i + b)

`h_i` fuses the projected LightFM item factor with projected content embeddings (text,
image, audio, ...); `h_u` is the projected LightFM user factor plus a history encoder over
the user's items, which also serves users never seen in training (fold-in).

    >>> model = MultimodalRecommender(encoders={"text": "text-hash"}).fit(data)
    >>> ids, scores = model.recommend(["user_0001"], n=10)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import nn

from encoders import Encoder

from .content import encode_content, resolve_encoders
from .data import InteractionData
from .errors import ConfigError, DataError, NotFittedError
from .idmap import IdMap
from .network import TwoTowerNetwork
from .training import Callback, History, TrainConfig, train_network, user_logits, validation_ndcg
from .validate import (
    check_content_table,
    check_history,
    check_id_list,
    check_items_arg,
    check_modality,
    check_n,
    check_query,
    check_user_ids,
)

if TYPE_CHECKING:
    from .index import ItemIndex

__all__ = ["MultimodalRecommender"]

_TRAIN_FIELDS = {f.name for f in fields(TrainConfig)}


class MultimodalRecommender(nn.Module):
    """Multimodal recommender with an sklearn-like API (`fit` returns self).

    Args:
        encoders: `{modality: encoder}` where encoder is an `encoders.Encoder`, a registered
            name (`encoders.list_encoders()`) or a config dict. Modalities must match the
            keys of `InteractionData.content`. Empty/None → collaborative filtering only.
        dim: size of the shared space of `h_u` and `h_i`.
        fusion: "sum", "concat" or "gated" (see `multirec.fusion`).
        cf: LightFM settings (`multirec.cf.CFConfig`, a dict of its fields), True for the
            defaults, or False/None to train without LightFM factors.
        use_id_embeddings: learn a per-item residual for items seen in training.
        use_user_cf: add the projected LightFM user factor to the user vector.
        item_item: add full-rank item-item scores (EASE weights from the training
            interactions, `multirec.itemitem`) to the logit with a learned weight: True,
            False, or "auto" (on for catalogues up to `itemitem.AUTO_MAX_ITEMS` items).
        item_item_l2: EASE's L2 penalty λ; None picks it on the validation interactions.
        encode_batch_size: batch size for content encoding.
        cache_dir: embedding cache directory (None: no cache).
        **train: any `TrainConfig` field (epochs, lr, negatives, seed, device, ...).
    """

    def __init__(
        self,
        encoders: Mapping[str, Any] | None = None,
        *,
        dim: int = 64,
        fusion: str = "sum",
        cf: Any = True,
        use_id_embeddings: bool = True,
        use_user_cf: bool = True,
        item_item: bool | str = "auto",
        item_item_l2: float | None = None,
        encode_batch_size: int = 32,
        cache_dir: str | os.PathLike | None = None,
        **train: Any,
    ) -> None:
        super().__init__()
        unknown = set(train) - _TRAIN_FIELDS
        if unknown:
            raise ConfigError(
                f"unknown argument(s) {sorted(unknown)} for MultimodalRecommender; training "
                f"options are {sorted(_TRAIN_FIELDS)}"
            )
        self.encoder_specs = dict(encoders or {})
        self.dim, self.fusion, self.cf = dim, fusion, cf
        self.use_id_embeddings, self.use_user_cf = use_id_embeddings, use_user_cf
        if item_item not in (True, False, "auto"):
            raise ConfigError(f"item_item must be True, False or 'auto', got {item_item!r}")
        if item_item_l2 is not None and not item_item_l2 > 0:
            raise ConfigError(f"item_item_l2 must be > 0 or None, got {item_item_l2!r}")
        self.item_item, self.item_item_l2 = item_item, item_item_l2
        self.encode_batch_size, self.cache_dir = encode_batch_size, cache_dir
        self.train_config = TrainConfig(**train)
        self._encoders: dict[str, Encoder] = {}
        self._item_cache: tuple[Any, torch.Tensor] | None = None

    # ================================================================== fitting
    def fit(
        self,
        data: InteractionData,
        valid: InteractionData | None = None,
        *,
        callbacks: Sequence[Callback] = (),
    ) -> MultimodalRecommender:
        """Encode content, train LightFM, then train the towers; returns self.

        `valid` (same ID maps as `data`) drives early stopping; by default a
        `valid_fraction` of `data`'s interactions is held out for that and used as
        history afterwards.
        """
        if not isinstance(data, InteractionData):
            raise DataError(f"fit() expects an InteractionData, got {type(data).__name__}; build "
                            "one with InteractionData.from_dataframe(df, 'user', 'item')")
        if data.nnz == 0:
            raise DataError("fit() got no interactions; check the rating threshold and the input")
        if self.dim < 1:
            raise ConfigError(f"dim must be >= 1, got {self.dim}")
        cfg = self.train_config
        self._encoders = resolve_encoders(self.encoder_specs)
        missing = [m for m in self._encoders if m not in data.content]
        if missing:
            raise DataError(f"encoders given for modalities {missing} but the data has content for "
                            f"{data.modalities}; pass item_content={{{missing[0]!r}: ...}} to the data")
        full = _binary(data.to_csr())
        if valid is not None:
            if valid.items != data.items or valid.users != data.users:
                raise DataError("valid must share the ID maps of data (make it with multirec.splits)")
            train_x, valid_x = full, _binary(valid.to_csr())
            full = _binary(full + valid_x)
        elif cfg.valid_fraction > 0:
            train_x, valid_x = _holdout(full, cfg.valid_fraction, cfg.seed)
        else:
            train_x, valid_x = full, None

        content, has = {}, {}
        for m, enc in self._encoders.items():
            content[m], has[m] = encode_content(
                enc, data.content[m], batch_size=self.encode_batch_size, cache=self.cache_dir,
                show_progress=cfg.show_progress, modality=m)

        cf_user = cf_item = None
        cf_cfg = self._cf_config()
        if cf_cfg is not None:
            from .cf import LightFMFactors

            train_data = InteractionData(
                data.users, data.items, *train_x.nonzero(), None, None, None,
                data.user_features, data.item_features)
            lfm = LightFMFactors(cf_cfg).fit(train_data, show_progress=cfg.show_progress)
            cf_user = torch.from_numpy(np.asarray(lfm.user_factors_, np.float32))
            cf_item = torch.from_numpy(np.asarray(lfm.item_factors_, np.float32))

        with torch.random.fork_rng(devices=[]):  # seeded, without touching the caller's RNG
            torch.manual_seed(cfg.seed)
            self._build_and_train(data, train_x, valid_x, full, content, has, cf_user, cf_item,
                                  callbacks)
        return self

    def _build_and_train(self, data, train_x, valid_x, full, content, has, cf_user, cf_item,
                         callbacks) -> None:
        cfg = self.train_config
        net = TwoTowerNetwork(
            data.n_users, data.n_items, {m: e.dim for m, e in self._encoders.items()},
            None if cf_item is None else cf_item.shape[1], dim=self.dim, fusion=self.fusion,
            use_id_embeddings=self.use_id_embeddings, use_user_cf=self.use_user_cf,
            item_item=self._use_item_item(data.n_items))
        with torch.no_grad():
            for m in content:
                getattr(net, f"content_{m}").copy_(content[m])
                getattr(net, f"has_{m}").copy_(has[m])
            if cf_item is not None:
                net.cf_item.copy_(_standardise(cf_item))
                net.cf_user.copy_(_standardise(cf_user))
            net.warm_item.copy_(torch.from_numpy(np.diff(train_x.tocsc().indptr) > 0))
            net.warm_user.copy_(torch.from_numpy(np.diff(train_x.indptr) > 0))
            if net.use_item_item:
                from .itemitem import ease_weights, select_l2

                if self.item_item_l2 is None:
                    self.item_item_l2_ = (select_l2(train_x, valid_x) if valid_x is not None
                                          else _default_l2(train_x))
                else:
                    self.item_item_l2_ = float(self.item_item_l2)
                net.item_item.copy_(ease_weights(train_x, self.item_item_l2_))
        live = {m: e for m, e in self._encoders.items() if _is_trainable(e)}
        if live:
            net.attach_encoders(live, {m: list(data.content[m]) for m in live},
                                batch_size=self.encode_batch_size)
            if cfg.negatives == "all" and data.n_items > 5000:
                warnings.warn(
                    f"fine-tuning {sorted(live)} with negatives='all' runs the encoder over all "
                    f"{data.n_items} items every step; pass negatives=256 (or similar) to sample",
                    stacklevel=3)
        self.network = net
        self.user_map_, self.item_map_ = data.users.copy(), data.items.copy()
        self.user_items_ = full
        self.index_ = None  # item index of the previous fit, if any, is stale
        self.modalities_ = list(self._encoders)
        self.encoder_configs_ = {m: _encoder_config(e) for m, e in self._encoders.items()}
        self._item_cache = None
        self.history_: History = train_network(net, train_x, valid_x, cfg, callbacks)
        if live:
            net.refresh_content()  # the buffers serve scoring with the fine-tuned weights
        validated = valid_x is not None and valid_x.nnz and not self.history_.interrupted
        if validated and net.use_item_item:
            self._tune_item_item(net, train_x, valid_x)
        if validated:  # before W sees the validation interactions
            _calibrate(net, train_x, valid_x, torch.device(cfg.device))
        if net.use_item_item and full.nnz != train_x.nnz:  # refit on all interactions
            from .itemitem import ease_weights

            with torch.no_grad():
                net.item_item.copy_(ease_weights(full, self.item_item_l2_))
        self._item_cache = None

    def _tune_item_item(self, net: TwoTowerNetwork, train_x: sp.csr_matrix,
                        valid_x: sp.csr_matrix) -> None:
        """Rescale the learned item-item weight by the best of `ITEM_ITEM_SCALES` on validation.

        The learned weight stays close to its start (the towers absorb the rest). W still comes
        from the training part only (no peeking); `fit` refits it on all interactions after.
        """
        from .itemitem import ITEM_ITEM_SCALES

        cfg = self.train_config
        device = torch.device(cfg.device)
        base = net.ii_scale.detach().clone()
        best, best_score = 1.0, -np.inf
        for mult in ITEM_ITEM_SCALES:
            with torch.no_grad():
                net.ii_scale.copy_(base * mult)
            score = validation_ndcg(net, train_x, valid_x, cfg.k, device)
            if score > best_score:
                best, best_score = mult, score
        with torch.no_grad():
            net.ii_scale.copy_(base * best)
        self.history_.item_item_scale = best

    def _use_item_item(self, n_items: int) -> bool:
        from .itemitem import AUTO_MAX_ITEMS

        return self.item_item is True or (self.item_item == "auto" and n_items <= AUTO_MAX_ITEMS)

    def _cf_config(self) -> Any:
        cf = self.cf
        if cf is None or cf is False:
            return None
        from .cf import CFConfig

        if cf is True:
            return CFConfig(seed=self.train_config.seed)
        if isinstance(cf, CFConfig):
            return cf
        if isinstance(cf, Mapping):
            return CFConfig(**cf)
        raise ConfigError(f"cf must be True, False, a CFConfig or a dict of its fields; got {cf!r}")

    # ================================================================== scoring
    def _check_fitted(self) -> None:
        if not hasattr(self, "network"):
            raise NotFittedError("this MultimodalRecommender is not fitted yet; call fit(data) "
                                 "or MultimodalRecommender.from_pretrained(path)")

    @property
    def device(self) -> torch.device:
        return self.network.global_bias.device

    def _items_out(self) -> tuple[Any, torch.Tensor]:
        """Item-tower output and context vectors for the whole catalogue (cached)."""
        if self._item_cache is None:
            net = self.network
            net.eval()
            with torch.no_grad():
                items = torch.arange(net.n_items, device=self.device)
                out = net.items(items)
                self._item_cache = (out, net.context(items, out))
        return self._item_cache

    def _user_vectors(
        self, users: np.ndarray | None, bag: sp.csr_matrix
    ) -> tuple[torch.Tensor, torch.Tensor]:  # (B, d), (B,)
        out, ctx = self._items_out()
        with torch.no_grad():
            dense = torch.from_numpy(bag.toarray().astype(np.float32)).to(self.device)
            u = None if users is None else torch.from_numpy(np.asarray(users, np.int64)).to(self.device)
            return self.network.users(u, dense, ctx)

    def score_users(self, users: np.ndarray, history: sp.csr_matrix | None = None,
                    batch_size: int = 1024) -> np.ndarray:  # (B, n_items)
        """Logits of every catalogue item for user *indices* (the evaluation protocol).

        With `history` (B, n_items) the users are treated as unknown and represented by
        those interactions (fold-in); otherwise by their training interactions.
        """
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        out, _ = self._items_out()
        chunks = []
        for s in range(0, len(users), batch_size):
            u = users[s:s + batch_size]
            if history is None:
                hu, bu = self._user_vectors(u, self.user_items_[u])
            else:
                hu, bu = self._user_vectors(None, _binary(sp.csr_matrix(history[s:s + batch_size])))
            with torch.no_grad():
                chunks.append(self.network.logits(hu, bu, out).cpu().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, self.network.n_items), np.float32)

    def recommend(
        self,
        user_ids: Any,
        n: int = 10,
        *,
        filter_seen: bool = True,
        items: Sequence[Any] | None = None,
        history: Mapping[Any, Sequence[Any]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-`n` items for each user: `(item_ids, scores)` with raw IDs and probabilities.

        `user_ids` is one raw ID (→ arrays of shape (n,)) or a sequence (→ (B, n)).
        `items` restricts the candidates to those raw item IDs. `history` gives the items
        of users unknown to the model (`{user_id: [item_ids]}`), served by fold-in without
        retraining. `n` is capped at the catalogue size; rows with fewer eligible items
        are padded with None / NaN.
        """
        self._check_fitted()
        n, items, history = check_n(n), check_items_arg(items), check_history(history)
        check_user_ids(user_ids)
        if getattr(self, "index_", None) is not None:  # see build_index
            return self.index_.recommend(self, user_ids, n, filter_seen=filter_seen, items=items,
                                         history=history)
        scalar = np.ndim(user_ids) == 0 and not isinstance(user_ids, (list, tuple))
        raw = [user_ids] if scalar else list(user_ids)
        logits, seen = self._logits_for(raw, history)
        cand = None if items is None else self.item_map_.index(list(items))
        idx, scores = _topk(logits, seen if filter_seen else None, cand, n)
        ids = _ids_with_pad(self.item_map_, idx)
        probs = np.where(np.isfinite(scores), 1.0 / (1.0 + np.exp(-scores)), np.nan)
        return (ids[0], probs[0]) if scalar else (ids, probs)

    def build_index(self, kind: str = "flat", **kw: Any) -> ItemIndex:
        """Build an item index that `recommend` uses from now on (`self.index_`); returns it.

        `kind`: "flat" (exact, FAISS brute force), "ivf" or "hnsw" (approximate, for large
        catalogues); `**kw`: nlist, nprobe, m, ef_construction, ef_search, num_threads, seed
        (see `multirec.index.ItemIndex.from_vectors`). Needs `pip install "multirec[ann]"`.
        `fit` and `add_items` drop the index; `model.index_ = None` goes back to exact scoring.
        """
        from .index import ItemIndex

        self._check_fitted()
        self.index_ = ItemIndex.build(self, kind, **kw)
        return self.index_

    def _logits_for(self, raw_users: list[Any], history: Mapping[Any, Sequence[Any]] | None
                    ) -> tuple[np.ndarray, sp.csr_matrix]:
        history = history or {}
        known = [u in self.user_map_ and u not in history for u in raw_users]
        unknown = [u for u, k in zip(raw_users, known) if not k and u not in history]
        if unknown:
            self.user_map_.index(unknown)  # raises UnknownIDError with a helpful message
        n_items = self.network.n_items
        logits = np.zeros((len(raw_users), n_items), np.float32)
        seen = sp.lil_matrix((len(raw_users), n_items), dtype=np.float32)
        kn = np.flatnonzero(known)
        if kn.size:
            uidx = self.user_map_.index([raw_users[i] for i in kn])
            logits[kn] = self.score_users(uidx)
            rows = self.user_items_[uidx]
            for r, i in enumerate(kn):
                seen[i] = rows[r]
        new = np.flatnonzero(~np.asarray(known, dtype=bool))
        if new.size:
            bag = self._history_matrix([history[raw_users[i]] for i in new])
            logits[new] = self.score_users(np.zeros(new.size, np.int64), history=bag)
            for r, i in enumerate(new):
                seen[i] = bag[r]
        return logits, seen.tocsr()

    def _history_matrix(self, histories: Sequence[Sequence[Any]]) -> sp.csr_matrix:
        rows, cols = [], []
        for r, items in enumerate(histories):
            if isinstance(items, (str, bytes)) or not isinstance(items, Sequence | np.ndarray):
                raise DataError(f"history must map each user to a list of item IDs, got {items!r}")
            idx = self.item_map_.index(list(items)) if len(items) else np.zeros(0, np.int64)
            rows += [r] * len(idx)
            cols += list(idx)
        return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)),
                             shape=(len(histories), self.network.n_items))

    def score(self, user_ids: Sequence[Any], item_ids: Sequence[Any]) -> np.ndarray:  # (N,)
        """Probability σ(logit) for each (user, item) pair."""
        self._check_fitted()
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
        self._check_fitted()
        return self._items_out()[0].h.cpu().numpy()

    def similar_items(self, item_id: Any, n: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Items whose fused vectors are closest (cosine) to `item_id`'s: `(item_ids, sims)`."""
        self._check_fitted()
        n = check_n(n)
        i = int(self.item_map_.index(item_id))
        h = torch.nn.functional.normalize(self._items_out()[0].h, dim=1)
        sims = (h @ h[i]).cpu().numpy()[None, :]
        sims[0, i] = -np.inf
        idx, scores = _topk(sims, None, None, n)
        return _ids_with_pad(self.item_map_, idx)[0], scores[0]

    # ================================================================== growing
    def encoder(self, modality: str) -> Encoder:
        """The encoder of `modality`, built from its saved config on first use."""
        self._check_fitted()
        if modality not in self.modalities_:
            raise ConfigError(f"the model has no {modality!r} encoder; it has {self.modalities_}")
        if modality not in self._encoders:
            self._encoders[modality] = Encoder.from_config(self.encoder_configs_[modality])
        return self._encoders[modality]

    def add_items(self, content: Mapping[str, Mapping[Any, Any]]) -> np.ndarray:
        """Add or update items from content only (`{modality: {item_id: raw}}`); no retraining.

        New items are cold: they are scored from their content (and get no CF factor).
        Returns the indices of the items. Existing items get their content replaced.
        """
        self._check_fitted()
        content = check_content_table(content, self.modalities_)
        ids = list(dict.fromkeys(i for table in content.values() for i in table))
        if not ids:
            raise DataError("add_items() got no items")
        idx = self.item_map_.extend(ids)
        self.network.grow(n_items=len(self.item_map_))
        self.user_items_ = _resize(self.user_items_, self.user_items_.shape[0], len(self.item_map_))
        for m, table in content.items():
            raw = [table.get(i) for i in ids]
            vecs, has = encode_content(self.encoder(m), raw, batch_size=self.encode_batch_size,
                                       cache=self.cache_dir, show_progress=False, modality=m)
            rows = torch.from_numpy(idx)
            with torch.no_grad():
                getattr(self.network, f"content_{m}")[rows[has]] = vecs[has].to(self.device)
                getattr(self.network, f"has_{m}")[rows[has]] = True
        self._item_cache = None
        if getattr(self, "index_", None) is not None:
            warnings.warn("add_items() changed the catalogue, so the item index was dropped and "
                          "recommend() scores every item exactly; call build_index() again",
                          stacklevel=2)
            self.index_ = None
        return idx

    def add_users(self, interactions: Mapping[Any, Sequence[Any]] | pd.DataFrame) -> np.ndarray:
        """Add users (or extend histories) from `{user_id: [item_ids]}` or a DataFrame with
        `user` and `item` columns. They are served by fold-in from these items; no retraining."""
        self._check_fitted()
        if isinstance(interactions, pd.DataFrame):
            for col in ("user", "item"):
                if col not in interactions.columns:
                    raise DataError(f"add_users() DataFrame needs a {col!r} column, has "
                                    f"{list(interactions.columns)}")
            interactions = interactions.groupby("user", sort=False)["item"].apply(list).to_dict()
        users = list(interactions)
        bag = self._history_matrix([interactions[u] for u in users])
        idx = self.user_map_.extend(users)
        self.network.grow(n_users=len(self.user_map_))
        ui = _resize(self.user_items_, len(self.user_map_), self.user_items_.shape[1]).tolil()
        for r, u in enumerate(idx):
            ui[u] = _binary(ui[u].tocsr() + bag[r])
        self.user_items_ = ui.tocsr()
        return idx

    # ================================================================== explaining, search
    def explain(self, user_id: Any, item_id: Any) -> dict[str, Any]:
        """Break the score of (user, item) down by source.

        `contributions[s]` is the change in logit when source `s` (cf, each modality, the
        item's ID residual) is hidden from the item tower — exact for `sum` fusion, an
        occlusion estimate for the others; "item_item" is the weighted item-item score of
        the user's history. Biases are reported separately.
        """
        self._check_fitted()
        u = int(self.user_map_.index(user_id))
        i = torch.tensor([int(self.item_map_.index(item_id))], device=self.device)
        hu, bu = self._user_vectors(np.array([u]), self.user_items_[[u]])
        net = self.network
        with torch.no_grad():
            full = net.items(i)
            logit = float(net.logits(hu, bu, full)[0, 0])
            contrib: dict[str, float] = {}
            k = net.cf_user.shape[1]
            h_u, cf_u, ii_u = hu[0, : net.dim], hu[0, net.dim:net.dim + k], hu[0, net.dim + k:]
            names = net.source_names
            fused = net.fusion(full.sources, full.mask)
            for s, name in enumerate(names):
                if not bool(full.mask[0, s]):
                    continue
                mask = full.mask.clone()
                mask[0, s] = False
                contrib[name] = float(h_u @ (fused - net.fusion(full.sources, mask))[0])
            if cf_u.numel() and net.use_user_cf and bool(full.mask[0, 0]) and "cf" in names:
                contrib["cf"] = contrib.get("cf", 0.0) + float(net.cf_scale * (cf_u @ full.cf[0]))
            if bool(net.warm_item[i]) and net.use_id_embeddings:
                contrib["id"] = float(h_u @ net.item_id(i)[0])
            if ii_u.numel():  # EASE item-item score from the user's history
                contrib["item_item"] = float(net.ii_scale * ii_u[i[0]])
        a, c = float(net.logit_scale), float(net.logit_shift)  # calibration, folded in
        return {"user": user_id, "item": item_id, "score": 1.0 / (1.0 + np.exp(-logit)),
                "logit": logit, "contributions": {k: a * v for k, v in contrib.items()},
                "user_bias": a * float(bu[0]), "item_bias": a * float(full.bias[0]),
                "global_bias": a * net.global_bias.item() + c,
                "sources_present": [n for s, n in enumerate(names) if bool(full.mask[0, s])]}

    def search(self, text: str, n: int = 10, *, modality: str | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Items matching a text query with no interactions needed: `(item_ids, scores)`.

        Uses every content encoder that can embed text into its own space: a CLIP image
        encoder (`encode_text`, cross-modal text → image) or the text encoder. Scores are
        cosine similarities, averaged over the modalities used.
        """
        self._check_fitted()
        text, n = check_query(text), check_n(n)
        if modality is not None:
            check_modality(modality, self.modalities_)
        mods = [modality] if modality else self.modalities_
        total = np.zeros(self.network.n_items)
        count = np.zeros(self.network.n_items)
        used = []
        for m in mods:
            enc = self.encoder(m)
            if hasattr(enc, "encode_text"):
                q = enc.encode_text([text])
            elif enc.modality == "text":
                q = enc.encode([text])
            else:
                continue
            with torch.no_grad():
                emb = getattr(self.network, f"content_{m}")
                has = getattr(self.network, f"has_{m}").cpu().numpy()
                sims = torch.nn.functional.cosine_similarity(
                    emb.cpu(), q.detach().float().cpu().reshape(1, -1), dim=1).numpy()
            total += np.where(has, sims, 0.0)
            count += has
            used.append(m)
        if not used:
            raise ConfigError(f"no encoder among {mods} can embed text queries; use a text encoder "
                              "or a CLIP image encoder (encoders 'text' or 'image')")
        score = np.where(count > 0, total / np.maximum(count, 1), -np.inf)[None, :]
        idx, scores = _topk(score, None, None, n)
        return _ids_with_pad(self.item_map_, idx)[0], scores[0]

    # ================================================================== persistence
    def get_config(self) -> dict[str, Any]:
        """JSON-able constructor arguments (encoders as configs)."""
        cf = self._cf_config()
        return {
            "encoders": getattr(self, "encoder_configs_", None) or {
                m: _encoder_config(e) for m, e in resolve_encoders(self.encoder_specs).items()},
            "dim": self.dim, "fusion": self.fusion,
            "cf": asdict(cf) if cf is not None else False,
            "use_id_embeddings": self.use_id_embeddings, "use_user_cf": self.use_user_cf,
            "item_item": self.item_item,
            "item_item_l2": getattr(self, "item_item_l2_", self.item_item_l2),
            "encode_batch_size": self.encode_batch_size,
            "cache_dir": None if self.cache_dir is None else os.fspath(self.cache_dir),
            **self.train_config.to_dict(),
        }

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        """Save to `directory` atomically: config.json, model.safetensors, ids.json (no pickle)."""
        from .io import save_model

        self._check_fitted()
        save_model(self, directory)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: str = "cpu") -> MultimodalRecommender:
        """Load a model saved with `save_pretrained` (checks format version and checksums).

        Encoders are rebuilt by their registered name, so a custom encoder's module (the one
        with its `@register_encoder`) must be imported before loading.
        """
        from .io import load_model

        return load_model(cls, directory, device=device)

    def extra_repr(self) -> str:
        fitted = hasattr(self, "network")
        size = f", users={self.network.n_users}, items={self.network.n_items}" if fitted else ""
        return f"modalities={list(self.encoder_specs)}, dim={self.dim}, fusion={self.fusion!r}{size}"


# ====================================================================== helpers
def _encoder_config(enc: Encoder) -> dict[str, Any]:
    return enc.to_config()


def _calibrate(net: TwoTowerNetwork, train_x: sp.csr_matrix, valid_x: sp.csr_matrix,
               device: torch.device) -> None:
    """Fit `σ(a·logit + c)` to the validation interactions (Platt scaling; a > 0 keeps ranks).

    Positives are each validation user's held-out items, negatives all other items they did
    not train on, so `score()` estimates the chance that an item is among the user's next
    interactions. Left at (1, 0) when the fit is degenerate.
    """
    users = np.flatnonzero(np.diff(valid_x.indptr))
    net.logit_scale.fill_(1.0)
    net.logit_shift.fill_(0.0)
    xs, ys = [], []
    for u, bag, logits in user_logits(net, train_x, users, device):
        keep = bag.cpu().numpy() == 0  # (B, n_items): items the user did not train on
        xs.append(logits.double().cpu().numpy()[keep])
        ys.append((valid_x[u].toarray() > 0)[keep])
    fit = _platt(np.concatenate(xs), np.concatenate(ys))
    if fit is not None:
        net.logit_scale.fill_(fit[0])
        net.logit_shift.fill_(fit[1])


def _platt(x: np.ndarray, y: np.ndarray, iters: int = 50) -> tuple[float, float] | None:
    """`(a, c)` minimising the logistic loss of `σ(a·x + c)` against labels `y`; None when
    degenerate (one class only, non-finite scores, or a ≤ 0)."""
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if not 0 < y.sum() < y.size or not np.isfinite(x).all():
        return None
    feats = np.stack([x, np.ones_like(x)], 1)

    def loss(t: np.ndarray) -> float:  # mean logistic loss
        z = feats @ t
        return float(np.mean(np.logaddexp(0.0, z) - y * z))

    theta = np.array([1.0, 0.0])  # damped Newton's method on the logistic loss in (a, c)
    current = loss(theta)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(feats @ theta, -40, 40)))
        grad = feats.T @ (p - y)
        hess = (feats * (p * (1 - p))[:, None]).T @ feats + 1e-6 * np.eye(2)
        step, t = np.linalg.solve(hess, grad), 1.0
        while t > 1e-4 and loss(theta - t * step) > current:
            t /= 2
        if t <= 1e-4:
            break
        theta = theta - t * step
        new = loss(theta)
        if current - new < 1e-10:
            break
        current = new
    if np.isfinite(theta).all() and theta[0] > 0:
        return float(theta[0]), float(theta[1])
    return None


def _default_l2(x: sp.csr_matrix) -> float:
    """EASE λ without validation data: ten times the mean number of users per item."""
    return max(1.0, 10.0 * x.nnz / max(x.shape[1], 1))


def _is_trainable(enc: Encoder) -> bool:
    """Whether `enc` has trainable weights (then it is fine-tuned end to end in `fit`)."""
    return any(p.requires_grad for p in enc.parameters())


def _binary(x: sp.spmatrix) -> sp.csr_matrix:
    x = sp.csr_matrix(x, dtype=np.float32)
    x.sum_duplicates()
    x.eliminate_zeros()
    x.data[:] = 1.0
    return x


def _resize(x: sp.csr_matrix, n_rows: int, n_cols: int) -> sp.csr_matrix:
    coo = x.tocoo()
    return sp.csr_matrix((coo.data, (coo.row, coo.col)), shape=(n_rows, n_cols), dtype=np.float32)


def _holdout(x: sp.csr_matrix, fraction: float, seed: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Random split of interactions; every user keeps at least one training interaction."""
    coo = x.tocoo()
    rng = np.random.default_rng(seed)
    held = rng.random(coo.nnz) < fraction
    # keep the first (random) interaction of each user in train
    order = rng.permutation(coo.nnz)
    _, first = np.unique(coo.row[order], return_index=True)
    held[order[first]] = False
    shape = x.shape
    train = sp.csr_matrix((coo.data[~held], (coo.row[~held], coo.col[~held])), shape=shape)
    valid = sp.csr_matrix((coo.data[held], (coo.row[held], coo.col[held])), shape=shape)
    return train, valid


def _standardise(x: torch.Tensor) -> torch.Tensor:
    """Scale factors to unit average norm (LightFM's scale depends on lr and epochs)."""
    scale = x.norm(dim=1).mean().clamp(min=1e-8)
    return x / scale


def _topk(scores: np.ndarray, exclude: sp.csr_matrix | None, candidates: np.ndarray | None,
          n: int) -> tuple[np.ndarray, np.ndarray]:  # (B, n) indices (-1 pad), (B, n) scores
    s = np.array(scores, dtype=np.float64, copy=True)
    if candidates is not None:
        keep = np.zeros(s.shape[1], dtype=bool)
        keep[candidates] = True
        s[:, ~keep] = -np.inf
    if exclude is not None and exclude.nnz:
        r, c = exclude.nonzero()
        s[r, c] = -np.inf
    n = min(n, s.shape[1])
    if n < s.shape[1]:
        part = np.argpartition(-s, n - 1, axis=1)[:, :n]
    else:
        part = np.tile(np.arange(s.shape[1]), (len(s), 1))
    top = np.take_along_axis(s, part, 1)
    order = np.argsort(-top, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, 1)
    val = np.take_along_axis(top, order, 1)
    idx = np.where(np.isfinite(val), idx, -1)
    return idx, val


def _ids_with_pad(idmap: IdMap, idx: np.ndarray) -> np.ndarray:
    ids = idmap.ids(np.maximum(idx, 0))
    if (idx < 0).any():
        ids = ids.astype(object)
        ids[idx < 0] = None
    return ids

