"""Validation NDCG of one post-hoc setting over a grid of values, from two logit passes.

Every setting `multirec.posthoc` tunes enters the raw logits affinely: the item-item
multiplier (`t` in `t·ii_ui·memory_i`), the cold items' LightFM weight (it scales their CF
factor), a content-neighbour source's weight (it scales the source's item vectors) and the
cold-item shift (added to their bias). None of them reaches the user tower (a user's
history context comes from the items' fused vectors `h`, which they do not touch). So

    z(v) = z(a) + (v − a) · (z(b) − z(a)) / (b − a)

and each block of users is scored twice, at the grid's first value `a` and at the value `b`
farthest from it; every value's logits are interpolated from those two in float64 (exactly
z(a) and z(b) at the two, the others to float32 rounding) instead of a full pass — user
tower, item-item scores, the (users × items) products — per value. Measured (1 thread, a
CF-only fit on the long-tail generator's data, the same choices): the post-hoc stage 23.6 →
16.5 s at 20,000 items (10,000 users, 50 interactions each; test NDCG@10 the same to every
digit), 50.0 → 28.8 s at 50,000 items (50,000 users, 4 each; NDCG@10 0.0979 both).

    grid = validation_grid(net, train_x, valid_x, k=10, item_item=ii)   # a GridScore
    scores = grid(set_value, [0.0, 0.5, 1.0, 2.0])   # (4,) NDCG@k; the setting is left at 0.0

A `GridScore` is `grid(set_value, values) -> (len(values),) scores`, where `set_value(v)`
puts the setting at `v`; `pointwise(score)` makes one from a plain `score() -> float`
(one evaluation per value, for settings that are not affine).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from .ranking import ndcg_at_k, sample_target_rows
from .scoring import Scorer, logits_batch_size

__all__ = ["GridScore", "pointwise", "grid_logits", "validation_grid", "carve_grid"]

SetValue = Callable[[float], None]
GridScore = Callable[[SetValue, Sequence[float]], np.ndarray]


def pointwise(score: Callable[[], float]) -> GridScore:
    """A GridScore that sets each value in turn and calls `score()`."""
    def grid(set_value: SetValue, values: Sequence[float]) -> np.ndarray:
        out = np.empty(len(values))
        for j, v in enumerate(values):
            set_value(v)
            out[j] = score()
        return out
    return grid


def grid_logits(net: Any, set_value: SetValue, values: Sequence[float], inputs: sp.csr_matrix,
                users: np.ndarray, item_item: Any = None, *, columns: np.ndarray | None = None
                ) -> Iterator[tuple[np.ndarray, sp.csr_matrix, Callable[[int], np.ndarray]]]:
    """Per block of `users`: `(u, history, at)`, where `history` is `inputs[u]` (B, n_items)
    and `at(j)` the (B, C) float32 raw logits with the setting at `values[j]` (C: every
    item, or the items `columns`). The setting must enter the logits affinely (module
    docstring); it is left at `values[0]`."""
    a = float(values[0])
    far = max((float(v) for v in values), key=lambda v: abs(v - a))  # interpolate, never
    b = far if far != a else None  # extrapolate: |v − a| ≤ |b − a| for every v
    set_value(a)
    first = Scorer(net, item_item)
    first.catalogue()  # the item outputs at `a`
    second = None
    if b is not None:
        set_value(b)
        second = Scorer(net, item_item)
        second.catalogue()
    bs = logits_batch_size(net.n_items if columns is None else len(columns))
    try:
        for s in range(0, users.size, bs):
            u = users[s:s + bs]
            history = inputs[u]
            set_value(a)
            za = first.logits(u, history, calibrated=False, columns=columns).double().cpu().numpy()
            if second is None:
                yield u, history, lambda j, za=za: za.astype(np.float32)
                continue
            set_value(b)
            zb = second.logits(u, history, calibrated=False, columns=columns).double().cpu().numpy()
            slope = (zb - za) / (b - a)  # (B, C) float64: dz/dv

            def at(j: int, za: np.ndarray = za, slope: np.ndarray = slope) -> np.ndarray:
                return (za + (float(values[j]) - a) * slope).astype(np.float32)
            yield u, history, at
    finally:
        set_value(a)


def validation_grid(net: Any, inputs: sp.csr_matrix, target: sp.csr_matrix, k: int, *,
                    item_item: Any = None, max_users: int = 2000, seed: int = 0) -> GridScore:
    """`training.validation_ndcg` (the same users, masking and tie rule) for every value of
    an affine setting: mean NDCG@k of `target`'s rows ranked from `inputs`; NaN without
    target rows."""
    users = sample_target_rows(target, max_users, seed)

    def grid(set_value: SetValue, values: Sequence[float]) -> np.ndarray:
        if users.size == 0:
            return np.full(len(values), np.nan)
        totals, counts = np.zeros(len(values)), np.zeros(len(values))
        for u, history, at in grid_logits(net, set_value, values, inputs, users, item_item):
            t_u = target[u]
            for j in range(len(values)):
                t, c = ndcg_at_k(at(j), t_u, k, exclude=history)
                totals[j], counts[j] = totals[j] + t, counts[j] + c
        return totals / np.maximum(counts, 1)
    return grid


def carve_grid(net: Any, inputs: sp.csr_matrix, carve: Any, cold: np.ndarray, *, k: int,
               item_item: Any = None, max_users: int = 2000, seed: int = 0) -> GridScore:
    """For every value of an affine setting: NDCG@k of the carve's targets ranked among the
    carved items, plus among the items `cold` (sorted, containing the carved ones) when
    there are more of them; NaN without carve targets (`posthoc.tune_cold_items`)."""
    users = sample_target_rows(carve.target, max_users, seed)
    column_sets = [np.searchsorted(cold, carve.items)]  # carved columns within `cold`
    if cold.size > carve.items.size:
        column_sets.append(np.arange(cold.size))

    def grid(set_value: SetValue, values: Sequence[float]) -> np.ndarray:
        if users.size == 0:
            return np.full(len(values), np.nan)
        totals = np.zeros((len(values), len(column_sets)))
        counts = np.zeros((len(values), len(column_sets)))
        for u, history, at in grid_logits(net, set_value, values, inputs, users, item_item,
                                          columns=cold):
            target, seen = carve.target[u][:, cold], history[:, cold]
            for j in range(len(values)):
                z = at(j)  # (B, |cold|)
                for c, cols in enumerate(column_sets):
                    t, n = ndcg_at_k(z[:, cols], target[:, cols], k, exclude=seen[:, cols])
                    totals[j, c], counts[j, c] = totals[j, c] + t, counts[j, c] + n
        return (totals / np.maximum(counts, 1)).sum(axis=1)
    return grid
