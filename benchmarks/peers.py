"""Peer recommenders behind the `fit(data)` / `score_users(users, history=None)` protocol.

    ImplicitALS(factors, regularization, alpha, ...)   implicit's ALS; fold-in of unseen users
                                                        with `recalculate_user` (exact LS)
    ImplicitBPR(factors, learning_rate, ...)           implicit's BPR; fold-in by BPR on the
                                                        user vector with the items fixed
    CornacVBPR(k, k2, ..., modality="text")            cornac's VBPR fed item content vectors
                                                        (`data.content[modality]`, arrays);
                                                        scores cold items from their content

All scores are (B, n_items) over the whole catalogue of the `InteractionData` they were fitted
on, so `multirec.evaluation.evaluate` ranks them exactly like multirec's own models. Items
without training interactions get zero factors (ALS/BPR: no information; VBPR: content only).
The peer packages are imported in `fit`; a missing one raises `multirec.errors.ConfigError`
naming the `pip install` to run.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import scipy.sparse as sp

from multirec.data import InteractionData
from multirec.errors import ConfigError, DataError, NotFittedError
from multirec.validate import check_history_rows, check_user_indices

__all__ = ["ImplicitALS", "ImplicitBPR", "CornacVBPR", "UijSampler", "bpr_fold_in", "require", "thread_limit"]


def require(module: str, package: str) -> Any:
    """Import `module` or raise ConfigError naming the package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"{module} is not installed ({exc}); pip install '{package}' "
                          "(or pip install 'multirec[bench]')") from exc


def _check_data(data: InteractionData) -> sp.csr_matrix:
    if not isinstance(data, InteractionData):
        raise DataError(f"fit() expects an InteractionData, got {type(data).__name__}")
    x = data.to_csr()
    x.data[:] = 1.0  # implicit feedback: presence only
    return x


def _history(history: sp.spmatrix | None, n_rows: int, n_items: int) -> sp.csr_matrix | None:
    """Binary fold-in histories (see `multirec.validate.check_history_rows`)."""
    h = check_history_rows(history, n_rows, n_items)
    if h is not None:
        h.data[:] = 1.0
    return h


