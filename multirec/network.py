"""The two-tower network behind `MultimodalRecommender` (tensors in, logits out).

Item tower: each source (projected LightFM item factor, projected content embedding per
modality) → fusion → `h_i`, plus a per-item ID residual and bias for items seen in training.
User tower: projected LightFM user factor (warm users) + a history encoder over the items
the user interacted with (so new users are served by fold-in, without retraining).
Head: `logit = ⟨h_u, h_i⟩ + b_u + b_i + b`, `p = σ(logit)`.

Frozen content embeddings and LightFM factors live in buffers, so `state_dict()` holds
everything needed to score (saved as safetensors). The network is built from a
`multirec.config.NetworkConfig` (saved verbatim with a model).

Costs: the user tower reads a user's history as a sparse bag (`torch.sparse.mm`), so a step
costs O(interactions in the batch × d + batch × pool × d), never batch × catalogue unless
the pool is the whole catalogue. Item-item scores (`multirec.itemitem`) are computed
outside the network (sparse or dense weights) and passed to `logits` as `ii`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from encoders import Projection

from .config import NetworkConfig
from .fusion import make_fusion, modality_dropout

__all__ = ["TwoTowerNetwork", "ItemOutput", "UserOutput", "TrainCells", "sparse_bag"]


def sparse_bag(rows: sp.spmatrix, device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, n) scipy rows → a torch sparse COO tensor (float32) on `device`."""
    coo = sp.coo_matrix(rows)
    idx = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    val = torch.from_numpy(coo.data.astype(np.float32, copy=False))
    return torch.sparse_coo_tensor(idx, val, coo.shape, device=device,
                                   check_invariants=False).coalesce()


@dataclass
class ItemOutput:
    """Item-tower output for a batch of items."""

    h: torch.Tensor  # (B, d) item vectors
    bias: torch.Tensor  # (B,) item biases b_i
    sources: torch.Tensor  # (B, S, d) projected sources before fusion
    mask: torch.Tensor  # (B, S) bool: sources used
    cf: torch.Tensor  # (B, k) LightFM item factor where used, else 0 (k = 0 without CF)
    index: torch.Tensor | None = None  # (B,) item indices
    memory: torch.Tensor | None = None  # (B,) 1 where the item-item term is used, else 0
    prior: torch.Tensor | None = None  # (B,) popularity prior log(1 + interactions)
    knn: torch.Tensor | None = None  # (B, R) weighted content-neighbour vectors, 0 for warm items

    def take(self, idx: torch.Tensor) -> ItemOutput:
        """The rows `idx` (C,) of every per-item field."""
        return ItemOutput(**{f.name: None if (v := getattr(self, f.name)) is None else v[idx]
                             for f in fields(self)})


@dataclass
class UserOutput:
    """User-tower output for a batch of users."""

    h: torch.Tensor  # (B, d) user vectors
    cf: torch.Tensor  # (B, k) LightFM user factor where used, else 0
    bias: torch.Tensor  # (B,) user biases b_u (0 for users unknown to the model)
    prior: torch.Tensor | None = None  # (B,) weight of the items' popularity prior
    knn: torch.Tensor | None = None  # (B, R) pooled content-neighbour vectors of the history
    # (B,) weight of the item-item term: n / (n + κ) for users the model does not know
    # (n their history length, κ `new_user_ii_halflife`), 1 for known users; None: 1 for all
    ii_weight: torch.Tensor | None = None


