"""Looking inside a fitted model: per-source explanations, text search, similar items/users.

Functions over a fitted `MultimodalRecommender` (`model`); the facade's `explain`,
`search`, `similar_items` and `similar_users` call them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .errors import ConfigError
from .ranking import topk
from .validate import check_modality, check_n, check_query

__all__ = ["explain", "search", "similar_items", "similar_users"]


def explain(model: Any, user_id: Any, item_id: Any) -> dict[str, Any]:
    """Break the score of (user, item) down by source.

    `contributions[s]` is the change in logit when source `s` (cf, each modality, the item's
    ID residual) is hidden from the item tower — exact for `sum` fusion, an occlusion
    estimate for the others; "item_item" is the weighted item-item score of the user's
    history; "popularity" the popularity prior (weighted by the history's length);
    "neighbours:<source>" (cold items) the weighted content similarity of the item to the
    user's history by that source (`multirec.neighbours`). Biases
    are reported separately; calibration is folded into every number.
    """
    net, scorer = model.network, model.scorer_
    u = int(model.user_map_.index(user_id))
    i_idx = int(model.item_map_.index(item_id))
    i = torch.tensor([i_idx], device=model.device)
    hist = model.user_items_[[u]]
    user = scorer.users(np.array([u]), hist)
    ii = scorer.item_item_scores(hist, np.array([i_idx]))
    with torch.no_grad():
        full = net.items(i)
        logit = float(net.logits(user, full, ii)[0, 0])
        contrib: dict[str, float] = {}
        h_u = user.h[0]
        names = net.source_names
        fused = net.fusion(full.sources, full.mask)
        for s, name in enumerate(names):
            if not bool(full.mask[0, s]):
                continue
            mask = full.mask.clone()
            mask[0, s] = False
            contrib[name] = float(h_u @ (fused - net.fusion(full.sources, mask))[0])
        if net.use_user_cf and bool(full.mask[0, 0]) and "cf" in names:
            contrib["cf"] = contrib.get("cf", 0.0) + float(net.cf_scale * (user.cf[0] @ full.cf[0]))
        if bool(net.warm_item[i]) and net.use_id_embeddings:
            contrib["id"] = float(h_u @ net.item_id(i)[0])
        if ii is not None:
            contrib["item_item"] = float(net.item_item_term(user, full, ii)[0, 0])
        if float(user.prior[0]) != 0.0:
            contrib["popularity"] = float(user.prior[0] * full.prior[0])
        if user.knn is not None and full.knn is not None and not bool(net.warm_item[i]):
            for name, cols in net.content_slices.items():  # cold items: content neighbours
                contrib[f"neighbours:{name}"] = float(user.knn[0, cols] @ full.knn[0, cols])
    a, c = float(net.logit_scale), float(net.logit_shift)
    return {"user": user_id, "item": item_id, "score": 1.0 / (1.0 + np.exp(-logit)),
            "logit": logit, "contributions": {k: a * v for k, v in contrib.items()},
            "user_bias": a * float(user.bias[0]), "item_bias": a * float(full.bias[0]),
            "global_bias": a * net.global_bias.item() + c,
            "sources_present": [n for s, n in enumerate(names) if bool(full.mask[0, s])]}


def search(model: Any, text: str, n: int = 10, *, modality: str | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """Items matching a text query with no interactions needed: `(item_ids, scores)`.

    Uses every content encoder that can embed text into its own space: a CLIP image encoder
    (`encode_text`, cross-modal text → image) or the text encoder. Scores are cosine
    similarities, averaged over the modalities used.
    """
    from .catalogue import encoder, ids_with_pad

    text, n = check_query(text), check_n(n)
    if modality is not None:
        check_modality(modality, model.modalities_)
    mods = [modality] if modality else model.modalities_
    n_items = model.network.n_items
    total, count, used = np.zeros(n_items), np.zeros(n_items), []
    for m in mods:
        enc = encoder(model, m)
        if hasattr(enc, "encode_text"):
            q = enc.encode_text([text])
        elif enc.modality == "text":
            q = enc.encode([text])
        else:
            continue
        with torch.no_grad():
            emb = getattr(model.network, f"content_{m}")
            has = getattr(model.network, f"has_{m}").cpu().numpy()
            sims = torch.nn.functional.cosine_similarity(
                emb.cpu(), q.detach().float().cpu().reshape(1, -1), dim=1).numpy()
        total += np.where(has, sims, 0.0)
        count += has
        used.append(m)
    if not used:
        raise ConfigError(f"no encoder among {mods} can embed text queries; use a text encoder "
                          "or a CLIP image encoder (encoders 'text' or 'image')")
    score = np.where(count > 0, total / np.maximum(count, 1), -np.inf)[None, :]
    idx, scores = topk(score, n)
    return ids_with_pad(model.item_map_, idx)[0], scores[0]


def similar_items(model: Any, item_id: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Items closest (cosine of fused vectors) to `item_id`: `(item_ids, sims)`."""
    from .catalogue import ids_with_pad

    i = int(model.item_map_.index(item_id))
    h = torch.nn.functional.normalize(model.scorer_.catalogue()[0].h, dim=1)
    sims = (h @ h[i]).cpu().numpy()[None, :].astype(np.float64)
    sims[0, i] = -np.inf
    idx, scores = topk(sims, n)
    return ids_with_pad(model.item_map_, idx)[0], scores[0]


def similar_users(model: Any, user_id: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Users closest (cosine of user vectors `h_u`) to `user_id`: `(user_ids, sims)`."""
    from .catalogue import ids_with_pad
    from .scoring import logits_batch_size

    u = int(model.user_map_.index(user_id))
    n_users = len(model.user_map_)
    target = model.scorer_.users(np.array([u]), model.user_items_[[u]]).h
    target = torch.nn.functional.normalize(target, dim=1)[0]
    sims = np.empty(n_users)
    bs = logits_batch_size(model.network.dim, cap=4096)
    for s in range(0, n_users, bs):
        users = np.arange(s, min(s + bs, n_users))
        h = model.scorer_.users(users, model.user_items_[users]).h
        sims[users] = (torch.nn.functional.normalize(h, dim=1) @ target).cpu().numpy()
    sims[u] = -np.inf
    idx, scores = topk(sims[None, :], n)
    return ids_with_pad(model.user_map_, idx)[0], scores[0]
