"""New-user validation: a carve of simulated new users that matches held-out users.

The popularity prior and the item-item damping for new users (`multirec.prior`) serve
users the model has never seen, from their first few interactions. Validation users
with a random few of their *training* items are a poor stand-in for them: the towers and
the EASE weights were fitted on those very rows, so the item-item term looks far better
on them than on a stranger (measured on ml-100k: they chose full-weight EASE and no
prior, both worse on held-out users). When the model is refitted on everything
afterwards (`TrainConfig.refit`), `fit` therefore carves a small share of the users out
of the validation model altogether (`TrainConfig.new_user_valid_users`):

    carve_users   pick the users; all their interactions leave the training and the
                  validation part (the refit on all interactions brings them back)
    UserCarve.split(n)
                  the users with more than `n` interactions: their first `n` (by
                  timestamp where the data has them, else in a seeded random order) as
                  the history they are served from, the rest as the targets

which is the cold-user protocol of `benchmarks/run.py`, inside the training data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["UserCarve", "carve_users", "arrival_order", "MIN_CARVED_USERS", "MAX_CARVED_USERS"]

MIN_CARVED_USERS = 20  # fewer eligible users: no carve (the estimate would be noise)
MAX_CARVED_USERS = 200  # enough for a stable choice, little data taken from large data sets


@dataclass
class UserCarve:
    """The carved users and the order in which their interactions arrived."""

    users: np.ndarray  # (C,) int64 sorted user indices
    order: sp.csr_matrix  # (C, n_items): each interaction's arrival rank, 1 = first

    def split(self, n: int) -> tuple[np.ndarray, sp.csr_matrix, sp.csr_matrix]:
        """`(rows, history, target)` for a history of `n` interactions: the carve rows
        (indices into `users`) with more than `n` interactions, their first `n` as binary
        (R, n_items) rows and the rest, likewise."""
        counts = np.diff(self.order.indptr)
        rows = np.flatnonzero(counts > n)
        sub = self.order[rows].tocsr()
        sub.sort_indices()
        # rank of each interaction within its row (0 = first), by arrival
        first = np.zeros(sub.nnz, dtype=bool)
        for r in range(rows.size):
            lo, hi = sub.indptr[r], sub.indptr[r + 1]
            first[lo + np.argsort(sub.data[lo:hi], kind="stable")[:n]] = True
        return rows, _rows_where(sub, first), _rows_where(sub, ~first)


def _rows_where(x: sp.csr_matrix, keep: np.ndarray) -> sp.csr_matrix:
    """Binary float32 copy of `x` with only the stored entries where `keep` (nnz,) is True."""
    out = sp.csr_matrix((keep.astype(np.float32), x.indices.copy(), x.indptr.copy()), shape=x.shape)
    out.eliminate_zeros()
    return out


def arrival_order(user_index: np.ndarray, item_index: np.ndarray, timestamps: np.ndarray | None,
                  shape: tuple[int, int], seed: int) -> sp.csr_matrix:
    """(n_users, n_items) CSR whose entry (u, i) is the arrival rank (1 = first) of u's
    earliest interaction with i: by `timestamps` (ties and no timestamps: a seeded random
    order)."""
    n = user_index.size
    rng = np.random.default_rng([seed, 13])
    key = np.zeros(n) if timestamps is None else np.asarray(timestamps, np.float64)
    order = np.lexsort((rng.random(n), key))  # ascending time, random among ties
    rank = np.empty(n, np.float64)
    rank[order] = np.arange(1, n + 1)
    # one entry per (user, item): the earliest (csr would sum duplicates)
    pair = user_index.astype(np.int64) * shape[1] + item_index.astype(np.int64)
    by = np.lexsort((rank, pair))
    keep = by[np.r_[True, pair[by][1:] != pair[by][:-1]]] if n else by
    return sp.csr_matrix((rank[keep], (user_index[keep], item_index[keep])), shape=shape)


def carve_users(train_x: sp.csr_matrix, valid_x: sp.csr_matrix | None, order: sp.csr_matrix,
                fraction: float, seed: int
                ) -> tuple[sp.csr_matrix, sp.csr_matrix | None, UserCarve | None]:
    """Move `fraction` of the users (at most `MAX_CARVED_USERS`) out of training.

    `order` is `arrival_order` of the same interactions (train and validation). Eligible
    users have at least two interactions (one to be served from, one to rank). Returns the
    new `train_x`, `valid_x` (carved rows emptied) and the carve, or the inputs unchanged
    and None when fewer than `MIN_CARVED_USERS` users would be carved.
    """
    n_users = train_x.shape[0]
    both = train_x if valid_x is None else train_x + valid_x
    counts = np.diff(sp.csr_matrix(both).indptr)
    pool = np.flatnonzero(counts >= 2)
    n = min(int(round(fraction * pool.size)), MAX_CARVED_USERS)
    if fraction <= 0 or n < MIN_CARVED_USERS:
        return train_x, valid_x, None
    rng = np.random.default_rng([seed, 17])
    users = np.sort(rng.choice(pool, n, replace=False))
    keep = np.ones(n_users, dtype=np.float32)
    keep[users] = 0.0
    drop = sp.diags(keep)
    new_train = sp.csr_matrix(drop @ train_x)
    new_train.eliminate_zeros()
    new_valid = None
    if valid_x is not None:
        new_valid = sp.csr_matrix(drop @ valid_x)
        new_valid.eliminate_zeros()
    mask = sp.csr_matrix(both[users], dtype=bool)  # only the interactions the fit holds
    carved = sp.csr_matrix(order[users].multiply(mask))
    carved.eliminate_zeros()
    return new_train, new_valid, UserCarve(users=users, order=carved)
