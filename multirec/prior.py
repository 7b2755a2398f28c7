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

`tune_prior` picks (w, κ) on simulated new users built from the validation users: each
keeps a random 1, 3, 5, 10 or 20 of its training items as its whole history; the score is
the mean over these groups of NDCG@k of their validation items (all training items masked).
Each group's logits are computed once; the grid is evaluated on them in bounded memory.

The same users' item-item (EASE) term is weighted by n_u / (n_u + κ_ii)
(`TwoTowerNetwork.new_user_ii_halflife`, `TrainConfig.new_user_item_item_halflife`, 20 by
default), a fixed default rather than a choice made here: these simulated users preferred
the full weight, and with the damping on they chose no prior at all, both worse on held-out
new users (ml-100k cold-user protocol). `multirec.fit` therefore tunes (w, κ) with the term
at full weight and applies the damping after.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from .ranking import masked_scores, ndcg_at_k, sample_target_rows
from .scoring import Scorer, logits_batch_size

__all__ = ["SIMULATED_HISTORIES", "PRIOR_WEIGHTS", "PRIOR_HALFLIVES", "popularity_prior",
           "set_item_prior", "tune_prior"]

SIMULATED_HISTORIES = (1, 3, 5, 10, 20)  # history sizes of the simulated new users
PRIOR_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)  # × logit / prior spread
PRIOR_HALFLIVES = (1.0, 3.0, 10.0, 30.0, 1e9)  # κ; 1e9: the same weight for everyone
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
    """Choose the prior's weight w and half-life κ on validation (see the module docstring),
    set them in the network and return `{"prior_weight": w, "prior_halflife": κ}`.

    `item_prior` is set from `train_x` first. w = 0 (no prior) is tried first and wins ties.
    """
    set_item_prior(net, train_x)
    with torch.no_grad():
        net.prior_weight.zero_()
    cap = min(max_users, MAX_USERS, max(50, SCORE_BUDGET // train_x.shape[1]))
    users = sample_target_rows(valid_x, cap, seed)
    n_train = np.diff(train_x.indptr)
    groups = [(u, _simulated(train_x, u, n, seed))
              for n in sizes if (u := users[n_train[users] > n]).size]
    prior = net.item_prior.cpu().numpy().astype(np.float64)  # (n_items,)
    if not groups or prior.std() < 1e-6:  # nothing to tune on, or every item equally popular
        return {"prior_weight": 0.0, "prior_halflife": float(net.prior_halflife)}
    scorer = Scorer(net, item_item)
    combos = [(0.0, 1.0)] + [(w, h) for w in PRIOR_WEIGHTS[1:] for h in PRIOR_HALFLIVES]
    totals = np.zeros((len(groups), len(combos)))
    counts = np.zeros(len(groups))
    unit = None
    bs = logits_batch_size(train_x.shape[1])
    for g, (u, hist) in enumerate(groups):
        for s in range(0, u.size, bs):
            uu, hh = u[s:s + bs], hist[s:s + bs]
            z = scorer.logits(None, hh, calibrated=False).double().cpu().numpy()
            if unit is None:  # logit spread per unit of prior spread, from the first block
                unit = float(np.median(z.std(axis=1))) / float(prior.std())
            n = np.asarray(hh.sum(axis=1)).ravel()  # (B,) history sizes
            z = masked_scores(z, train_x[uu])  # training items can't be recommended
            target = valid_x[uu]
            for c, (w, h) in enumerate(combos):
                shift = (unit * w * h / (h + n))[:, None] * prior[None, :]  # (B, n_items)
                total, cnt = ndcg_at_k(z + shift, target, k)
                totals[g, c] += total
                if c == 0:
                    counts[g] += cnt
    score = (totals / np.maximum(counts, 1)[:, None]).mean(axis=0)  # (combos,) over groups
    best = int(np.argmax(score))  # first of equals: no prior
    w, h = combos[best]
    with torch.no_grad():
        net.prior_weight.fill_(float(unit or 0.0) * w)
        net.prior_halflife.fill_(h)
    return {"prior_weight": float(net.prior_weight), "prior_halflife": float(h)}


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
