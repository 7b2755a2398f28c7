"""Boundary checks for the public model API (`recommend`, `score`, `similar_items`, `search`,
`add_items`, `fit`): pure functions that return the cleaned value or raise a
`multirec.errors` exception naming the bad value and the fix.

    n = check_n(n)                                   # recommend / similar_items / search
    users, scalar = check_user_ids(user_ids)         # recommend, explain
    items = check_id_list(item_ids, "item_ids")      # score
    candidates = check_items_arg(items)              # recommend(items=...)
    content = check_content_table(content, model.modalities_)   # add_items
    check_content_has_encoders(data.modalities, encoder_modalities)  # fit
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import ConfigError, DataError

__all__ = [
    "check_n", "check_user_ids", "check_id_list", "check_items_arg", "check_content_table",
    "check_content_has_encoders", "check_query", "check_modality", "check_history",
    "check_user_indices", "check_history_rows",
]

_UNORDERED = (set, frozenset, Mapping)


def check_n(n: Any, name: str = "n") -> int:
    """`n` as a Python int >= 1; bools, floats, strings and values < 1 raise ConfigError."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise ConfigError(f"{name} must be a positive int, got {n!r} of type {type(n).__name__}; "
                          f"pass e.g. {name}=10")
    if n < 1:
        raise ConfigError(f"{name} must be a positive int, got {n!r}; pass e.g. {name}=10")
    return int(n)


def _is_missing(x: Any) -> bool:
    return x is None or (isinstance(x, (float, np.floating)) and bool(np.isnan(x)))


def _check_elements(ids: list[Any], name: str) -> list[Any]:
    for pos, x in enumerate(ids):
        if _is_missing(x):
            raise DataError(f"{name} contains a missing ID {x!r} at position {pos}; drop it "
                            "(IDs are str or int)")
        if isinstance(x, (set, frozenset, Mapping, list, np.ndarray)):
            raise DataError(f"{name}[{pos}] is a {type(x).__name__} ({x!r}), not an ID; pass a flat "
                            "list of str or int IDs")
    return ids


def check_id_list(ids: Any, name: str = "ids") -> list[Any]:
    """A list of raw IDs from a sequence (list, tuple, numpy array, pandas Series/Index).

    A single str (which would be read character by character), a set (no order), None,
    a dict and missing IDs (None/NaN) raise DataError.
    """
    if ids is None:
        raise DataError(f"{name} is None; pass a list of IDs")
    if isinstance(ids, (str, bytes)):
        raise DataError(f"{name} must be a list of IDs, got the single string {ids!r} (it would be "
                        f"read character by character); pass [{ids!r}]")
    if isinstance(ids, _UNORDERED):
        raise DataError(f"{name} must be an ordered sequence (list, tuple, array), got a "
                        f"{type(ids).__name__} {_short(ids)}; pass sorted({name}) or list({name})")
    if isinstance(ids, (pd.Series, pd.Index)):
        ids = ids.tolist()
    elif isinstance(ids, np.ndarray):
        if ids.ndim != 1:
            raise DataError(f"{name} must be 1-D, got an array of shape {ids.shape}")
        ids = ids.tolist()
    elif isinstance(ids, Iterable):
        ids = list(ids)
    else:
        raise DataError(f"{name} must be a list of IDs, got {ids!r} of type {type(ids).__name__}")
    return _check_elements(ids, name)


def check_user_ids(user_ids: Any, name: str = "user_ids") -> tuple[list[Any], bool]:
    """`(ids, scalar)`: one raw ID (scalar=True) or a sequence of them (see `check_id_list`)."""
    if user_ids is None or _is_missing(user_ids):
        raise DataError(f"{name} is {user_ids!r}; pass one user ID or a list of them")
    if isinstance(user_ids, (str, int, np.integer)) and not isinstance(user_ids, (bool, np.bool_)):
        return [user_ids.item() if isinstance(user_ids, np.generic) else user_ids], True
    if isinstance(user_ids, (bool, np.bool_, float, np.floating)):
        raise DataError(f"{name} must be a str or int ID (or a list of them), got {user_ids!r} of "
                        f"type {type(user_ids).__name__}")
    return check_id_list(user_ids, name), False


