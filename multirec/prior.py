"""Popularity prior for new users' short histories, chosen on validation after training.

A new user with one or three interactions tells the towers little, and what most people
consume is then the best guess: on MovieLens 100K's cold-user protocol plain popularity
beat every trained model (peers included). For users the model does not know (served by
fold-in from a given history) the network therefore adds

    w_u · prior_i,   w_u = w · κ / (κ + n_u),   prior_i = log(1 + interactions of item i)

to every logit (`TwoTowerNetwork.item_prior`, `prior_weight` = w, `prior_halflife` = κ:
the weight halves at a history of κ items, so long histories keep the model's own ranking).
Users seen in training keep their own scores (their bias and LightFM factor carry what
the prior would add; measured: a prior on them cost ml-100k warm NDCG 0.002–0.004).

New users' item-item term (EASE scores of their history) is weighted by `r`
(`new_user_ii_scale`): the weight chosen for known users is tuned on long histories, and
from one to five items the EASE scores are noisy (measured on ml-100k's cold-user protocol,
seed 0: r = 0.25 instead of 1 raised NDCG@10 after 3 / 5 interactions from 0.354 / 0.335 to
0.384 / 0.366).

`tune_prior` picks (w, κ) and r on simulated new users built from the validation users: each
keeps a random 1, 3, 5, 10 or 20 of its training items as its whole history; the score is
the mean over these groups of NDCG@k of their validation items (all training items masked).
Each group's logits are computed once; the grid is evaluated on them in bounded memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from .ranking import masked_scores, ndcg_at_k, sample_target_rows
from .scoring import Scorer, logits_batch_size

__all__ = ["SIMULATED_HISTORIES", "PRIOR_WEIGHTS", "PRIOR_HALFLIVES", "NEW_USER_II_SCALES",
           "popularity_prior",
           "set_item_prior", "tune_prior"]

SIMULATED_HISTORIES = (1, 3, 5, 10, 20)  # history sizes of the simulated new users
PRIOR_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)  # × logit / prior spread
PRIOR_HALFLIVES = (1.0, 3.0, 10.0, 30.0, 1e9)  # κ; 1e9: the same weight for everyone
NEW_USER_II_SCALES = (1.0, 0.5, 0.25, 0.125, 0.0)  # item-item multipliers r for new users
MAX_USERS = 500  # validation users per group
SCORE_BUDGET = 5_000_000  # user × item logits per group (caps the users on large catalogues)


def popularity_prior(x: sp.csr_matrix) -> np.ndarray:  # (n_items,) float32
    """log(1 + number of users) of every item of the (n_users, n_items) interactions `x`."""
    counts = np.diff(sp.csc_matrix(x).indptr)
    return np.log1p(counts).astype(np.float32)


def set_item_prior(net: Any, x: sp.csr_matrix) -> None:
    """Write `popularity_prior(x)` into the network's `item_prior` buffer."""
    prior = torch.from_numpy(popularity_prior(x)).to(net.item_prior.device)
    with torch.no_grad():
        net.item_prior.copy_(prior)


