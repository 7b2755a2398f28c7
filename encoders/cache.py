"""On-disk embedding cache keyed by (encoder fingerprint, item key).

    >>> cache = EmbeddingCache("~/.cache/multirec/embeddings")      # doctest: +SKIP
    >>> vecs = encoder.encode_all(items, cache=cache)                # doctest: +SKIP

Layout: one sub-directory per encoder fingerprint (see `Encoder.fingerprint`), holding
`meta.json` (the vector dimension) and immutable chunk files `chunk-*.emb`:

    b"MRECEMB1" | uint32 LE header length | header JSON | keys (JSON list of str)
    | zero padding to 64 bytes | float32 LE vectors (count, dim)

The header carries blake2b digests of (header fields + keys) and of the vector bytes. No
pickle anywhere: keys are JSON, vectors raw float32 read through `np.memmap`.

Guarantees:
- Writes are atomic: a chunk is written to a uniquely named temp file (pid + uuid) in the
  same directory, fsync'ed, then `os.replace`d to a unique final name. Readers only list
  final names, so several processes may write the same fingerprint at once and a process
  killed mid-write leaves at most a temp file that is ignored (and removed once stale).
- A corrupt or truncated chunk (bad header, wrong dim, checksum mismatch) is skipped with a
  `CacheWarning` naming the file, deleted, and its entries are recomputed and rewritten.
- Memory: a session holds at most `flush_every` pending vectors; the per-fingerprint
  lookup index (key → chunk, row) is loaded lazily and grows with the number of entries
  stored for that fingerprint (not with the number of items streamed through a session).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import struct
import threading
import time
import uuid
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CacheError, EncoderInputError

__all__ = ["EmbeddingCache", "CacheSession", "CacheWarning", "default_cache_dir"]

_MAGIC = b"MRECEMB1"
_FORMAT = 1
_DTYPE = "<f4"
_ALIGN = 64
_MAX_HEADER = 1 << 16
_ROW_BITS = 32
_ROW_MASK = (1 << _ROW_BITS) - 1
_STALE_TEMP_S = 3600.0  # a temp file untouched this long belongs to a dead writer
_FINGERPRINT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_CHUNK = re.compile(r"^chunk-[0-9a-f]+-[0-9]+-[0-9a-f]+\.emb$")
_TEMP_PREFIX = ".tmp-"


class CacheWarning(UserWarning):
    """A cache file was unusable (corrupt, truncated, unwritable) and was skipped."""


def default_cache_dir() -> Path:
    """$MULTIREC_CACHE_DIR, else ~/.cache/multirec/embeddings."""
    env = os.environ.get("MULTIREC_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "multirec" / "embeddings"


class _Corrupt(Exception):
    """Internal: a chunk file failed validation (the message says why)."""


@dataclass
class _Chunk:
    path: Path
    stat: tuple[int, int, int]  # (inode, size, mtime_ns): chunks are immutable once renamed
    count: int
    offset: int  # byte offset of the vectors
    vectors_digest: str
    keys: list[str]
    verified: bool = False


@dataclass
class _Namespace:
    """In-memory view of one fingerprint directory."""

    directory: Path
    dim: int
    chunks: dict[int, _Chunk] = field(default_factory=dict)
    by_name: dict[str, int] = field(default_factory=dict)
    index: dict[str, int] = field(default_factory=dict)  # key -> chunk_id << 32 | row
    next_id: int = 0
    open: OrderedDict[int, np.ndarray] = field(default_factory=OrderedDict)  # LRU of memmaps


def _keys_digest(dim: int, count: int, keys_bytes: bytes) -> str:
    h = hashlib.blake2b(digest_size=32)
    h.update(json.dumps([_FORMAT, dim, count, _DTYPE, len(keys_bytes)]).encode() + b"\0")
    h.update(keys_bytes)
    return h.hexdigest()


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def _stat_id(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_chunk_header(path: Path, expected_dim: int | None) -> _Chunk:
    """Parse and validate a chunk's header and keys (vectors are verified lazily)."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        head = f.read(len(_MAGIC) + 4)
        if len(head) < len(_MAGIC) + 4 or head[:len(_MAGIC)] != _MAGIC:
            raise _Corrupt("bad magic bytes (not a multirec cache chunk, or truncated)")
        (hlen,) = struct.unpack("<I", head[len(_MAGIC):])
        if not 0 < hlen <= _MAX_HEADER:
            raise _Corrupt(f"bad header length {hlen}")
        raw = f.read(hlen)
        try:
            header = json.loads(raw.decode("utf-8"))
            dim, count = int(header["dim"]), int(header["count"])
            klen = int(header["keys_bytes"])
            kdigest, vdigest = str(header["keys_blake2b"]), str(header["vectors_blake2b"])
            fmt, dtype = header["format"], header["dtype"]
        except (ValueError, KeyError, TypeError) as exc:
            raise _Corrupt(f"unreadable header ({exc.__class__.__name__})") from None
        if fmt != _FORMAT or dtype != _DTYPE or dim < 1 or count < 0 or klen < 0:
            raise _Corrupt(f"unsupported header format={fmt!r} dtype={dtype!r} dim={dim}")
        if expected_dim is not None and dim != expected_dim:
            raise _Corrupt(f"holds {dim}-dim vectors, expected {expected_dim}")
        offset = _aligned(len(_MAGIC) + 4 + hlen + klen)
        if st.st_size != offset + count * dim * 4:
            raise _Corrupt(f"size {st.st_size} bytes, expected {offset + count * dim * 4} (truncated?)")
        keys_bytes = f.read(klen)
        if f.read(offset - (len(_MAGIC) + 4 + hlen + klen)).strip(b"\0"):
            raise _Corrupt("non-zero padding")
    if _keys_digest(dim, count, keys_bytes) != kdigest:
        raise _Corrupt("keys checksum mismatch")
    try:
        keys = json.loads(keys_bytes.decode("ascii"))
    except ValueError:
        raise _Corrupt("unreadable keys") from None
    if not isinstance(keys, list) or len(keys) != count or not all(isinstance(k, str) for k in keys):
        raise _Corrupt("keys do not match the header")
    return _Chunk(path, _stat_id(st), count, offset, vdigest, keys)


