"""Progress bars and logging conventions shared by multirec's long-running calls.

Bars go through `progress()`, which wraps `tqdm.auto.tqdm` and is switched off for a whole
process with the environment variable `MULTIREC_PROGRESS=0` (or tqdm's own `TQDM_DISABLE=1`).
Log records go to the `"multirec"` logger (children: `get_logger("export")` →
`"multirec.export"`); the library adds only a `NullHandler`, so applications decide where
records go (`logging.basicConfig(level="INFO")` shows them).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

__all__ = ["progress", "progress_enabled", "get_logger", "logger"]

_OFF = {"0", "false", "no", "off"}
_ON = {"1", "true", "yes", "on"}

logger = logging.getLogger("multirec")
logger.addHandler(logging.NullHandler())


def progress_enabled() -> bool:
    """False when `MULTIREC_PROGRESS` is 0/false/no/off or `TQDM_DISABLE` is 1/true/yes/on."""
    if os.environ.get("MULTIREC_PROGRESS", "").strip().lower() in _OFF:
        return False
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in _ON


def progress(
    iterable: Iterable[Any] | None = None,
    *,
    total: int | None = None,
    desc: str | None = None,
    enabled: bool = True,
    unit: str = "it",
) -> Any:
    """A `tqdm.auto.tqdm` bar over `iterable` (or a manual one: `bar.update(k)`), or a
    disabled bar (same interface, prints nothing) when `enabled` is False or the environment
    switches bars off (see `progress_enabled`)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit,
                disable=not (enabled and progress_enabled()))


def get_logger(name: str | None = None) -> logging.Logger:
    """The `"multirec"` logger, or its child `"multirec.<name>"` (a leading "multirec." is
    accepted, so `get_logger(__name__)` works inside the package)."""
    if not name or name == "multirec":
        return logger
    if name.startswith("multirec."):
        name = name[len("multirec."):]
    return logger.getChild(name)
