"""`ItemIndex`: exact or approximate (FAISS) top-k items for large catalogues.

The model's logit is one inner product plus a per-user constant, so top-k recommendation is
maximum-inner-product search (MIPS) over fixed item vectors:

    logit(u, i) = ⟨h_u, h_i⟩ + s·⟨cf_u, cf_i⟩ + b_u + b_i + b
                = ⟨q_u, x_i⟩ + b_u        q_u = [h_u, cf_u, 1]     x_i = [h_i, s·cf_i, b_i + b]

`b_u` does not change a user's ranking; it is added back so that returned scores are the
model's logits (probabilities in `recommend`). Kinds:

    flat   faiss.IndexFlatIP: exact, O(n_items) per query
    ivf    faiss.IndexIVFFlat, k-means cells; `nlist` cells, `nprobe` searched per query
    hnsw   faiss.IndexHNSWFlat graph; `m` links per node, `ef_construction` / `ef_search` beams

MIPS as nearest-neighbour search (`transform=True`): with M = max‖x_i‖, item i is indexed as
x'_i = [x_i, √(M² − ‖x_i‖²)] and a query as q' = [q, 0]; then ‖q' − x'_i‖² = ‖q‖² + M² −
2⟨q, x_i⟩, so the L2 nearest neighbours are exactly the largest inner products. Measured
(benchmarks/results/retrieval.md, 1 thread): the transform helps IVF once queries are
rescaled to norm M (its k-means cells then follow directions, not the few largest norms:
long-tailed norms, 20k items, recall@10 0.98 probing 108 cells vs 0.97 probing 243 for
inner-product cells, 0.08 vs 0.14 ms a query) and hurts HNSW (efSearch 616 instead of 36
for the same recall there, 20x slower queries; alike on a fitted model's vectors), so the
defaults are `ivf` with and `hnsw` without it, unless calibration finds the default cannot
reach the target recall, or only by searching everything, and the other space can with less
(then that one is built; `params["transform_chosen"]` says why). Measured: a fitted 20k-item
long-tail model whose cold items sit below every warm item (bias ≈ -120): hnsw under inner
product reached recall@10 0.48 at efSearch = every item; transformed, 0.989 at efSearch 616
(1,000 users: 0.50 s instead of 16.9 s). Every kind returns the exact inner products of
the items it finds (rescored from the stored vectors when transformed).

Defaults (`from_vectors`): nlist = 4√N for N ≤ 250k, 2√N above (fewer cells keep the k-means
cheap at 1M items; it trains on ≤ 64 points a cell), m = 32, ef_construction = 40 (half the
build time of 80; the calibrated efSearch makes up the recall). `nprobe` and `ef_search`
left at None are *calibrated* at build time: the smallest value on a ×1.5 grid whose recall@10
against exact search reaches `target_recall` (0.95) + 0.015 (sampling noise) on 512 sample
queries: the model's own users in `build`; in `from_vectors` `queries`, else Gaussian queries
with the items' per-dimension mean and spread. `params["estimated_recall"]` records it.
At 1M items on 2 threads (benchmarks/results/retrieval.md): "hnsw" builds in 2.5–4.5 min and
answers in 0.2–1.7 ms at recall@10 ≥ 0.975; "ivf" builds in under a minute and serves a fitted
model's vectors at 0.7 ms, but long-tailed norms defeat its cells at that size (calibration
then probes every cell: exact, 13 ms). Prefer "hnsw" unless the build time matters most.

Models with the item-item term (`item_item`, EASE weights) add `t·s_u[i]` to the logit,
which is no inner product of fixed vectors. It is nonzero only near a user's history (every
item with dense EASE, at most history × neighbours items with sparse EASE, above
`itemitem.DENSE_MAX_ITEMS`): `recommend` scores those items exactly and takes the rest from
the index, fetching more until no item it left out can reach the top-k (so with "flat" it
equals `model.recommend`); a user whose support is most of the catalogue is scored exactly.

Models with content neighbours (`multirec.neighbours`) score cold items with R extra
columns (the user's pooled content vector) that are 0 for warm items. When the cold items
are few (at most `multirec.coldblock.COLD_EXACT_MAX` and half the catalogue), `build`
("ivf", "hnsw") indexes every item without those columns and scores the cold items exactly
beside FAISS (`multirec.coldblock`), so each of the N stored vectors stays R floats
narrower (`cold_items`, `faiss_index.d` < `dim`); the two result lists are merged per
query. Measured (20k long-tail items, tags + text, 230 cold items with content): hnsw
FAISS dim 97 instead of 417, 12.6 instead of 37.0 MB, build 31 vs 34 s, the same query
time and calibrated recall. "flat" keeps one full-width index (filtering its scan costs
FAISS its BLAS path: 2.3 vs 1.1 ms a user).

FAISS is optional: `pip install "multirec[ann]"`.

    >>> index = ItemIndex.build(model, kind="hnsw")
    >>> ids, scores = index.recommend(model, ["user_0001"], n=10)
    >>> index.save("index/"); index = ItemIndex.load("index/")
"""

from __future__ import annotations

import json
import math
import os
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from .errors import ConfigError, DataError, MissingBackendError, ModelFileError
from .progress import progress

__all__ = ["ItemIndex", "KINDS", "item_vectors", "mips_transform"]

_MARKER = "multirec.ItemIndex"  # the kind of save named in the pointer file


# ====================================================================== model adapter
# Everything this module needs from a fitted model, in one place: its public scoring API
# (`model.scorer_`, a `multirec.scoring.Scorer`: retrieval head, queries, the item-item
# term, calibration) and the catalogue helpers; none of it knows the tower layout.
from ._files import atomic_directory, current_version, sha256_file  # noqa: E402
from .catalogue import history_matrix, ids_with_pad  # noqa: E402
from .coldblock import ColdBlock, merge_top, pad_results  # noqa: E402
from .ranking import stored_cells, topk  # noqa: E402
from .scoring import binary  # noqa: E402


def _check_fitted(model: Any) -> None:
    if not callable(getattr(model, "check_fitted", None)):
        raise ConfigError(f"expected a fitted MultimodalRecommender, got {type(model).__name__}; "
                          "for other vectors use ItemIndex.from_vectors(vectors)")
    model.check_fitted()  # NotFittedError that says to call fit() / from_pretrained()


