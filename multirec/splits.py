"""Train/test splits that keep one catalogue: every part shares the input's ID maps.

    random_split        a random fraction of the interactions to test
    leave_last_out      each user's last n interactions (by timestamp) to test
    temporal_split      everything at or after a global time cut to test
    cold_item_split     a fraction of items with all their interactions to test; only those
                        items are ranked (`candidate_items`)
    cold_user_split     a fraction of users to test; their first `fold_in` interactions are
                        given to the model as history (`Split.fold_in`), the rest are the target
    train_valid_split   a validation part carved from a training set (early stopping)

Train and test have the same users, items, indices, content and side features as the input
(built with `InteractionData.subset`), so a model fitted on `train` scores `test` directly.
All splits are seeded and leak-free: no (user, item) pair is in more than one part.
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
    """A train/test split on one catalogue (same user and item indices in every part).

    Attributes:
        train, test: the interactions to fit on and to predict.
        kind: "random", "leave_last_out", "temporal", "cold_item" or "cold_user".
        candidate_items: (n_cold,) item indices to rank (cold-item splits), else None = all.
        fold_in: (n_users, n_items) csr history of held-out users (cold-user splits), given to
            the model at scoring time; empty rows for everyone else.
        test_users: (n_cold,) indices of the users held out entirely (cold-user splits).
    """

    train: InteractionData
    test: InteractionData
    kind: str
    candidate_items: np.ndarray | None = None
    fold_in: sp.csr_matrix | None = None
    test_users: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.train.users != self.test.users or self.train.items != self.test.items:
            raise DataError("train and test must share one catalogue (the same user and item ID "
                            "maps); build both from one InteractionData with InteractionData.subset")
        shape = (self.train.n_users, self.train.n_items)
        if self.fold_in is not None and self.fold_in.shape != shape:
            raise DataError(f"fold_in has shape {self.fold_in.shape}, expected (n_users, n_items) = {shape}")

    def __repr__(self) -> str:
        extra = "" if self.candidate_items is None else f", candidate_items={len(self.candidate_items)}"
        if self.test_users is not None:
            extra += f", test_users={len(self.test_users)}"
        return (f"Split(kind={self.kind!r}, train={self.train.nnz}, test={self.test.nnz}, "
                f"users={self.train.n_users}, items={self.train.n_items}{extra})")


# ---------------------------------------------------------------------- checks
def _check_data(data: InteractionData, min_nnz: int = 2) -> None:
    if not isinstance(data, InteractionData):
        raise DataError(f"expected an InteractionData, got {type(data).__name__}; build one with "
                        "InteractionData.from_dataframe(df, 'user', 'item')")
    if data.nnz < min_nnz:
        raise DataError(f"cannot split {data.nnz} interaction(s); need at least {min_nnz}")


def _fraction(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not 0.0 < float(value) < 1.0:
        raise DataError(f"{name} must be a number strictly between 0 and 1, got {value!r}")
    return float(value)


def _count(n_total: int, fraction: float) -> int:
    """round(fraction · n_total), kept within 1..n_total-1 so both sides are non-empty."""
    return int(min(max(round(fraction * n_total), 1), n_total - 1))


def _timestamps(data: InteractionData, split: str) -> np.ndarray:
    if data.timestamps is None:
        raise DataError(f"{split} needs timestamps, but the data has none; build it with "
                        "timestamps= (or a 'timestamp' column), or use random_split")
    return data.timestamps


def _mask(n: int, rows: np.ndarray) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[rows] = True
    return out


def _rank_in_user(data: InteractionData, key: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(nnz,) position of each interaction within its user when sorted by `key` (ties random)."""
    order = np.lexsort((rng.random(data.nnz), key, data.user_index))  # by user, then key
    counts = np.bincount(data.user_index, minlength=data.n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(data.nnz, dtype=np.int64)
    rank[order] = np.arange(data.nnz) - starts[data.user_index[order]]
    return rank


# ---------------------------------------------------------------------- splits
def random_split(data: InteractionData, test_fraction: float = 0.2, seed: int = 42) -> Split:
    """round(test_fraction · nnz) random interactions go to test (seeded)."""
    _check_data(data)
    f = _fraction(test_fraction, "test_fraction")
    perm = np.random.default_rng(seed).permutation(data.nnz)
    test = _mask(data.nnz, perm[:_count(data.nnz, f)])
    return Split(data.subset(~test), data.subset(test), "random")


def train_valid_split(train: InteractionData, fraction: float = 0.1, seed: int = 0
                      ) -> tuple[InteractionData, InteractionData]:
    """`(train, valid)`: a random `fraction` of a training set's interactions for validation."""
    s = random_split(train, fraction, seed)
    return s.train, s.test


def leave_last_out(data: InteractionData, n: int = 1, seed: int = 42) -> Split:
    """Each user's last `n` interactions by timestamp go to test (equal times: random order).

    Users with at most `n` interactions stay entirely in train.
    """
    _check_data(data)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise DataError(f"n must be an integer >= 1, got {n!r}")
    t = _timestamps(data, "leave_last_out")
    counts = data.user_counts()
    if not (counts > n).any():
        raise DataError(f"no user has more than n={n} interactions (max {counts.max()}); lower n")
    from_end = counts[data.user_index] - 1 - _rank_in_user(data, t, np.random.default_rng(seed))
    test = (from_end < n) & (counts[data.user_index] > n)  # 0 = the user's last interaction
    return Split(data.subset(~test), data.subset(test), "leave_last_out")


def temporal_split(data: InteractionData, test_fraction: float = 0.2, seed: int | None = None
                   ) -> Split:
    """Global time cut: interactions at or after the cut time go to test, older ones to train.

    Every train interaction is strictly older than every test interaction (equal timestamps
    never straddle the cut), so the test share is the one closest to `test_fraction` that a
    cut between distinct timestamps allows. `seed` is unused (the cut is deterministic); it
    is accepted so every split can be called as (data, fraction, seed).
    """
    _check_data(data)
    f = _fraction(test_fraction, "test_fraction")
    t = _timestamps(data, "temporal_split")
    times, counts = np.unique(t, return_counts=True)
    if times.size < 2:
        raise DataError(f"all interactions share one timestamp ({times[0]:g}); a temporal split "
                        "needs at least two distinct times, use random_split")
    at_or_after = np.cumsum(counts[::-1])[::-1][1:]  # test size when cutting at times[1:]
    best = int(np.argmin(np.abs(at_or_after - f * data.nnz)))  # first (largest test) on ties
    test = t >= times[1 + best]
    return Split(data.subset(~test), data.subset(test), "temporal")


def cold_item_split(data: InteractionData, item_fraction: float = 0.2, seed: int = 42) -> Split:
    """Hold out a fraction of the items that have interactions, with all their interactions.

    Held-out items have no train interactions; `candidate_items` lists them (sorted), and
    evaluation ranks only those items.
    """
    _check_data(data)
    f = _fraction(item_fraction, "item_fraction")
    active = np.flatnonzero(data.item_counts() > 0)
    if active.size < 2:
        raise DataError(f"cold_item_split needs at least 2 items with interactions, got {active.size}")
    cold = np.sort(np.random.default_rng(seed).choice(active, _count(active.size, f), replace=False))
    test = np.isin(data.item_index, cold)
    return Split(data.subset(~test), data.subset(test), "cold_item", candidate_items=cold)


def cold_user_split(data: InteractionData, user_fraction: float = 0.2, fold_in: int = 0,
                    seed: int = 42) -> Split:
    """Hold out a fraction of users, who get no train interactions.

    Each held-out user's first `fold_in` interactions (by timestamp, equal times in random
    order; random order when the data has no timestamps) become `Split.fold_in` history given
    to the model, and the rest are the test target. Only users with more than `fold_in`
    interactions are eligible, so every held-out user has a test item.
    """
    _check_data(data)
    f = _fraction(user_fraction, "user_fraction")
    if isinstance(fold_in, bool) or not isinstance(fold_in, (int, np.integer)) or fold_in < 0:
        raise DataError(f"fold_in must be an integer >= 0, got {fold_in!r}")
    rng = np.random.default_rng(seed)
    counts = data.user_counts()
    eligible = np.flatnonzero(counts > fold_in)
    active = np.count_nonzero(counts)
    if eligible.size == 0 or active < 2:
        raise DataError(f"cold_user_split needs at least 2 users with interactions and one with more "
                        f"than fold_in={fold_in} (max {counts.max()}); lower fold_in")
    n_cold = min(max(round(f * eligible.size), 1), eligible.size, active - 1)
    cold = np.sort(rng.choice(eligible, n_cold, replace=False))
    held = np.isin(data.user_index, cold)
    key = data.timestamps if data.timestamps is not None else np.zeros(data.nnz)
    history = held & (_rank_in_user(data, key, rng) < fold_in)
    fold = data.subset(history).to_csr()  # (n_users, n_items)
    return Split(data.subset(~held), data.subset(held & ~history), "cold_user",
                 fold_in=fold, test_users=cold)
