"""Argument checks shared by the data set loaders (messages name the value and the fix)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataError

__all__ = ["check_int", "check_number", "check_range", "check_bool"]


def check_int(name: str, value: Any, low: int, *, none_ok: bool = False) -> int | None:
    """`value` as int, if it is an integer >= `low` (or None when `none_ok`)."""
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        allowed = " or None" if none_ok else ""
        raise DataError(f"{name} must be an int >= {low}{allowed}, got {value!r}")
    return int(value)


def check_number(name: str, value: Any, *, none_ok: bool = False) -> float | None:
    """`value` as float, if it is a finite number (or None when `none_ok`)."""
    if value is None and none_ok:
        return None
    if (isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating))
            or not np.isfinite(value)):
        allowed = " or None" if none_ok else ""
        raise DataError(f"{name} must be a finite number{allowed}, got {value!r}")
    return float(value)


def check_range(name: str, value: Any, low: float, high: float) -> float:
    """`value` as float, if it is a finite number in [low, high]."""
    x = check_number(name, value)
    if not low <= x <= high:
        raise DataError(f"{name} must be in [{low:g}, {high:g}], got {value!r}")
    return x


def check_bool(name: str, value: Any) -> bool:
    """`value`, if it is a bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise DataError(f"{name} must be True or False, got {value!r}")
    return bool(value)
