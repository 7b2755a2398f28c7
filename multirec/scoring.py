"""Scoring: the only code that knows the tower layout (`ItemOutput` / `UserOutput` fields).

    logits(u, i) = a·(⟨h_u, h_i⟩ + s·⟨cf_u, cf_i⟩ + t·ii_ui·memory_i + w_u·prior_i + b_u + b_i + b) + c

`Scorer` serves a fitted network: the catalogue's item outputs (cached), user vectors for
known users (their training history) or new users (fold-in from a given history),
calibrated logits for every item in bounded memory (`batch_size` users at a time), and the
retrieval head — one query and one item vector per side whose inner product is the logit
up to the user's own terms — that `multirec.index.ItemIndex` searches with FAISS.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from .network import ItemOutput, TwoTowerNetwork, UserOutput, sparse_bag

__all__ = ["Scorer", "RetrievalHead", "iter_logits", "logits_batch_size", "binary"]

_MAX_BLOCK = 1 << 22  # floats per (users × items) logits block


def logits_batch_size(n_items: int, cap: int = 512) -> int:
    """Users per block so that a (users × items) float block stays near 16 MB."""
    return max(1, min(cap, _MAX_BLOCK // max(n_items, 1)))


def binary(x: sp.spmatrix) -> sp.csr_matrix:
    """A float32 CSR copy of `x` with every stored entry 1 (duplicates merged, zeros dropped,
    indices sorted); `x` itself is left as it was."""
    x = sp.csr_matrix(x, dtype=np.float32, copy=True)
    x.sum_duplicates()
    x.eliminate_zeros()
    x.data[:] = 1.0
    x.sort_indices()
    return x


@dataclass
class RetrievalHead:
    """Vectors whose inner product is the logit minus the user's own terms.

    `items (n, D)`: `[h_i, s·cf_i, prior_i, b_i + b]`; a query is `[h_u, cf_u, w_u, 1]`
    (the prior columns only when the popularity prior is on); the user bias and
    the calibration `a·x + c` (a > 0) do not change a user's ranking. Item-item scores, when
    the model has them, are added by the index on its candidates (`Scorer.item_item_scores`).
    """

    items: np.ndarray  # (n_items, D) float32
    dim: int  # D
    knn: slice | None = None  # the content-neighbour columns (nonzero for cold items only)


class Scorer:
    """Logits and vectors of a fitted network (eval mode, no gradients)."""

    def __init__(self, net: TwoTowerNetwork, item_item: Any = None) -> None:
        self.net, self.item_item = net, item_item
        self._cache: tuple[ItemOutput, torch.Tensor] | None = None
        self._knn_cols: tuple[ItemOutput, torch.Tensor | None] | None = None  # per catalogue
        self._head: tuple[ItemOutput, RetrievalHead] | None = None  # per catalogue

    @property
    def device(self) -> torch.device:
        return self.net.global_bias.device

    @property
    def has_prior(self) -> bool:
        """Whether the popularity prior is on (then the retrieval head carries it)."""
        return bool(self.net.prior_weight.abs().sum() > 0)

    def invalidate(self) -> None:
        """Forget the cached catalogue (after the network or the catalogue changed)."""
        self._cache = self._knn_cols = self._head = None

    def catalogue(self) -> tuple[ItemOutput, torch.Tensor]:  # item outputs, (n_items, d) context
        if self._cache is None:
            net = self.net
            was = net.training
            net.eval()
            with torch.no_grad():
                items = torch.arange(net.n_items, device=self.device)
                out = net.items(items)
                self._cache = (out, net.context(items, out))
            net.train(was)
        return self._cache

    def users(self, users: np.ndarray | None, history: sp.csr_matrix) -> UserOutput:
        """User outputs from `history` (B, n_items); `users=None`: unknown users (fold-in)."""
        _, ctx = self.catalogue()
        with torch.no_grad():
            u = None if users is None else torch.from_numpy(np.asarray(users, np.int64)).to(self.device)
            basis = self.net.content_basis if self.net.uses_content_neighbours else None
            return self.net.users(u, sparse_bag(history, self.device), ctx, basis=basis)

    def has_item_item(self) -> bool:
        """Whether the logits have the item-item term (dense (B, n_items) rows per block)."""
        return self.item_item is not None and bool(self.net.use_item_item)

    def item_item_scores(self, history: sp.csr_matrix, columns: np.ndarray | None = None
                         ) -> torch.Tensor | None:  # (B, C) or None
        if not self.has_item_item():
            return None
        s = (self.item_item.scores(history) if columns is None
             else self.item_item.scores_at(history, columns))
        return torch.from_numpy(np.ascontiguousarray(s, dtype=np.float32)).to(self.device)

    def item_item_term(self, users: np.ndarray | None, history: sp.csr_matrix
                       ) -> torch.Tensor | None:  # (B, n_items) or None
        """The item-item part of the raw logits, `t·v_u·ii_ui·memory_i`, for one block of
        users (`users=None`: unknown users); None for models without the term."""
        ii = self.item_item_scores(history)
        return None if ii is None else self._weighted_item_item(self.users(users, history), ii)

    def _weighted_item_item(self, user: UserOutput, ii: torch.Tensor) -> torch.Tensor:  # (B, n_items)
        out, _ = self.catalogue()
        with torch.no_grad():
            return self.net.item_item_term(user, out, ii)

    def logits(self, users: np.ndarray | None, history: sp.csr_matrix, *,
               calibrated: bool = True, columns: np.ndarray | None = None
               ) -> torch.Tensor:  # (B, n_items), or (B, C) for `columns`
        """Logits of every catalogue item (or of the items `columns`) for one block of users."""
        out, _ = self.catalogue()
        if columns is not None:
            out = out.take(torch.from_numpy(np.asarray(columns, np.int64)).to(self.device))
        user = self.users(users, history)
        ii = self.item_item_scores(history, columns)
        with torch.no_grad():
            if calibrated:
                return self.net.logits(user, out, ii)
            return self.net.raw_logits(user, out, ii)

    def raw_logits_block(self, users: np.ndarray | None, history: sp.csr_matrix, *,
                         item_item_part: bool = False
                         ) -> tuple[torch.Tensor, torch.Tensor | None]:  # (B, n_items), same or None
        """Raw logits of every catalogue item for one block of users and, with
        `item_item_part`, their item-item term (None without it or without the term), from
        one pass of the user tower and of the item-item scores."""
        out, _ = self.catalogue()
        user = self.users(users, history)
        ii = self.item_item_scores(history)
        with torch.no_grad():
            z = self.net.raw_logits(user, out, ii)
            part = self.net.item_item_term(user, out, ii) if item_item_part and ii is not None else None
        return z, part

    def score_users(self, users: np.ndarray, history: sp.csr_matrix | None,
                    user_items: sp.csr_matrix, batch_size: int | None = None) -> np.ndarray:
        """(B, n_items) float32 logits for user indices; with `history` they are treated as
        unknown users represented by those rows (fold-in)."""
        users = np.asarray(users, dtype=np.int64)
        n_items = self.net.n_items
        bs = batch_size or logits_batch_size(n_items)
        chunks = []
        for s in range(0, len(users), bs):
            u = users[s:s + bs]
            if history is None:
                chunk = self.logits(u, user_items[u])
            else:
                chunk = self.logits(None, binary(history[s:s + bs]))
            chunks.append(chunk.cpu().numpy())
        return np.concatenate(chunks) if chunks else np.zeros((0, n_items), np.float32)

    def item_vectors(self) -> np.ndarray:  # (n_items, d)
        return self.catalogue()[0].h.cpu().numpy()

    def knn_columns(self) -> torch.Tensor | None:  # (R',) int64 column indices, or None
        """The content-neighbour columns the retrieval head carries: those of sources with a
        nonzero weight, and none when no catalogue item is cold (the term is 0 for warm
        items), so a warm catalogue's index is no wider than without the term."""
        out, _ = self.catalogue()
        if self._knn_cols is None or self._knn_cols[0] is not out:  # once per catalogue
            cols = None
            if out.knn is not None and out.memory is not None and not bool((out.memory != 0).all()):
                cols = torch.nonzero(self.net.content_weight != 0).squeeze(1)
            self._knn_cols = (out, cols if cols is not None and cols.numel() else None)
        return self._knn_cols[1]

    def retrieval_head(self, rows: np.ndarray | None = None) -> RetrievalHead:
        """Item side of the retrieval head (all items or `rows`). Built once per catalogue:
        the full array is shared and read-only (`rows` gives a copy)."""
        out, _ = self.catalogue()
        if self._head is None or self._head[0] is not out:
            self._head = (out, self._build_head(out))
        head = self._head[1]
        if rows is None:
            return head
        x = head.items[rows]
        return RetrievalHead(items=np.ascontiguousarray(x), dim=x.shape[1], knn=head.knn)

    def _build_head(self, out: ItemOutput) -> RetrievalHead:
        net = self.net
        knn = self.knn_columns()
        with torch.no_grad():
            parts = [out.h]
            if net.use_user_cf:
                parts.append(net.cf_scale * out.cf)
            if self.has_prior:
                parts.append(out.prior.unsqueeze(1))
            at = sum(int(p.shape[1]) for p in parts)
            cols = None
            if knn is not None:
                parts.append(out.knn[:, knn])
                cols = slice(at, at + int(knn.numel()))
            parts.append((out.bias + net.global_bias).unsqueeze(1))
            x = np.ascontiguousarray(torch.cat(parts, 1).float().cpu().numpy())
        x.setflags(write=False)
        return RetrievalHead(items=x, dim=x.shape[1], knn=cols)

    def queries(self, users: np.ndarray | None, history: sp.csr_matrix
                ) -> tuple[np.ndarray, np.ndarray]:  # (B, D) float32, (B,) user biases
        """Query side of the retrieval head: `[h_u, cf_u, (w_u,) (p_u,) 1]` and `b_u` (`p_u`:
        the pooled content-neighbour vector, the columns of `knn_columns`)."""
        return self._queries(self.users(users, history))

    def query_block(self, users: np.ndarray | None, history: sp.csr_matrix
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """`queries` and the float32 (B, n_items) `item_item_term` (None without the term)
        of one block of users, from one pass of the user tower."""
        user = self.users(users, history)
        q, bu = self._queries(user)
        ii = self.item_item_scores(history)
        if ii is None:
            return q, bu, None
        return q, bu, self._weighted_item_item(user, ii).float().cpu().numpy()

    def _queries(self, user: UserOutput) -> tuple[np.ndarray, np.ndarray]:
        knn = self.knn_columns()
        parts = [user.h]
        if self.net.use_user_cf:
            parts.append(user.cf)
        if self.has_prior:
            parts.append(user.prior.unsqueeze(1))
        if knn is not None and user.knn is not None:
            parts.append(user.knn[:, knn])
        parts.append(torch.ones(user.h.shape[0], 1, device=user.h.device))
        q = torch.cat(parts, 1).float().cpu().numpy()
        return np.ascontiguousarray(q), user.bias.float().cpu().numpy()

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated logits from raw ones (`a·raw + c`)."""
        return raw * float(self.net.logit_scale) + float(self.net.logit_shift)


def iter_logits(net: TwoTowerNetwork, inputs: sp.csr_matrix, users: np.ndarray,
                item_item: Any = None, *, calibrated: bool = False,
                batch_size: int | None = None, columns: np.ndarray | None = None
                ) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """`(users, logits (B, n_items))` per block of `users` (or (B, C) for the items
    `columns`), histories from the rows of `inputs`; used by validation and calibration
    during `fit` (the catalogue is re-encoded on each call: the weights change between calls)."""
    scorer = Scorer(net, item_item)
    bs = batch_size or logits_batch_size(net.n_items if columns is None else len(columns))
    for s in range(0, users.size, bs):
        u = users[s:s + bs]
        yield u, scorer.logits(u, inputs[u], calibrated=calibrated, columns=columns)

