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
           "download_file", "record_hash", "check_recorded"]


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
    """

    name: str
    url: str
    files: tuple[str, ...]
    env: str
    archive_hash: str = ""
    file_hashes: Mapping[str, str] = field(default_factory=dict)
    algorithm: str = "sha256"

    def hint(self) -> str:
        """What the user can do instead of the automatic download."""
        return (f"download {self.url} yourself, unzip it and pass data_dir=<the folder with "
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
        if target.exists():  # an incomplete earlier copy
            shutil.rmtree(target)
        os.replace(extracted, target)  # atomic: readers see all files or none
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def download_file(url: str, dest: Path, hint: str) -> Path:
    """Download one file to `dest` atomically (temp file, then rename) and record its hash.

    Nothing is published to check it against, so `<dest>.sha256` records the size and
    SHA-256 of the first download (trust on first use); `check_recorded` compares later.
    """
    if dest.is_file():
        return dest
    tmp = _temp_dir(dest.parent, dest.name, hint)
    try:
        part = tmp / dest.name
        _fetch_checked(url, part, "", "sha256", hint)
        record_hash(part, dest.parent / f"{dest.name}.sha256")
        os.replace(part, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def record_hash(path: Path, record: Path) -> None:
    """Write {"size": bytes, "sha256": hex} of `path` to the JSON file `record`."""
    record.write_text(json.dumps({"size": path.stat().st_size, "sha256": file_hash(path)}))


def check_recorded(path: Path, hint: str) -> None:
    """Compare `path` with the size and SHA-256 recorded at its download, if recorded."""
    record = path.parent / f"{path.name}.sha256"
    if not record.is_file():
        raise DatasetError(f"no recorded checksum for {str(path)!r} (only files downloaded by multirec "
                           f"have one); pass verify=False to read it unchecked")
    try:
        expected = json.loads(record.read_text())
        size, digest = int(expected["size"]), str(expected["sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"unreadable checksum record {str(record)!r} ({exc}); delete it and "
                           f"{hint}") from exc
    actual = file_hash(path)
    if path.stat().st_size != size or actual != digest:
        raise DatasetError(f"checksum mismatch for {str(path)!r}: sha256 {actual}, recorded {digest} "
                           f"at download (the file changed since); delete it to download again")


def locate(source: Source, data_dir: str | os.PathLike | None, cache_dir: str | os.PathLike | None,
           *, verify: bool = False) -> Path:
    """The folder with `source.files`: data_dir, then $env, then the cache (downloaded if missing).

    Local folders (data_dir or $env) are checked against `source.file_hashes` only with
    `verify=True`; a download is always checked; a cached copy was checked when downloaded
    and is checked again with `verify=True`.
    """
    origin = "data_dir"
    if data_dir is None and os.environ.get(source.env):
        data_dir, origin = os.environ[source.env], f"${source.env}"
    if data_dir is None:
        root = cache_root(cache_dir)
        path = root / source.name
        if missing_files(path, source.files):
            return _download_archive(source, root)
    else:
        path = Path(data_dir).expanduser()
        missing = missing_files(path, source.files)
        if missing:
            raise DatasetError(
                f"{origin}={str(path)!r} lacks {missing}; it must be the unzipped official "
                f"{source.name} folder with {list(source.files)} (get it from {source.url})")
    if verify:
        if not source.file_hashes:
            raise DatasetError(f"verify=True needs published hashes of the {source.name} files, and "
                               f"none are (only of the download, checked when downloading); pass "
                               f"verify=False")
        check_hashes(path, source.file_hashes, source.algorithm, source.hint())
    return path
