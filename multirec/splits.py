"""Train/test splits that keep one catalogue: every part shares the input's ID maps.

    random_split        random interactions to test
    leave_last_out      each user's last n interactions (by timestamp) to test
    temporal_split      everything after a global time cut to test
    cold_item_split     a fraction of items and all their interactions to test;
                        only those items are ranked (`candidate_items`)
    cold_user_split     a fraction of users to test; their first `fold_in` interactions
                        are given to the model as history (`fold_in`), the rest are the target
    train_valid_split   a validation part carved from a training set (early stopping)

All splits are seeded and leak-free (tests check disjointness).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .data import InteractionData
from .errors import DataError

__all__ = ["Split", "random_split", "leave_last_out", "temporal_split", "cold_item_split",
           "cold_user_split", "train_valid_split"]


@dataclass
class Split:
    """A train/test split on one catalogue (same user and item indices in both parts)."""

    train: InteractionData
    test: InteractionData
    kind: str
    candidate_items: np.ndarray | None = None  # item indices to rank (cold-item)
    fold_in: sp.csr_matrix | None = None  # (n_users, n_items) history of cold test users
    test_users: np.ndarray | None = None  # user indices held out entirely (cold-user)

    def __repr__(self) -> str:
        return (f"Split(kind={self.kind!r}, train={self.train.nnz}, test={self.test.nnz}, "
                f"users={self.train.n_users}, items={self.train.n_items})")


def _fraction(value: float, name: str) -> float:
    if not 0.0 < float(value) < 1.0:
        raise DataError(f"{name} must be between 0 and 1 (exclusive), got {value!r}")
    return float(value)


def _nonempty(data: InteractionData) -> None:
    if not isinstance(data, InteractionData):
        raise DataError(f"expected InteractionData, got {type(data).__name__}")
    if data.nnz < 2:
        raise DataError(f"cannot split {data.nnz} interaction(s); need at least 2")


def random_split(data: InteractionData, test_fraction: float = 0.2, seed: int = 42) -> Split:
    """Each interaction goes to test with probability-free exact fraction (seeded)."""
    _nonempty(data)
    f = _fraction(test_fraction, "test_fraction")
    perm = np.random.default_rng(seed).permutation(data.nnz)
    n_test = max(1, int(round(f * data.nnz)))
    test = np.zeros(data.nnz, bool)
    test[perm[:n_test]] = True
    return Split(data.subset(~test), data.subset(test), "random")


def train_valid_split(data: InteractionData, valid_fraction: float = 0.1, seed: int = 0
                      ) -> tuple[InteractionData, InteractionData]:
    """Random validation part of a training set: `(train, valid)`."""
    s = random_split(data, valid_fraction, seed)
    return s.train, s.test


def _order_by_time(data: InteractionData, seed: int) -> np.ndarray:
    if data.timestamps is None:
        raise DataError("this split needs timestamps; build the data with a timestamp column")
    tiebreak = np.random.default_rng(seed).random(data.nnz)
    return np.lexsort((tiebreak, data.timestamps))


def leave_last_out(data: InteractionData, n: int = 1, seed: int = 42) -> Split:
    """Each user's last `n` interactions (ties broken randomly) go to test; users with
    at most `n` interactions stay entirely in train."""
    _nonempty(data)
    if n < 1:
        raise DataError(f"n must be >= 1, got {n}")
    order = _order_by_time(data, seed)
    users = data.user_index[order]
    stable = np.argsort(users, kind="stable")
    ordered = order[stable]  # grouped by user, time-ascending within user
    counts = np.bincount(data.user_index, minlength=data.n_users)
    ends = np.cumsum(counts)[data.user_index[ordered]]
    pos_from_end = ends - np.arange(data.nnz) - 1  # 0 = last of its user
    test = np.zeros(data.nnz, bool)
    sel = (pos_from_end < n) & (counts[data.user_index[ordered]] > n)
    test[ordered[sel]] = True
    return Split(data.subset(~test), data.subset(test), "leave_last_out")


def temporal_split(data: InteractionData, test_fraction: float = 0.2, seed: int = 42) -> Split:
    """The latest `test_fraction` of interactions (global time cut) go to test."""
    _nonempty(data)
    f = _fraction(test_fraction, "test_fraction")
    order = _order_by_time(data, seed)
    n_test = max(1, int(round(f * data.nnz)))
    test = np.zeros(data.nnz, bool)
    test[order[-n_test:]] = True
    return Split(data.subset(~test), data.subset(test), "temporal")


def cold_item_split(data: InteractionData, item_fraction: float = 0.2, seed: int = 42) -> Split:
    """Hold out a fraction of the items that have interactions, with all their interactions."""
    _nonempty(data)
    f = _fraction(item_fraction, "item_fraction")
    active = np.flatnonzero(data.item_counts() > 0)
    n_cold = max(1, int(round(f * active.size)))
    if n_cold >= active.size:
        raise DataError(f"item_fraction={item_fraction} would hold out every item")
    cold = np.sort(np.random.default_rng(seed).choice(active, n_cold, replace=False))
    test = np.isin(data.item_index, cold)
    return Split(data.subset(~test), data.subset(test), "cold_item", candidate_items=cold)


def cold_user_split(data: InteractionData, user_fraction: float = 0.2, fold_in: int = 0,
                    seed: int = 42) -> Split:
    """Hold out a fraction of users; their first `fold_in` interactions (by time if known,
    else random) become `fold_in` history and the rest the test target."""
    _nonempty(data)
    f = _fraction(user_fraction, "user_fraction")
    if fold_in < 0:
        raise DataError(f"fold_in must be >= 0, got {fold_in}")
    rng = np.random.default_rng(seed)
    counts = data.user_counts()
    eligible = np.flatnonzero(counts > fold_in)
    n_cold = max(1, int(round(f * eligible.size)))
    if n_cold >= np.count_nonzero(counts):
        raise DataError(f"user_fraction={user_fraction} would hold out every user")
    cold = np.sort(rng.choice(eligible, n_cold, replace=False))
    held = np.isin(data.user_index, cold)
    history = np.zeros(data.nnz, bool)
    if fold_in:
        key = data.timestamps if data.timestamps is not None else rng.random(data.nnz)
        order = np.lexsort((rng.random(data.nnz), key))
        order = order[held[order]]
        seen: dict[int, int] = {}
        for row in order:
            u = int(data.user_index[row])
            if seen.get(u, 0) < fold_in:
                history[row] = True
                seen[u] = seen.get(u, 0) + 1
    fold = data.subset(history).to_csr() if fold_in else None
    return Split(data.subset(~held), data.subset(held & ~history), "cold_user",
                 fold_in=fold, test_users=cold)
