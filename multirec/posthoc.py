"""Validation-only steps after training: the item-item weight, how cold items are scored
(on the cold-item carve) and probability calibration.

All use only the internal validation interactions and the carve (never the test data) and
leave the ranking machinery untouched: the weights are chosen by validation NDCG (the
`multirec.ranking` kernel; each setting's grid from two logit passes, `multirec.gridscore`),
the calibration `σ(a·logit + c)` with a > 0 keeps every ranking.
Memory is bounded: at most `max_users` validation users, and calibration keeps each user's
held-out items plus `negatives_per_user` sampled items (reweighted), never users × items.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from .gridscore import GridScore, carve_grid, validation_grid
from .ranking import masked_scores, sample_target_rows
from .scoring import iter_logits

__all__ = ["ITEM_ITEM_SCALES", "COLD_CF_SCALES", "CONTENT_WEIGHTS", "best_weight", "COLD_SHIFT_RANKS",
           "COLD_CANDIDATES_MAX", "cold_candidates", "tune_item_item_scale",
           "tune_cold_items", "tune_cold_cf_scale", "cold_shift_candidates", "calibrate", "platt",
           "carry_over"]

ITEM_ITEM_SCALES = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)  # multipliers tried on validation
COLD_CF_SCALES = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0)  # on the carve
# weights of each content-neighbour source (`multirec.neighbours`) tried on the carve
CONTENT_WEIGHTS = (0.0, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
# cold items the carve's targets are ranked among when choosing the cold LightFM weight: the
# carved ones and at most this many in all (the rest a seeded sample of the never-interacted
# items), so a catalogue of 10^6 items nobody has touched costs no more than 20,000 would
COLD_CANDIDATES_MAX = 20_000


def tune_item_item_scale(net: Any, train_x: sp.csr_matrix, valid_x: sp.csr_matrix, item_item: Any,
                         *, k: int = 10, max_users: int = 2000, seed: int = 0,
                         scales: tuple[float, ...] = ITEM_ITEM_SCALES) -> float:
    """Rescale the learned item-item weight by the best multiplier on validation; returns it.

    The learned weight stays close to its start (the towers absorb the rest). W still comes
    from the training part only (no peeking); `fit` refits it on all interactions after.
    """
    return _best_multiplier(net.ii_scale, scales, validation_grid(
        net, train_x, valid_x, k, item_item=item_item, max_users=max_users, seed=seed))


def tune_cold_items(net: Any, train_x: sp.csr_matrix, valid_x: sp.csr_matrix, carve: Any,
                    item_item: Any = None, *, k: int = 10, max_users: int = 2000, seed: int = 0,
                    scales: tuple[float, ...] = COLD_CF_SCALES) -> dict[str, float]:
    """Set how cold items are scored from the carve (`carve`: a `multirec.coldvalid.ColdCarve`),
    in three steps, and return the choices (`{"cold_cf_scale": s, "content_weights": {source:
    w}, "cold_shift": δ}`):

    1. the weight `s` of the LightFM score of cold items (`cold_cf_scale`; their factor comes
       from side features alone): the best multiplier for how well new items are ordered
       among themselves — NDCG@k of the carve's targets ranked among the carved items, plus
       the same ranked among every item cold now (the carved ones and those nobody has
       interacted with yet, which new items compete with when served; their interactions
       are unknown, so only the carve's count as relevant; above `COLD_CANDIDATES_MAX` a
       seeded sample of them, see `cold_candidates`). Measured: the carve alone, about
       50 items, picked too small a weight on long-tailed data (s = 2–4 where 32–64 was best);
       the larger candidate set alone too small a one on ml-100k. Skipped without a CF source;
    2. the weight of each content-neighbour source (`multirec.neighbours`: side features,
       frozen content vectors), one at a time by the same measure, 0 (off) first and winning
       ties, doubled past the grid while its largest value wins (`best_weight`), then `s`
       once more given them (a second round over the sources changed nothing on ml-100k);
    3. a shift `δ` of every cold item's logit (added to `cold_bias`): the best of a few
       offsets that put a user's top new item at rank 1, 2, 5, ... of their warm list, or
       below all of it (`cold_shift_candidates`), for
       NDCG@k of the whole catalogue against the validation pairs, the carved items' among
       them (`carve.held`: new items with their share of the pairs as in the data) — where
       new items stand among the others, so a large `s` cannot flood everyone's list with
       them. δ = 0 (the trained level) is tried first and wins ties.

    Warm items keep their learned weights.
    """
    out: dict[str, Any] = {}
    cold = cold_candidates(~net.warm_item.cpu().numpy(), carve.items, seed=seed)

    carve_score = carve_grid(net, train_x, carve, cold, k=k, item_item=item_item,
                             max_users=max_users, seed=seed)

    cf_base = net.cold_cf_scale.detach().clone()
    if net.cf_item_proj is not None:
        out["cold_cf_scale"] = _best_multiplier(net.cold_cf_scale, scales, carve_score)
    if net.content_slices:
        for cols in net.content_slices.values():
            best_weight(net.content_weight[cols], CONTENT_WEIGHTS, carve_score)
        out["content_weights"] = net.content_weights()
        if net.cf_item_proj is not None and net.uses_content_neighbours:
            chosen = out["cold_cf_scale"]  # again, now with the neighbours on (ties: keep it)
            with torch.no_grad():
                net.cold_cf_scale.copy_(cf_base)
            out["cold_cf_scale"] = _best_multiplier(
                net.cold_cf_scale, (chosen, *[v for v in scales if v != chosen]), carve_score)
    target = sp.csr_matrix(valid_x + (carve.target if carve.held is None else carve.held))
    offsets = cold_shift_candidates(net, train_x, target, item_item, max_users=min(max_users, 500),
                                    seed=seed)
    out["cold_shift"] = _best_offset(net.cold_bias, offsets, validation_grid(
        net, train_x, target, k, item_item=item_item, max_users=max_users, seed=seed))
    return out


def best_weight(weight: torch.Tensor, values: tuple[float, ...], score: GridScore,
                max_doublings: int = 4) -> float:
    """Set `weight` in place to the value in `values` with the best score (`score`: a
    `multirec.gridscore.GridScore`; the first of equals); while the largest wins, try twice
    it (at most `max_doublings` times), so a source whose scores are on a smaller scale than
    the model's is not cut off at the grid's edge. Returns the value."""
    def absolute(base: torch.Tensor, v: float) -> torch.Tensor:
        return torch.full_like(base, v)

    best = _best_setting(weight, values, absolute, score, default=0.0)
    top = values[-1]
    for _ in range(max_doublings):
        if best != top:
            break
        top *= 2.0
        best = _best_setting(weight, (best, top), absolute, score, default=best)
    return best


def cold_candidates(cold: np.ndarray, carved: np.ndarray, *, cap: int = COLD_CANDIDATES_MAX,
                    seed: int = 0) -> np.ndarray:  # (≤ max(cap, C),) sorted item indices
    """The cold items (`cold`: (n_items,) bool) to rank the carve's targets among: every
    carved item, then a seeded sample of the other cold items up to `cap` in all."""
    others = np.setdiff1d(np.flatnonzero(cold), carved)
    room = max(cap - carved.size, 0)
    if others.size > room:
        others = np.random.default_rng(seed).choice(others, room, replace=False)
    return np.union1d(carved, others)


# where a user's top new item is placed among their warm items (ranks past the catalogue
# are dropped); then one offset below every sampled user's warm items (`cold_shift_candidates`)
COLD_SHIFT_RANKS = (1, 2, 5, 10, 20, 50, 100, 1000, 10_000, 100_000)


def cold_shift_candidates(net: Any, inputs: sp.csr_matrix, target: sp.csr_matrix,
                          item_item: Any = None, *, max_users: int = 500, seed: int = 0,
                          ranks: tuple[int, ...] = COLD_SHIFT_RANKS) -> list[float]:
    """Offsets of the cold items' logits to try: 0, then for each rank r the median over
    sampled users of (r-th best warm logit − best cold logit), training items excluded —
    the shift that puts the typical user's best new item at rank r of their warm list —
    and last the offset that puts every sampled user's new items below all their warm ones
    (new items then never displace a warm one; measured: on a 20,000-item long-tailed warm
    split with content neighbours, validation NDCG still rose at the rank-1000 offset, and
    test NDCG@10 at the bottom was 0.2687 against 0.2622 there)."""
    cold = ~net.warm_item.cpu().numpy()  # (n_items,) bool
    if not cold.any() or cold.all():
        return [0.0]
    users = sample_target_rows(target, max_users, seed)
    ranks = tuple(r for r in ranks if r <= int((~cold).sum()))
    gaps: list[np.ndarray] = []  # per block: (B, R) r-th warm minus best cold
    bottom = np.inf  # lowest (worst warm − best cold) over the sampled users
    for u, logits in iter_logits(net, inputs, users, item_item):
        z = masked_scores(logits.cpu().numpy(), inputs[u])  # (B, n_items), training items -inf
        best_cold = np.where(cold, z, -np.inf).max(1)  # (B,)
        warm_z = np.where(cold, -np.inf, z)  # (B, n_items)
        top = -np.partition(-warm_z, ranks[-1] - 1, axis=1)[:, :ranks[-1]]
        top = -np.sort(-top, axis=1)  # (B, R_max) best warm logits, descending
        gaps.append(top[:, [r - 1 for r in ranks]] - best_cold[:, None])
        worst = np.where(np.isfinite(warm_z), warm_z, np.inf).min(1)  # (B,)
        gap = worst - best_cold
        if np.isfinite(gap).any():
            bottom = min(bottom, float(gap[np.isfinite(gap)].min()))
    if not gaps:
        return [0.0]
    gap = np.concatenate(gaps)
    medians = {round(float(np.median(g[np.isfinite(g)])), 6) for g in gap.T if np.isfinite(g).any()}
    if np.isfinite(bottom):
        medians.add(round(bottom - 1.0, 6))
    return [0.0] + sorted(medians - {0.0}, reverse=True)


def tune_cold_cf_scale(net: Any, train_x: sp.csr_matrix, valid_x: sp.csr_matrix, carve: Any,
                       item_item: Any = None, **kw: Any) -> float:
    """`tune_cold_items`, returning only the chosen `cold_cf_scale` (1.0 without CF)."""
    return tune_cold_items(net, train_x, valid_x, carve, item_item, **kw).get("cold_cf_scale", 1.0)


def _best_multiplier(weight: torch.Tensor, scales: tuple[float, ...], score: GridScore) -> float:
    """Scale `weight` in place by the multiplier in `scales` with the best score (the first
    of equals); returns the multiplier."""
    return _best_setting(weight, scales, lambda base, mult: base * mult, score, default=1.0)


def _best_offset(weight: torch.Tensor, offsets: list[float], score: GridScore) -> float:
    """Add to `weight` in place the offset in `offsets` with the best score (the first of
    equals); returns the offset."""
    return _best_setting(weight, offsets, lambda base, off: base + off, score, default=0.0)


def _best_setting(weight: torch.Tensor, values: Any, apply: Callable[[torch.Tensor, float], torch.Tensor],
                  score: GridScore, default: float) -> float:
    """Set `weight` in place to `apply(its value now, v)` for the v in `values` with the best
    score (the first of equals; `default` when none scores); returns that v."""
    base = weight.detach().clone()
    values = [float(v) for v in values]

    def set_value(v: float) -> None:
        with torch.no_grad():
            weight.copy_(apply(base, v))

    got = np.asarray(score(set_value, values), dtype=np.float64)
    got = np.where(np.isnan(got), -np.inf, got)  # a value that cannot be scored never wins
    best = values[int(np.argmax(got))] if (got > -np.inf).any() else default
    set_value(best)
    return float(best)


def carry_over(old: Any, new: Any, *, item_item_scale: float | None = None,
               cold_shift: float = 0.0) -> None:
    """Give `new` (the same network retrained on all interactions) the post-hoc settings
    chosen on `old`: the item-item multiplier and the cold-item shift apply to `new`'s own
    learned weights; the cold LightFM weight, the content-neighbour weights, the popularity
    prior's (w, κ), new users' item-item damping and the calibration are copied as they are."""
    with torch.no_grad():
        if item_item_scale is not None:
            new.ii_scale.mul_(item_item_scale)
        new.cold_bias.add_(cold_shift)
        for name in ("cold_cf_scale", "content_weight", "prior_weight", "prior_halflife",
                     "new_user_ii_halflife", "logit_scale", "logit_shift"):
            getattr(new, name).copy_(getattr(old, name))


def calibrate(net: Any, train_x: sp.csr_matrix, valid_x: sp.csr_matrix, item_item: Any = None, *,
              negatives_per_user: int = 200, max_users: int = 2000, seed: int = 0) -> bool:
    """Fit `σ(a·logit + c)` to the validation interactions (Platt scaling) in place.

    Positives are each sampled validation user's held-out items; negatives a uniform sample
    of `negatives_per_user` of the other items they did not train on, each weighted by how
    many items it stands for, so `score()` estimates the chance that an item is among the
    user's next interactions. Left at (1, 0) (returns False) when the fit is degenerate.
    """
    rng = np.random.default_rng(seed)
    net.logit_scale.fill_(1.0)
    net.logit_shift.fill_(0.0)
    users = sample_target_rows(valid_x, max_users, seed)
    n_items = train_x.shape[1]
    xs, ys, ws = [], [], []
    for u, logits in iter_logits(net, train_x, users, item_item):
        z = logits.double().cpu().numpy()  # (B, n_items)
        for r, user in enumerate(u):
            seen = train_x.indices[train_x.indptr[user]:train_x.indptr[user + 1]]
            pos = np.setdiff1d(valid_x.indices[valid_x.indptr[user]:valid_x.indptr[user + 1]], seen)
            neg = rng.integers(0, n_items, negatives_per_user)
            neg = neg[~np.isin(neg, seen) & ~np.isin(neg, pos)]
            if neg.size == 0:
                continue
            n_neg = n_items - seen.size - pos.size
            xs += [z[r, pos], z[r, neg]]
            ys += [np.ones(pos.size), np.zeros(neg.size)]
            ws += [np.ones(pos.size), np.full(neg.size, n_neg / neg.size)]
    if not xs:
        return False
    fit = platt(np.concatenate(xs), np.concatenate(ys), np.concatenate(ws))
    if fit is None:
        return False
    net.logit_scale.fill_(fit[0])
    net.logit_shift.fill_(fit[1])
    return True


def platt(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None,
          iters: int = 50) -> tuple[float, float] | None:
    """`(a, c)` minimising the weighted logistic loss of `σ(a·x + c)` against labels `y`;
    None when degenerate (one class only, non-finite scores, or a ≤ 0)."""
    x = np.asarray(x, dtype=np.float64)
    theta = logistic(np.stack([x, np.ones_like(x)], 1), y, w, iters=iters)
    if theta is not None and theta[0] > 0:
        return float(theta[0]), float(theta[1])
    return None


def logistic(feats: np.ndarray, y: np.ndarray, w: np.ndarray | None = None,
             iters: int = 50) -> np.ndarray | None:
    """Weights θ (F,) minimising the weighted mean logistic loss of `σ(feats @ θ)` against
    the labels `y` (damped Newton from θ = (1, 0, ..., 0)); None when degenerate (one class
    only, or non-finite features or weights)."""
    y = np.asarray(y, dtype=np.float64)
    feats = np.asarray(feats, dtype=np.float64)  # (N, F)
    w = np.ones(len(y)) if w is None else np.asarray(w, dtype=np.float64)
    if not 0 < y.sum() < y.size or not np.isfinite(feats).all():
        return None
    w = w / w.mean()

    def loss(t: np.ndarray) -> float:  # weighted mean logistic loss
        z = feats @ t
        return float(np.mean(w * (np.logaddexp(0.0, z) - y * z)))

    theta = np.zeros(feats.shape[1])
    theta[0] = 1.0
    current = loss(theta)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(feats @ theta, -40, 40)))
        grad = feats.T @ (w * (p - y))
        hess = (feats * (w * p * (1 - p))[:, None]).T @ feats + 1e-6 * np.eye(feats.shape[1])
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
    return theta if np.isfinite(theta).all() else None
