"""Cold-item validation: a carve of simulated new items, and folding them back in.

A random validation split only holds out pairs of items the model trains on, so it cannot
tell whether the content path serves *new* items well — and with a strong item-item term
it often peaks before the content path has learned anything. `fit` therefore carves a
small share of the warm items that have content (`TrainConfig.cold_valid_items`) out of
training altogether:

    carve_items      pick the items; their interactions leave the training (and the warm
                     validation) part and become the cold validation targets
    fold_in_items    after training: fit each carved item's ID residual and bias on all
                     its interactions with everything else frozen (a logistic regression
                     per item), then mark it warm, so no item is lost to the carve (items
                     whose only interactions were validation ones are folded in the same way)

Early stopping selects the epoch by warm + cold validation NDCG (`training.validation_ndcg`
with `columns=carve.items`: the carve's targets ranked among the carved items only, the
cold-item protocol, from the users' training histories).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from .optim import adam, weighted_bce_sum
from .scoring import Scorer, logits_batch_size

__all__ = ["ColdCarve", "carve_items", "fold_in_items", "MIN_CARVED_ITEMS",
           "MAX_CARVED_ITEMS"]

MIN_CARVED_ITEMS = 20  # fewer eligible items: no carve (the estimate would be noise)
MAX_CARVED_ITEMS = 2000  # the fold-in and the cold ranking stay cheap on any catalogue
FOLD_IN_BUDGET = 20_000_000  # user × item scores held at once by the fold-in (~80 MB each array)
SAMPLED_OTHERS = 2048  # at least this many non-users of a group of items are its negatives


@dataclass
class ColdCarve:
    """The carved items and their interactions (the cold validation targets)."""

    items: np.ndarray  # (C,) int64 sorted item indices
    target: sp.csr_matrix  # (n_users, n_items) binary: the carved items' interactions
    # the part of `target` that fell into the validation holdout: new items' share of the
    # validation pairs as in the data (None without validation)
    held: sp.csr_matrix | None = None


def carve_items(train_x: sp.csr_matrix, valid_x: sp.csr_matrix | None, eligible: np.ndarray,
                fraction: float, seed: int
                ) -> tuple[sp.csr_matrix, sp.csr_matrix | None, ColdCarve | None]:
    """Move `fraction` of the `eligible` (n_items,) bool warm items out of training.

    Returns the new `train_x`, `valid_x` (carved columns removed) and the carve, or the
    inputs unchanged and None when fewer than `MIN_CARVED_ITEMS` items would be carved.
    Users keep at least one training interaction where they had one (an item whose removal
    would leave a user with no history is not carved).
    """
    n_items = train_x.shape[1]
    counts = np.diff(train_x.tocsc().indptr)
    pool = np.flatnonzero(eligible & (counts > 0))
    n = min(int(round(fraction * pool.size)), MAX_CARVED_ITEMS)
    if fraction <= 0 or n < MIN_CARVED_ITEMS:
        return train_x, valid_x, None
    rng = np.random.default_rng([seed, 7])
    picked = np.zeros(n_items, dtype=bool)
    picked[rng.choice(pool, n, replace=False)] = True
    # keep every user's history non-empty: un-carve the first item of users it would empty
    col = train_x.indices
    row = np.repeat(np.arange(train_x.shape[0]), np.diff(train_x.indptr))
    left = np.bincount(row, weights=~picked[col], minlength=train_x.shape[0])
    for u in np.flatnonzero((np.diff(train_x.indptr) > 0) & (left == 0)):
        picked[col[train_x.indptr[u]]] = False
    items = np.flatnonzero(picked)
    if items.size < MIN_CARVED_ITEMS:
        return train_x, valid_x, None
    keep = sp.diags((~picked).astype(np.float32))
    only = sp.diags(picked.astype(np.float32))
    target = train_x @ only if valid_x is None else (train_x + valid_x) @ only
    target = sp.csr_matrix(target, dtype=np.float32)
    target.eliminate_zeros()
    target.data[:] = 1.0
    new_train = sp.csr_matrix(train_x @ keep)
    new_train.eliminate_zeros()
    new_valid, held = None, None
    if valid_x is not None:
        new_valid = sp.csr_matrix(valid_x @ keep)
        new_valid.eliminate_zeros()
        held = sp.csr_matrix(valid_x @ only, dtype=np.float32)
        held.eliminate_zeros()
    return new_train, new_valid, ColdCarve(items=items, target=target, held=held)


def fold_in_items(net: Any, full: sp.csr_matrix, items_idx: np.ndarray, *, item_item: Any = None,
                  neg_weight: float = 0.5, epochs: int = 30, lr: float = 0.05,
                  seed: int = 0, budget: int = FOLD_IN_BUDGET) -> None:
    """Fit the ID residual and bias of items `items_idx` (C,) — carved items, and items whose
    only interactions were held out for validation — on all their interactions (users'
    histories from `full`, every other weight frozen), then mark them warm in place.

    Their history-context vector is set to the content-based one they had while cold, so
    the vectors of users who consumed them do not change. The logit of user u and carved
    item i is `base_ui + ⟨h_u, e_i⟩ + b_i` with `base` the frozen rest (the item-item term
    included, as it will be once the item is warm): a logistic regression per item,
    with the training loss's weights (positives 1, non-interactions `neg_weight`).
    Items are fitted in groups of at most `budget` user × item scores (the users of a group
    plus a sample of at least `SAMPLED_OTHERS` others, their negatives reweighted), so the
    memory stays bounded on any catalogue.
    """
    cols = np.asarray(items_idx, dtype=np.int64)
    if cols.size == 0:
        return
    net.eval()
    scorer = Scorer(net, item_item)  # user vectors do not change as items are folded in
    counts = np.diff(sp.csr_matrix(full[:, cols]).tocsc().indptr)  # (C,) users per item
    for chunk in _chunks(cols, counts, budget):
        _fold_in_chunk(net, scorer, full, chunk, neg_weight=neg_weight, epochs=epochs, lr=lr,
                       seed=seed, budget=budget)


def _chunks(cols: np.ndarray, counts: np.ndarray, budget: int) -> list[np.ndarray]:
    """`cols` in groups whose (their users + `SAMPLED_OTHERS`) × items stays within `budget`
    scores (least popular first, so the long tail is folded in a few large groups)."""
    out, start, users = [], 0, 0
    order = np.argsort(counts, kind="stable")
    for j, i in enumerate(order):
        if j > start and (users + counts[i] + SAMPLED_OTHERS) * (j - start + 1) > budget:
            out.append(np.sort(cols[order[start:j]]))
            start, users = j, 0
        users += counts[i]
    out.append(np.sort(cols[order[start:]]))
    return out


def _fold_in_chunk(net: Any, scorer: Scorer, full: sp.csr_matrix, cols: np.ndarray, *,
                   neg_weight: float, epochs: int, lr: float, seed: int, budget: int) -> None:
    """`fold_in_items` for one group of items (C,), in bounded memory."""
    items = torch.from_numpy(cols).to(net.global_bias.device)
    users, neg_scale = _fold_in_users(full, cols, seed, budget)
    if users.size == 0:
        return
    with torch.no_grad():
        ctx = net.context(items, net.items(items))  # (C, d) content-based context, kept
        # the items as they will be once warm, with no residual or bias of their own yet
        net.item_id.weight[items] = 0.0
        net.item_bias.weight[items] = 0.0
        net.item_ctx_id.weight[items] = ctx
        net.warm_item[items] = True
        out = net.items(items)
        h_u, base_z = [], []
        bs = logits_batch_size(len(items))
        for s in range(0, users.size, bs):
            u = users[s:s + bs]
            hist = full[u]
            user = scorer.users(u, hist)
            ii = scorer.item_item_scores(hist, cols)
            base_z.append(net.raw_logits(user, out, ii))  # (B, C)
            h_u.append(user.h)  # (B, d)
        h_u, base_z = torch.cat(h_u), torch.cat(base_z)
    target = torch.from_numpy(full[users][:, cols].toarray()).to(base_z.device)  # (U, C)
    weight = target + neg_weight * (1 - target) * torch.from_numpy(neg_scale).to(target).unsqueeze(1)
    emb = torch.zeros(len(items), net.dim, device=base_z.device, requires_grad=True)
    bias = torch.zeros(len(items), device=base_z.device, requires_grad=True)
    opt = adam([emb, bias], lr)
    for _ in range(epochs):
        z = base_z + h_u @ emb.T + bias  # (U, C)
        loss = weighted_bce_sum(z, target, weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        net.item_id.weight[items] = emb.detach().to(net.item_id.weight.dtype)
        net.item_bias.weight[items, 0] = bias.detach()


def _fold_in_users(full: sp.csr_matrix, cols: np.ndarray, seed: int,
                   budget: int) -> tuple[np.ndarray, np.ndarray]:
    """Users the fold-in looks at (every user of the items, plus a sample of the others
    within `budget` user × item scores) and the weight of each one's negatives (n / sample)."""
    active = np.flatnonzero(np.diff(full.indptr))
    pos = np.flatnonzero(np.diff(sp.csr_matrix(full[:, cols]).indptr))
    others = np.setdiff1d(active, pos, assume_unique=True)
    room = max(budget // max(cols.size, 1) - pos.size, min(SAMPLED_OTHERS, others.size))
    scale = 1.0
    if others.size > room:
        scale = others.size / max(room, 1)
        others = np.random.default_rng([seed, 11]).choice(others, room, replace=False)
    users = np.concatenate([pos, np.sort(others)])
    weights = np.concatenate([np.ones(pos.size), np.full(others.size, scale)]).astype(np.float32)
    return users, weights
