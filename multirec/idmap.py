"""`IdMap`: raw IDs (str or int) ↔ contiguous indices, in one place."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from .errors import DataError, UnknownIDError

__all__ = ["IdMap"]

RawId = str | int


def _normalise(raw: Any) -> RawId:
    """Python int/str for one raw ID (numpy scalars become Python scalars)."""
    if isinstance(raw, np.generic):
        raw = raw.item()
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        if raw is None or (isinstance(raw, float) and raw != raw):
            fix = ("drop the rows with missing IDs, e.g. df = df.dropna(subset=['user', 'item']) "
                   "(astype(str) would make them an ID 'nan')")
        elif isinstance(raw, float) and raw.is_integer():
            fix = ("a float ID usually comes from an int column with missing values: drop those "
                   "rows (df.dropna(subset=[...])), then df['item'] = df['item'].astype(int)")
        else:
            fix = "convert the ID column, e.g. df['item'] = df['item'].astype(str)"
        raise DataError(f"IDs must be str or int, got {raw!r} of type {type(raw).__name__}; {fix}")
    return raw


class IdMap:
    """Bidirectional map between raw IDs and indices 0..n-1, in insertion order.

    IDs are Python `int` or `str` (mixed is allowed; 1 and "1" are different IDs).
    """

    def __init__(self, ids: Iterable[Any] = (), *, kind: str = "item") -> None:
        self.kind = kind
        self._ids: list[RawId] = []
        self._index: dict[tuple[type, RawId], int] = {}
        self.extend(ids)

    # ---------------------------------------------------------------- building
    def extend(self, ids: Iterable[Any]) -> np.ndarray:
        """Add unseen IDs (keeping order); returns the indices of all given IDs."""
        out = []
        for raw in ids:
            rid = _normalise(raw)
            key = (type(rid), rid)
            idx = self._index.get(key)
            if idx is None:
                idx = len(self._ids)
                self._index[key] = idx
                self._ids.append(rid)
            out.append(idx)
        self._array = None
        return np.asarray(out, dtype=np.int64)

    def copy(self) -> IdMap:
        new = IdMap(kind=self.kind)
        new._ids, new._index = list(self._ids), dict(self._index)
        return new

    # ---------------------------------------------------------------- lookups
    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, raw: Any) -> bool:
        try:
            rid = _normalise(raw)
        except DataError:
            return False
        return (type(rid), rid) in self._index

    def __iter__(self):
        return iter(self._ids)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self._ids == other._ids

    def __repr__(self) -> str:
        head = ", ".join(repr(x) for x in self._ids[:3])
        return f"IdMap({self.kind}s={len(self)}: [{head}{', ...' if len(self) > 3 else ''}])"

    def index(self, ids: Sequence[Any] | np.ndarray | pd.Series | Any) -> np.ndarray:
        """Indices of `ids` (int64 array; a scalar ID gives a 0-d array).

        Raises UnknownIDError naming the first unknown IDs.
        """
        scalar = np.ndim(ids) == 0 and not isinstance(ids, (list, tuple))
        seq = [ids] if scalar else list(ids)
        out = np.empty(len(seq), dtype=np.int64)
        missing = []
        for pos, raw in enumerate(seq):
            try:
                rid = _normalise(raw)
                out[pos] = self._index[(type(rid), rid)]
            except (DataError, KeyError):
                out[pos] = -1
                missing.append(raw)
        if missing:
            shown = ", ".join(repr(m) for m in missing[:5])
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            hint = self._type_hint(missing[0])
            raise UnknownIDError(
                f"unknown {self.kind} ID(s): {shown}{more} ({len(self)} {self.kind}s known). "
                f"{hint}Only IDs seen in fit() (or added with add_{self.kind}s()) can be used."
            )
        return out[0] if scalar else out

    def _type_hint(self, raw: Any) -> str:
        if not self._ids:
            return ""
        known = {type(x).__name__ for x in self._ids[:1000]}
        given = type(raw.item() if isinstance(raw, np.generic) else raw).__name__
        if given not in known:
            return f"The known IDs are of type {'/'.join(sorted(known))}, you passed {given}. "
        return ""

    def ids(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Raw IDs at `indices` (an int64 array if all IDs are ints, str if all str, else object)."""
        arr = self.as_array()
        return arr[np.asarray(indices, dtype=np.int64)]

    def as_array(self) -> np.ndarray:
        if getattr(self, "_array", None) is None or len(self._array) != len(self._ids):
            if self._ids and all(isinstance(x, int) for x in self._ids) and all(
                -(2**63) <= x < 2**63 for x in self._ids
            ):
                self._array = np.asarray(self._ids, dtype=np.int64)
            elif self._ids and all(isinstance(x, str) for x in self._ids):
                self._array = np.asarray(self._ids, dtype=object)
            else:
                self._array = np.empty(len(self._ids), dtype=object)
                self._array[:] = self._ids
        return self._array

    # ---------------------------------------------------------------- JSON
    def to_list(self) -> list[RawId]:
        """JSON-able list of raw IDs in index order (ints stay ints, strs stay strs)."""
        return list(self._ids)

    @classmethod
    def from_list(cls, ids: Iterable[Any], kind: str = "item") -> IdMap:
        ids = list(ids)
        new = cls(ids, kind=kind)
        if len(new) != len(ids):
            raise DataError(f"{kind} ID list contains duplicates ({len(ids) - len(new)} repeated IDs)")
        return new
