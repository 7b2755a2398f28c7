"""Validation-only steps after training: the item-item weight and probability calibration.

Both use only the internal validation interactions (never the test data) and leave the
ranking machinery untouched: the item-item weight is chosen by validation NDCG (the
`multirec.ranking` kernel), the calibration `σ(a·logit + c)` with a > 0 keeps every ranking.
Memory is bounded: at most `max_users` validation users, and calibration keeps each user's
held-out items plus `negatives_per_user` sampled items (reweighted), never users × items.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from .ranking import sample_target_rows
from .scoring import iter_logits
from .training import validation_ndcg

__all__ = ["ITEM_ITEM_SCALES", "COLD_CF_SCALES", "tune_item_item_scale", "tune_cold_cf_scale",
           "calibrate", "platt"]

ITEM_ITEM_SCALES = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)  # multipliers tried on validation
COLD_CF_SCALES = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)  # on the cold carve


def tune_item_item_scale(net: Any, train_x: sp.csr_matrix, valid_x: sp.csr_matrix, item_item: Any,
                         *, k: int = 10, max_users: int = 2000, seed: int = 0,
                         scales: tuple[float, ...] = ITEM_ITEM_SCALES) -> float:
    """Rescale the learned item-item weight by the best multiplier on validation; returns it.

    The learned weight stays close to its start (the towers absorb the rest). W still comes
    from the training part only (no peeking); `fit` refits it on all interactions after.
    """
    return _best_multiplier(net.ii_scale, scales, lambda: validation_ndcg(
        net, train_x, valid_x, k, item_item=item_item, max_users=max_users, seed=seed))


def tune_cold_cf_scale(net: Any, train_x: sp.csr_matrix, valid_x: sp.csr_matrix, carve: Any,
                       item_item: Any = None, *,
                       k: int = 10, max_users: int = 2000, seed: int = 0,
                       scales: tuple[float, ...] = COLD_CF_SCALES) -> float:
    """Set the weight of the LightFM score for cold items (`cold_cf_scale`, whose factor
    comes from side features alone) to the best multiplier on validation; returns it.

    The score is NDCG@k of the whole catalogue against the warm validation pairs and the
    carve's (`carve`: a `multirec.coldvalid.ColdCarve`) together, so new items are placed
    among the others, not only among themselves: a weight that ranks new items well among
    themselves but floods everyone's lists with them loses. Warm items keep the learned weight.
    """
    target = sp.csr_matrix(valid_x + carve.target)
    return _best_multiplier(net.cold_cf_scale, scales, lambda: validation_ndcg(
        net, train_x, target, k, item_item=item_item, max_users=max_users, seed=seed))


def _best_multiplier(weight: torch.Tensor, scales: tuple[float, ...],
                     score: Callable[[], float]) -> float:
    """Scale `weight` in place by the multiplier in `scales` with the best `score()` (the
    first of equals); returns the multiplier."""
    base = weight.detach().clone()
    best, best_score = 1.0, -np.inf
    for mult in scales:
        with torch.no_grad():
            weight.copy_(base * mult)
        value = score()
        if value > best_score:
            best, best_score = mult, value
    with torch.no_grad():
        weight.copy_(base * best)
    return float(best)


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
    y = np.asarray(y, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    w = np.ones_like(x) if w is None else np.asarray(w, dtype=np.float64)
    if not 0 < y.sum() < y.size or not np.isfinite(x).all():
        return None
    w = w / w.mean()
    feats = np.stack([x, np.ones_like(x)], 1)

    def loss(t: np.ndarray) -> float:  # weighted mean logistic loss
        z = feats @ t
        return float(np.mean(w * (np.logaddexp(0.0, z) - y * z)))

    theta = np.array([1.0, 0.0])  # damped Newton's method on the logistic loss in (a, c)
    current = loss(theta)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(feats @ theta, -40, 40)))
        grad = feats.T @ (w * (p - y))
        hess = (feats * (w * p * (1 - p))[:, None]).T @ feats + 1e-6 * np.eye(2)
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
