"""Last.fm HetRec 2011 loader on tiny files in the official layout (never downloads)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_datasets_download import go_offline, serve, sha256, zip_folder

from multirec.datasets import lastfm
from multirec.errors import DataError, DatasetError

OFFICIAL_ARTISTS_SHA = "c173881362c6b28551368fecb3c0be5a6a30a6cd859e1f5775413dfe46d48648"


def write_lastfm(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "user_artists.dat").write_text(
        "userID\tartistID\tweight\n2\t51\t13883\n2\t52\t11690\n2\t53\t4\n3\t51\t5\n3\t99\t700\n")
    (folder / "artists.dat").write_bytes(
        "id\tname\turl\tpictureURL\n"
        "51\tDuran Duran\thttp://www.last.fm/music/Duran+Duran\thttp://img/51.jpg\n"
        "52\tMorcheeba\thttp://www.last.fm/music/Morcheeba\thttp://img/52.jpg\n"
        '53\tBjörk "live"\thttp://www.last.fm/music/Bj%C3%B6rk\t\n'
        "54\tNever Played\thttp://www.last.fm/music/x\thttp://img/54.jpg\n".encode())
    (folder / "tags.dat").write_bytes(
        "tagID\ttagValue\n1\tmetal\n2\tnew wave\n3\tmúsica electrónica\n4\tunused\n".encode("latin-1"))
    (folder / "user_taggedartists.dat").write_text(
        "userID\tartistID\ttagID\tday\tmonth\tyear\n"
        "2\t52\t3\t1\t4\t2009\n3\t52\t3\t1\t4\t2009\n2\t52\t1\t1\t4\t2009\n"  # 52: música ×2, metal
        "2\t51\t2\t1\t4\t2009\n"
        "3\t99\t1\t1\t5\t2010\n"  # 99 has plays and tags but no artists.dat row
        "3\t51\t77\t1\t5\t2010\n")  # tag 77 is not in tags.dat: dropped
    return folder


def test_parses_the_official_layout(tmp_path):
    fm = lastfm.load(data_dir=write_lastfm(tmp_path / "hetrec2011-lastfm-2k"))
    d = fm.data
    assert (d.n_users, d.nnz) == (2, 5)
    assert d.items.ids(np.arange(d.n_items)).tolist() == [51, 52, 53, 54, 99]
    assert np.all(d.weights == 1.0)  # binary by default
    tags, text = d.content["tags"], d.content["text"]
    assert tags[d.items.index(52)] == ["música electrónica", "metal"]  # latin-1 decoded, by count
    assert tags[d.items.index(51)] == ["new wave"]
    assert tags[d.items.index(53)] is None and tags[d.items.index(54)] is None
    assert text[d.items.index(52)] == "Morcheeba. Tags: música electrónica, metal"
    assert text[d.items.index(53)] == 'Björk "live"'  # UTF-8 name with a quote, untagged
    assert text[d.items.index(99)] is None and tags[d.items.index(99)] == ["metal"]
    assert d.item_counts()[d.items.index(54)] == 0  # in artists.dat, never played: a cold item
    names = d.item_features.names
    assert {names[j] for j in d.item_features.matrix[d.items.index(52)].indices} == {
        "tag:música electrónica", "tag:metal"}
    assert fm.image_urls == {51: "http://img/51.jpg", 52: "http://img/52.jpg", 54: "http://img/54.jpg"}
    assert fm.artists.set_index("item").loc[99, "name"] is None
    assert len(fm.taggings) == 5 and set(fm.taggings["tag"]) == {"metal", "new wave", "música electrónica"}


def test_play_counts_min_plays_and_tag_limits(tmp_path):
    folder = write_lastfm(tmp_path / "fm")
    d = lastfm.load(data_dir=folder, binary=False).data
    assert sorted(d.weights.tolist()) == [4, 5, 700, 11690, 13883]
    d = lastfm.load(data_dir=folder, binary=False, min_plays=100).data
    assert sorted(d.weights.tolist()) == [700, 11690, 13883] and d.n_items == 5 and d.n_users == 2
    d = lastfm.load(data_dir=folder, min_plays=100).data
    assert d.nnz == 3 and np.all(d.weights == 1.0)
    d = lastfm.load(data_dir=folder, max_tags=1, text_tags=0).data
    assert d.content["tags"][d.items.index(52)] == ["música electrónica"]
    assert d.content["text"][d.items.index(52)] == "Morcheeba"
    for bad, kwargs in (("max_tags", {"max_tags": 0}), ("min_plays", {"min_plays": "10"}),
                        ("binary", {"binary": 1}), ("text_tags", {"text_tags": -1})):
        with pytest.raises(DataError, match=bad) as err:
            lastfm.load(data_dir=folder, **kwargs)
        assert repr(next(iter(kwargs.values()))) in str(err.value)


def test_verify_names_the_file_and_both_hashes(tmp_path):
    folder = write_lastfm(tmp_path / "fm")
    with pytest.raises(DatasetError, match="checksum mismatch") as err:
        lastfm.load(data_dir=folder, verify=True)
    msg = str(err.value)
    assert "user_artists.dat" in msg and sha256(folder / "user_artists.dat") in msg
    assert lastfm.SOURCE.file_hashes["user_artists.dat"] in msg


def test_missing_file_says_where_and_the_url(tmp_path, monkeypatch):
    folder = write_lastfm(tmp_path / "fm")
    (folder / "tags.dat").unlink()
    with pytest.raises(DatasetError, match="tags.dat") as err:
        lastfm.load(data_dir=folder)
    assert str(folder) in str(err.value) and lastfm.SOURCE.url in str(err.value)
    monkeypatch.setenv("MULTIREC_LASTFM", str(folder))
    with pytest.raises(DatasetError, match=r"\$MULTIREC_LASTFM"):
        lastfm.load()


def test_unparsable_file(tmp_path):
    folder = write_lastfm(tmp_path / "fm")
    (folder / "user_artists.dat").write_text("userID\tartistID\tweight\nx\ty\tz\n")
    with pytest.raises(DatasetError, match="official layout"):
        lastfm.load(data_dir=folder)
    (folder / "user_artists.dat").write_text("userID\tartistID\tweight\n2\t51\t3\n")
    (folder / "tags.dat").write_bytes("tagID\ttagValue\n1\tmetal\n".encode("utf-16"))
    with pytest.raises(DatasetError, match="tags.dat|official layout"):
        lastfm.load(data_dir=folder)


# ---------------------------------------------------------------------- download (faked)
@pytest.fixture
def fake_download(tmp_path, monkeypatch):
    """`download.fetch` copies a fixture zip (files at the zip root, as GroupLens ships it)."""
    monkeypatch.delenv("MULTIREC_LASTFM", raising=False)
    monkeypatch.delenv("MULTIREC_DATA", raising=False)
    src = write_lastfm(tmp_path / "src")
    zpath = zip_folder(src, tmp_path / "hetrec2011-lastfm-2k.zip")
    return src, serve(monkeypatch, {"hetrec2011-lastfm-2k.zip": zpath})


def test_download_is_checked_against_the_official_hashes(fake_download, tmp_path):
    src, calls = fake_download
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError, match="checksum mismatch") as err:
        lastfm.load(cache_dir=cache)
    assert calls == [lastfm.SOURCE.url]
    assert sha256(src / "user_artists.dat") in str(err.value)
    assert not any(cache.iterdir())  # nothing half-extracted left behind


def test_download_extract_cache_and_env(fake_download, tmp_path, monkeypatch):
    src, calls = fake_download
    hashes = {f: sha256(src / f) for f in lastfm.SOURCE.files}
    monkeypatch.setattr(lastfm, "SOURCE", replace(lastfm.SOURCE, file_hashes=hashes))
    cache = tmp_path / "cache"
    fm = lastfm.load(cache_dir=cache)
    assert fm.path == cache / "hetrec2011-lastfm-2k" and fm.data.nnz == 5
    assert sorted(p.name for p in cache.iterdir()) == ["hetrec2011-lastfm-2k"]
    assert len(calls) == 1
    monkeypatch.setenv("MULTIREC_DATA", str(cache))
    assert lastfm.load(verify=True).path == cache / "hetrec2011-lastfm-2k"  # cached copy
    assert len(calls) == 1  # not downloaded again
    (cache / "hetrec2011-lastfm-2k" / "artists.dat").write_text("id\tname\turl\tpictureURL\n")
    with pytest.raises(DatasetError, match="artists.dat"):
        lastfm.load(verify=True)


def test_offline_says_where_to_put_the_files(tmp_path, monkeypatch):
    monkeypatch.delenv("MULTIREC_LASTFM", raising=False)
    go_offline(monkeypatch)
    with pytest.raises(DatasetError, match="network unreachable") as err:
        lastfm.load(cache_dir=tmp_path)
    msg = str(err.value)
    assert lastfm.SOURCE.url in msg and "data_dir=" in msg and "$MULTIREC_LASTFM" in msg
    assert not any(tmp_path.iterdir())


def test_official_hashes_are_recorded():
    assert lastfm.SOURCE.file_hashes["artists.dat"] == OFFICIAL_ARTISTS_SHA
    assert set(lastfm.SOURCE.file_hashes) == set(lastfm.SOURCE.files)


def test_name_first_signature_like_the_other_loaders(tmp_path):
    folder = write_lastfm(tmp_path / "fm")
    assert lastfm.load(None, folder).data.nnz == lastfm.load("hetrec2011-lastfm-2k", folder).data.nnz == 5
    with pytest.raises(DatasetError, match="'lastfm-1k'"):
        lastfm.load("lastfm-1k", folder)
