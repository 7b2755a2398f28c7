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

The same users' item-item (EASE) term is weighted by n_u / (n_u + κ_ii)
(`TwoTowerNetwork.new_user_ii_halflife`): EASE's weights fit full histories.

`tune_prior` chooses (w, κ, κ_ii) on simulated new users, served from 1, 3, 5, 10 or 20
interactions; the score is the mean over these groups of NDCG@k of the rest. The best
simulated users are strangers to the network: the user carve (`multirec.uservalid`,
users held out of the validation model, served from their first interactions in time).
Without one, validation users with a random n of their training items stand in; the
towers and EASE were fitted on those rows, so they overrate the item-item term (they
chose full-weight EASE and, with the damping on, no prior: both worse on held-out users of
ml-100k), and κ_ii is then left to the caller (`multirec.fit`: 20 where the prior is on).
Each group's logits are computed once per search; the grid is evaluated on them in
bounded memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from .ranking import masked_scores, ndcg_at_k, sample_target_rows
from .scoring import Scorer, logits_batch_size
from .uservalid import UserCarve

__all__ = ["SIMULATED_HISTORIES", "PRIOR_WEIGHTS", "PRIOR_HALFLIVES", "II_HALFLIVES", "CARVE_PRIOR_WEIGHTS",
           "popularity_prior",
           "set_item_prior", "tune_prior"]