class TwoTowerNetwork(nn.Module):
    """Item and user towers over frozen content embeddings and LightFM factors."""

    # tensors added after model format 2 was fixed, with the value that reproduces how a
    # model saved without them scores (`multirec.io` fills them in on load)
    STATE_DEFAULTS = {"cold_cf_scale": 1.0, "item_prior": 0.0, "prior_weight": 0.0,
                      "prior_halflife": 1.0, "content_basis": 0.0, "content_weight": 0.0,
                      "new_user_ii_halflife": 0.0}

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        n_users, n_items, dim = config.n_users, config.n_items, config.dim
        content_dims, cf_dim = config.content_dims, config.cf_dim
        self.modalities = list(content_dims)
        self.source_names = (["cf"] if cf_dim else []) + self.modalities
        self.dim, self.use_id_embeddings = dim, config.use_id_embeddings
        self.use_user_cf = bool(cf_dim) and config.use_user_cf
        self.use_item_item = config.item_item
        if not self.source_names and not config.use_id_embeddings:
            raise ValueError("the network needs CF factors, content or ID embeddings")
        # ---- frozen inputs (buffers; resized by `grow`)
        for m, in_dim in content_dims.items():
            self.register_buffer(f"content_{m}", torch.zeros(n_items, in_dim))
            self.register_buffer(f"has_{m}", torch.zeros(n_items, dtype=torch.bool))
        cf = cf_dim or 0
        self.register_buffer("cf_item", torch.zeros(n_items, cf))
        self.register_buffer("cf_user", torch.zeros(n_users, cf))
        self.register_buffer("warm_item", torch.zeros(n_items, dtype=torch.bool))
        # items with a LightFM factor: warm items, and cold ones whose factor comes from
        # side features (LightFM's hybrid model)
        self.register_buffer("has_cf", torch.zeros(n_items, dtype=torch.bool))
        # training only (not saved): each item's LightFM factor from its side features alone,
        # what it would be if it were cold; NaN rows: no side features. Items made to look
        # cold in a training step get this factor instead of their own (see `items`).
        self.register_buffer("cf_item_cold", None, persistent=False)
        self.register_buffer("warm_user", torch.zeros(n_users, dtype=torch.bool))
        # probability calibration `a·logit + c`, set on validation after training (1, 0 until then)
        self.register_buffer("logit_scale", torch.ones(1))
        self.register_buffer("logit_shift", torch.zeros(1))
        # multiplier of the LightFM score ⟨u, v⟩ for cold items (their factor comes from side
        # features alone), chosen on the cold-item validation carve after training (1 until then)
        self.register_buffer("cold_cf_scale", torch.ones(1))
        # popularity prior for new users' short histories: logit += w·κ/(κ + n_u)·item_prior_i,
        # n_u the history length, item_prior = log(1 + interactions), for users the model does
        # not know; w, κ chosen on validation after training (`multirec.prior`; w = 0 until then)
        self.register_buffer("item_prior", torch.zeros(n_items))
        self.register_buffer("prior_weight", torch.zeros(1))
        self.register_buffer("prior_halflife", torch.ones(1))
        # κ of the item-item term's weight n / (n + κ) for those users (0: full weight), set
        # after training from `TrainConfig.new_user_item_item_halflife` where the prior is on
        # (`multirec.fit.posthoc`)
        self.register_buffer("new_user_ii_halflife", torch.zeros(1))
        # content neighbours for cold items (`multirec.neighbours`): per-source item vectors
        # side by side, and one weight per column (the source's weight, chosen on the
        # cold-item carve after training; 0 until then, and for sources that do not help)
        self.content_slices: dict[str, slice] = {}
        start = 0
        for name, width in config.content_neighbours.items():
            self.content_slices[name] = slice(start, start + width)
            start += width
        self.register_buffer("content_basis", torch.zeros(n_items, start))
        self.register_buffer("content_weight", torch.zeros(start))
        # ---- learned
        self.content_proj = nn.ModuleDict({m: Projection(d_in, dim) for m, d_in in content_dims.items()})
        self.cf_item_proj = nn.Linear(cf, dim) if cf_dim else None
        self.cf_user_proj = nn.Linear(cf, dim) if self.use_user_cf else None
        self.fusion = make_fusion(config.fusion, max(1, len(self.source_names)), dim)
        self.item_id = nn.Embedding(n_items, dim)
        self.item_ctx_id = nn.Embedding(n_items, dim)
        self.item_bias = nn.Embedding(n_items, 1)
        self.user_bias = nn.Embedding(n_users, 1)
        for emb in (self.item_id, self.item_ctx_id):
            nn.init.normal_(emb.weight, std=0.01)
        for emb in (self.item_bias, self.user_bias):
            nn.init.zeros_(emb.weight)
        self.content_bias = nn.Linear(dim, 1)
        self.ctx = nn.Linear(dim, dim)  # item vector → history-context vector
        self.hist = nn.Linear(dim, dim)  # pooled history → user vector
        self.hist_bias = nn.Parameter(torch.zeros(dim))
        self.global_bias = nn.Parameter(torch.zeros(1))
        self.cold_bias = nn.Parameter(torch.zeros(1))  # prior of items without interactions
        self.cf_scale = nn.Parameter(torch.ones(1))  # weight of the raw LightFM score ⟨u, v⟩
        self.ii_scale = nn.Parameter(torch.full((1,), 4.0))  # weight of the item-item score

    # ------------------------------------------------------------------ fine-tuning
    @property
    def finetuned(self) -> list[str]:
        """Modalities whose encoder is trained end to end with the towers."""
        return list(self.encoders) if hasattr(self, "encoders") else []

    def attach_encoders(self, encoders: dict[str, nn.Module], raw: dict[str, list] | None = None,
                        batch_size: int = 32) -> None:
        """Train these encoders end to end: in training mode `items()` embeds the raw
        content of each batch's items with them (gradients flow into their trainable
        layers); in eval mode the `content_{m}` buffers are used (see `refresh_content`).

        `raw[m][i]` is item `i`'s raw content (None where missing). The encoders become
        submodules, so their weights are saved with the network.
        """
        unknown = [m for m in encoders if m not in self.modalities]
        if unknown:
            raise ValueError(f"no content modality {unknown} in this network ({self.modalities})")
        self.encoders = nn.ModuleDict(encoders)
        # each modality's raw content made ready once (`Encoder.prepare`): steps embed by position
        self._prepared = {m: encoders[m].prepare(r) for m, r in (raw or {}).items() if m in encoders}
        self._encode_batch_size = batch_size

    def live_content(self, items: torch.Tensor) -> dict[str, torch.Tensor]:  # {m: (B, d_m)}
        """Embeddings of `items` computed now by the fine-tuned encoders (with gradients)."""
        out = {}
        for m in self.finetuned:
            emb = getattr(self, f"content_{m}")[items].clone()  # (B, d_m); missing rows stay 0
            prepared = self._prepared.get(m)
            if prepared is None:
                raise RuntimeError(f"no raw {m!r} content attached; fine-tuning needs "
                                   "attach_encoders(raw=...)")
            rows = torch.nonzero(getattr(self, f"has_{m}")[items]).squeeze(1)  # (b,)
            if rows.numel():
                vecs = self.encoders[m].encode_prepared(prepared, items[rows].tolist())  # (b, d_m)
                emb = emb.index_put((rows,), vecs.to(emb.dtype))
            out[m] = emb
        return out

    @torch.no_grad()
    def refresh_content(self) -> None:
        """Re-embed every item with the fine-tuned encoders into the `content_{m}` buffers."""
        was = self.training
        self.eval()
        for m in self.finetuned:
            buf, has, prepared = (getattr(self, f"content_{m}"), getattr(self, f"has_{m}"),
                                  self._prepared.get(m))
            if prepared is None:
                continue
            rows = torch.nonzero(has[: len(prepared)]).squeeze(1).tolist()
            for s in range(0, len(rows), self._encode_batch_size):
                chunk = rows[s:s + self._encode_batch_size]
                buf[chunk] = self.encoders[m].encode_prepared(prepared, chunk).to(buf.dtype)
        self.train(was)

    # ------------------------------------------------------------------ sizes
    @property
    def n_items(self) -> int:
        return self.warm_item.shape[0]

    @property
    def n_users(self) -> int:
        return self.warm_user.shape[0]

    def grow(self, n_users: int | None = None, n_items: int | None = None) -> None:
        """Append rows for new users/items (cold: no CF factor, zero ID residual and bias)."""
        def pad(t: torch.Tensor, n: int) -> torch.Tensor:
            extra = n - t.shape[0]
            return t if extra <= 0 else torch.cat([t, t.new_zeros((extra, *t.shape[1:]))])

        if n_items is not None and n_items > self.n_items:
            for name in ["cf_item", "warm_item", "has_cf", "item_prior", "content_basis",
                         *[f"content_{m}" for m in self.modalities],
                         *[f"has_{m}" for m in self.modalities]]:
                setattr(self, name, pad(getattr(self, name), n_items))
            for emb in (self.item_id, self.item_ctx_id, self.item_bias):
                emb.weight = nn.Parameter(pad(emb.weight.data, n_items))
                emb.num_embeddings = n_items
            self.config.n_items = n_items
        if n_users is not None and n_users > self.n_users:
            self.config.n_users = n_users
            self.cf_user = pad(self.cf_user, n_users)
            self.warm_user = pad(self.warm_user, n_users)
            self.user_bias.weight = nn.Parameter(pad(self.user_bias.weight.data, n_users))
            self.user_bias.num_embeddings = n_users

    def id_tables(self) -> list[nn.Embedding]:
        """The per-item and per-user tables (ID residual, history context, biases): the
        parameters that grow with the catalogue and the users (see `sparse_updates`)."""
        return [self.item_id, self.item_ctx_id, self.item_bias, self.user_bias]

    # ------------------------------------------------------------------ item tower
    def source_mask(self, items: torch.Tensor) -> torch.Tensor:  # (B, S) bool
        cols = ([self.has_cf[items]] if self.cf_item_proj is not None else [])
        cols += [getattr(self, f"has_{m}")[items] for m in self.modalities]
        if not cols:
            return torch.zeros(len(items), 1, dtype=torch.bool, device=items.device)
        return torch.stack(cols, dim=1)

    def items(
        self,
        items: torch.Tensor,  # (B,) long
        drop_p: torch.Tensor | None = None,  # (S + 1,) per-source drop prob (+ ID residual)
        content: dict[str, torch.Tensor] | None = None,  # fine-tuned embeddings (B, d_m)
        mask: torch.Tensor | None = None,  # (B, S) override presence (explanations)
    ) -> ItemOutput:
        srcs = []  # projected content sources; the CF source is put first below
        if content is None and self.training and self.finetuned:
            content = self.live_content(items)
        for m in self.modalities:
            emb = content[m] if content is not None and m in content else getattr(self, f"content_{m}")[items]
            srcs.append(self.content_proj[m](emb))
        base_mask = self.source_mask(items) if mask is None else mask
        warm = self.warm_item[items] & self.use_id_embeddings  # (B,)
        used = base_mask
        memory = self.warm_item[items]  # (B,) items with item-item weights
        looks_cold = ~self.warm_item[items]  # (B,)
        cf = self.cf_item[items]  # (B, k)
        if drop_p is not None:
            full = torch.cat([base_mask, warm.unsqueeze(1)], dim=1)  # (B, S+1)
            full = modality_dropout(full, drop_p) if base_mask.shape[1] else full
            used, warm = full[:, :-1], full[:, -1]
            keep = (warm if self.use_id_embeddings
                    else torch.rand(len(items), device=items.device) >= drop_p[-1])
            sim_cold = memory & ~keep  # (B,) warm items made to look cold this step
            memory = memory & keep
            looks_cold = looks_cold | sim_cold
            if self.cf_item_proj is not None:
                cf, used = self._cold_cf(items, sim_cold, cf, used)
        if self.cf_item_proj is not None:
            srcs.insert(0, self.cf_item_proj(cf))
        x = torch.stack(srcs, 1) if srcs else torch.zeros(len(items), 1, self.dim, device=items.device)
        h = self.fusion(x, used)  # (B, d)
        w = warm.to(h.dtype)
        h = h + w.unsqueeze(1) * self.item_id(items)
        cold = looks_cold.to(h.dtype)
        bias = (self.content_bias(h).squeeze(-1) + w * self.item_bias(items).squeeze(-1)
                + cold * self.cold_bias)  # (B,)
        if self.cf_item_proj is not None:
            weight = torch.where(looks_cold, self.cold_cf_scale, torch.ones_like(self.cold_cf_scale))
            cf = cf * (used[:, :1].to(cf.dtype) * weight.unsqueeze(1))
        return ItemOutput(h=h, bias=bias, sources=x, mask=used, cf=cf, index=items,
                          memory=memory.to(h.dtype), prior=self.item_prior[items],
                          knn=self._item_knn(items, memory) if drop_p is None else None)

    # ------------------------------------------------------------------ content neighbours
    @property
    def uses_content_neighbours(self) -> bool:
        """Whether some content-neighbour source has a nonzero weight."""
        return bool(self.content_weight.numel()) and bool(self.content_weight.abs().sum() > 0)

    def content_weights(self) -> dict[str, float]:
        """{source: weight} of the content-neighbour term."""
        return {n: float(self.content_weight[s][0]) for n, s in self.content_slices.items()}

    @torch.no_grad()
    def set_content_weight(self, source: str, weight: float) -> None:
        """Set one content-neighbour source's weight (see `content_weights`)."""
        if source not in self.content_slices:
            raise KeyError(f"no content-neighbour source {source!r}; this network has "
                           f"{sorted(self.content_slices)}")
        self.content_weight[self.content_slices[source]] = float(weight)

    def _item_knn(self, items: torch.Tensor, memory: torch.Tensor) -> torch.Tensor | None:
        """(B, R) weighted content vectors of cold items (warm ones: 0); None when unused."""
        if not self.uses_content_neighbours:
            return None
        cold = (~memory.bool()).to(self.content_basis.dtype).unsqueeze(1)  # (B, 1)
        return self.content_basis[items] * self.content_weight * cold

    def _cold_cf(self, items: torch.Tensor, sim_cold: torch.Tensor, cf: torch.Tensor,
                 used: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For items made to look cold: the CF factor a cold item would have (from side
        features alone, `cf_item_cold`) or no CF source, when another source can stand in.
        Returns the (B, k) factors and the (B, S) mask."""
        used = used.clone()
        if self.cf_item_cold is not None:
            cold_cf = self.cf_item_cold[items]  # (B, k); NaN rows: no side features
            has_cold = ~torch.isnan(cold_cf[:, 0])
            swap = sim_cold & has_cold
            cf = torch.where(swap.unsqueeze(1), torch.nan_to_num(cold_cf), cf)
        else:
            swap = torch.zeros_like(sim_cold)
        others = used[:, 1:].any(dim=1)  # another source is present
        used[:, 0] = used[:, 0] & ~(sim_cold & ~swap & others)
        return cf, used

    def context(self, items: torch.Tensor, out: ItemOutput) -> torch.Tensor:  # (B, d)
        """History-context vector of each item (what it says about a user who consumed it):
        a learned per-item vector for items seen in training (with ID embeddings), else a
        projection of the item's fused content vector (content-only models, cold items)."""
        warm = (self.warm_item[items] & self.use_id_embeddings).to(out.h.dtype).unsqueeze(1)
        return (1 - warm) * self.ctx(out.h) + warm * self.item_ctx_id(items)

    # ------------------------------------------------------------------ user tower
    def users(
        self,
        users: torch.Tensor | None,  # (B,) long, or None for users unknown to the model
        bag: torch.Tensor,  # (B, n_ctx) history weights over the context items (sparse or dense)
        ctx: torch.Tensor,  # (n_ctx, d) context vectors of those items
        use_cf: torch.Tensor | None = None,  # (B,) bool: use the LightFM user factor
        basis: torch.Tensor | None = None,  # (n_ctx, R) content-neighbour vectors of those items
    ) -> UserOutput:
        """User vectors from the history bag (+ the LightFM user factor for known users);
        with `basis`, the pooled content-neighbour vector too (`UserOutput.knn`)."""
        if bag.is_sparse:
            bag = bag.coalesce()
            rows, vals = bag.indices()[0], bag.values()
            n = torch.zeros(bag.shape[0], device=ctx.device, dtype=ctx.dtype).index_add_(0, rows, vals)
            pooled = torch.sparse.mm(bag, ctx)  # (B, d)
        else:
            n = bag.sum(1)
            pooled = bag @ ctx  # (B, d)
        knn = None
        if basis is not None and basis.shape[1] and self.uses_content_neighbours:
            knn = ((torch.sparse.mm(bag, basis) if bag.is_sparse else bag @ basis)
                   / n.clamp(min=1.0).sqrt().unsqueeze(1))  # (B, R)
        pooled = torch.tanh(pooled / n.clamp(min=1.0).sqrt().unsqueeze(1) + self.hist_bias)
        hu = self.hist(pooled)  # (B, d)
        B = pooled.shape[0]
        bu = torch.zeros(B, device=ctx.device, dtype=hu.dtype)
        cf = torch.zeros(B, self.cf_user.shape[1], device=ctx.device, dtype=hu.dtype)
        if users is not None:
            warm = self.warm_user[users]
            if use_cf is not None:
                warm = warm & use_cf
            cf = warm.to(hu.dtype).unsqueeze(1) * self.cf_user[users]
            if self.cf_user_proj is not None:
                hu = hu + warm.to(hu.dtype).unsqueeze(1) * self.cf_user_proj(self.cf_user[users])
            bu = self.warm_user[users].to(hu.dtype) * self.user_bias(users).squeeze(-1)
        # the popularity prior serves users the model does not know (fold-in); known users
        # have their own bias and LightFM factor
        prior = self.prior_weight * self.prior_halflife / (self.prior_halflife + n)  # (B,)
        # and their history is short for the item-item weights, fitted on full histories
        ii_weight = n / (n + self.new_user_ii_halflife).clamp(min=1e-12)  # (B,) 1 when κ = 0
        if users is not None:
            new = ~self.warm_user[users]
            prior = prior * new.to(prior.dtype)
            ii_weight = torch.where(new, ii_weight, torch.ones_like(ii_weight))
        return UserOutput(h=hu, cf=cf, bias=bu, prior=prior.to(hu.dtype), knn=knn,
                          ii_weight=ii_weight.to(hu.dtype))

    def raw_logits(self, user: UserOutput, item: ItemOutput,
                   ii: torch.Tensor | None = None) -> torch.Tensor:  # (B, C)
        """`⟨h_u, h_i⟩ + s·⟨u_cf, v_cf⟩ [+ t·v_u·ii_ui] [+ knn_ui] + w_u·prior_i + b_u + b_i + b`
        (before calibration).

        `ii` (B, C): item-item scores of the users' histories for these items (see
        `multirec.itemitem`); used only where the item has item-item weights (`memory`), and
        weighted down for users the model does not know by their history's length (`v_u`).
        `w_u·prior_i`: the popularity prior, weighted down as the user's history grows.
        `knn_ui`: content neighbours (`multirec.neighbours`), for cold items only, when the
        user output carries them (`users(..., basis=...)`).
        """
        # one (B, C) array, added to in place: each further (B, C) temporary costs about as
        # much as the product (measured, 2,000 users × 20k items with sparse EASE: validation
        # logits 1.50 → 0.76 s, and 0.44 → 0.20 s without the item-item term)
        out = torch.addmm(item.bias.unsqueeze(0) + self.global_bias, user.h, item.h.T)
        out.add_(user.bias.unsqueeze(1))
        if user.prior is not None and item.prior is not None:
            out.addr_(user.prior, item.prior)
        if user.cf.shape[1] and self.use_user_cf:
            out.addmm_(self.cf_scale * user.cf, item.cf.T)  # the (B, k) side scaled, not (B, C)
        if ii is not None and self.use_item_item:
            out.add_(self.item_item_term(user, item, ii))
        if user.knn is not None and item.knn is not None:
            cold = torch.nonzero(item.memory == 0).squeeze(1)  # (C_cold,) only they have it
            if cold.numel():
                out = out.index_add(1, cold, user.knn @ item.knn[cold].T)
        return out

    def pair_logits(self, user: UserOutput, item: ItemOutput, rows: torch.Tensor,
                    cols: torch.Tensor, ii: torch.Tensor | None = None) -> torch.Tensor:  # (N,)
        """`raw_logits(user, item, ·)[rows, cols]` for N cells only: O(N·d) instead of
        O(B·C·d). `rows` (N,) index `user`, `cols` (N,) index `item`; `ii` (N,) are the
        item-item scores of those cells. Training scores each user's own positives with it."""
        out = ((user.h[rows] * item.h[cols]).sum(1) + item.bias[cols] + user.bias[rows]
               + self.global_bias)  # (N,)
        if user.prior is not None and item.prior is not None:
            out = out + user.prior[rows] * item.prior[cols]
        if user.cf.shape[1] and self.use_user_cf:
            out = out + self.cf_scale * (user.cf[rows] * item.cf[cols]).sum(1)
        if ii is not None and self.use_item_item:
            term = ii * (self.ii_scale * item.memory[cols])
            out = out + (term if user.ii_weight is None else term * user.ii_weight[rows])
        if user.knn is not None and item.knn is not None:  # item.knn is 0 for warm items
            out = out + (user.knn[rows] * item.knn[cols]).sum(1)
        return out

    def item_item_term(self, user: UserOutput, item: ItemOutput,
                       ii: torch.Tensor) -> torch.Tensor:  # (B, C)
        """`t·ii_ui·memory_i·v_u`: the weighted item-item scores (`v_u`: `UserOutput.ii_weight`)."""
        term = ii * (self.ii_scale * item.memory)  # (B, C): one temporary, scaled in place
        return term if user.ii_weight is None else term.mul_(user.ii_weight.unsqueeze(1))

    def logits(self, user: UserOutput, item: ItemOutput,
               ii: torch.Tensor | None = None) -> torch.Tensor:  # (B, C)
        """Calibrated logits `a·raw + c` (`σ` of them estimates the interaction probability)."""
        return self.raw_logits(user, item, ii) * self.logit_scale + self.logit_shift

    # ------------------------------------------------------------------ training step
    def forward(
        self,
        users: torch.Tensor,  # (B,) long
        bag: torch.Tensor,  # (B, P) sparse history weights over the pool items (after dropout)
        items: torch.Tensor,  # (P,) long: the candidate pool
        ii: torch.Tensor | None = None,  # (B, P) item-item scores of the (dropped) histories
        drop_p: torch.Tensor | None = None,  # (S + 1,) per-source drop prob (+ ID residual)
        use_cf: torch.Tensor | None = None,  # (B,) bool: use the LightFM user factor
        content: dict[str, torch.Tensor] | None = None,  # fine-tuned embeddings of `items`
        cells: TrainCells | None = None,  # score only these cells of the (B, P) grid
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:  # (B, P), or (B, K) and (N,)
        """One training step's scores: the pool's item vectors, each user's history over the
        pool, and every (user, pool item) logit; with `cells`, only the logits at its
        columns (B, K) and at its pairs (N,) (`ii` then is `cells`' own). Both come from the
        same pass, so `DistributedDataParallel(net)(...)` sees the whole step and all-reduces
        its gradients."""
        out = self.items(items, drop_p=drop_p, content=content)
        ctx = self.context(items, out)  # (P, d)
        user = self.users(users, bag, ctx, use_cf=use_cf)
        if cells is None:
            return self.raw_logits(user, out, ii)
        at_columns = out.take(cells.columns)
        return (self.raw_logits(user, at_columns, cells.ii_columns),
                self.pair_logits(user, out, cells.rows, cells.cols, cells.ii_pairs))


@dataclass
class TrainCells:
    """The cells of a training step's (B, P) user × pool grid that carry loss: K shared
    columns (sampled negatives) and N (user, item) pairs (each user's positives)."""

    columns: torch.Tensor  # (K,) long pool positions
    rows: torch.Tensor  # (N,) long batch rows of the pairs
    cols: torch.Tensor  # (N,) long pool positions of the pairs
    ii_columns: torch.Tensor | None = None  # (B, K) item-item scores at `columns`
    ii_pairs: torch.Tensor | None = None  # (N,) item-item scores of the pairs