def tune_prior(net: Any, train_x: sp.csr_matrix, valid_x: sp.csr_matrix, item_item: Any = None,
               *, k: int = 10, max_users: int = 2000, seed: int = 0,
               sizes: tuple[int, ...] = SIMULATED_HISTORIES) -> dict[str, float]:
    """Choose how new users are scored on validation (see the module docstring): the
    prior's weight w and half-life κ and, with the item-item term, its multiplier r for
    new users; set them in the network and return `{"prior_weight": w, "prior_halflife": κ,
    "new_user_ii_scale": r}`.

    `item_prior` is set from `train_x` first. The search is coordinate-wise (r with no
    prior, then (w, κ), then r again); w = 0 (no prior) and r = 1 are tried first and win ties.
    """
    set_item_prior(net, train_x)
    with torch.no_grad():
        net.prior_weight.zero_()
        net.new_user_ii_scale.fill_(1.0)
    cap = min(max_users, MAX_USERS, max(50, SCORE_BUDGET // train_x.shape[1]))
    users = sample_target_rows(valid_x, cap, seed)
    n_train = np.diff(train_x.indptr)
    groups = [(u, _simulated(train_x, u, n, seed))
              for n in sizes if (u := users[n_train[users] > n]).size]
    prior = net.item_prior.cpu().numpy().astype(np.float64)  # (n_items,)
    scorer = Scorer(net, item_item)
    has_ii = item_item is not None and net.use_item_item
    with_prior = prior.std() >= 1e-6  # else every item is equally popular: nothing to add
    if not groups or not (has_ii or with_prior):
        return _set(net, 0.0, float(net.prior_halflife), 1.0)
    search = _Search(scorer, groups, train_x, valid_x, prior, k)
    r, w, h = 1.0, 0.0, 1.0
    if has_ii:
        r, _, _ = search.best([(m, 0.0, 1.0) for m in NEW_USER_II_SCALES])
    if with_prior:
        r, w, h = search.best([(r, 0.0, 1.0)] + [(r, w_, h_) for w_ in PRIOR_WEIGHTS[1:]
                                                  for h_ in PRIOR_HALFLIVES])
        if has_ii and w > 0:
            r, w, h = search.best([(r, w, h)] + [(m, w, h) for m in NEW_USER_II_SCALES if m != r])
    return _set(net, search.unit * w, h, r)


def _set(net: Any, weight: float, halflife: float, ii_scale: float) -> dict[str, float]:
    with torch.no_grad():
        net.prior_weight.fill_(weight)
        net.prior_halflife.fill_(halflife)
        net.new_user_ii_scale.fill_(ii_scale)
    return {"prior_weight": float(net.prior_weight), "prior_halflife": float(halflife),
            "new_user_ii_scale": float(ii_scale)}


class _Search:
    """Mean over the simulated groups of validation NDCG@k for settings (r, w, κ), from one
    pass of logits per call (the item-item part kept apart, so r only rescales it)."""

    def __init__(self, scorer: Scorer, groups: list[tuple[np.ndarray, sp.csr_matrix]],
                 train_x: sp.csr_matrix, valid_x: sp.csr_matrix, prior: np.ndarray, k: int) -> None:
        self.scorer, self.groups, self.prior, self.k = scorer, groups, prior, k
        self.train_x, self.valid_x = train_x, valid_x
        self.unit = 0.0  # logit spread per unit of prior spread, from the first block
        self._bs = logits_batch_size(train_x.shape[1])

    def best(self, combos: list[tuple[float, float, float]]) -> tuple[float, float, float]:
        totals = np.zeros((len(self.groups), len(combos)))
        counts = np.zeros(len(self.groups))
        for g, (u, hist) in enumerate(self.groups):
            for s in range(0, u.size, self._bs):
                uu, hh = u[s:s + self._bs], hist[s:s + self._bs]
                z = self.scorer.logits(None, hh, calibrated=False).double().cpu().numpy()
                term = self.scorer.item_item_term(None, hh)  # (B, n_items) at r = 1, or None
                ii = 0.0 if term is None else term.double().cpu().numpy()
                if not self.unit:
                    self.unit = float(np.median(z.std(axis=1))) / float(self.prior.std() or 1.0)
                n = np.asarray(hh.sum(axis=1)).ravel()  # (B,) history sizes
                base = masked_scores(z - ii, self.train_x[uu])  # training items can't be recommended
                target = self.valid_x[uu]
                for c, (r, w, h) in enumerate(combos):
                    shift = (self.unit * w * h / (h + n))[:, None] * self.prior[None, :]  # (B, n)
                    total, cnt = ndcg_at_k(base + r * ii + shift, target, self.k)
                    totals[g, c] += total
                    if c == 0:
                        counts[g] += cnt
        score = (totals / np.maximum(counts, 1)[:, None]).mean(axis=0)  # (combos,) over groups
        return combos[int(np.argmax(score))]  # first of equals


def _simulated(train_x: sp.csr_matrix, users: np.ndarray, n: int, seed: int) -> sp.csr_matrix:
    """(len(users), n_items) histories of `users` as new users: a random `n` of their
    training items each."""
    rng = np.random.default_rng([seed, n, 11])
    rows, cols = [], []
    for r, u in enumerate(users):
        items = train_x.indices[train_x.indptr[u]:train_x.indptr[u + 1]]
        rows.append(np.full(n, r))
        cols.append(rng.choice(items, n, replace=False))
    hist = sp.csr_matrix((np.ones(n * users.size, np.float32),
                          (np.concatenate(rows) if rows else np.zeros(0, int),
                           np.concatenate(cols) if cols else np.zeros(0, int))),
                         shape=(users.size, train_x.shape[1]))
    return hist