def bpr_fold_in(item_vecs: np.ndarray, item_bias: np.ndarray, history: sp.csr_matrix,
                reg: float = 0.01, steps: int = 100, lr: float = 0.1) -> np.ndarray:
    """(B, k) user vectors that minimise the BPR loss of each user's history against every
    other item, with the items fixed: mean softplus(s_j - s_p) + reg · ||u||². Deterministic
    (zero init, full batch, Adam)."""
    import torch

    v = torch.as_tensor(np.asarray(item_vecs, dtype=np.float32))  # (n_items, k)
    b = torch.as_tensor(np.asarray(item_bias, dtype=np.float32))  # (n_items,)
    h = sp.csr_matrix(history)
    n_pos = np.diff(h.indptr)
    width = max(int(n_pos.max()) if n_pos.size else 0, 1)
    pos = np.zeros((h.shape[0], width), np.int64)  # (B, P) padded positive items
    valid = np.zeros((h.shape[0], width), bool)
    for r in range(h.shape[0]):
        items = h.indices[h.indptr[r]:h.indptr[r + 1]]
        pos[r, :len(items)], valid[r, :len(items)] = items, True
    pos_t, valid_t = torch.as_tensor(pos), torch.as_tensor(valid)
    neg = torch.as_tensor(h.toarray() == 0)  # (B, n_items)
    pair_w = (valid_t[:, :, None] & neg[:, None, :]).float()  # (B, P, n_items)
    pair_w = pair_w / pair_w.sum((1, 2), keepdim=True).clamp_min(1.0)
    u = torch.zeros(h.shape[0], v.shape[1], requires_grad=True)  # (B, k)
    opt = torch.optim.Adam([u], lr=lr)
    for _ in range(steps):
        s = u @ v.T + b  # (B, n_items)
        diff = s.gather(1, pos_t)[:, :, None] - s[:, None, :]  # (B, P, n_items)
        loss = (torch.nn.functional.softplus(-diff) * pair_w).sum() + reg * (u ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    out = u.detach().numpy()
    out[n_pos == 0] = 0.0
    return out


def thread_limit(n: int) -> Any:
    """A context limiting BLAS/OpenMP pools to `n` threads (no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(n)


class _Factors:
    """Shared scoring: ⟨u, v_i⟩ + b_i over the full catalogue, fold-in for `history` rows."""

    user_factors_: np.ndarray  # (n_users, k)
    item_factors_: np.ndarray  # (n_items, k)
    item_bias_: np.ndarray  # (n_items,)

    def _fold_in(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        raise NotImplementedError

    def score_users(self, users: np.ndarray, history: sp.csr_matrix | None = None) -> np.ndarray:
        """(B, n_items) float32 scores; rows with a non-empty `history` are folded in."""
        if not hasattr(self, "item_factors_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(data) first")
        u = check_user_indices(users, self.user_factors_.shape[0])
        vecs = self.user_factors_[u].copy()  # (B, k)
        h = _history(history, len(u), self.item_factors_.shape[0])
        if h is not None:
            has = np.diff(h.indptr) > 0
            if has.any():
                vecs[has] = self._fold_in(u[has], h[has])
        return (vecs @ self.item_factors_.T + self.item_bias_[None, :]).astype(np.float32)


class ImplicitALS(_Factors):
    """implicit's `AlternatingLeastSquares` (CPU) on binary interactions, confidence 1 + alpha·x.

    Unseen users given with `history` get `recalculate_user` factors (the exact least-squares
    solution for that history with the items fixed).
    """

    def __init__(self, factors: int = 64, regularization: float = 0.1, alpha: float = 1.0,
                 iterations: int = 15, seed: int = 0, num_threads: int = 1) -> None:
        self.factors, self.regularization, self.alpha = factors, regularization, alpha
        self.iterations, self.seed, self.num_threads = iterations, seed, num_threads

    def fit(self, data: InteractionData) -> ImplicitALS:
        x = _check_data(data)
        als = require("implicit.cpu.als", "implicit>=0.7")
        self.model_ = als.AlternatingLeastSquares(
            factors=self.factors, regularization=self.regularization, alpha=self.alpha,
            iterations=self.iterations, random_state=self.seed, num_threads=self.num_threads)
        with thread_limit(self.num_threads):
            self.model_.fit(x, show_progress=False)
        self.user_factors_ = np.asarray(self.model_.user_factors)  # (n_users, k)
        self.item_factors_ = np.asarray(self.model_.item_factors)  # (n_items, k)
        self.item_factors_[x.getnnz(0) == 0] = 0.0  # untrained items: no information
        self.item_bias_ = np.zeros(x.shape[1], np.float32)
        return self

    def _fold_in(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        with thread_limit(self.num_threads):
            return np.asarray(self.model_.recalculate_user(users, history))


class ImplicitBPR(_Factors):
    """implicit's `BayesianPersonalizedRanking` (CPU; its item bias is the last factor column).

    implicit has no BPR fold-in, so unseen users given with `history` get `bpr_fold_in`
    vectors: the BPR objective on their history with the learned items fixed.
    """

    def __init__(self, factors: int = 64, learning_rate: float = 0.01, regularization: float = 0.01,
                 iterations: int = 100, seed: int = 0, num_threads: int = 1) -> None:
        self.factors, self.learning_rate, self.regularization = factors, learning_rate, regularization
        self.iterations, self.seed, self.num_threads = iterations, seed, num_threads

    def fit(self, data: InteractionData) -> ImplicitBPR:
        x = _check_data(data)
        bpr = require("implicit.cpu.bpr", "implicit>=0.7")
        self.model_ = bpr.BayesianPersonalizedRanking(
            factors=self.factors, learning_rate=self.learning_rate,
            regularization=self.regularization, iterations=self.iterations,
            random_state=self.seed, num_threads=self.num_threads)
        with thread_limit(self.num_threads):
            self.model_.fit(x, show_progress=False)
        uf, itf = np.asarray(self.model_.user_factors), np.asarray(self.model_.item_factors)
        self.user_factors_ = uf[:, :-1].copy()  # (n_users, k); the last column is the constant 1
        self.item_factors_ = itf[:, :-1].copy()  # (n_items, k)
        self.item_bias_ = itf[:, -1].copy()  # (n_items,)
        cold = x.getnnz(0) == 0
        self.item_factors_[cold], self.item_bias_[cold] = 0.0, 0.0
        return self

    def _fold_in(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return bpr_fold_in(self.item_factors_, self.item_bias_, history, self.regularization)


class UijSampler:
    """cornac's `Dataset.uij_iter` (uniform negatives, resampled while the user has them), with
    numpy instead of a Python loop per triplet: VBPR's epochs were dominated by sampling."""

    def __init__(self, train_set: Any, seed: int) -> None:
        u, i = (np.asarray(a, np.int64) for a in train_set.uir_tuple[:2])
        self.users, self.items, self.n_items = u, i, int(train_set.num_items)
        self.known = np.unique(u * self.n_items + i)  # sorted codes of the positive pairs
        self.rng = np.random.default_rng(seed)

    def _is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        codes = users * self.n_items + items
        pos = np.searchsorted(self.known, codes).clip(max=len(self.known) - 1)
        return self.known[pos] == codes

    def __call__(self, batch_size: int = 1, shuffle: bool = False, neg_sampling: str = "uniform"):
        if neg_sampling.lower() != "uniform":
            raise DataError(f"only uniform negative sampling is vectorised, got {neg_sampling!r}")
        order = self.rng.permutation(len(self.users)) if shuffle else np.arange(len(self.users))
        for start in range(0, len(order), batch_size):
            ids = order[start:start + batch_size]
            users, pos = self.users[ids], self.items[ids]
            neg = self.rng.integers(0, self.n_items, len(ids))
            bad = self._is_positive(users, neg)
            for _ in range(100):  # resample the negatives the user has consumed
                if not bad.any():
                    break
                neg[bad] = self.rng.integers(0, self.n_items, int(bad.sum()))
                bad = self._is_positive(users, neg)
            yield users, pos, neg


class CornacVBPR(_Factors):
    """cornac's VBPR with `data.content[modality]` vectors as the item "visual" features.

    score(u, i) = β_i + ⟨γ_u, γ_i⟩ + ⟨θ_u, E f_i⟩ + β'·f_i. Items without training
    interactions keep β_i = 0, γ_i = 0 (content terms only); items without content get
    f_i = 0. Unseen users given with `history` get `bpr_fold_in` on [γ_u, θ_u].
    """

    def __init__(self, k: int = 32, k2: int = 32, n_epochs: int = 20, batch_size: int = 256,
                 learning_rate: float = 0.005, lambda_w: float = 0.01, lambda_b: float = 0.01,
                 lambda_e: float = 0.0, modality: str = "text", seed: int = 0) -> None:
        self.k, self.k2, self.n_epochs, self.batch_size = k, k2, n_epochs, batch_size
        self.learning_rate, self.lambda_w, self.lambda_b, self.lambda_e = (
            learning_rate, lambda_w, lambda_b, lambda_e)
        self.modality, self.seed = modality, seed

    def _features(self, data: InteractionData) -> np.ndarray:
        if self.modality not in data.content:
            raise DataError(f"CornacVBPR needs vectors in data.content[{self.modality!r}]; the data "
                            f"has {data.modalities}. Pass modality= or add precomputed vectors")
        rows = data.content[self.modality]
        dims = {np.asarray(r).shape for r in rows if r is not None}
        if len(dims) != 1 or len(next(iter(dims))) != 1:
            raise DataError(f"data.content[{self.modality!r}] must hold 1-D vectors of one size "
                            f"(precomputed embeddings), got shapes {sorted(dims)[:3]}")
        d = next(iter(dims))[0]
        return np.stack([np.zeros(d, np.float32) if r is None else np.asarray(r, np.float32)
                         for r in rows])  # (n_items, d)

    def fit(self, data: InteractionData) -> CornacVBPR:
        x = _check_data(data)
        feats = self._features(data)  # (n_items, d)
        cornac = require("cornac", "cornac>=2")
        from cornac.models import VBPR

        coo = x.tocoo()
        train_set = cornac.data.Dataset.build(
            [(str(u), str(i), 1.0) for u, i in zip(coo.row, coo.col)], fmt="UIR", seed=self.seed)
        uidx = np.array([int(r) for r in train_set.uid_map])  # raw index in cornac order
        iidx = np.array([int(r) for r in train_set.iid_map])
        order_u = np.array(list(train_set.uid_map.values()))
        order_i = np.array(list(train_set.iid_map.values()))
        item_image = cornac.data.ImageModality(features=feats[iidx[np.argsort(order_i)]])
        train_set.add_modalities(item_image=item_image)
        train_set.uij_iter = UijSampler(train_set, self.seed)  # same sampling, vectorised
        self.model_ = VBPR(k=self.k, k2=self.k2, n_epochs=self.n_epochs, batch_size=self.batch_size,
                           learning_rate=self.learning_rate, lambda_w=self.lambda_w,
                           lambda_b=self.lambda_b, lambda_e=self.lambda_e, use_gpu=False,
                           verbose=False, seed=self.seed)
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # VBPR prints "Optimization finished!"
            self.model_.fit(train_set)
        m = self.model_
        n_users, n_items = x.shape
        gu = np.zeros((n_users, self.k + self.k2), np.float32)  # (n_users, k + k2) [γ_u, θ_u]
        gu[uidx] = np.hstack([m.gamma_user, m.theta_user])[order_u]
        gi = np.zeros((n_items, self.k), np.float32)
        gi[iidx] = m.gamma_item[order_i]
        bi = np.zeros(n_items, np.float32)
        bi[iidx] = m.beta_item[order_i]
        theta_i = feats @ m.emb_matrix  # (n_items, k2) content part, every item
        self.user_factors_ = gu
        self.item_factors_ = np.hstack([gi, theta_i]).astype(np.float32)  # (n_items, k + k2)
        self.item_bias_ = (bi + (feats @ m.beta_prime).ravel()).astype(np.float32)
        return self

    def _fold_in(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return bpr_fold_in(self.item_factors_, self.item_bias_, history, self.lambda_w)
