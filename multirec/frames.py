"""pandas views of recommendations and (user, item) pairs.

    >>> ids, scores = model.recommend(users, n=10)
    >>> df = recommendations_frame(users, ids, scores)   # user, item, score, rank
    >>> users, items = pairs_from_frame(df)               # back to two arrays
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .errors import DataError

__all__ = ["recommendations_frame", "pairs_from_frame", "id_array"]


def id_array(ids: Any) -> np.ndarray:
    """Raw IDs as an int64 array when all are ints (numpy ints included), else an object array."""
    arr = np.asarray(ids)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    out = np.empty(arr.shape, dtype=object)
    out[...] = arr
    flat = out.ravel()
    if flat.size and all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in flat):
        return out.astype(np.int64)
    return out


def recommendations_frame(user_ids: Any, item_ids: Any, scores: Any) -> pd.DataFrame:
    """Long table of `recommend()` output: one row per (user, recommended item).

    Args:
        user_ids: the B raw user IDs passed to `recommend` (or one scalar ID).
        item_ids: (B, n) raw item IDs (or (n,) for a scalar user), None where padded.
        scores: (B, n) scores, NaN where padded.

    Returns columns `user`, `item` (int64 when all IDs are ints, else object holding the raw
    str/int IDs), `score` (float32) and `rank` (int32, 1 = best, per user). Padding rows
    (None item or NaN score, for users with fewer than n candidates) are dropped.
    """
    items = np.asarray(item_ids, dtype=object)
    vals = np.asarray(scores, dtype=np.float64)
    users = np.asarray(user_ids, dtype=object)
    if users.ndim == 0:
        users, items, vals = users.reshape(1), items.reshape(1, -1), vals.reshape(1, -1)
    if items.ndim != 2 or items.shape != vals.shape or users.shape != (items.shape[0],):
        raise DataError(f"recommendations_frame() needs B user IDs and (B, n) item IDs and scores, "
                        f"got {users.shape[0] if users.ndim else 1} users, item_ids of shape "
                        f"{items.shape} and scores of shape {vals.shape}")
    b, n = items.shape
    keep = np.array([x is not None for x in items.ravel()], dtype=bool).reshape(b, n)
    keep &= ~np.isnan(vals)
    rows, cols = np.nonzero(keep)  # row-major: users in order, ranks ascending
    return pd.DataFrame({
        "user": id_array(users[rows]) if rows.size else users[rows],
        "item": id_array(items[rows, cols]) if rows.size else items[rows, cols],
        "score": vals[rows, cols].astype(np.float32),
        "rank": (cols + 1).astype(np.int32),
    })


def pairs_from_frame(df: pd.DataFrame, user_col: str = "user", item_col: str = "item"
                     ) -> tuple[np.ndarray, np.ndarray]:
    """The `(users, items)` ID columns of `df` as two arrays of equal length (for `model.score`).

    IDs keep their type (int64 arrays for integer columns, object arrays otherwise). Missing
    columns and missing values (NaN/None) are errors that name the column.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"pairs_from_frame() expects a pandas DataFrame, got {type(df).__name__}")
    out = []
    for role, col in (("user", user_col), ("item", item_col)):
        if col not in df.columns:
            raise DataError(f"the DataFrame has no {role} column {col!r}; its columns are "
                            f"{list(df.columns)} (pass {role}_col=...)")
        series = df[col]
        if series.isna().any():
            first = series.index[series.isna().to_numpy()][0]
            raise DataError(f"column {col!r} has {int(series.isna().sum())} missing value(s) "
                            f"(first at index {first}); drop or fill them first")
        if pd.api.types.is_float_dtype(series):
            raise DataError(f"column {col!r} holds floats ({series.dtype}); IDs must be str or int, "
                            f"e.g. df[{col!r}] = df[{col!r}].astype(int)")
        out.append(id_array(series.to_numpy()))
    return out[0], out[1]