SIMULATED_HISTORIES = (1, 3, 5, 10, 20)  # history sizes of the simulated new users
PRIOR_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)  # × logit / prior spread
# further weights tried on carved new users (on ml-100k they chose the last of the above)
CARVE_PRIOR_WEIGHTS = (128.0, 256.0)
PRIOR_HALFLIVES = (1.0, 3.0, 10.0, 30.0, 1e9)  # κ; 1e9: the same weight for everyone
II_HALFLIVES = (0.0, 1.0, 3.0, 10.0, 30.0, 100.0)  # κ_ii tried on carved new users; 0: none
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
               *, new_users: UserCarve | None = None, k: int = 10, max_users: int = 2000,
               seed: int = 0, sizes: tuple[int, ...] = SIMULATED_HISTORIES) -> dict[str, float]:
    """Choose the prior's weight w and half-life κ on validation (see the module docstring),
    set them in the network and return `{"prior_weight": w, "prior_halflife": κ}`.

    With `new_users` (a `multirec.uservalid.UserCarve`: users the network was not trained
    on) they are the simulated new users, served from their first n interactions and
    scored on the rest; the item-item damping κ_ii is then chosen on them too (from
    `II_HALFLIVES`, by coordinate search: (w, κ) at full weight, κ_ii, (w, κ) again), set,
    and returned as `"new_user_ii_halflife"`. Without, validation users with a random n of
    their training items stand in (and κ_ii is left to the caller).

    `item_prior` is set from `train_x` first. w = 0 (no prior) and κ_ii = 0 (no damping)
    are tried first and win ties.
    """
    set_item_prior(net, train_x)
    with torch.no_grad():
        net.prior_weight.zero_()
        net.new_user_ii_halflife.zero_()
    cap = min(max_users, MAX_USERS, max(50, SCORE_BUDGET // train_x.shape[1]))
    groups = (_carve_groups(new_users, cap, seed, sizes) if new_users is not None
              else _validation_groups(train_x, valid_x, cap, seed, sizes))
    prior = net.item_prior.cpu().numpy().astype(np.float64)  # (n_items,)
    if not groups or prior.std() < 1e-6:  # nothing to tune on, or every item equally popular
        out = {"prior_weight": 0.0, "prior_halflife": float(net.prior_halflife)}
        if new_users is not None:
            out["new_user_ii_halflife"] = 0.0
        return out
    grid = _Grid(Scorer(net, item_item), groups, prior, k)
    weights = PRIOR_WEIGHTS[1:] + (CARVE_PRIOR_WEIGHTS if new_users is not None else ())
    pairs = [(0.0, 1.0)] + [(w, h) for w in weights for h in PRIOR_HALFLIVES]
    w, h = pairs[grid.best([(w, h, 0.0) for w, h in pairs])]
    kii = 0.0
    if new_users is not None and grid.scorer.has_item_item():
        kii = II_HALFLIVES[grid.best([(w, h, c) for c in II_HALFLIVES])]
        if kii > 0:
            w, h = pairs[grid.best([(w, h, kii) for w, h in pairs])]
    with torch.no_grad():
        net.prior_weight.fill_(float(grid.unit or 0.0) * w)
        net.prior_halflife.fill_(h)
        net.new_user_ii_halflife.fill_(kii)
    out = {"prior_weight": float(net.prior_weight), "prior_halflife": float(h)}
    if new_users is not None:
        out["new_user_ii_halflife"] = float(kii)
    return out


# one group: (history (B, n_items), excluded items (B, n_items), targets (B, n_items))
_Group = tuple[sp.csr_matrix, sp.csr_matrix, sp.csr_matrix]


def _validation_groups(train_x: sp.csr_matrix, valid_x: sp.csr_matrix, cap: int, seed: int,
                       sizes: tuple[int, ...]) -> list[_Group]:
    """Validation users with a random n of their training items as their whole history;
    every training item is excluded, the validation items are the targets."""
    users = sample_target_rows(valid_x, cap, seed)
    n_train = np.diff(train_x.indptr)
    return [(_simulated(train_x, u, n, seed), train_x[u], valid_x[u])
            for n in sizes if (u := users[n_train[users] > n]).size]


def _carve_groups(carve: UserCarve, cap: int, seed: int, sizes: tuple[int, ...]) -> list[_Group]:
    """Carved users served from their first n interactions (excluded), the rest the targets."""
    groups = []
    for n in sizes:
        rows, history, target = carve.split(n)
        if rows.size > cap:
            pick = np.sort(np.random.default_rng([seed, n, 19]).choice(rows.size, cap, replace=False))
            history, target = history[pick], target[pick]
        if history.shape[0]:
            groups.append((history, history, target))
    return groups


class _Grid:
    """Validation NDCG@k of settings (w, κ, κ_ii) over the groups; logits are computed once
    per group and block for each call, every setting evaluated on them."""

    def __init__(self, scorer: Scorer, groups: list[_Group], prior: np.ndarray, k: int) -> None:
        self.scorer, self.groups, self.prior, self.k = scorer, groups, prior, k
        self.unit: float | None = None  # logit spread per unit of prior spread (first block)

    def best(self, combos: list[tuple[float, float, float]]) -> int:
        """Index of the best combo (the first of equals)."""
        return int(np.argmax(self.scores(combos)))

    def scores(self, combos: list[tuple[float, float, float]]) -> np.ndarray:  # (combos,)
        totals = np.zeros((len(self.groups), len(combos)))
        counts = np.zeros(len(self.groups))
        damped = any(c[2] > 0 for c in combos) and self.scorer.has_item_item()
        bs = logits_batch_size(self.prior.size)
        for g, (history, exclude, target) in enumerate(self.groups):
            for s in range(0, history.shape[0], bs):
                hh = history[s:s + bs]
                zt, iit = self.scorer.raw_logits_block(None, hh, item_item_part=damped)
                z = zt.double().cpu().numpy()
                if self.unit is None:
                    self.unit = float(np.median(z.std(axis=1))) / float(self.prior.std())
                ii = None if iit is None else iit.double().cpu().numpy()
                n = np.asarray(hh.sum(axis=1)).ravel()  # (B,) history sizes
                z = masked_scores(z, exclude[s:s + bs])  # what was consumed can't be recommended
                tgt = target[s:s + bs]
                for c, (w, h, kii) in enumerate(combos):
                    zz = z + (self.unit * w * h / (h + n))[:, None] * self.prior[None, :]
                    if ii is not None and kii > 0:  # weight n/(n+κ_ii) instead of 1
                        zz -= (kii / (n + kii))[:, None] * ii
                    total, cnt = ndcg_at_k(zz, tgt, self.k)
                    totals[g, c] += total
                    if c == 0:
                        counts[g] += cnt
        return (totals / np.maximum(counts, 1)[:, None]).mean(axis=0)


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
