"""`multirec.datasets.download` (cache root, locate, checksums, records), and the helpers the
other dataset tests share: a fixture zip, a fake `fetch` that serves local files, offline."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest

from multirec.datasets import download
from multirec.datasets.download import Source
from multirec.errors import DatasetError


# ---------------------------------------------------------------------- shared helpers
def zip_folder(folder: Path, dest: Path, prefix: str = "") -> Path:
    """Zip the files of `folder` under `prefix` ("" = at the zip root)."""
    with zipfile.ZipFile(dest, "w") as z:
        for f in sorted(folder.iterdir()):
            z.write(f, f"{prefix}{f.name}")
    return dest


def serve(monkeypatch, files: dict[str, Path]) -> list[str]:
    """Replace `download.fetch`: a URL ending in a key of `files` gets that file; returns the
    list of URLs fetched (any other URL fails the test)."""
    calls: list[str] = []

    def fake_fetch(url: str, dest: Path) -> None:
        calls.append(url)
        name = url.rsplit("/", 1)[1]
        assert name in files, f"unexpected download of {url}"
        shutil.copyfile(files[name], dest)

    monkeypatch.setattr(download, "fetch", fake_fetch)
    return calls


def go_offline(monkeypatch, message: str = "network unreachable") -> None:
    def offline(url: str, dest: Path) -> None:
        raise OSError(message)

    monkeypatch.setattr(download, "fetch", offline)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------- tests
def _tiny(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.txt").write_text("alpha\n")
    (folder / "b.txt").write_text("beta\n")
    return folder


def _source(**kw) -> Source:
    return Source(**({"name": "tiny", "url": "https://example.org/tiny.zip", "files": ("a.txt", "b.txt"),
                      "env": "MULTIREC_TINY"} | kw))


def test_cache_root_order(tmp_path, monkeypatch):
    monkeypatch.delenv("MULTIREC_DATA", raising=False)
    assert download.cache_root() == Path.home() / ".cache" / "multirec" / "datasets"
    monkeypatch.setenv("MULTIREC_DATA", str(tmp_path / "env"))
    assert download.cache_root() == tmp_path / "env"
    assert download.cache_root(tmp_path / "arg") == tmp_path / "arg"  # the argument wins


@pytest.mark.parametrize("prefix", ["", "tiny/", "other-name/"])
def test_zip_layouts_are_found(tmp_path, monkeypatch, prefix):
    monkeypatch.delenv("MULTIREC_TINY", raising=False)
    zpath = zip_folder(_tiny(tmp_path / "src"), tmp_path / "tiny.zip", prefix)
    calls = serve(monkeypatch, {"tiny.zip": zpath})
    path = download.locate(_source(), None, tmp_path / "cache")
    assert path == tmp_path / "cache" / "tiny" and (path / "a.txt").read_text() == "alpha\n"
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["tiny"]
    assert download.locate(_source(), None, tmp_path / "cache") == path and len(calls) == 1


def test_data_dir_then_env_then_cache(tmp_path, monkeypatch):
    local, env = _tiny(tmp_path / "local"), _tiny(tmp_path / "env")
    go_offline(monkeypatch)
    monkeypatch.setenv("MULTIREC_TINY", str(env))
    assert download.locate(_source(), local, None) == local
    assert download.locate(_source(), None, None) == env
    (env / "b.txt").unlink()
    with pytest.raises(DatasetError, match=r"\$MULTIREC_TINY=.*lacks \['b.txt'\]"):
        download.locate(_source(), None, None)


def test_published_hashes(tmp_path, monkeypatch):
    monkeypatch.delenv("MULTIREC_TINY", raising=False)
    src = _tiny(tmp_path / "src")
    good = {"a.txt": sha256(src / "a.txt"), "b.txt": sha256(src / "b.txt")}
    bad = {"a.txt": good["a.txt"], "b.txt": "0" * 64}
    assert download.locate(_source(file_hashes=good), src, None, verify=True) == src
    assert download.locate(_source(file_hashes=bad), src, None) == src  # local: unchecked by default
    with pytest.raises(DatasetError, match="checksum mismatch") as err:
        download.locate(_source(file_hashes=bad), src, None, verify=True)
    assert "b.txt" in str(err.value) and good["b.txt"] in str(err.value) and "0" * 64 in str(err.value)
    serve(monkeypatch, {"tiny.zip": zip_folder(src, tmp_path / "tiny.zip")})
    with pytest.raises(DatasetError, match="b.txt"):  # a download: always checked
        download.locate(_source(file_hashes=bad), None, tmp_path / "cache")
    assert not any((tmp_path / "cache").iterdir())


def test_archive_hash_and_bad_zip(tmp_path, monkeypatch):
    monkeypatch.delenv("MULTIREC_TINY", raising=False)
    zpath = zip_folder(_tiny(tmp_path / "src"), tmp_path / "tiny.zip")
    serve(monkeypatch, {"tiny.zip": zpath})
    with pytest.raises(DatasetError, match=f"md5 {hashlib.md5(zpath.read_bytes()).hexdigest()}, expected 0+"):
        download.locate(_source(archive_hash="0" * 32, algorithm="md5"), None, tmp_path / "c1")
    zpath.write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="cannot extract"):
        download.locate(_source(), None, tmp_path / "c2")
    zip_folder(_tiny(tmp_path / "other"), zpath, "x/y/")  # too deep: not the layout
    with pytest.raises(DatasetError, match=r"lacks \['a.txt', 'b.txt'\]"):
        download.locate(_source(), None, tmp_path / "c3")


def test_single_file_download_records_and_verifies(tmp_path, monkeypatch):
    monkeypatch.delenv("MULTIREC_TINY", raising=False)
    src = _tiny(tmp_path / "src")
    calls = serve(monkeypatch, {"a.txt": src / "a.txt"})
    one = _source(url="https://example.org/a.txt", files=("a.txt",), archive=False)
    path = download.locate(one, None, tmp_path / "cache")
    assert (path / "a.txt").read_text() == "alpha\n" and calls == [one.url]
    assert download.locate(one, None, tmp_path / "cache", verify=True) == path
    (path / "a.txt").write_text("changed\n")
    now, then = sha256(path / "a.txt"), sha256(src / "a.txt")
    with pytest.raises(DatasetError, match=f"sha256 {now}, recorded {then}"):
        download.locate(one, None, tmp_path / "cache", verify=True)
    with pytest.raises(DatasetError, match="cannot be verified"):
        download.locate(one, src, None, verify=True)  # a hand-made folder has no record
    assert "put it in a folder" in one.hint() and "unzip it" in _source().hint()


def test_offline_error_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("MULTIREC_TINY", raising=False)
    go_offline(monkeypatch, "name resolution failed")
    with pytest.raises(DatasetError, match="name resolution failed") as err:
        download.locate(_source(), None, tmp_path)
    msg = str(err.value)
    assert "https://example.org/tiny.zip" in msg and "data_dir=" in msg and "$MULTIREC_TINY" in msg
    assert not any(tmp_path.iterdir())
