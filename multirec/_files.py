"""Crash-safe directories, confined paths and SHA-256 manifests (shared by io, checkpoint, index).

Layout of a directory written with `atomic_directory(target, overwrite=..., marker=...)`:

    target/
        multirec.json           pointer: {"format": marker, "current": "version-<16 hex>"}
        version-<16 hex>/       the complete saved files (+ manifest.json from `write_manifest`)

A save writes everything into `target/.multirec-tmp-<token>/`, fsyncs it, renames it to
`target/version-<token>/`, then atomically replaces `multirec.json` (write + fsync + rename)
and only then deletes the previous version folder. At every instant the pointer names a
complete folder, so a crash (kill -9, power loss) leaves the old or the new save loadable;
the leftovers of a crash (`.multirec-tmp-*`, unreferenced `version-*`) are deleted by the
next save. The target itself is never renamed (so `save(".")` works) and entries that
multirec did not write are never deleted. One writer per directory at a time.

The manifest guards against corruption and truncation (disk errors, partial copies); it does
not guard against tampering by someone who can edit the folder, who can rewrite the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import ModelFileError

__all__ = ["atomic_directory", "check_target", "current_version", "sha256_file", "sha256_bytes", "safe_child",
           "read_file", "write_manifest", "verify_manifest", "POINTER", "MANIFEST"]

POINTER = "multirec.json"
MANIFEST = "manifest.json"
_TMP_PREFIX = ".multirec-tmp-"
_VERSION_RE = re.compile(r"^version-[0-9a-f]{16}$")
_POINTER_TMP_RE = re.compile(r"^\.multirec-pointer-[0-9a-f]{16}\.tmp$")
_MAX_JSON_BYTES = 1 << 20  # pointer / manifest files are tiny


# ---------------------------------------------------------------------- checksums
def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of the file at `path` (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------- confined paths
def safe_child(root: str | os.PathLike, relpath: Any) -> Path:
    """`root / relpath` after checking it stays inside `root`: a relative path without `..`,
    `.`, empty parts or backslashes, and no symlink on the way. Raises ModelFileError."""
    base = Path(root).resolve()
    if not isinstance(relpath, str) or not relpath or "\\" in relpath or "\x00" in relpath:
        raise ModelFileError(f"{relpath!r} in {str(base)!r} is not a valid file name inside the "
                             "model folder; re-save the model")
    parts = relpath.split("/")
    if relpath.startswith("/") or os.path.isabs(relpath) or any(p in ("", ".", "..") for p in parts):
        raise ModelFileError(f"the path {relpath!r} in {str(base)!r} points outside the model "
                             "folder (absolute or with '..'); a model folder may only name its "
                             "own files. Re-save the model.")
    path = base
    for part in parts:
        path = path / part
        if path.is_symlink():
            raise ModelFileError(f"{str(path)!r} is a symbolic link; model folders may not "
                                 "contain links (they could point outside). Replace it with a "
                                 "copy of the file.")
    if not path.resolve().is_relative_to(base):  # defensive; the checks above imply it
        raise ModelFileError(f"{relpath!r} resolves outside {str(base)!r}")
    return path


def read_file(root: str | os.PathLike, relpath: str, *, max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file inside `root` (confined by `safe_child`, no links followed)."""
    path = safe_child(root, relpath)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ModelFileError(f"{str(path)!r} is missing; the saved folder is incomplete") from None
    except OSError as exc:
        raise ModelFileError(f"cannot open {str(path)!r}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ModelFileError(f"{str(path)!r} is not a regular file")
        if max_bytes is not None and info.st_size > max_bytes:
            raise ModelFileError(f"{str(path)!r} is {info.st_size} bytes, more than the "
                                 f"{max_bytes} such a file can have; it is not a multirec file")
        return f.read()


def _read_json(root: Path, relpath: str) -> Any:
    data = read_file(root, relpath, max_bytes=_MAX_JSON_BYTES)
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{str(root / relpath)!r} is corrupt ({exc})") from exc


# ---------------------------------------------------------------------- manifests
def write_manifest(folder: str | os.PathLike, names: Iterable[str]) -> dict[str, str]:
    """Write `folder/manifest.json` with the SHA-256 of each of `names`; returns them."""
    folder = Path(folder)
    digests = {name: sha256_file(folder / name) for name in sorted(names)}
    (folder / MANIFEST).write_text(json.dumps({"format": "multirec.Manifest", "sha256": digests},
                                              indent=1), encoding="utf-8")
    return digests


def verify_manifest(folder: str | os.PathLike, required: Iterable[str]) -> dict[str, bytes]:
    """Read every file of `required` once, check it against `folder/manifest.json`, return
    `{name: bytes}`. The manifest must list exactly `required` (no file without a checksum,
    no unknown names); ModelFileError otherwise."""
    folder = Path(folder)
    required = sorted(set(required))
    manifest = _read_json(folder, MANIFEST)
    where = str(folder / MANIFEST)
    if not isinstance(manifest, dict) or set(manifest) != {"format", "sha256"} or (
            manifest["format"] != "multirec.Manifest" or not isinstance(manifest["sha256"], dict)):
        raise ModelFileError(f"{where!r} is not a multirec manifest (expected keys 'format', "
                             "'sha256'); re-save the model")
    digests = manifest["sha256"]
    unknown = sorted(set(digests) - set(required), key=str)
    if unknown:
        raise ModelFileError(f"{where!r} lists unknown file(s) {unknown}; expected exactly "
                             f"{required}. Re-save the model.")
    missing = [n for n in required if n not in digests]
    if missing:
        raise ModelFileError(f"{where!r} has no checksum for {missing}: every file must be "
                             "listed. Re-save the model.")
    out = {}
    for name in required:
        digest = digests[name]
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ModelFileError(f"{where!r}: the checksum of {name!r} is not a SHA-256 hex "
                                 f"digest ({digest!r}); re-save the model")
        data = read_file(folder, name)
        if sha256_bytes(data) != digest:
            raise ModelFileError(f"{str(folder / name)!r} does not match its checksum in "
                                 f"{MANIFEST}: the file is corrupt, truncated or was modified. "
                                 "Re-save the model.")
        out[name] = data
    return out


# ---------------------------------------------------------------------- pointer + versions
def current_version(target: str | os.PathLike, marker: str) -> Path | None:
    """The version folder that `target/multirec.json` names; None when there is no pointer.

    Raises ModelFileError when the pointer is corrupt, of another format than `marker`, or
    names a folder that is not a plain `version-<hex>` directory inside `target`.
    """
    root = Path(target)
    if not (root / POINTER).exists() and not (root / POINTER).is_symlink():
        return None
    pointer = _read_json(root, POINTER)
    where = str(root / POINTER)
    if not isinstance(pointer, dict) or set(pointer) != {"format", "current"}:
        raise ModelFileError(f"{where!r} is not a multirec pointer file (expected keys "
                             "'format', 'current')")
    if pointer["format"] != marker:
        raise ModelFileError(f"{str(root)!r} holds a {pointer['format']!r}, not a {marker!r}")
    name = pointer["current"]
    if not isinstance(name, str) or not _VERSION_RE.match(name):
        raise ModelFileError(f"{where!r} names {name!r}, not a version folder 'version-<hex>'")
    folder = safe_child(root, name)
    if not folder.is_dir():
        raise ModelFileError(f"{str(folder)!r}, named by {where!r}, is missing; the save is "
                             "incomplete")
    return folder


def _pointer_format(root: Path) -> tuple[str | None, str | None]:
    """(format, current version name) of an existing pointer, (None, None) without one."""
    try:
        pointer = json.loads(read_file(root, POINTER, max_bytes=_MAX_JSON_BYTES))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ModelFileError(f"{str(root / POINTER)!r} is corrupt; delete it (and the "
                             "version-* folders) to save there again") from None
    if not isinstance(pointer, dict):
        raise ModelFileError(f"{str(root / POINTER)!r} is not a multirec pointer file")
    return pointer.get("format"), pointer.get("current")


def _is_leftover(name: str, current: str | None) -> bool:
    """Entries a save of ours may leave after a crash (temp folders, superseded versions)."""
    return (name.startswith(_TMP_PREFIX) or bool(_POINTER_TMP_RE.match(name))
            or (bool(_VERSION_RE.match(name)) and name != current))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for dirpath, _dirs, files in os.walk(folder):
        for f in files:
            _fsync(Path(dirpath) / f)
        _fsync(Path(dirpath))


def check_target(target: str | os.PathLike, *, overwrite: bool, marker: str,
                 replaces: Iterable[str] = ()) -> str | None:
    """Raise ModelFileError if `atomic_directory(target, ...)` would refuse to save there
    (writes nothing); returns the current version's name, None without a previous save."""
    root, replaces = Path(target), tuple(replaces)
    if root.exists() and not root.is_dir():
        raise ModelFileError(f"{str(root)!r} exists and is not a directory; pass a new or "
                             "empty directory to save into")
    fmt, current = (None, None)
    if (root / POINTER).exists() or (root / POINTER).is_symlink():
        fmt, current = _pointer_format(root)
        if fmt != marker:
            raise ModelFileError(f"{str(root)!r} holds a {fmt!r}, not a {marker!r}; "
                                 "save to another directory")
        if not overwrite:
            raise ModelFileError(f"{str(root)!r} already holds a saved {marker}; pass "
                                 "overwrite=True to replace it (files that multirec did not "
                                 "write are kept), or save to another directory")
    elif root.is_dir():
        entries = sorted(os.listdir(root))
        legacy = [e for e in entries if e in replaces]
        others = [e for e in entries if e not in replaces and not _is_leftover(e, None)]
        if legacy and not overwrite:
            raise ModelFileError(f"{str(root)!r} already holds a {marker} saved by an "
                                 "older multirec; pass overwrite=True to replace it (files "
                                 "that multirec did not write are kept)")
        if others and not legacy:
            shown = ", ".join(repr(e) for e in others[:3]) + (" ..." if len(others) > 3 else "")
            raise ModelFileError(
                f"{str(root)!r} is not empty ({shown}) and holds no multirec save; saving "
                "there could mix or delete your files. Save to a new or empty directory.")
    return current


class atomic_directory:  # noqa: N801 - used like a function: `with atomic_directory(...) as tmp:`
    """Context manager: write a new save into the returned temp folder; on success it becomes
    the current version of `target` (see the module docstring for the crash-safe scheme).

    Args:
        target: the directory to save into (created when missing; may be ".").
        overwrite: replace a previous save of the same `marker`; without it such a save is
            refused. A non-empty directory that holds no multirec save is always refused.
        marker: the kind of save, e.g. "multirec.MultimodalRecommender" (stored in the pointer).
        replaces: names of top-level files of an older multirec layout in `target` that this
            save supersedes (deleted after the switch); they do not count as the user's files.
    """

    def __init__(self, target: str | os.PathLike, *, overwrite: bool, marker: str,
                 replaces: Iterable[str] = ()) -> None:
        self.target = Path(target)
        self.overwrite, self.marker, self.replaces = bool(overwrite), marker, tuple(replaces)
        token = uuid.uuid4().hex[:16]
        self.tmp = self.target / f"{_TMP_PREFIX}{token}"
        self.version = f"version-{token}"  # the name the new save gets on success
        self.token = token
        self._current: str | None = None

    def __enter__(self) -> Path:
        current = check_target(self.target, overwrite=self.overwrite, marker=self.marker,
                               replaces=self.replaces)
        self.target.mkdir(parents=True, exist_ok=True)
        self._current = current
        self._clean(keep=current)
        self.tmp.mkdir()
        return self.tmp

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        root = self.target
        version = self.version
        _fsync_tree(self.tmp)
        os.rename(self.tmp, root / version)
        _fsync(root)
        pointer_tmp = root / f".multirec-pointer-{self.token}.tmp"
        with open(pointer_tmp, "w") as f:
            json.dump({"format": self.marker, "current": version}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(pointer_tmp, root / POINTER)
        _fsync(root)
        # the new save is in place: now the superseded ones can go
        for name in self.replaces:
            _remove(root / name)
        self._clean(keep=version)

    def _clean(self, keep: str | None) -> None:
        """Delete crash leftovers of ours in the target, and the sibling `.<name>.tmp-*` /
        `.<name>.old-*` folders that multirec < 0.2 left next to it."""
        for name in os.listdir(self.target):
            if _is_leftover(name, keep):
                _remove(self.target / name)
        absolute = Path(os.path.abspath(self.target))
        old = re.compile(rf"^\.{re.escape(absolute.name)}\.(tmp|old)-[0-9a-f]{{8}}$")
        parent = absolute.parent
        if absolute.name and parent.is_dir():
            for name in os.listdir(parent):
                if old.match(name) and (parent / name).is_dir() and not (parent / name).is_symlink():
                    shutil.rmtree(parent / name, ignore_errors=True)
