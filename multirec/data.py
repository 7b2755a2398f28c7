"""`InteractionData`: user–item interactions, raw-ID maps, item content and side features.

Build it from a pandas DataFrame, a scipy.sparse matrix or plain arrays:

    data = InteractionData.from_dataframe(
        df, user_col="user", item_col="item", rating_threshold=4,
        item_content={"text": titles, "image": poster_paths},   # {modality: {item_id: raw}}
        item_features={"i1": ["genre:drama", "year:1995"], ...},
    )

Interactions are stored once per (user, item) pair: duplicates are merged by a declared
rule. Items that appear only in the content or feature tables are part of the catalogue with
no interactions (cold items); items may lack any modality (see `content_mask`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import DataError
from .idmap import IdMap

__all__ = ["InteractionData", "FeatureMatrix"]

Duplicates = Literal["sum", "max", "first", "last"]
_DUPLICATES = ("sum", "max", "first", "last")
MODALITY_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # modality names become buffer names
_F32_MAX = float(np.finfo(np.float32).max)


@dataclass
class FeatureMatrix:
    """Side features of users or items: a sparse (n_entities, n_features) matrix + names."""

    names: list[str]
    matrix: sp.csr_matrix  # (n_entities, n_features) float32

    @classmethod
    def build(cls, table: Any, idmap: IdMap, kind: str) -> FeatureMatrix:
        """From {id: [names]}, {id: {name: value}} or a DataFrame indexed by ID.

        Unknown IDs are appended to `idmap` (entities known only through their features).
        """
        if isinstance(table, pd.DataFrame):
            frame = table.select_dtypes(include=[np.number, bool])
            if frame.shape[1] != table.shape[1]:
                bad = sorted(set(table.columns) - set(frame.columns))
                raise DataError(
                    f"{kind}_features DataFrame has non-numeric columns {bad}; one-hot encode them "
                    "(pd.get_dummies) or pass {id: [feature names]} instead"
                )
            rows = {i: {str(c): float(v) for c, v in row.items() if v != 0}
                    for i, row in zip(frame.index, frame.to_dict("records"))}
        elif isinstance(table, Mapping):
            rows = {}
            for key, value in table.items():
                if isinstance(value, Mapping):
                    rows[key] = {str(n): float(w) for n, w in value.items()}
                elif isinstance(value, str):
                    rows[key] = {value: 1.0}
                elif isinstance(value, Iterable):
                    rows[key] = {str(n): 1.0 for n in value}
                else:
                    raise DataError(
                        f"{kind}_features[{key!r}] must be a list of feature names or a "
                        f"{{name: weight}} dict, got {type(value).__name__}"
                    )
        else:
            raise DataError(
                f"{kind}_features must be a dict {{id: [names] or {{name: weight}}}} or a DataFrame "
                f"indexed by {kind} ID, got {type(table).__name__}"
            )
        check_key_types(rows.keys(), idmap, f"{kind}_features")
        index = idmap.extend(rows.keys())
        names: dict[str, int] = {}
        r, c, v = [], [], []
        for row, feats in zip(index, rows.values()):
            for name, weight in feats.items():
                if not np.isfinite(weight):
                    raise DataError(f"{kind}_features: feature {name!r} has non-finite weight {weight}")
                r.append(row)
                c.append(names.setdefault(name, len(names)))
                v.append(weight)
        matrix = sp.csr_matrix((np.asarray(v, np.float32), (r, c)), shape=(len(idmap), len(names)))
        return cls(list(names), matrix)

    def resized(self, n: int) -> FeatureMatrix:
        """Same features, with empty rows appended up to `n` entities."""
        m = self.matrix
        if m.shape[0] < n:
            m = sp.vstack([m, sp.csr_matrix((n - m.shape[0], m.shape[1]), dtype=np.float32)]).tocsr()
        return FeatureMatrix(self.names, m)


class InteractionData:
    """Interactions (one row per unique user–item pair) with ID maps, content and features.

    Attributes:
        users, items: `IdMap` of raw IDs ↔ indices (shared by splits of the same data).
        user_index, item_index: int64 arrays (nnz,).
        weights: float32 array (nnz,) — 1.0 for binary implicit data.
        timestamps: float64 array (nnz,) or None.
        content: {modality: list of raw content per item index, None where missing}.
        user_features, item_features: `FeatureMatrix` or None.

    Use the `from_dataframe`, `from_arrays` and `from_sparse` constructors.
    """

    def __init__(
        self,
        users: IdMap,
        items: IdMap,
        user_index: np.ndarray,
        item_index: np.ndarray,
        weights: np.ndarray | None = None,
        timestamps: np.ndarray | None = None,
        content: dict[str, list[Any]] | None = None,
        user_features: FeatureMatrix | None = None,
        item_features: FeatureMatrix | None = None,
    ) -> None:
        self.users, self.items = users, items
        self.user_index = np.asarray(user_index, dtype=np.int64)
        self.item_index = np.asarray(item_index, dtype=np.int64)
        n = len(self.user_index)
        self.weights = (np.ones(n, np.float32) if weights is None
                        else np.asarray(weights, dtype=np.float32))
        self.timestamps = None if timestamps is None else np.asarray(timestamps, dtype=np.float64)
        self.content = {m: list(v) + [None] * (len(items) - len(v)) for m, v in (content or {}).items()}
        self.user_features = user_features.resized(len(users)) if user_features else None
        self.item_features = item_features.resized(len(items)) if item_features else None
        self._check()

    def _check(self) -> None:
        n = len(self.user_index)
        for name in ("item_index", "weights"):
            if len(getattr(self, name)) != n:
                raise DataError(f"{name} has {len(getattr(self, name))} entries, user_index has {n}")
        if self.timestamps is not None and len(self.timestamps) != n:
            raise DataError(f"timestamps has {len(self.timestamps)} entries, user_index has {n}")
        if n and (self.user_index.min() < 0 or self.user_index.max() >= len(self.users)):
            raise DataError("user_index out of range of the user IdMap")
        if n and (self.item_index.min() < 0 or self.item_index.max() >= len(self.items)):
            raise DataError("item_index out of range of the item IdMap")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_arrays(
        cls,
        users: Iterable[Any],
        items: Iterable[Any],
        weights: Iterable[float] | None = None,
        timestamps: Iterable[float] | None = None,
        *,
        rating_threshold: float | None = None,
        binary: bool | None = None,
        duplicates: Duplicates = "sum",
        item_content: Mapping[str, Mapping[Any, Any]] | None = None,
        user_features: Any = None,
        item_features: Any = None,
        user_ids: Iterable[Any] | IdMap | None = None,
        item_ids: Iterable[Any] | IdMap | None = None,
    ) -> InteractionData:
        """Build from parallel sequences of raw user IDs, item IDs and optional weights.

        Args:
            weights: ratings, play counts or confidences; None means 1 per row.
            timestamps: event times (any numeric unit), used by temporal splits.
            rating_threshold: keep only rows with weight >= threshold (explicit → implicit).
            binary: set every kept weight to 1.0. Default: True when weights are None or a
                rating_threshold is given, else False (weights act as confidences).
            duplicates: how repeated (user, item) rows merge: "sum" (e.g. play counts), "max",
                "first" or "last" (in input order). Timestamps keep the latest time
                ("first": the earliest).
            item_content: {modality: {item_id: raw content}}; items may lack modalities.
            user_features, item_features: {id: [feature names]} or {id: {name: weight}}, or a
                numeric DataFrame indexed by ID (LightFM-style side features).
            user_ids, item_ids: the full catalogue (or an existing IdMap to share index space
                with other data); IDs that only appear in content/features are appended.
        """
        user_arr = _as_list(users, "users")
        item_arr = _as_list(items, "items")
        _no_missing_ids(user_arr, "users")
        _no_missing_ids(item_arr, "items")
        if len(user_arr) != len(item_arr):
            raise DataError(f"users has {len(user_arr)} entries but items has {len(item_arr)}")
        if duplicates not in _DUPLICATES:
            raise DataError(f"duplicates must be one of {_DUPLICATES}, got {duplicates!r}")
        w = None if weights is None else _finite(np.asarray(_as_list(weights, "weights"), np.float64),
                                                 "weights")
        t = None if timestamps is None else _finite(
            np.asarray(_timestamps(_as_list(timestamps, "timestamps")), np.float64), "timestamps")
        for name, arr in (("weights", w), ("timestamps", t)):
            if arr is not None and len(arr) != len(user_arr):
                raise DataError(f"{name} has {len(arr)} entries but users has {len(user_arr)}")
        if binary is None:
            binary = w is None or rating_threshold is not None
        keep = np.ones(len(user_arr), dtype=bool)
        if rating_threshold is not None:
            if w is None:
                raise DataError("rating_threshold needs ratings: pass weights= (or weight_col=)")
            keep = w >= rating_threshold
            if not keep.any():
                raise DataError(
                    f"no interaction has a rating >= rating_threshold={rating_threshold} "
                    f"(ratings range {w.min():g}..{w.max():g}); lower the threshold"
                )
        if w is not None:
            _check_weights(w, keep)
            keep &= w != 0  # a zero weight is no interaction (as in a sparse matrix)
        if not keep.any():
            raise DataError("no interactions: the data is empty")

        user_map = (user_ids.copy() if isinstance(user_ids, IdMap)
                    else IdMap(() if user_ids is None else user_ids, kind="user"))
        item_map = (item_ids.copy() if isinstance(item_ids, IdMap)
                    else IdMap(() if item_ids is None else item_ids, kind="item"))
        # every ID stays in the catalogue, also those whose rows the threshold drops
        rows = user_map.extend(user_arr)[keep]
        cols = item_map.extend(item_arr)[keep]
        vals = np.ones(len(rows)) if (binary or w is None) else w[keep]
        times = None if t is None else t[keep]
        rows, cols, vals, times = _merge_duplicates(rows, cols, vals, times, duplicates, binary)
        if not np.isfinite(vals).all():
            raise DataError(
                f"merging duplicate (user, item) rows with duplicates={duplicates!r} gives weights "
                f"above the float32 range ({_F32_MAX:.3g}); rescale the weights or use "
                "duplicates='max'")

        content = _build_content(item_content, item_map)
        ufeat = FeatureMatrix.build(user_features, user_map, "user") if user_features is not None else None
        ifeat = FeatureMatrix.build(item_features, item_map, "item") if item_features is not None else None
        content = {m: v + [None] * (len(item_map) - len(v)) for m, v in content.items()}
        return cls(user_map, item_map, rows, cols, vals, times, content, ufeat, ifeat)

    @classmethod
    def from_dataframe(
        cls,
        df: pd.DataFrame,
        user_col: str = "user",
        item_col: str = "item",
        weight_col: str | None = "auto",
        timestamp_col: str | None = "auto",
        **kwargs: Any,
    ) -> InteractionData:
        """Build from a DataFrame with one row per interaction.

        `weight_col="auto"` uses a "rating" or "weight" column when present; `timestamp_col="auto"`
        uses a "timestamp" column when present (datetimes become Unix seconds). Other keyword
        arguments are those of `from_arrays`.
        """
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"from_dataframe expects a pandas DataFrame, got {type(df).__name__}")
        for col in (user_col, item_col):
            if col not in df.columns:
                raise DataError(
                    f"column {col!r} not found; columns are {list(df.columns)}. "
                    "Pass user_col=/item_col= to name the ID columns"
                )
        if weight_col == "auto":
            weight_col = next((c for c in ("rating", "weight") if c in df.columns), None)
        if timestamp_col == "auto":
            timestamp_col = "timestamp" if "timestamp" in df.columns else None
        for col in (weight_col, timestamp_col):
            if col is not None and col not in df.columns:
                raise DataError(f"column {col!r} not found; columns are {list(df.columns)}")
        return cls.from_arrays(
            df[user_col].tolist(),
            df[item_col].tolist(),
            None if weight_col is None else df[weight_col].to_numpy(),
            None if timestamp_col is None else df[timestamp_col],
            **kwargs,
        )

    @classmethod
    def from_sparse(
        cls,
        matrix: sp.spmatrix | sp.sparray,
        user_ids: Iterable[Any] | None = None,
        item_ids: Iterable[Any] | None = None,
        **kwargs: Any,
    ) -> InteractionData:
        """Build from a (n_users, n_items) sparse matrix of weights (zeros are no interaction).

        Row/column IDs default to 0..n-1; all rows and columns are part of the catalogue.
        """
        if not sp.issparse(matrix):
            raise DataError(f"from_sparse expects a scipy.sparse matrix, got {type(matrix).__name__}")
        coo = sp.coo_matrix(matrix)
        coo.sum_duplicates()
        coo.eliminate_zeros()
        if coo.nnz == 0:
            raise DataError(f"the {coo.shape} matrix has no non-zero entries: all weights are zero, "
                            "so there are no interactions")
        user_ids = list(range(coo.shape[0])) if user_ids is None else list(user_ids)
        item_ids = list(range(coo.shape[1])) if item_ids is None else list(item_ids)
        if (len(user_ids), len(item_ids)) != coo.shape:
            raise DataError(
                f"matrix has shape {coo.shape} but got {len(user_ids)} user_ids and {len(item_ids)} item_ids"
            )
        umap, imap = IdMap(user_ids, kind="user"), IdMap(item_ids, kind="item")
        if len(umap) != len(user_ids) or len(imap) != len(item_ids):
            raise DataError("user_ids / item_ids contain duplicates")
        return cls.from_arrays(umap.ids(coo.row), imap.ids(coo.col), coo.data, user_ids=umap,
                               item_ids=imap, **kwargs)

    # ------------------------------------------------------------------ views
    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def nnz(self) -> int:
        return len(self.user_index)

    @property
    def modalities(self) -> list[str]:
        return list(self.content)

    def __len__(self) -> int:
        return self.nnz

    def __repr__(self) -> str:
        mods = ", ".join(f"{m}: {int(self.content_mask(m).sum())}" for m in self.content) or "none"
        return (f"InteractionData(users={self.n_users}, items={self.n_items}, interactions={self.nnz}, "
                f"content=[{mods}])")

    def to_csr(self) -> sp.csr_matrix:
        """(n_users, n_items) float32 matrix of weights."""
        return sp.csr_matrix((self.weights, (self.user_index, self.item_index)),
                             shape=(self.n_users, self.n_items), dtype=np.float32)

    def content_mask(self, modality: str) -> np.ndarray:
        """(n_items,) bool: which items have content for `modality`."""
        if modality not in self.content:
            raise DataError(f"no content for modality {modality!r}; available: {self.modalities}")
        return np.array([x is not None for x in self.content[modality]], dtype=bool)

    def user_counts(self) -> np.ndarray:
        """(n_users,) number of interacted items per user."""
        return np.bincount(self.user_index, minlength=self.n_users)

    def item_counts(self) -> np.ndarray:
        """(n_items,) number of interacting users per item."""
        return np.bincount(self.item_index, minlength=self.n_items)

    def to_dataframe(self) -> pd.DataFrame:
        """Interactions with raw IDs: columns user, item, weight (and timestamp)."""
        frame = {"user": self.users.ids(self.user_index), "item": self.items.ids(self.item_index),
                 "weight": self.weights}
        if self.timestamps is not None:
            frame["timestamp"] = self.timestamps
        return pd.DataFrame(frame)

    def subset(self, rows: np.ndarray) -> InteractionData:
        """The same catalogue, content and features with only interactions `rows` (mask or indices)."""
        rows = np.asarray(rows)
        if rows.dtype == bool and len(rows) != self.nnz:
            raise DataError(f"mask has {len(rows)} entries, data has {self.nnz} interactions")
        return InteractionData(
            self.users, self.items, self.user_index[rows], self.item_index[rows], self.weights[rows],
            None if self.timestamps is None else self.timestamps[rows], self.content,
            self.user_features, self.item_features,
        )


# ---------------------------------------------------------------------- helpers
def _as_list(values: Iterable[Any], name: str) -> list[Any] | np.ndarray:
    if isinstance(values, (str, bytes)):
        raise DataError(f"{name} must be a sequence of values, got a single string {values!r}")
    if isinstance(values, np.ndarray):
        return values
    if isinstance(values, pd.Series):
        return values.tolist()
    try:
        return list(values)
    except TypeError:
        raise DataError(f"{name} must be a sequence, got {type(values).__name__}") from None


def _timestamps(values: Any) -> np.ndarray:
    series = pd.Series(values)
    if pd.api.types.is_datetime64_any_dtype(series):
        return (series - pd.Timestamp(0, tz=series.dt.tz)).dt.total_seconds().to_numpy()
    try:
        return series.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError("timestamps must be numbers or datetimes") from None


def _finite(arr: np.ndarray, name: str) -> np.ndarray:
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{name} contains {int(bad.sum())} NaN/inf value(s) (first at row {first}: {arr[first]}); "
            "drop or fill those rows"
        )
    return arr


def _merge_duplicates(rows, cols, vals, times, how: str, binary: bool):
    """One entry per (row, col) pair, merged by `how`; output sorted by (row, col)."""
    n_cols = int(cols.max()) + 1 if len(cols) else 1
    key = rows * n_cols + cols
    order = np.argsort(key, kind="stable")
    key_sorted = key[order]
    first = np.ones(len(key_sorted), dtype=bool)
    first[1:] = key_sorted[1:] != key_sorted[:-1]
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], len(order)) - 1
    vals_sorted = np.asarray(vals, np.float64)[order]
    if binary:
        merged = np.ones(len(starts))
    elif how == "sum":
        merged = np.bincount(group, weights=vals_sorted)
    elif how == "max":
        merged = np.maximum.reduceat(vals_sorted, starts)
    elif how == "first":
        merged = vals_sorted[starts]
    else:  # last
        merged = vals_sorted[ends]
    out_times = None
    if times is not None:
        t_sorted = times[order]
        out_times = (np.minimum.reduceat(t_sorted, starts) if how == "first"
                     else np.maximum.reduceat(t_sorted, starts))
    return rows[order][starts], cols[order][starts], merged.astype(np.float32), out_times


def _build_content(item_content: Mapping[str, Mapping[Any, Any]] | None, item_map: IdMap) -> dict:
    if item_content is None:
        return {}
    if not isinstance(item_content, Mapping):
        raise DataError(
            "item_content must be {modality: {item_id: content}}, e.g. {'text': {'i1': 'a song'}}; "
            f"got {type(item_content).__name__}"
        )
    content: dict[str, list[Any]] = {}
    for modality, table in item_content.items():
        check_modality_name(modality)
        if isinstance(table, pd.Series):
            table = table.to_dict()
        if not isinstance(table, Mapping):
            raise DataError(
                f"item_content[{modality!r}] must map item IDs to content (a dict or pandas Series), "
                f"got {type(table).__name__}"
            )
        if not table or all(_is_missing(v) for v in table.values()):
            raise DataError(
                f"item_content[{modality!r}] has no content ({len(table)} entries, none present); "
                f"give {{item_id: content}} for at least one item or leave {modality!r} out"
            )
        check_key_types(table.keys(), item_map, f"item_content[{modality!r}]")
        index = item_map.extend(table.keys())
        column: list[Any] = [None] * len(item_map)
        for idx, raw in zip(index, table.values()):
            column[idx] = None if _is_missing(raw) else raw
        content[modality] = column
    return content


def _is_missing(raw: Any) -> bool:
    return raw is None or (isinstance(raw, (float, np.floating)) and bool(np.isnan(raw)))


def check_modality_name(name: Any) -> str:
    """`name` if it is a valid modality name (a Python identifier: `[A-Za-z_][A-Za-z0-9_]*`)."""
    if not isinstance(name, str) or not MODALITY_NAME.fullmatch(name):
        raise DataError(
            f"invalid modality name {name!r}: modality names must match [A-Za-z_][A-Za-z0-9_]* "
            "(letters, digits and underscores, not starting with a digit), e.g. 'text' or 'image_2'"
        )
    return name


def check_key_types(keys: Iterable[Any], idmap: IdMap, where: str) -> None:
    """Reject (or warn about) content/feature keys whose type differs from the interaction IDs.

    A key such as `17` (int) when the interaction IDs are strs (and "17" is one of them) would
    silently add a second, content-only item: raise, naming the key and its type. Keys of
    another type that match no ID in either form become new (cold) items: warn.
    """
    known = {type(x) for x in idmap}
    if not known:
        return
    kinds = "/".join(sorted(t.__name__ for t in known))
    first_new = None
    for raw in keys:
        key = raw.item() if isinstance(raw, np.generic) else raw
        if type(key) in known or isinstance(key, bool) or not isinstance(key, (str, int)):
            continue  # bad types are reported by IdMap
        other = str(key) if isinstance(key, int) else (int(key) if _is_int_text(key) else None)
        if other is not None and other in idmap:
            raise DataError(
                f"{where}: key {key!r} is of type {type(key).__name__} but the {idmap.kind} IDs "
                f"are {kinds} ({other!r} is one of them), so it would become a second item; "
                f"convert the keys to {type(other).__name__}, e.g. {{{type(other).__name__}(k): v "
                "for k, v in table.items()}"
            )
        if first_new is None:
            first_new = key
    if first_new is not None:
        warnings.warn(
            f"{where}: key {first_new!r} is of type {type(first_new).__name__} but the "
            f"{idmap.kind} IDs are {kinds}; keys like it become new {idmap.kind}s with no "
            "interactions. Convert the keys if they name existing ones", UserWarning, stacklevel=4)


def _is_int_text(text: str) -> bool:
    return text.lstrip("-").isdigit() and str(int(text)) == text


def _no_missing_ids(values: Any, name: str) -> None:
    if isinstance(values, np.ndarray) and values.dtype.kind in "iub":
        return
    bad = np.flatnonzero(pd.isna(np.asarray(values, dtype=object)))
    if bad.size:
        raise DataError(
            f"{name} contains {bad.size} missing ID(s) (None/NaN; first at row {int(bad[0])}); drop "
            "those rows, e.g. df = df.dropna(subset=['user', 'item']) (astype(str) would turn "
            "them into an ID 'nan')"
        )


def _check_weights(w: np.ndarray, keep: np.ndarray) -> None:
    """Weights must fit float32 and be >= 0 where kept; not all of them zero."""
    big = np.abs(w) > _F32_MAX
    if big.any():
        first = int(np.flatnonzero(big)[0])
        raise DataError(
            f"weights has {int(big.sum())} value(s) beyond the float32 range (first at row {first}: "
            f"{w[first]:g}); rescale the weights (e.g. np.log1p)"
        )
    neg = keep & (w < 0)
    if neg.any():
        first = int(np.flatnonzero(neg)[0])
        raise DataError(
            f"{int(neg.sum())} weights are negative (first at row {first}: {w[first]:g}); "
            "implicit-feedback weights must be >= 0 (use rating_threshold to turn explicit "
            "ratings into positives, or drop the rows)"
        )
    if keep.any() and not (w[keep] != 0).any():
        raise DataError(
            f"all {int(keep.sum())} weights are zero, so there are no interactions; a zero weight "
            "means no interaction (pass weights=None or weight_col=None to count every row)"
        )
