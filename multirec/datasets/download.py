"""Shared plumbing of the data set loaders: cache folder, download, checksums, atomic extract.

Every loader resolves its folder the same way (`locate`): the `data_dir` argument, then the
loader's environment variable, then `<cache root>/<name>` where the cache root is `cache_dir`,
$MULTIREC_DATA or ~/.cache/multirec/datasets. A missing cache copy is downloaded once with
`fetch` (tests replace it), checked against the published hashes and moved into place with
one `os.replace`, so a reader sees all files or none.

    folder = locate(SOURCE, data_dir, cache_dir, verify=False)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DatasetError

__all__ = ["Source", "cache_root", "fetch", "file_hash", "check_hashes", "locate", "missing_files",
           "RECORD"]

RECORD = ".multirec-sha256.json"  # sizes and hashes recorded at download when none are published


@dataclass(frozen=True)
class Source:
    """Where a data set comes from and what a complete copy holds.

    Attributes:
        name: folder name in the cache (e.g. "ml-100k").
        url: the official archive (a .zip) or, with `archive=False`, the single file.
        files: file names the folder must contain.
        env: environment variable naming a local folder (e.g. "MULTIREC_ML100K").
        archive_hash: published hash of the archive ("" when none is published).
        file_hashes: published hashes of the extracted files {name: hex}.
        algorithm: hashlib name of those hashes ("md5", "sha256").
        archive: True if `url` is a .zip to extract; False if it is the one file in `files`.

    Without published hashes (`file_hashes` empty) a download records the size and SHA-256
    of its files in `<folder>/.multirec-sha256.json` (trust on first use); `verify=True`
    compares against that record.
    """

    name: str
    url: str
    files: tuple[str, ...]
    env: str
    archive_hash: str = ""
    file_hashes: Mapping[str, str] = field(default_factory=dict)
    algorithm: str = "sha256"
    archive: bool = True

    def hint(self) -> str:
        """What the user can do instead of the automatic download."""
        unzip = "unzip it " if self.archive else "put it in a folder "
        return (f"download {self.url} yourself, {unzip}and pass data_dir=<the folder with "
                f"{', '.join(self.files)}> (or set ${self.env})")


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """`cache_dir`, else $MULTIREC_DATA, else ~/.cache/multirec/datasets."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("MULTIREC_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "multirec" / "datasets"


def fetch(url: str, dest: Path) -> None:
    """Download `url` to `dest` (tests replace this function)."""
    with urllib.request.urlopen(url, timeout=60) as resp, open(dest, "wb") as out:
        shutil.copyfileobj(resp, out, length=1 << 20)


