"""Batch export: top-n recommendations for every user, streamed to Parquet or CSV.

    >>> recommend_all(model, n=100, path="recs.parquet")   # user, item, score, rank

Memory stays bounded by one batch of users × the catalogue (never the full users × items
matrix). With `model.build_index()` the batches go through the item index.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError, MissingBackendError, NotFittedError
from .frames import recommendations_frame
from .progress import get_logger, progress

__all__ = ["recommend_all", "FORMATS"]

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}
_log = get_logger(__name__)


def recommend_all(
    model: Any,
    users: Sequence[Any] | None = None,
    n: int = 100,
    path: str | os.PathLike = "recs.parquet",
    *,
    batch_size: int = 1024,
    filter_seen: bool = True,
    show_progress: bool = True,
) -> Path:
    """Write the top-`n` items of every user (or of the raw user IDs `users`) to `path`.

    The format follows the suffix: `.parquet`/`.pq` (pyarrow, one row group per batch) or
    `.csv`. Long format, one row per (user, item): `user`, `item` (int64 when the model's
    IDs are all ints, else strings), `score` (float32 probability) and `rank` (int32, 1 =
    best). Users with fewer than `n` eligible items get fewer rows. The file appears
    atomically (written to a temporary file, then renamed). Returns the path.
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"cannot export to {str(path)!r}: unknown suffix {path.suffix!r}; use one "
                          f"of {sorted(FORMATS)}")
    for name, value in (("n", n), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{name} must be a positive int, got {value!r}")
    if not hasattr(model, "network"):
        raise NotFittedError("recommend_all() needs a fitted model; call fit(data) or "
                             "MultimodalRecommender.from_pretrained(path) first")
    if users is None:
        raw = model.user_map_.to_list()
    else:
        raw = [users] if isinstance(users, (str, int, np.integer)) else list(users)
    model.user_map_.index(raw)  # UnknownIDError naming the IDs, before anything is written
    if not path.parent.is_dir():
        raise ConfigError(f"cannot export to {str(path)!r}: directory {str(path.parent)!r} does "
                          "not exist")
    kinds = {"user": _kind(raw), "item": _kind(model.item_map_.to_list())}
    writer = _parquet_writer if fmt == "parquet" else _csv_writer
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")  # same folder
    rows = 0
    try:
        with writer(tmp, kinds) as write, \
                progress(total=len(raw), desc="recommend", enabled=show_progress, unit="user") as bar:
            for start in range(0, len(raw), int(batch_size)):
                batch = raw[start:start + int(batch_size)]
                ids, scores = model.recommend(batch, n=int(n), filter_seen=filter_seen)  # (B, n)
                frame = recommendations_frame(np.asarray(batch, dtype=object), ids, scores)
                write(_typed(frame, kinds))
                rows += len(frame)
                bar.update(len(batch))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _log.info("wrote %d recommendations for %d users to %s", rows, len(raw), path)
    return path


def _kind(ids: Sequence[Any]) -> str:
    """"int" when every raw ID is an int (then the column is int64), else "str"."""
    ok = all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in ids)
    return "int" if ids and ok else "str"


def _typed(frame: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """The frame with `user`/`item` as int64 or str, as the file's schema says."""
    for col, kind in kinds.items():
        frame[col] = frame[col].astype(np.int64) if kind == "int" else frame[col].map(str).astype(object)
    return frame


@contextlib.contextmanager
def _parquet_writer(path: Path, kinds: dict[str, str]) -> Iterator[Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingBackendError("pyarrow", "export", "Parquet export (or use a .csv path)") from exc
    types = {k: pa.int64() if v == "int" else pa.string() for k, v in kinds.items()}
    schema = pa.schema([("user", types["user"]), ("item", types["item"]),
                        ("score", pa.float32()), ("rank", pa.int32())])
    with pq.ParquetWriter(str(path), schema) as out:
        yield lambda frame: out.write_table(
            pa.Table.from_pandas(frame, schema=schema, preserve_index=False))


@contextlib.contextmanager
def _csv_writer(path: Path, kinds: dict[str, str]) -> Iterator[Any]:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        fh.write("user,item,score,rank\n")
        yield lambda frame: frame.to_csv(fh, header=False, index=False)