def _verify_vectors(chunk: _Chunk, dim: int) -> None:
    """Hash the vector bytes with plain reads (no mmap, so truncation cannot SIGBUS)."""
    h = hashlib.blake2b(digest_size=32)
    remaining = chunk.count * dim * 4
    with open(chunk.path, "rb") as f:
        if _stat_id(os.fstat(f.fileno())) != chunk.stat:
            raise _Corrupt("file changed after it was indexed")
        f.seek(chunk.offset)
        while remaining:
            block = f.read(min(remaining, 1 << 20))
            if not block:
                raise _Corrupt("truncated vectors")
            h.update(block)
            remaining -= len(block)
    if h.hexdigest() != chunk.vectors_digest:
        raise _Corrupt("vectors checksum mismatch")


def _check_keys(keys: Sequence[str]) -> list[str]:
    keys = list(keys)
    for pos, key in enumerate(keys):
        if not isinstance(key, str):
            raise EncoderInputError(
                f"cache keys must be str; got {type(key).__name__} {key!r} at position {pos}. "
                "Pass string keys (e.g. str(item_id)) or let the encoder hash the content."
            )
    return keys


class EmbeddingCache:
    """Directory of cached embeddings, one namespace per encoder fingerprint.

    Args:
        directory: cache root; default $MULTIREC_CACHE_DIR or ~/.cache/multirec/embeddings.
        flush_every: a session writes a chunk file once this many vectors are pending
            (and on `close()`); bounds a session's memory to flush_every * dim floats.

    Nothing is read or created until a session is opened.
    """

    max_open_chunks: int = 64  # memory-mapped chunk files kept open per fingerprint

    def __init__(self, directory: str | os.PathLike[str] | None = None, *, flush_every: int = 4096) -> None:
        if isinstance(flush_every, bool) or not isinstance(flush_every, int) or flush_every < 1:
            raise CacheError(f"flush_every must be a positive int, got {flush_every!r}")
        if directory is not None and not isinstance(directory, (str, os.PathLike)):
            raise CacheError(f"cache directory must be a path, got {type(directory).__name__} {directory!r}")
        self.directory = Path(directory).expanduser() if directory is not None else default_cache_dir()
        self.flush_every = flush_every
        self._spaces: dict[str, _Namespace] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.directory)!r}, flush_every={self.flush_every})"

    def __getstate__(self) -> dict[str, Any]:  # e.g. sent to worker processes: settings only
        return {"directory": self.directory, "flush_every": self.flush_every}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["directory"], flush_every=state["flush_every"])  # type: ignore[misc]

    # ----------------------------------------------------------------- public API
    def session(self, fingerprint: str, dim: int) -> CacheSession:
        """Open a read/write session for one encoder (`Encoder.fingerprint()`, `dim`)."""
        self._check_fingerprint(fingerprint)
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise CacheError(f"dim must be a positive int, got {dim!r}")
        dim = int(dim)
        ns_dir = self.directory / fingerprint
        try:
            ns_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(
                f"cannot create embedding cache directory {str(ns_dir)!r}: {exc.strerror or exc}. "
                "Pass a writable directory as cache=..., or set MULTIREC_CACHE_DIR."
            ) from exc
        self._ensure_meta(ns_dir, dim)
        with self._lock:
            space = self._spaces.get(fingerprint)
            if space is not None and space.dim != dim:
                self._spaces.pop(fingerprint)
        return CacheSession(self, fingerprint, dim)

    def fingerprints(self) -> list[str]:
        """Fingerprints that have a namespace directory in the cache."""
        if not self.directory.is_dir():
            return []
        return sorted(p.name for p in self.directory.iterdir()
                      if p.is_dir() and _FINGERPRINT.match(p.name) and (p / "meta.json").exists())

    def entries(self, fingerprint: str) -> Iterator[tuple[str, np.ndarray]]:
        """Yield every stored (key, vector) of a fingerprint, duplicates included.

        Reads the files afresh and verifies checksums; corrupt chunks are skipped with a
        warning (but not deleted). Meant for inspection, export and tests.
        """
        self._check_fingerprint(fingerprint)
        ns_dir = self.directory / fingerprint
        dim = self._read_meta(ns_dir)
        if dim is None:
            return
        for path in sorted(ns_dir.glob("chunk-*.emb")):
            try:
                chunk = _read_chunk_header(path, dim)
                _verify_vectors(chunk, dim)
                with open(path, "rb") as f:
                    f.seek(chunk.offset)
                    vecs = np.frombuffer(f.read(chunk.count * dim * 4), dtype=_DTYPE)
            except _Corrupt as exc:
                warnings.warn(f"embedding cache: skipping corrupt chunk {path} ({exc})",
                              CacheWarning, stacklevel=2)
                continue
            except FileNotFoundError:
                continue
            vecs = vecs.reshape(chunk.count, dim).astype(np.float32)
            yield from zip(chunk.keys, vecs)

    def stats(self) -> dict[str, Any]:
        """Sizes per fingerprint from chunk headers: {"entries", "chunks", "bytes", ...}.

        `entries` counts stored rows; a key written by two concurrent runs counts twice.
        """
        per: dict[str, dict[str, Any]] = {}
        for fp in self.fingerprints():
            ns_dir = self.directory / fp
            dim = self._read_meta(ns_dir)
            info = {"dim": dim, "entries": 0, "chunks": 0, "bytes": 0, "corrupt": 0}
            for path in ns_dir.glob("chunk-*.emb"):
                try:
                    chunk = _read_chunk_header(path, dim)
                except _Corrupt:
                    info["corrupt"] += 1
                    continue
                except OSError:
                    continue
                info["entries"] += chunk.count
                info["chunks"] += 1
                info["bytes"] += chunk.stat[1]
            per[fp] = info
        return {
            "directory": str(self.directory),
            "fingerprints": per,
            "entries": sum(i["entries"] for i in per.values()),
            "chunks": sum(i["chunks"] for i in per.values()),
            "bytes": sum(i["bytes"] for i in per.values()),
        }

    def __len__(self) -> int:
        """Number of stored vectors over all fingerprints (see `stats`)."""
        return int(self.stats()["entries"])

    def clear(self, fingerprint: str | None = None) -> None:
        """Delete one fingerprint's entries, or every fingerprint's (only files this cache wrote)."""
        if fingerprint is not None:
            self._check_fingerprint(fingerprint)
            targets = [self.directory / fingerprint]
        elif self.directory.is_dir():
            targets = [p for p in self.directory.iterdir() if p.is_dir() and _FINGERPRINT.match(p.name)]
        else:
            targets = []
        with self._lock:
            for ns_dir in targets:
                self._spaces.pop(ns_dir.name, None)
                if not ns_dir.is_dir():
                    continue
                for path in ns_dir.iterdir():
                    if _CHUNK.match(path.name) or path.name.startswith(_TEMP_PREFIX) \
                            or path.name == "meta.json":
                        try:
                            path.unlink()
                        except FileNotFoundError:
                            pass
                        except OSError as exc:
                            raise CacheError(
                                f"cannot delete {str(path)!r}: {exc.strerror or exc}; "
                                f"remove the cache dir {str(self.directory)!r} by hand"
                            ) from exc
                with contextlib.suppress(OSError):  # holds foreign files, or a writer recreated it
                    ns_dir.rmdir()

    def compact(self, fingerprint: str) -> int:
        """Rewrite a fingerprint's chunks as few files of `flush_every` rows, without duplicates.

        Each run writes at least one chunk; compacting keeps lookups fast after many small
        runs. Safe alongside other processes (their readers recompute what vanished; chunks
        they write meanwhile are kept). Returns the number of chunk files replaced.
        """
        self._check_fingerprint(fingerprint)
        ns_dir = self.directory / fingerprint
        dim = self._read_meta(ns_dir)
        old = sorted(ns_dir.glob("chunk-*.emb")) if dim is not None else []
        if len(old) < 2:
            return 0
        seen: set[str] = set()
        keys: list[str] = []
        rows: list[np.ndarray] = []
        for key, vec in self.entries(fingerprint):
            if key in seen:
                continue
            seen.add(key)
            keys.append(key)
            rows.append(vec)
            if len(keys) == self.flush_every:
                self._write_chunk(ns_dir, dim, keys, np.stack(rows))
                keys, rows = [], []
        if keys:
            self._write_chunk(ns_dir, dim, keys, np.stack(rows))
        with self._lock:
            self._spaces.pop(fingerprint, None)
        for path in old:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return len(old)

    def close(self) -> None:
        """Drop in-memory indexes and memory maps (files are untouched)."""
        with self._lock:
            self._spaces.clear()

    # ----------------------------------------------------------------- internals
    def _check_fingerprint(self, fingerprint: Any) -> None:
        if not isinstance(fingerprint, str) or not _FINGERPRINT.match(fingerprint):
            raise CacheError(
                f"fingerprint must be a file-name-safe string (letters, digits, '._-'), got "
                f"{fingerprint!r}; pass Encoder.fingerprint()"
            )

    def _read_meta(self, ns_dir: Path) -> int | None:
        try:
            meta = json.loads((ns_dir / "meta.json").read_text("utf-8"))
            dim = meta["dim"]
            if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
                raise ValueError(dim)
            return dim
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
            return None

    def _ensure_meta(self, ns_dir: Path, dim: int) -> None:
        """Create meta.json (first writer wins) or check that its dim matches."""
        meta_path = ns_dir / "meta.json"
        stored = self._read_meta(ns_dir)
        if stored is None:
            if meta_path.exists():
                warnings.warn(f"embedding cache: unreadable {meta_path}; rewriting it with dim={dim}",
                              CacheWarning, stacklevel=2)
            body = json.dumps({"format": _FORMAT, "dim": dim, "dtype": "float32"}).encode()
            tmp = ns_dir / f"{_TEMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}.meta"
            try:
                with open(tmp, "xb") as f:
                    f.write(body)
                    f.flush()
                    os.fsync(f.fileno())
                try:
                    if meta_path.exists():
                        os.replace(tmp, meta_path)  # was unreadable: overwrite
                    else:
                        os.link(tmp, meta_path)  # atomic create-if-absent
                except FileExistsError:
                    pass  # another process won the race; checked below
                except OSError:
                    os.replace(tmp, meta_path)  # filesystems without hard links
            except OSError:
                return  # read-only cache: lookups still work, writes warn at flush
            finally:
                with contextlib.suppress(OSError):
                    tmp.unlink()
            _fsync_dir(ns_dir)
            stored = self._read_meta(ns_dir)
        if stored is not None and stored != dim:
            raise CacheError(
                f"the embedding cache {str(ns_dir)!r} holds {stored}-dim vectors but this encoder "
                f"produces {dim}-dim vectors for the same fingerprint; clear the cache dir "
                f"{str(ns_dir)!r} (EmbeddingCache({str(self.directory)!r}).clear({ns_dir.name!r})) "
                "or use another cache directory"
            )

    def _namespace(self, fingerprint: str, dim: int) -> _Namespace:
        """The fingerprint's index, brought up to date with the directory listing."""
        with self._lock:
            space = self._spaces.get(fingerprint)
            if space is None or space.dim != dim:
                space = self._spaces[fingerprint] = _Namespace(self.directory / fingerprint, dim)
            self._refresh(space)
            return space

    def _refresh(self, space: _Namespace) -> None:
        try:
            listing = list(os.scandir(space.directory))
        except FileNotFoundError:
            listing = []
        now = time.time()
        seen: set[str] = set()
        for entry in listing:
            name = entry.name
            if name.startswith(_TEMP_PREFIX):
                try:
                    if now - entry.stat().st_mtime > _STALE_TEMP_S:
                        os.unlink(entry.path)  # left by a writer that died mid-write
                except OSError:
                    pass
                continue
            if not _CHUNK.match(name):
                continue
            seen.add(name)
            cid = space.by_name.get(name)
            if cid is not None:
                try:
                    if _stat_id(entry.stat()) == space.chunks[cid].stat:
                        continue
                except OSError:
                    pass
                self._forget(space, cid)  # changed on disk: validate again
            self._index_chunk(space, Path(entry.path))
        for name in [n for n in space.by_name if n not in seen]:
            self._forget(space, space.by_name[name])  # deleted by another process

    def _index_chunk(self, space: _Namespace, path: Path) -> None:
        try:
            chunk = _read_chunk_header(path, space.dim)
        except _Corrupt as exc:
            self._discard_file(path, str(exc))
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            warnings.warn(f"embedding cache: skipping unreadable chunk {path} ({exc})",
                          CacheWarning, stacklevel=2)
            return
        cid = space.next_id
        space.next_id += 1
        space.chunks[cid] = chunk
        space.by_name[path.name] = cid
        base = cid << _ROW_BITS
        index = space.index
        for row, key in enumerate(chunk.keys):
            if key not in index:
                index[key] = base | row

    def _forget(self, space: _Namespace, cid: int) -> None:
        chunk = space.chunks.pop(cid)
        space.by_name.pop(chunk.path.name, None)
        space.open.pop(cid, None)
        base = cid << _ROW_BITS
        for row, key in enumerate(chunk.keys):
            if space.index.get(key) == base | row:
                del space.index[key]

    def _discard_file(self, path: Path, reason: str) -> None:
        warnings.warn(
            f"embedding cache: skipping corrupt chunk {path} ({reason}); deleting it, its "
            "entries will be recomputed and rewritten",
            CacheWarning, stacklevel=2,
        )
        with contextlib.suppress(OSError):
            path.unlink()

    def _vectors(self, space: _Namespace, cid: int) -> np.ndarray | None:
        """Memory-mapped (count, dim) vectors of a chunk, checksum-verified on first use."""
        arr = space.open.get(cid)
        if arr is not None:
            space.open.move_to_end(cid)
            return arr
        chunk = space.chunks.get(cid)
        if chunk is None:
            return None
        try:
            if not chunk.verified:
                _verify_vectors(chunk, space.dim)
                chunk.verified = True
            arr = np.memmap(chunk.path, dtype=_DTYPE, mode="r", offset=chunk.offset,
                            shape=(chunk.count, space.dim))
        except _Corrupt as exc:
            self._forget(space, cid)
            self._discard_file(chunk.path, str(exc))
            return None
        except OSError:  # deleted meanwhile (clear() elsewhere): treat as missing
            self._forget(space, cid)
            return None
        space.open[cid] = arr
        while len(space.open) > self.max_open_chunks:
            space.open.popitem(last=False)
        return arr

    def _write_chunk(self, ns_dir: Path, dim: int, keys: list[str], vecs: np.ndarray) -> Path:
        """Atomically write one chunk file; returns its final path."""
        vecs = np.ascontiguousarray(vecs, dtype=_DTYPE)  # (n, dim)
        keys_bytes = json.dumps(keys, ensure_ascii=True, separators=(",", ":")).encode("ascii")
        count = len(keys)
        header = json.dumps({
            "format": _FORMAT, "dim": dim, "count": count, "dtype": _DTYPE,
            "keys_bytes": len(keys_bytes),
            "keys_blake2b": _keys_digest(dim, count, keys_bytes),
            "vectors_blake2b": hashlib.blake2b(vecs.data, digest_size=32).hexdigest(),
        }).encode("utf-8")
        prefix = _MAGIC + struct.pack("<I", len(header)) + header + keys_bytes
        pad = _aligned(len(prefix)) - len(prefix)
        ns_dir.mkdir(parents=True, exist_ok=True)
        if not (ns_dir / "meta.json").exists():
            self._ensure_meta(ns_dir, dim)  # cleared by another process meanwhile
        token = uuid.uuid4().hex
        tmp = ns_dir / f"{_TEMP_PREFIX}{os.getpid()}-{token}.part"
        final = ns_dir / f"chunk-{time.time_ns():x}-{os.getpid()}-{token[:16]}.emb"
        try:
            with open(tmp, "xb") as f:
                f.write(prefix + b"\0" * pad)
                f.write(vecs.data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        _fsync_dir(ns_dir)
        return final


class CacheSession:
    """Read/write access to one fingerprint's namespace; use `lookup`, `add`, `close`.

    The index is refreshed from disk on the first `lookup`. Vectors added are buffered and
    written as one chunk every `flush_every` vectors and on `close()`. Chunks this session
    writes are not added to the in-memory index (memory stays bounded while streaming);
    keys still pending are found by `lookup`. Also a context manager.
    """

    def __init__(self, cache: EmbeddingCache, fingerprint: str, dim: int) -> None:
        self.cache, self.fingerprint, self.dim = cache, fingerprint, dim
        self.written = 0  # vectors written to disk by this session
        self._space: _Namespace | None = None
        self._pending_vecs: list[np.ndarray] = []
        self._pending_pos: dict[str, int] = {}  # key -> row in the concatenated pending
        self._n_pending = 0
        self._closed = False
        self._writable = True

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._pending_pos)} pending"
        return f"CacheSession({self.fingerprint[:12]}…, dim={self.dim}, {state})"

    def __enter__(self) -> CacheSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise CacheError("this cache session is closed; open a new one with EmbeddingCache.session()")

    def lookup(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Return (found (B,) bool, vectors (B, dim) float32 with zeros where not found)."""
        self._check_open()
        keys = _check_keys(keys)
        found = np.zeros(len(keys), dtype=bool)  # (B,)
        out = np.zeros((len(keys), self.dim), dtype=np.float32)  # (B, dim)
        pending_hits: list[tuple[int, int]] = []
        groups: dict[int, tuple[list[int], list[int]]] = {}
        with self.cache._lock:
            if self._space is None:
                self._space = self.cache._namespace(self.fingerprint, self.dim)
            space = self._space
            index, pending = space.index, self._pending_pos
            for i, key in enumerate(keys):
                row = pending.get(key)
                if row is not None:
                    pending_hits.append((i, row))
                    continue
                loc = index.get(key)
                if loc is not None:
                    pos, rows = groups.setdefault(loc >> _ROW_BITS, ([], []))
                    pos.append(i)
                    rows.append(loc & _ROW_MASK)
            for cid, (pos, rows) in groups.items():
                arr = self.cache._vectors(space, cid)
                if arr is None:
                    continue
                out[pos] = arr[rows]
                found[pos] = True
        if pending_hits:
            flat = np.concatenate(self._pending_vecs)
            idx, rows = zip(*pending_hits)
            out[list(idx)] = flat[list(rows)]
            found[list(idx)] = True
        return found, out

    def add(self, keys: Sequence[str], vecs: np.ndarray) -> None:
        """Buffer vectors (b, dim) for `keys`; writes a chunk once `flush_every` are pending."""
        self._check_open()
        keys = _check_keys(keys)
        vecs = np.asarray(vecs, dtype=np.float32)
        if vecs.ndim != 2 or vecs.shape != (len(keys), self.dim):
            raise CacheError(
                f"cannot cache vectors of shape {tuple(vecs.shape)} for {len(keys)} keys; "
                f"expected ({len(keys)}, {self.dim})"
            )
        finite = np.isfinite(vecs).all(axis=1)
        if not finite.all():
            bad = [keys[i] for i in np.flatnonzero(~finite)[:3]]
            warnings.warn(f"embedding cache: not caching {int((~finite).sum())} vectors with NaN/inf "
                          f"(keys {bad}...)", CacheWarning, stacklevel=2)
            keys = [k for k, ok in zip(keys, finite) if ok]
            vecs = vecs[finite]
        if not keys:
            return
        base = self._n_pending
        self._pending_vecs.append(vecs.copy())
        for row, key in enumerate(keys):
            self._pending_pos[key] = base + row
        self._n_pending += len(keys)
        if self._n_pending >= self.cache.flush_every:
            self.flush()

    def flush(self) -> None:
        """Write the pending vectors as one chunk file (no-op when nothing is pending)."""
        if not self._pending_pos:
            return
        keys = list(self._pending_pos)
        rows = np.fromiter(self._pending_pos.values(), dtype=np.int64, count=len(keys))
        vecs = np.concatenate(self._pending_vecs)[rows]  # (n, dim), last value per key
        self._pending_vecs, self._pending_pos, self._n_pending = [], {}, 0
        if not self._writable:
            return
        ns_dir = self.cache.directory / self.fingerprint
        try:
            self.cache._write_chunk(ns_dir, self.dim, keys, vecs)
        except OSError as exc:
            self._writable = False
            warnings.warn(
                f"embedding cache: cannot write to {str(ns_dir)!r} ({exc.strerror or exc}); "
                "vectors of this run are not cached. Free disk space, fix the permissions, or "
                "pass another cache directory.", CacheWarning, stacklevel=2,
            )
            return
        self.written += len(keys)

    def close(self) -> None:
        """Flush what was added; further use raises. Safe to call twice."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            self._space = None