def file_hash(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def missing_files(folder: Path, files: tuple[str, ...]) -> list[str]:
    """The names in `files` that are not regular files in `folder`."""
    return [f for f in files if not (folder / f).is_file()]


def check_hashes(folder: Path, hashes: Mapping[str, str], algorithm: str, hint: str) -> None:
    """Raise `DatasetError` naming the file and both hashes if any file differs."""
    for name, expected in hashes.items():
        actual = file_hash(folder / name, algorithm)
        if actual != expected:
            raise DatasetError(
                f"checksum mismatch for {str(folder / name)!r}: {algorithm} {actual}, expected "
                f"{expected} (the file is corrupt or not the official version); {hint}")


def _fetch_checked(url: str, dest: Path, expected: str, algorithm: str, hint: str) -> None:
    try:
        fetch(url, dest)
    except (OSError, ValueError) as exc:  # URLError, HTTPError and timeouts are OSErrors
        raise DatasetError(f"cannot download {url} ({exc}); {hint}") from exc
    if expected:
        digest = file_hash(dest, algorithm)
        if digest != expected:
            raise DatasetError(f"checksum mismatch for {url}: {algorithm} {digest}, expected {expected} "
                               f"(the download is corrupt or changed); try again or {hint}")


def _temp_dir(root: Path, name: str, hint: str) -> Path:
    try:
        root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    except OSError as exc:
        raise DatasetError(f"cannot create the cache folder {str(root)!r} ({exc}); pass cache_dir= "
                           f"or {hint}") from exc


def _extracted_folder(tmp: Path, source: Source) -> Path:
    """The folder of the extracted zip holding the files: <tmp>/<name>, <tmp> or its only subfolder."""
    candidates = [tmp / source.name, tmp] + sorted(p for p in tmp.iterdir() if p.is_dir())
    for folder in candidates:
        if folder.is_dir() and not missing_files(folder, source.files):
            return folder
    raise DatasetError(f"the zip from {source.url} lacks {list(source.files)}; {source.hint()}")


def _download_archive(source: Source, root: Path) -> Path:
    """`root/<name>` with the extracted official zip, downloading it if needed."""
    target = root / source.name
    tmp = _temp_dir(root, source.name, source.hint())
    try:
        zpath = tmp / f"{source.name}.zip"
        _fetch_checked(source.url, zpath, source.archive_hash, source.algorithm, source.hint())
        unpacked = tmp / "unpacked"
        try:
            with zipfile.ZipFile(zpath) as z:
                z.extractall(unpacked)
        except (zipfile.BadZipFile, OSError) as exc:
            raise DatasetError(f"cannot extract {source.url} ({exc}); {source.hint()}") from exc
        extracted = _extracted_folder(unpacked, source)
        check_hashes(extracted, source.file_hashes, source.algorithm, source.hint())
        if not source.file_hashes:
            _record(extracted, extracted, source.files)
        if target.exists():  # an incomplete earlier copy
            shutil.rmtree(target)
        os.replace(extracted, target)  # atomic: readers see all files or none
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _download_file(source: Source, root: Path) -> Path:
    """`root/<name>/<file>` downloaded from `source.url` (a plain file, not an archive)."""
    target = root / source.name
    tmp = _temp_dir(root, source.name, source.hint())
    try:
        part = tmp / source.files[0]
        _fetch_checked(source.url, part, source.archive_hash, source.algorithm, source.hint())
        target.mkdir(parents=True, exist_ok=True)
        if not source.file_hashes:
            _record(part.parent, target, source.files)
        os.replace(part, target / source.files[0])  # atomic: the file is whole or absent
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _record(folder: Path, into: Path, files: tuple[str, ...]) -> None:
    """Add {file: {"size", "sha256"}} of `folder/<file>` to the record `into/RECORD`."""
    path = into / RECORD
    entries = json.loads(path.read_text()) if path.is_file() else {}
    for name in files:
        entries[name] = {"size": (folder / name).stat().st_size, "sha256": file_hash(folder / name)}
    tmp = into / f"{RECORD}.tmp"
    tmp.write_text(json.dumps(entries, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _check_record(folder: Path, files: tuple[str, ...]) -> None:
    """Compare files with the sizes and SHA-256 recorded when they were downloaded."""
    path = folder / RECORD
    try:
        entries = json.loads(path.read_text())
        expected = {f: (int(entries[f]["size"]), str(entries[f]["sha256"])) for f in files}
    except FileNotFoundError:
        raise DatasetError(
            f"no checksums are published for these files and {str(path)!r} (written when multirec "
            f"downloads them) does not exist, so {str(folder)!r} cannot be verified; pass "
            f"verify=False") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"unreadable checksum record {str(path)!r} (missing {exc}); delete the "
                           f"folder to download again, or pass verify=False") from exc
    for name, (size, digest) in expected.items():
        actual = file_hash(folder / name)
        if (folder / name).stat().st_size != size or actual != digest:
            raise DatasetError(
                f"checksum mismatch for {str(folder / name)!r}: sha256 {actual}, recorded {digest} "
                f"at its download (the file changed since); delete it to download it again")


def locate(source: Source, data_dir: str | os.PathLike | None, cache_dir: str | os.PathLike | None,
           *, verify: bool = False) -> Path:
    """The folder with `source.files`: data_dir, then $env, then the cache (downloaded if missing).

    Local folders (data_dir or $env) are checked against `source.file_hashes` (or the record
    of the download) only with `verify=True`; a download is always checked against the
    published hashes; a cached copy is checked again with `verify=True`.
    """
    origin = "data_dir"
    if data_dir is None and os.environ.get(source.env):
        data_dir, origin = os.environ[source.env], f"${source.env}"
    if data_dir is None:
        root = cache_root(cache_dir)
        path = root / source.name
        if missing_files(path, source.files):
            return (_download_archive if source.archive else _download_file)(source, root)
    else:
        path = Path(data_dir).expanduser()
        missing = missing_files(path, source.files)
        if missing:
            raise DatasetError(
                f"{origin}={str(path)!r} lacks {missing}; it must be the official {source.name} "
                f"folder with {list(source.files)} (get {source.url})")
    if verify and source.file_hashes:
        check_hashes(path, source.file_hashes, source.algorithm, source.hint())
    elif verify:
        _check_record(path, source.files)
    return path