def check_items_arg(items: Any, name: str = "items") -> list[Any] | None:
    """Candidate items for `recommend(items=...)`: None (all items) or a non-empty ID list."""
    if items is None:
        return None
    ids = check_id_list(items, name)
    if not ids:
        raise DataError(f"{name}=[] leaves no candidate items; pass None to consider the whole "
                        "catalogue or at least one item ID")
    return ids


def check_content_table(content: Any, modalities: Sequence[str]) -> dict[str, Mapping[Any, Any]]:
    """`{modality: {item_id: raw}}` for `add_items`: every modality has an encoder in the
    model and every table is a non-empty mapping (a pandas Series is accepted)."""
    if not isinstance(content, Mapping):
        raise DataError("content must be {modality: {item_id: raw content}}, e.g. "
                        f"{{'text': {{'i9': 'a new song'}}}}; got {type(content).__name__}")
    if not content:
        raise DataError(f"content is empty; give {{modality: {{item_id: raw}}}} for one of "
                        f"{list(modalities)}")
    out: dict[str, Mapping[Any, Any]] = {}
    for modality, table in content.items():
        if modality not in modalities:
            raise DataError(f"the model has no encoder for modality {modality!r}; it has "
                            f"{list(modalities)}")
        if isinstance(table, pd.Series):
            table = table.to_dict()
        if not isinstance(table, Mapping):
            raise DataError(f"content[{modality!r}] must map item IDs to raw content, got "
                            f"{type(table).__name__}")
        if not table:
            raise DataError(f"content[{modality!r}] is empty; give at least one item")
        _check_elements(list(table), f"content[{modality!r}] keys")
        out[modality] = table
    return out


def check_content_has_encoders(data_modalities: Iterable[str], encoder_modalities: Iterable[str]
                               ) -> None:
    """Content given for a modality that has no encoder would be ignored: raise DataError."""
    encoders = list(encoder_modalities)
    extra = [m for m in data_modalities if m not in encoders]
    if extra:
        raise DataError(
            f"the data has content for modality {extra[0]!r} but the model has no encoder for it "
            f"(encoders: {encoders}); pass encoders={{{extra[0]!r}: ...}} or leave {extra[0]!r} "
            "out of item_content")


def check_query(text: Any, name: str = "text") -> str:
    """A non-empty text query for `search`."""
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"search() needs a non-empty text query, got {name}={text!r}")
    return text


def check_modality(modality: Any, modalities: Sequence[str], name: str = "modality") -> str:
    """One of the model's modalities."""
    if not isinstance(modality, str) or modality not in modalities:
        raise ConfigError(f"{name}={modality!r} is not a modality of the model; it has "
                          f"{list(modalities)}")
    return modality


def check_history(history: Any) -> dict[Any, list[Any]] | None:
    """`{user_id: [item_ids]}` for fold-in (`recommend(history=...)`), or None."""
    if history is None:
        return None
    if not isinstance(history, Mapping):
        raise DataError(f"history must be a dict {{user_id: [item_ids]}}, got "
                        f"{type(history).__name__}")
    return {u: check_id_list(items, f"history[{u!r}]") for u, items in history.items()}


def _short(x: Any, limit: int = 60) -> str:
    text = repr(x)
    return text if len(text) <= limit else text[:limit] + "..."


def check_user_indices(users: Any, n_users: int) -> np.ndarray:
    """User *indices* (the evaluation protocol's `score_users(users)`) as a 1-D int64 array."""
    u = np.asarray(users)
    if u.ndim != 1 or (u.size and not np.issubdtype(u.dtype, np.integer)):
        raise DataError(f"users must be a 1-D array of user indices, got shape {u.shape} dtype {u.dtype}")
    if u.size and (u.min() < 0 or u.max() >= n_users):
        raise DataError(f"user index {u[(u < 0) | (u >= n_users)][0]} is out of range 0..{n_users - 1}")
    return u.astype(np.int64)


def check_history_rows(history: Any, n_rows: int, n_items: int) -> sp.csr_matrix | None:
    """Fold-in histories `(n_rows, n_items)` as a float32 CSR copy (None stays None)."""
    if history is None:
        return None
    if not sp.issparse(history) or history.shape != (n_rows, n_items):
        raise DataError(f"history must be a sparse ({n_rows}, {n_items}) matrix (users, items), got "
                        f"{type(history).__name__} of shape {getattr(history, 'shape', None)}")
    return sp.csr_matrix(history, dtype=np.float32, copy=True)