def _head(model: Any, rows: np.ndarray | None = None) -> np.ndarray:  # (N, D) float32
    """Item side of the retrieval head: `[h_i, s·cf_i, b_i + b]` (all items or `rows`)."""
    return np.ascontiguousarray(model.scorer_.retrieval_head(rows).items, dtype=np.float32)


def _head_and_knn_columns(model: Any) -> tuple[np.ndarray, slice | None]:  # (N, D), columns
    """Every item's retrieval-head vector, and where its content-neighbour columns are
    (None: it has none)."""
    head = model.scorer_.retrieval_head()
    return np.ascontiguousarray(head.items, dtype=np.float32), head.knn


def _catalogue_token(model: Any) -> Any:
    """An object that is replaced whenever the model's catalogue vectors change (its cache)."""
    return model.scorer_.catalogue()[0]


def _user_block(model: Any, users: np.ndarray | None, bag: sp.csr_matrix
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:  # (B, D), (B,), (B, n_items)
    """Query side `[h_u, cf_u, 1]`, user biases and the item-item term `t·v_u·ii_ui·memory_i`
    of the raw logit (None for models without it); `users=None`: fold-in from `bag`."""
    return model.scorer_.query_block(users, bag)


def _calibrate(model: Any, raw: np.ndarray) -> np.ndarray:
    return model.scorer_.calibrate(raw)  # a·raw + c, a > 0: ranks unchanged


# ====================================================================== constants
KINDS = ("flat", "ivf", "hnsw")
# 3: optional cold block (cold.npz); 2: optional MIPS→L2 transform ("transform" in
# index.json); 1 read as IP
FORMAT_VERSION = 3
_INDEX_FILE, _META_FILE, _COLD_FILE = "index.faiss", "index.json", "cold.npz"
_N_CHECK = 32  # item vectors kept to check that an index matches the model it serves
_DENSE_BUDGET = 1 << 25  # max floats in a dense (users × items) block
_DEFAULT_TRANSFORM = {"flat": False, "ivf": True, "hnsw": False}  # measured, see docstring
_N_CALIBRATE = 512  # sample queries for choosing nprobe / ef_search
_MARGIN = 0.015  # calibrated recall must reach target + margin (sampling noise)
_ADD_CHUNK = 65536  # HNSW items added per step (progress bar)
# Item-item rows whose support (nonzero term) is over this share of the catalogue are scored
# in full: one BLAS product beats gathering that many item vectors. Measured (20k long-tail
# items, sparse EASE, supports ~12% of the catalogue, 300 users): gathering 2.7 s, full 0.1 s.
_SUPPORT_FULL = 1 / 16


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise MissingBackendError("faiss-cpu", "ann", "the item index (multirec.index)") from exc
    return faiss


def _check_n(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"n must be a positive int, got {n!r}")
    return int(n)


def _check_int(name: str, value: Any, low: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                              or value < low):
        raise ConfigError(f"{name} must be an int >= {low}, got {value!r}")


def item_vectors(model: Any, rows: np.ndarray | None = None) -> np.ndarray:  # (N, D) float32
    """Item vectors `x_i = [h_i, s·cf_i, b_i + b]` of a fitted model (all items, or `rows`).

    `⟨[h_u, cf_u, 1], x_i⟩ + b_u` is the model's logit (without the item-item term).
    """
    _check_fitted(model)
    if rows is None:
        return _head(model).copy()  # the model's cached array is read-only
    return _head(model, np.asarray(rows, np.int64))


def mips_transform(vectors: np.ndarray) -> tuple[np.ndarray, float]:  # (N, D + 1), M²
    """Items `x_i` → `[x_i, √(M² − ‖x_i‖²)]` with `M² = max‖x_i‖²` (returned too).

    Queries get a 0 appended; L2 nearest neighbours of `[q, 0]` are then the items with the
    largest `⟨q, x_i⟩` (`‖q' − x'_i‖² = ‖q‖² + M² − 2⟨q, x_i⟩`).
    """
    x = np.asarray(vectors, dtype=np.float32)
    norm2 = np.einsum("nd,nd->n", x, x, dtype=np.float64)  # (N,)
    m2 = float(norm2.max()) if len(x) else 0.0
    out = np.empty((len(x), x.shape[1] + 1), np.float32)
    out[:, :-1] = x
    out[:, -1] = np.sqrt(np.maximum(m2 - norm2, 0.0))
    return out, m2


def _grid(low: int, high: int) -> list[int]:
    """low, ~1.5·low, 2·low, … up to high (inclusive): the calibration candidates."""
    out, v = [], max(1, low)
    while v < high:
        out.append(v)
        v = max(v + 1, int(round(v * 1.5)))
    return [*out, high]


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean |found ∩ truth| / |truth| per row (rows of item indices, -1 ignored)."""
    hits = [len(set(a[a >= 0]) & set(b[b >= 0])) / max(1, int((b >= 0).sum()))
            for a, b in zip(found, truth)]
    return float(np.mean(hits)) if hits else 1.0


def _checked_vectors(kind: str, vectors: np.ndarray) -> np.ndarray:  # (N, D) float32
    if kind not in KINDS:
        raise ConfigError(f"unknown index kind {kind!r}; choose one of {list(KINDS)}")
    x = np.asarray(vectors)
    if x.ndim != 2 or x.shape[1] < 1:
        raise DataError(f"vectors must be a 2-D (n_items, dim) array, got shape {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise DataError("item vectors contain NaN or inf; check the model's weights")
    return x


def _new_faiss_index(faiss: Any, kind: str, stored: np.ndarray, transform: bool, d: int,
                     params: dict[str, Any], *, m: int, ef_construction: int,
                     nlist: int | None, seed: int) -> Any:
    """An empty (trained, for IVF) FAISS index of `kind` over the `stored` vectors' space;
    records the build settings in `params`."""
    n, dim = stored.shape
    metric = faiss.METRIC_L2 if transform else faiss.METRIC_INNER_PRODUCT
    if kind == "flat":
        return faiss.IndexFlatIP(d)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, int(m), metric)
        index.hnsw.efConstruction = int(ef_construction)
        params.update(m=int(m), ef_construction=int(ef_construction))
        return index
    if n == 0:
        raise DataError("an 'ivf' index needs at least one item to train on")
    if nlist is None:
        nlist = max(1, min(int((4 if n <= 250_000 else 2) * math.sqrt(n)), n // 39))
    if nlist > n:
        raise ConfigError(f"nlist={nlist} is more than the {n} items; use nlist <= {n}")
    quantizer = faiss.IndexFlatL2(dim) if transform else faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFFlat(quantizer, dim, int(nlist), metric)
    index.cp.seed = int(seed)
    index.cp.max_points_per_centroid = 64  # k-means sample: ≤ 64 points a cell
    index.train(stored)
    params.update(nlist=int(nlist), seed=int(seed))
    return index


def _add_in_chunks(index: Any, stored: np.ndarray, kind: str, show_progress: bool) -> None:
    """Add every vector; large HNSW graphs in chunks, with a progress bar."""
    n = stored.shape[0]
    if not n:
        return
    if kind == "hnsw" and n > _ADD_CHUNK:
        bar = progress(total=n, desc="hnsw index", unit="item", enabled=show_progress)
        for s in range(0, n, _ADD_CHUNK):
            index.add(stored[s:s + _ADD_CHUNK])
            bar.update(min(_ADD_CHUNK, n - s))
        bar.close()
    else:
        index.add(stored)


class ItemIndex:
    """Top-k inner-product search over a fitted model's item vectors (see module docstring).

    Build with `ItemIndex.build(model, kind)` (or `from_vectors`), query with `recommend`
    (raw IDs, like `MultimodalRecommender.recommend`) or `search` (indices, logits).
    Rebuild after `model.fit` or `model.add_items`: the index holds a copy of the vectors.
    """

    def __init__(self, index: Any, kind: str, params: Mapping[str, Any],
                 check: tuple[np.ndarray, np.ndarray] | None = None,
                 vectors: np.ndarray | None = None, cold: ColdBlock | None = None) -> None:
        self._index, self._kind, self._params = index, kind, dict(params)
        self._check = check  # (rows, vectors) sampled at build time
        self._checked: Any = None  # weakref to the model catalogue last found to match
        self._transform = bool(self._params.get("transform", False))
        # (N, D_f) exact item vectors for rescoring a transformed index (a view, no copy)
        self._vectors = vectors
        self._faiss_dim = int(index.d) - 1 if self._transform else int(index.d)  # D_f
        self._scale = math.sqrt(float(self._params.get("max_norm2", 0.0))) or 1.0  # M
        self._cold: ColdBlock | None = None
        self._selector: Any = None
        self._dim = self._faiss_dim  # D: the query vectors' width
        if cold is not None:
            self._attach_cold(cold)

    def _attach_cold(self, cold: ColdBlock) -> None:
        """Serve the items `cold.rows` from the exact block (the FAISS index holds the
        columns `cold.base` of every item; its results leave those items out)."""
        if cold.base.size != self._faiss_dim:
            raise ModelFileError(f"the cold block keeps {cold.base.size} columns for an index of "
                                 f"dim {self._faiss_dim}; rebuild the index")
        self._cold, self._dim = cold, cold.dim
        self._selector = cold.selector(_faiss())

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, model: Any, kind: str = "flat", **kw: Any) -> ItemIndex:
        """Index the item vectors of a fitted `MultimodalRecommender`.

        Keyword arguments are those of `from_vectors` (nlist, nprobe, m, ef_construction,
        ef_search, transform, target_recall, num_threads, seed, show_progress); nprobe /
        ef_search are calibrated on up to 512 of the model's own users unless given.
        For "ivf" and "hnsw", when the model scores its cold items with content-neighbour
        columns that warm items do not use and the cold items are few
        (`multirec.coldblock.ColdBlock.split`), FAISS indexes every item without those
        columns and the cold items are scored exactly beside it (`cold_items` in the repr).
        """
        _check_fitted(model)
        x, knn = _head_and_knn_columns(model)
        # "flat" stays one full-width index: FAISS's filtered flat scan loses its BLAS path
        # (measured at 20k items: 2.3 vs 1.1 ms a user in batches of 1,000)
        cold = ColdBlock.split(x, knn) if kind != "flat" else None
        if kind in ("ivf", "hnsw") and kw.get("queries") is None and len(model.user_map_):
            users = np.random.default_rng(kw.get("seed", 0)).permutation(len(model.user_map_))
            raw = list(model.user_map_.ids(np.sort(users[:_N_CALIBRATE])))
            probe = cls.from_vectors(x[:1], "flat")  # only its dim is used by _queries
            kw["queries"] = probe._queries(model, raw, None, with_seen=False)[0]
        if cold is not None and kw.get("queries") is not None:
            kw["queries"] = cold.narrow(np.asarray(kw["queries"]))
        index = cls.from_vectors(x if cold is None else cold.narrow(x), kind, **kw)
        if cold is not None:
            index._attach_cold(cold)
        rows = np.unique(np.linspace(0, len(x) - 1, min(_N_CHECK, len(x))).astype(np.int64))
        index._check = (rows, x[rows].copy())
        return index

    @classmethod
    def from_vectors(
        cls,
        vectors: np.ndarray,  # (N, D)
        kind: str = "flat",
        *,
        nlist: int | None = None,
        nprobe: int | None = None,
        m: int = 32,
        ef_construction: int = 40,
        ef_search: int | None = None,
        transform: bool | None = None,
        target_recall: float = 0.95,
        queries: np.ndarray | None = None,  # (Q, D) calibration queries
        num_threads: int | None = None,
        seed: int = 0,
        show_progress: bool = True,
    ) -> ItemIndex:
        """Index arbitrary item vectors for inner-product search.

        Args:
            kind: "flat" (exact), "ivf" or "hnsw" (approximate).
            nlist: IVF cells; default 4√N (2√N above 250k items), at most N / 39.
            nprobe: IVF cells searched per query; None: calibrated for `target_recall`.
            m: HNSW links per node. ef_construction: HNSW build beam (40).
            ef_search: HNSW search beam; None: calibrated for `target_recall`.
            transform: index `[x, √(M² − ‖x‖²)]` under L2 (see module docstring); None: the
                measured better choice (ivf: True, hnsw: False), and the other one when
                calibration finds the first cannot reach `target_recall` on these vectors,
                or only by searching every cell / item, while the other does with less
                (`params["transform_chosen"]` then says so); "flat" is always exact IP.
            target_recall: recall@10 vs exact that the calibrated nprobe / ef_search reach on
                the calibration queries.
            queries: calibration queries (Q, D); None: 512 Gaussian queries with the items'
                per-dimension mean and std.
            num_threads: FAISS OpenMP threads (process-wide setting); None leaves it alone.
            seed: seed of the IVF k-means and of the calibration queries.
            show_progress: a progress bar while a large HNSW graph is built.
        """
        x = _checked_vectors(kind, vectors)
        n, d = x.shape
        for name, value, low in [("m", m, 2), ("ef_construction", ef_construction, 1),
                                 ("ef_search", ef_search, 1), ("nlist", nlist, 1), ("nprobe", nprobe, 1),
                                 ("num_threads", num_threads, 1)]:
            _check_int(name, value, low)
        if isinstance(target_recall, bool) or not isinstance(target_recall, (int, float)) \
                or not 0.0 < target_recall <= 1.0:
            raise ConfigError(f"target_recall must be a number in (0, 1], got {target_recall!r}")
        auto = transform is None and kind != "flat"
        if transform is None:
            transform = _DEFAULT_TRANSFORM[kind]
        if kind == "flat" and transform:
            raise ConfigError("transform=True applies to 'ivf' and 'hnsw'; 'flat' is exact "
                              "inner-product search already")
        faiss = _faiss()
        if num_threads is not None:
            faiss.omp_set_num_threads(int(num_threads))
        params: dict[str, Any] = {}
        stored, kept = x, None
        if transform:
            stored, m2 = mips_transform(x)
            kept = stored[:, :d]  # (N, D) view for exact rescoring
            params.update(transform=True, max_norm2=m2)
        index = _new_faiss_index(faiss, kind, stored, bool(transform), d, params, m=m,
                                 ef_construction=ef_construction, nlist=nlist, seed=seed)
        _add_in_chunks(index, stored, kind, show_progress)
        out = cls(index, kind, params, vectors=kept)
        if kind == "ivf":
            out._params["nprobe"] = int(nprobe) if nprobe is not None else None
        elif kind == "hnsw":
            out._params["ef_search"] = int(ef_search) if ef_search is not None else None
        if kind != "flat" and (nprobe is None if kind == "ivf" else ef_search is None):
            out._calibrate(x, queries, float(target_recall), seed)
            knob, top = out._knob(n)
            goal = min(1.0, target_recall + _MARGIN)
            if auto and (out._params["estimated_recall"] < goal or out._params[knob] >= top):
                # the default space misses the target on these vectors, or reaches it only by
                # searching everything: try the other one, keep the cheaper that reaches it
                other = cls.from_vectors(
                    x, kind, nlist=nlist, m=m, ef_construction=ef_construction,
                    transform=not transform, target_recall=target_recall, queries=queries,
                    seed=seed, show_progress=show_progress)

                def rank(p: dict[str, Any]) -> tuple[bool, float]:  # higher is better
                    reached = p["estimated_recall"] >= goal
                    return reached, (-p[knob] if reached else p["estimated_recall"])

                mine = out._params
                if rank(other._params) > rank(mine):
                    other._params["transform_chosen"] = (
                        f"transform={not transform}: the default reached recall@10 "
                        f"{mine['estimated_recall']} at {knob}={mine[knob]} of {top}")
                    return other
        out._apply_params()
        return out

    def _calibrate(self, x: np.ndarray, queries: np.ndarray | None, target: float, seed: int) -> None:
        """Smallest nprobe / ef_search whose recall@10 vs exact reaches `target` on sample queries."""
        faiss = _faiss()
        n, d = x.shape
        knob, high = self._knob(n)
        if n == 0:
            self._params[knob] = 1 if knob == "nprobe" else 16
            return
        if queries is None:
            rng = np.random.default_rng(seed)
            q = x.mean(0) + x.std(0) * rng.standard_normal((_N_CALIBRATE, d))  # (Q, D)
        else:
            q = np.asarray(queries)
            if q.ndim != 2 or q.shape[1] != d or not np.isfinite(q).all():
                raise DataError(f"queries must be a finite ({d}-column) 2-D array, got shape {q.shape}")
        q = np.ascontiguousarray(q[:_N_CALIBRATE], dtype=np.float32)
        k = min(10, n)
        _, truth = faiss.knn(q, x, k, metric=faiss.METRIC_INNER_PRODUCT)  # (Q, k) exact
        best = (high, 0.0)
        for value in _grid(1 if knob == "nprobe" else 16, high):
            self._params[knob] = value
            self._apply_params()
            got = self._index.search(self.faiss_queries(q), k)[1]
            r = _recall(got, truth)
            best = (value, r)
            if r >= min(1.0, target + _MARGIN):
                break
        self._params[knob], self._params["estimated_recall"] = best[0], round(best[1], 4)

    def _knob(self, n: int) -> tuple[str, int]:
        """The calibrated setting's name and its largest value (every cell / every item)."""
        if self._kind == "ivf":
            return "nprobe", int(self._params["nlist"])
        return "ef_search", max(16, n)

    def _apply_params(self) -> None:
        if self._kind == "ivf":
            self._index.nprobe = min(self._params["nprobe"], self._params["nlist"])
        elif self._kind == "hnsw":
            self._index.hnsw.efSearch = self._params["ef_search"]

    def set_params(self, *, nprobe: int | None = None, ef_search: int | None = None) -> ItemIndex:
        """Change the speed/recall knobs of an approximate index; returns self."""
        for name, value, kind in [("nprobe", nprobe, "ivf"), ("ef_search", ef_search, "hnsw")]:
            if value is None:
                continue
            if self._kind != kind:
                raise ConfigError(f"{name} applies to {kind!r} indexes, this one is {self._kind!r}")
            _check_int(name, value, 1)
            self._params[name] = int(value)
            self._params.pop("estimated_recall", None)  # measured for the calibrated value
        self._apply_params()
        return self

    # ------------------------------------------------------------------ properties
    @property
    def kind(self) -> str:
        return self._kind

    @property
    def dim(self) -> int:
        """Dimension of the item (and query) vectors."""
        return self._dim

    @property
    def cold_items(self) -> np.ndarray:  # (C,) int64
        """Item indices scored exactly beside the FAISS index (empty: none)."""
        return np.zeros(0, np.int64) if self._cold is None else self._cold.rows.copy()

    @property
    def transform(self) -> bool:
        """Whether items are stored as `[x, √(M² − ‖x‖²)]` under L2 (see module docstring)."""
        return self._transform

    @property
    def faiss_index(self) -> Any:
        """The underlying FAISS index (queries must be `[q, 0]` when `transform` is True)."""
        return self._index

    @property
    def params(self) -> dict[str, Any]:
        """Build/search parameters (nlist, nprobe, m, ef_construction, ef_search, seed,
        transform, max_norm2, estimated_recall)."""
        return dict(self._params)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v}" for k, v in self._params.items())
        if self._cold is not None:
            extra += f", cold_items={self._cold.rows.size}, faiss_dim={self._faiss_dim}"
        return f"ItemIndex(kind={self._kind!r}, items={len(self)}, dim={self.dim}{extra})"

    # ------------------------------------------------------------------ search
    def faiss_queries(self, queries: np.ndarray) -> np.ndarray:  # (B, D) → (B, D_f [+ 1]) float32
        """Queries as `faiss_index` expects them: without the columns only the cold block
        uses (`cold_items`), and `[q·M/‖q‖, 0]` when `transform` is True.

        Rescaling a query does not change its inner-product ranking; at norm M it lies on the
        sphere of the transformed items, which is what makes IVF pick the right cells (recall
        0.95 instead of 0.60 at the same nprobe, long-tailed norms, 20k items).
        """
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if self._cold is not None and q.shape[1] == self._dim:
            q = self._cold.narrow(q)
        if not self._transform:
            return q
        out = np.zeros((len(q), self._faiss_dim + 1), np.float32)
        norm = np.linalg.norm(q, axis=1, keepdims=True)  # (B, 1)
        np.multiply(q, self._scale / np.maximum(norm, 1e-30), out=out[:, :-1])
        return out

    def _raw_search(self, q: np.ndarray, k: int, ef: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:  # (B, k) float32 scores, (B, k) int64
        """FAISS search (without the cold block's items); scores are inner products
        `⟨q, x_i⟩` (-inf where nothing was found)."""
        kw = {}
        if self._cold is not None:  # the cold items are the block's, not the index's
            kw["params"] = self._search_params(ef)
        elif ef is not None:  # HNSW finds at most efSearch items
            kw["params"] = _faiss().SearchParametersHNSW(efSearch=int(ef))
        if self._cold is not None:
            q = self._cold.narrow(q)  # (B, D_f): the columns FAISS holds
        dist, found = self._index.search(self.faiss_queries(q), k, **kw)  # (B, k), best first
        if self._transform:  # exact inner products of the found items, re-sorted
            safe = np.maximum(found, 0)
            dist = np.matmul(self._vectors[safe], q[:, :, None])[..., 0]  # (B, k, D) @ (B, D, 1)
            dist[found < 0] = -np.inf
            if (dist[:, 1:] > dist[:, :-1]).any():  # float ties between L2 and IP order
                order = np.argsort(-dist, axis=1, kind="stable")
                dist, found = np.take_along_axis(dist, order, 1), np.take_along_axis(found, order, 1)
        else:
            dist[found < 0] = -np.inf
        return dist, found

    def _search_params(self, ef: int | None) -> Any:
        """FAISS search parameters that leave out the cold block's items (and widen HNSW's
        beam to `ef` when given); the index's own nprobe / efSearch otherwise."""
        faiss = _faiss()
        if self._kind == "hnsw":
            return faiss.SearchParametersHNSW(
                sel=self._selector, efSearch=int(ef if ef is not None else self._params["ef_search"]))
        if self._kind == "ivf":
            return faiss.SearchParametersIVF(sel=self._selector, nprobe=int(self._index.nprobe))
        return faiss.SearchParameters(sel=self._selector)

    def search(
        self,
        queries: np.ndarray,  # (B, D)
        n: int,
        exclude: sp.spmatrix | None = None,  # (B, n_items), non-zero = skip
        *,
        bias: np.ndarray | None = None,  # (B,) added to the scores (user biases)
    ) -> tuple[np.ndarray, np.ndarray]:  # (B, n) int64, (B, n) float64
        """Top-`n` item indices and scores `⟨q, x_i⟩ (+ bias)`, best first.

        Excluded items never appear: each query fetches `n` + its number of excluded items
        (HNSW's beam widened to match). Rows with fewer eligible items (or, for ivf, fewer
        items in the `nprobe` searched cells) are padded with -1 / -inf.
        """
        n = _check_n(n)
        q, exclude, bias = self._search_args(queries, exclude, bias)
        b, n_items = len(q), len(self)
        if b == 0 or n_items == 0:
            return np.full((b, n), -1, np.int64), np.full((b, n), -np.inf)
        if exclude is None:  # fast path: one FAISS call of exactly n
            k = min(n, n_items)
            ef = k if self._kind == "hnsw" and k > self._params["ef_search"] else None
            dist, found = self._raw_search(q, k, ef)
            val = dist.astype(np.float64)
            idx, val = pad_results(np.where(np.isfinite(val), found, -1), val, n)
        else:
            idx, val = self._search_excluding(q, n, exclude)
        if self._cold is not None:  # + the cold items, scored exactly
            idx, val = merge_top(idx, val, *self._cold.top(q, n, exclude), n)
        if bias is not None:
            val = val + bias[:, None]  # -inf stays -inf
        return idx, val

    def _search_args(self, queries: np.ndarray, exclude: sp.spmatrix | None,
                     bias: np.ndarray | None) -> tuple[np.ndarray, sp.csr_matrix | None, Any]:
        """Checked float32 queries, exclusions (None when empty) and biases."""
        q = np.asarray(queries)
        if q.ndim != 2 or q.shape[1] != self._dim:
            raise DataError(f"queries must have shape (B, {self._dim}), got {q.shape}")
        if q.dtype != np.float32 or not q.flags.c_contiguous:
            q = np.ascontiguousarray(q, dtype=np.float32)
        b, n_items = len(q), len(self)
        if bias is not None:
            bias = np.asarray(bias, np.float64).reshape(-1)
            if bias.shape != (b,):
                raise DataError(f"bias must have shape ({b},), got {bias.shape}")
        if exclude is not None:
            if exclude.shape != (b, n_items):
                raise DataError(f"exclude must have shape ({b}, {n_items}), got {exclude.shape}")
            exclude = sp.csr_matrix(exclude, copy=True)
            exclude.eliminate_zeros()
            if not exclude.nnz:
                exclude = None
        return q, exclude, bias

    def _search_excluding(self, q: np.ndarray, n: int, exclude: sp.csr_matrix
                          ) -> tuple[np.ndarray, np.ndarray]:  # (B, n), (B, n)
        """Top-n without the excluded items: each query fetches n + its exclusions."""
        b, n_items = len(q), len(self)
        idx = np.full((b, n), -1, np.int64)
        val = np.full((b, n), -np.inf)
        counts = np.diff(exclude.indptr)
        need = (n + counts).astype(np.float64)  # fetch sizes rounded up to powers of two:
        fetch = np.minimum(n_items, 2 ** np.ceil(np.log2(need))).astype(np.int64)  # few calls
        for k in np.unique(fetch):
            rows = np.flatnonzero(fetch == k)
            ef = int(k) if self._kind == "hnsw" and k > self._params["ef_search"] else None
            dist, found = self._raw_search(q[rows], int(k), ef)  # (r, k), best first
            dist = dist.astype(np.float64)
            sub = exclude[rows]
            dist[stored_cells(sub, np.maximum(found, 0))] = -np.inf  # -1 slots: as item 0
            order = np.argsort(-dist, axis=1, kind="stable")[:, :n]
            top, top_idx = np.take_along_axis(dist, order, 1), np.take_along_axis(found, order, 1)
            w = top.shape[1]
            val[rows, :w] = top
            idx[rows, :w] = np.where(np.isfinite(top), top_idx, -1)
        return idx, val

    # ------------------------------------------------------------------ recommend
    def user_vectors(
        self,
        model: Any,
        user_ids: Any,
        history: Mapping[Any, Sequence[Any]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:  # (B, D) float32, (B,) float32
        """Query vectors `q_u = [h_u, cf_u, 1]` and user biases `b_u` for raw user IDs.

        Users in `history` (or unknown to the model) are represented by those items (fold-in).
        """
        self._check_model(model)
        raw = [user_ids] if _is_scalar(user_ids) else list(user_ids)
        q, bu, _, _ = self._queries(model, raw, history, with_seen=False)
        return q, bu

    def recommend(
        self,
        model: Any,
        user_ids: Any,
        n: int = 10,
        *,
        filter_seen: bool = True,
        items: Sequence[Any] | None = None,
        history: Mapping[Any, Sequence[Any]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-`n` items per user: `(item_ids, scores)`, as `MultimodalRecommender.recommend`.

        Raw IDs and probabilities; one raw ID → arrays of shape (n,), a sequence → (B, n);
        `items` restricts the candidates (scored exactly, without the index); `history` serves
        users unknown to the model by fold-in. Short rows are padded with None / NaN.
        """
        self._check_model(model)
        n = _check_n(n)
        scalar = _is_scalar(user_ids)
        raw = [user_ids] if scalar else list(user_ids)
        # Users in blocks: with the item-item term each user costs a few dense (n_items,)
        # rows, so a block holds at most ~_DENSE_BUDGET of them (e.g. 335 users at 100k items).
        step = max(len(raw), 1) if not self._has_item_item(model) else _block_rows(len(self))
        parts = [self._recommend_block(model, raw[s:s + step], n, filter_seen, items, history)
                 for s in range(0, max(len(raw), 1), step)]  # an empty request: one empty block
        ids, probs = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        return (ids[0], probs[0]) if scalar else (ids, probs)

    @staticmethod
    def _has_item_item(model: Any) -> bool:
        """Whether the model's logits have the item-item term (dense per-user rows)."""
        return model.scorer_.has_item_item()

    def _recommend_block(self, model: Any, raw: list[Any], n: int, filter_seen: bool,
                         items: Sequence[Any] | None, history: Mapping[Any, Sequence[Any]] | None
                         ) -> tuple[np.ndarray, np.ndarray]:  # (B, n) ids, (B, n) probabilities
        """`recommend` for one block of users (raw IDs)."""
        q, bu, seen, ii = self._queries(model, raw, history, with_seen=filter_seen)
        exclude = seen if filter_seen else None
        n_items = len(self)
        if items is not None:
            idx, logits = self._rank_candidates(model, q, bu, ii, exclude,
                                                model.item_map_.index(list(items)), n)
        elif ii is None:
            idx, logits = self.search(q, n, exclude, bias=bu)
        else:
            x_all = self._vectors if self._vectors is not None and self._cold is None else _head(model)
            idx, logits = self._rank_with_item_item(x_all, q, bu, ii, exclude, n)
        idx, logits = idx[:, :min(n, n_items)], logits[:, :min(n, n_items)]  # as model.recommend
        ids = ids_with_pad(model.item_map_, idx)
        logits = _calibrate(model, logits)  # the model's probability calibration
        with np.errstate(over="ignore"):
            probs = np.where(np.isfinite(logits), 1.0 / (1.0 + np.exp(-logits)), np.nan)
        return ids, probs

    def _check_model(self, model: Any) -> None:
        """The model is fitted and its item vectors are the ones indexed (compared once per
        model catalogue: the check is skipped while the model's cached catalogue is the same)."""
        _check_fitted(model)
        token = _catalogue_token(model)
        if self._checked is not None and self._checked() is token:
            return
        n_items = model.network.n_items
        x = _head(model) if n_items == len(self) else None
        dim = None if x is None else x.shape[1]
        if x is None or dim != self.dim:
            raise ConfigError(
                f"this index ({len(self)} items, dim {self.dim}) does not match the model "
                f"({n_items} items{'' if dim is None else f', dim {dim}'}); rebuild it with "
                "ItemIndex.build(model) after fit() or add_items()")
        if self._check is not None:
            rows, want = self._check
            if not np.allclose(x[rows], want, rtol=1e-4, atol=1e-5):
                raise ConfigError("the model's item vectors changed since this index was built "
                                  "(fit() or add_items()?); rebuild it with ItemIndex.build(model)")
        self._checked = weakref.ref(token)

    def _queries(self, model: Any, raw: list[Any], history: Mapping[Any, Sequence[Any]] | None,
                 with_seen: bool) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix, np.ndarray | None]:
        """Query vectors (B, D), user biases (B,), seen items (B, n_items) and, for models with
        the item-item term, its weighted scores (B, n_items) (else None)."""
        history = history or {}
        known = np.array([u in model.user_map_ and u not in history for u in raw], dtype=bool)
        unknown = [u for u, k in zip(raw, known) if not k and u not in history]
        if unknown:
            model.user_map_.index(unknown)  # raises UnknownIDError with a helpful message
        n_items = model.network.n_items
        b = len(raw)
        q = np.zeros((b, self.dim), np.float32)
        bu = np.zeros(b, np.float32)
        ii: np.ndarray | None = None
        bags: list[sp.csr_matrix] = []
        order = []
        step = _block_rows(n_items)
        kn, new = np.flatnonzero(known), np.flatnonzero(~known)
        groups = []
        if kn.size:
            uidx = model.user_map_.index([raw[i] for i in kn])
            groups.append((kn, uidx, model.user_items_[uidx]))
        if new.size:
            groups.append((new, None, binary(history_matrix(model, [history[raw[i]] for i in new]))))
        for pos, uidx, bag in groups:
            for s in range(0, len(pos), step):
                rows, sub = pos[s:s + step], bag[s:s + step]
                q[rows], bu[rows], term = _user_block(model, None if uidx is None else uidx[s:s + step], sub)
                if term is not None:
                    if ii is None:
                        ii = np.zeros((b, n_items), np.float32)
                    ii[rows] = term
            if with_seen:
                bags.append(bag)
                order.append(pos)
        if with_seen and bags:
            seen = sp.vstack(bags).tocsr()[np.argsort(np.concatenate(order))]
        else:
            seen = sp.csr_matrix((b, n_items), dtype=np.float32)
        return q, bu, seen, ii

    def _rank_candidates(self, model: Any, q: np.ndarray, bu: np.ndarray, ii: np.ndarray | None,
                         exclude: sp.csr_matrix | None, cand: np.ndarray, n: int
                         ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-`n` among the item indices `cand` (no index needed)."""
        cand = np.unique(np.asarray(cand, np.int64))
        logits = q.astype(np.float64) @ _head(model, cand).astype(np.float64).T + bu[:, None]
        if ii is not None:
            logits = logits + ii[:, cand]
        sub = None if exclude is None else sp.csr_matrix(exclude)[:, cand]
        pos, val = topk(logits, n, exclude=sub)
        idx = np.where(pos >= 0, cand[np.maximum(pos, 0)], -1)
        return pad_results(idx, val, n)

    def _rank_with_item_item(self, x_all: np.ndarray, q: np.ndarray, bu: np.ndarray, ii: np.ndarray,
                             exclude: sp.csr_matrix | None, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-`n` of `⟨q, x⟩ + b_u + ii` (`x_all`: every item's head vector, (N, D)).

        The item-item term is nonzero only on a user's support `S_u` (the items near their
        history: every item with dense EASE, at most history × neighbours with sparse EASE),
        and `S_u` is scored exactly. Elsewhere the score is `⟨q, x⟩ + b_u`, which the index
        ranks: its best `K` outside the exclusions, less those in `S_u`, join the exact ones.
        An item it did not return scores at most its `K`-th value, so rows whose `n`-th best
        falls below that bound search again with `K` doubled. Rows whose support is over
        `_SUPPORT_FULL` of the catalogue (dense EASE; sparse EASE on small catalogues) are
        scored exactly in full, without the index.
        """
        n_items = len(self)
        g = np.array(ii, np.float32)  # (B, N), a copy
        support = g != 0
        if exclude is not None and exclude.nnz:
            r, c = sp.csr_matrix(exclude).nonzero()
            g[r, c] = -np.inf
            support[r, c] = False
        full = support.sum(1) > n_items * _SUPPORT_FULL  # (B,): cheaper to score every item
        exact = _score_support(x_all, q, bu, g, support, full)
        s_idx, s_val = pad_results(*topk(exact, n, masked=True), n)  # (B, n): of the exact ones
        idx, val = s_idx.copy(), s_val.copy()
        todo = np.flatnonzero(~full)
        k = min(n_items, max(2 * n, 16))
        while todo.size:
            sub_ex = None if exclude is None else sp.csr_matrix(exclude)[todo]
            f_idx, f_val = self.search(q[todo], k, sub_ex, bias=bu[todo])  # (r, k) by ⟨q, x⟩
            in_s = np.take_along_axis(support[todo], np.maximum(f_idx, 0), 1) & (f_idx >= 0)
            top_idx, top_val = merge_top(np.where(in_s, -1, f_idx), f_val, s_idx[todo], s_val[todo], n)
            bound = np.where(f_idx[:, -1] >= 0, f_val[:, -1], -np.inf)  # (r,) K-th found
            done = (top_val[:, -1] >= bound) | (k >= n_items)
            idx[todo], val[todo] = top_idx, top_val
            todo = todo[~done]
            k = min(n_items, 2 * k)
        return idx, val

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Save to `directory` atomically: index.faiss (FAISS's own format) + index.json.

        Crash-safe like a model save (`multirec._files`): a new `version-<id>/` folder and an
        atomically switched pointer; a non-empty folder that holds no index is refused, a
        previous index is replaced only with `overwrite=True`, other files are never deleted.

        Format 2 records the MIPS→L2 transform (`params["transform"]`, `params["max_norm2"]`);
        the exact item vectors of a transformed index are its stored ones minus the last
        coordinate, so nothing else is written. Format 3 adds the cold block, if any
        (`cold.npz`: plain arrays, read without pickle, checksummed like the index).
        """
        from . import __version__

        faiss = _faiss()
        with atomic_directory(directory, overwrite=overwrite, marker=_MARKER) as tmp:
            faiss.write_index(self._index, str(tmp / _INDEX_FILE))
            files = {_INDEX_FILE: sha256_file(tmp / _INDEX_FILE)}
            if self._cold is not None:
                np.savez(tmp / _COLD_FILE, rows=self._cold.rows, vectors=self._cold.vectors,
                         base=self._cold.base)
                files[_COLD_FILE] = sha256_file(tmp / _COLD_FILE)
            meta = {
                "format": "multirec.ItemIndex",
                "format_version": FORMAT_VERSION,
                "multirec_version": __version__,
                "kind": self._kind,
                "dim": self.dim,
                "faiss_dim": self._faiss_dim,
                "n_items": len(self),
                "cold_items": 0 if self._cold is None else int(self._cold.rows.size),
                "transform": {"kind": "mips-l2", "max_norm2": self._params["max_norm2"]}
                if self._transform else None,
                "params": self._params,
                "check": None if self._check is None else {
                    "rows": self._check[0].tolist(), "vectors": self._check[1].tolist()},
                "files": files,
            }
            (tmp / _META_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: str | os.PathLike, *, num_threads: int | None = None) -> ItemIndex:
        """Load an index saved by `save` (checks format, checksum and sizes; no pickle).

        Reads format 2 and format 1 (multirec ≤ 0.x before the transform: inner-product
        indexes, loaded as such); newer formats raise `ModelFileError` saying to upgrade.
        """
        root, meta, path = _read_index_meta(Path(directory))
        meta_path, version = root / _META_FILE, meta["format_version"]
        faiss = _faiss()
        if num_threads is not None:
            faiss.omp_set_num_threads(int(num_threads))
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            raise ModelFileError(f"FAISS cannot read {str(path)!r}: {exc}") from exc
        params = dict(meta.get("params") or {})
        transform = version >= 2 and meta.get("transform") is not None
        if transform != bool(params.get("transform", False)):
            raise ModelFileError(f"{str(meta_path)!r} has inconsistent transform fields; re-save the index")
        stored_dim = int(index.d) - 1 if transform else int(index.d)
        want_dim = meta.get("faiss_dim", meta.get("dim"))
        if (stored_dim, int(index.ntotal)) != (want_dim, meta.get("n_items")):
            raise ModelFileError(f"{str(path)!r} holds {index.ntotal} vectors of dim {stored_dim}, "
                                 f"{_META_FILE} says {meta.get('n_items')} of dim {want_dim}")
        cold = _read_cold(root, meta) if meta.get("cold_items") else None
        vectors = None
        if transform and index.ntotal:
            if meta["kind"] == "ivf":
                index.make_direct_map()  # IVF lists are not contiguous: id → vector map
            vectors = index.reconstruct_n(0, int(index.ntotal))[:, :stored_dim]  # (N, D) view
        check = meta.get("check")
        try:
            if check is not None:
                check = (np.asarray(check["rows"], np.int64), np.asarray(check["vectors"], np.float32))
            out = cls(index, meta["kind"], params, check, vectors=vectors, cold=cold)
            out._apply_params()
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{str(meta_path)!r} has invalid fields ({exc!r}); "
                                 "re-save the index") from exc
        return out


def _read_index_meta(root: Path) -> tuple[Path, dict[str, Any], Path]:
    """The saved index's folder, its checked `index.json` and the FAISS file's path."""
    root = current_version(root, _MARKER) or root  # flat folders: saves before the pointer
    meta_path = root / _META_FILE
    if not meta_path.is_file():
        raise ModelFileError(f"{str(root)!r} is not a saved item index (no {_META_FILE}); "
                             "save one with index.save(path)")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{str(meta_path)!r} is corrupt ({exc}); re-save the index") from exc
    if not isinstance(meta, dict) or meta.get("format") != "multirec.ItemIndex":
        raise ModelFileError(f"{str(meta_path)!r} is not a multirec item index")
    version = meta.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ModelFileError(f"{str(root)!r} was saved in format {version!r}; this multirec reads "
                             f"formats 1 to {FORMAT_VERSION}; upgrade multirec (or rebuild the index)")
    if meta.get("kind") not in KINDS:
        raise ModelFileError(f"{str(meta_path)!r} names an unknown index kind {meta.get('kind')!r}")
    path = root / _INDEX_FILE
    if not path.is_file():
        raise ModelFileError(f"{str(path)!r} is missing; the saved index is incomplete")
    files = meta.get("files")
    if not isinstance(files, dict) or sha256_file(path) != files.get(_INDEX_FILE):
        raise ModelFileError(f"{str(path)!r} does not match its checksum in {_META_FILE}: the "
                             "file is corrupt or was modified. Rebuild and save the index.")
    return root, meta, path


def _read_cold(root: Path, meta: dict[str, Any]) -> ColdBlock:
    """The saved cold block (checksum checked, arrays read without pickle)."""
    path = root / _COLD_FILE
    files = meta.get("files") or {}
    if not path.is_file() or sha256_file(path) != files.get(_COLD_FILE):
        raise ModelFileError(f"{str(path)!r} is missing or does not match its checksum in "
                             f"{_META_FILE}; rebuild and save the index")
    try:
        with np.load(path, allow_pickle=False) as z:
            cold = ColdBlock(rows=np.asarray(z["rows"], np.int64),
                             vectors=np.ascontiguousarray(z["vectors"], np.float32),
                             base=np.asarray(z["base"], np.int64))
    except (KeyError, ValueError, OSError) as exc:
        raise ModelFileError(f"{str(path)!r} is not a valid cold block ({exc}); rebuild the index") from exc
    if cold.vectors.shape != (cold.rows.size, meta.get("dim")) or cold.rows.size != meta.get("cold_items"):
        raise ModelFileError(f"{str(path)!r} holds {cold.vectors.shape} vectors, {_META_FILE} says "
                             f"{meta.get('cold_items')} of dim {meta.get('dim')}; rebuild the index")
    n_items, dim = meta.get("n_items"), meta.get("dim")
    for name, ids, bound in (("rows", cold.rows, n_items), ("base", cold.base, dim)):
        if ids.ndim != 1 or (ids.size and (ids[0] < 0 or ids[-1] >= bound or np.any(np.diff(ids) <= 0))):
            raise ModelFileError(f"{str(path)!r}: {name} must be sorted distinct indices in "
                                 f"[0, {bound}); rebuild the index")
    if not np.isfinite(cold.vectors).all():
        raise ModelFileError(f"{str(path)!r} holds NaN or inf vectors; rebuild the index")
    return cold


# ====================================================================== helpers
def _score_support(x_all: np.ndarray, q: np.ndarray, bu: np.ndarray, g: np.ndarray,
                   support: np.ndarray, full: np.ndarray) -> np.ndarray:  # (B, N) float32
    """`⟨q, x⟩ + b_u + g` on each row's `support` (on every item for the rows `full`),
    -inf elsewhere; `g` is -inf at excluded items. float32, as the model's own logits."""
    out = np.full(g.shape, -np.inf, np.float32)
    rows = np.flatnonzero(full)
    if rows.size:
        out[rows] = q[rows] @ x_all.T + bu[rows, None] + g[rows]
    pr, pc = np.nonzero(support & ~full[:, None])  # (P,) (row, item) pairs of the other rows
    step = max(1, _DENSE_BUDGET // max(x_all.shape[1], 1))
    for s in range(0, pr.size, step):  # gathered item vectors in blocks of bounded memory
        r, c = pr[s:s + step], pc[s:s + step]
        out[r, c] = np.einsum("pd,pd->p", q[r], x_all[c]) + bu[r] + g[r, c]
    return out


def _block_rows(n_items: int) -> int:
    """Users per dense (users × n_items) block: at most 1,024, within `_DENSE_BUDGET`."""
    return max(1, min(1024, _DENSE_BUDGET // max(n_items, 1)))


def _is_scalar(user_ids: Any) -> bool:
    return np.ndim(user_ids) == 0 and not isinstance(user_ids, (list, tuple))


