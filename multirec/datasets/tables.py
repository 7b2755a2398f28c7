"""Table helpers shared by the data set loaders: fast `InteractionData` building, tag
ranking, parse-error wrapping, k-core."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data import FeatureMatrix, InteractionData
from ..errors import DataError, DatasetError
from ..idmap import IdMap

__all__ = ["interactions", "ranked_tags", "parsing", "k_core_mask", "PARSE_ERRORS"]

PARSE_ERRORS = (ValueError, KeyError, IndexError, TypeError, pd.errors.ParserError, UnicodeDecodeError)


def ranked_tags(items: pd.Series, tags: pd.Series, max_tags: int | None = None) -> dict:
    """{item: its distinct tags, most often applied first (ties by tag), at most `max_tags`}."""
    frame = pd.DataFrame({"item": items.to_numpy(), "tag": tags.to_numpy()})
    counts = frame.groupby(["item", "tag"], sort=False).size().reset_index(name="n")
    counts = counts.sort_values(["item", "n", "tag"], ascending=[True, False, True], kind="stable")
    if max_tags is not None:
        counts = counts.groupby("item", sort=False).head(max_tags)
    return {k: list(g) for k, g in counts.groupby("item", sort=False)["tag"]}


@contextmanager
def parsing(what: str, path: Path, url: str) -> Iterator[None]:
    """Turn a parse error inside the block into a `DatasetError` naming the folder and the URL."""
    try:
        yield
    except PARSE_ERRORS as exc:
        raise DatasetError(f"cannot parse the {what} files in {str(path)!r} ({type(exc).__name__}: "
                           f"{exc}); they do not have the official layout — re-download {url}") from exc


def k_core_mask(users: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the rows in the k-core: every kept user and item has >= k kept rows.

    `users`, `items` are (n,) integer codes; rows are dropped until the counts are stable.
    """
    keep = np.ones(len(users), dtype=bool)
    while True:
        u_count = np.bincount(users[keep], minlength=users.max() + 1 if len(users) else 0)
        i_count = np.bincount(items[keep], minlength=items.max() + 1 if len(items) else 0)
        new = keep & (u_count[users] >= k) & (i_count[items] >= k)
        if new.sum() == keep.sum():
            return new
        keep = new


def _positions(idmap: IdMap, raw: pd.Series) -> np.ndarray:
    """Indices of a column of raw IDs, all known to `idmap`, by pandas' hashing."""
    pos = pd.Index(idmap.as_array()).get_indexer(raw.to_numpy())
    if (pos < 0).any():  # cannot happen for IDs added from the column itself
        raise DataError(f"{idmap.kind} ID {raw.to_numpy()[pos < 0][0]!r} is not in the catalogue")
    return pos.astype(np.int64)


def interactions(frame: pd.DataFrame, *, user_ids: Iterable[Any] = (), item_ids: Iterable[Any] = (),
                 weight: str | None = None, time: str | None = None, min_weight: float | None = None,
                 binary: bool = True, item_content: Mapping[str, Mapping[Any, Any]] | None = None,
                 item_features: Mapping[Any, Any] | None = None,
                 user_features: Mapping[Any, Any] | None = None) -> InteractionData:
    """`InteractionData` from a frame with "user", "item" (and `weight`, `time`) columns.

    What `InteractionData.from_arrays` does, for loaders of millions of rows: raw IDs are
    mapped by pandas' hashing, not one by one. The catalogue is `user_ids` / `item_ids`
    followed by the other IDs in order of appearance (all stay, also those whose rows
    `min_weight` drops); a repeated (user, item) row keeps the last one; rows are sorted by
    (user, item) index; weights are 1.0 with `binary`, else the `weight` column.
    """
    frame = frame.drop_duplicates(["user", "item"], keep="last")
    users = IdMap(dict.fromkeys([*user_ids, *pd.unique(frame["user"])]), kind="user")
    items = IdMap(dict.fromkeys([*item_ids, *pd.unique(frame["item"])]), kind="item")
    values = {}
    for col in (weight, time):
        if col is not None:
            values[col] = frame[col].to_numpy(np.float64)
            if not np.isfinite(values[col]).all():
                bad = frame[col].to_numpy()[~np.isfinite(values[col])][0]
                raise DatasetError(f"column {col!r} has a non-finite value {bad!r}; the file is damaged")
    keep = np.ones(len(frame), dtype=bool)
    if min_weight is not None:
        keep = values[weight] >= min_weight
        if not keep.any():
            raise DataError(f"no interaction has a {weight} >= {min_weight:g}; lower the threshold")
    rows, cols = _positions(users, frame["user"])[keep], _positions(items, frame["item"])[keep]
    order = np.lexsort((cols, rows))
    w = None if binary or weight is None else values[weight][keep][order]
    t = None if time is None else values[time][keep][order]
    ifeat = None if item_features is None else FeatureMatrix.build(item_features, items, "item")
    ufeat = None if user_features is None else FeatureMatrix.build(user_features, users, "user")
    content: dict[str, list[Any]] = {}
    for modality, table in (item_content or {}).items():
        index = items.extend(table.keys())
        column: list[Any] = [None] * len(items)
        for i, raw in zip(index, table.values()):
            column[i] = None if raw is None or (isinstance(raw, float) and np.isnan(raw)) else raw
        content[modality] = column
    return InteractionData(users, items, rows[order], cols[order], w, t, content, ufeat, ifeat)
