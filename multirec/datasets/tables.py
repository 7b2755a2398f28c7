"""Table helpers shared by the data set loaders: tag ranking, parse-error wrapping, k-core."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DatasetError

__all__ = ["ranked_tags", "parsing", "k_core_mask", "PARSE_ERRORS"]

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
