"""MovieLens loader: the real 100K files (when MULTIREC_ML100K is set), tiny files in the
official layouts, and the download path (file:// URL, checksum, failures)."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from multirec.datasets import download, movielens
from multirec.errors import DataError, DatasetError

ML100K = os.environ.get("MULTIREC_ML100K")
needs_data = pytest.mark.skipif(
    not ML100K or not Path(ML100K, "u.data").is_file(),
    reason="MovieLens 100K not found: set MULTIREC_ML100K to the ml-100k folder "
           "(build it offline with ../shared/data/get-ml-100k; .ci/run does)")


# ---------------------------------------------------------------------- the real files
@needs_data
def test_load_ml100k_counts_text_and_features():
    ml = movielens.load("ml-100k", ML100K)
    d = ml.data
    assert (d.n_users, d.n_items, d.nnz) == (943, 1682, 100000)
    assert set(np.unique(d.weights)) == {1, 2, 3, 4, 5}
    assert d.timestamps is not None and d.timestamps.min() > 8e8
    assert "Toy Story" in d.content["text"][d.items.index(1)]
    assert d.content["text"][0] == "Toy Story (1995). Genres: Animation, Children's, Comedy"
    feats = {d.item_features.names[j] for j in d.item_features.matrix[0].indices}
    assert feats == {"genre:Animation", "genre:Children's", "genre:Comedy", "decade:1990"}
    ufeats = {d.user_features.names[j] for j in d.user_features.matrix[d.users.index(1)].indices}
    assert ufeats == {"age:18-24", "gender:M", "occupation:technician"}  # user 1: 24, M, technician
    assert len(ml.items) == 1682 and len(ml.users) == 943


@needs_data
def test_min_rating_keeps_the_catalogue():
    pos = movielens.load("ml-100k", ML100K, min_rating=4)
    assert pos.data.nnz == 55375 and (pos.data.n_users, pos.data.n_items) == (943, 1682)
    assert set(np.unique(pos.data.weights)) == {1.0}
    assert (pos.data.item_counts() == 0).sum() > 0  # items without a 4+ rating stay, cold


@needs_data
def test_env_var_is_used(monkeypatch, tmp_path):
    monkeypatch.setenv("MULTIREC_ML100K", ML100K)
    monkeypatch.setenv("MULTIREC_DATA", str(tmp_path))  # must not be touched
    assert movielens.load().data.nnz == 100000
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------- tiny official layouts
def write_100k(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text("1\t10\t5\t881250949\n1\t11\t3\t881250950\n2\t10\t4\t881250951\n"
                                   "3\t12\t2\t881250952\n2\t12\t5\t881250953\n")
    genres = {10: "0|0|0|1|1|1" + "|0" * 13, 11: "0|1" + "|0" * 17, 12: "1" + "|0" * 18}
    lines = [f"10|Toy Story (1995)|01-Jan-1995||http://x|{genres[10]}",
             f"11|Café Society|01-Jan-1987||http://x|{genres[11]}",  # no year in the title
             f"12|unknown||||{genres[12]}",
             f"13|Never Rated (1970)|01-Jan-1970||http://x|{genres[11]}"]
    (folder / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    (folder / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n3|12|F|student|1\n")
    return folder


def write_1m(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.dat").write_text(
        "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    (folder / "movies.dat").write_bytes(
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "661::James and the Giant Peach (1996)::Animation|Children's|Musical\n"
        "7::Star Wars: Episode IV - A New Hope (1977)::Action|Sci-Fi\n".encode("latin-1"))
    (folder / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    return folder


def test_parses_the_100k_layout(tmp_path):
    ml = movielens.load("ml-100k", write_100k(tmp_path / "ml-100k"))
    d = ml.data
    assert (d.n_users, d.n_items, d.nnz) == (3, 4, 5)
    assert d.content["text"][d.items.index(10)] == "Toy Story (1995). Genres: Animation, Children's, Comedy"
    assert d.content["text"][d.items.index(11)] == "Café Society. Genres: Action"  # latin-1 decoded
    # the year comes from the title, else from the release date
    assert ml.items["year"].astype("Float64").fillna(-1).tolist() == [1995, 1987, -1, 1970]
    names = d.item_features.names
    assert {names[j] for j in d.item_features.matrix[d.items.index(12)].indices} == {"genre:unknown"}
    assert list(ml.users["age_group"]) == ["18-24", "50-55", "under-18"]
    assert d.weights.tolist() == [5, 3, 4, 5, 2]  # rows sorted by (user, item) index
    assert d.item_counts()[d.items.index(13)] == 0  # never rated, still in the catalogue


def test_min_rating_drops_rows_but_not_items(tmp_path):
    d = movielens.load("ml-100k", write_100k(tmp_path / "ml-100k"), min_rating=4).data
    assert d.nnz == 3 and d.n_items == 4 and d.n_users == 3
    assert np.all(d.weights == 1.0)
    with pytest.raises(DataError, match="min_rating"):
        movielens.load("ml-100k", tmp_path / "ml-100k", min_rating="4")


def test_parses_the_1m_layout(tmp_path):
    ml = movielens.load("ml-1m", write_1m(tmp_path / "ml-1m"))
    d = ml.data
    assert (d.n_users, d.n_items, d.nnz) == (2, 3, 3)
    star_wars = "Star Wars: Episode IV - A New Hope (1977). Genres: Action, Sci-Fi"  # ':' in the title
    assert d.content["text"][d.items.index(7)] == star_wars
    assert list(ml.users["occupation"]) == ["K-12 student", "self-employed"]
    assert list(ml.users["age_group"]) == ["under-18", "56+"]
    assert d.timestamps.tolist() == [978300760, 978302109, 978298413]
    assert d.weights.tolist() == [5, 3, 4]


# ---------------------------------------------------------------------- errors
def test_bad_folder_env_and_name(tmp_path, monkeypatch):
    with pytest.raises(DatasetError, match="u.data") as err:
        movielens.load("ml-100k", tmp_path)
    assert str(tmp_path) in str(err.value) and "u.item" in str(err.value)
    monkeypatch.setenv("MULTIREC_ML1M", str(tmp_path / "nowhere"))
    with pytest.raises(DatasetError, match=r"\$MULTIREC_ML1M.*ratings.dat"):
        movielens.load("ml-1m")
    with pytest.raises(DatasetError, match="unknown MovieLens set 'ml-5'"):
        movielens.load("ml-5", tmp_path)


def test_unparsable_files(tmp_path):
    folder = write_100k(tmp_path / "ml-100k")
    (folder / "u.data").write_text("not\ta\trating\tfile\n")
    with pytest.raises(DatasetError, match="official layout"):
        movielens.load("ml-100k", folder)


# ---------------------------------------------------------------------- download
def _zip_of(folder: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w") as z:
        for f in sorted(folder.iterdir()):
            z.write(f, f"{folder.name}/{f.name}")
    return dest


@pytest.fixture
def offline_100k(tmp_path, monkeypatch):
    """A local file:// 'official' zip, with the env var unset."""
    monkeypatch.delenv("MULTIREC_ML100K", raising=False)
    zpath = _zip_of(write_100k(tmp_path / "src" / "ml-100k"), tmp_path / "ml-100k.zip")
    md5 = hashlib.md5(zpath.read_bytes()).hexdigest()
    spec = movielens.SETS["ml-100k"]
    monkeypatch.setitem(movielens.SETS, "ml-100k",
                        movielens._Set(zpath.as_uri(), md5, spec.env, spec.files))
    return zpath


def test_download_from_url_with_checksum_and_cache(offline_100k, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    ml = movielens.load("ml-100k", cache_dir=cache)
    assert ml.data.nnz == 5 and ml.path == cache / "ml-100k"
    assert sorted(p.name for p in cache.iterdir()) == ["ml-100k"]  # no temp leftovers

    def no_network(url, dest):
        raise AssertionError("the cached copy should be used")

    monkeypatch.setattr(download, "fetch", no_network)
    assert movielens.load("ml-100k", cache_dir=cache).data.nnz == 5
    monkeypatch.setenv("MULTIREC_DATA", str(cache))  # cache root from the environment
    assert movielens.load("ml-100k").path == cache / "ml-100k"


def test_checksum_mismatch_leaves_nothing(offline_100k, tmp_path, monkeypatch):
    spec = movielens.SETS["ml-100k"]
    monkeypatch.setitem(movielens.SETS, "ml-100k", movielens._Set(spec.url, "0" * 32, spec.env, spec.files))
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError, match="checksum mismatch.*expected 0{32}"):
        movielens.load("ml-100k", cache_dir=cache)
    assert not any(cache.iterdir())


def test_official_checksum_rejects_other_bytes(offline_100k, tmp_path, monkeypatch):
    spec = movielens.SETS["ml-100k"]
    official = "0e33842e24a9c977be4e0107933c0723"  # GroupLens' published md5 of ml-100k.zip
    monkeypatch.setitem(movielens.SETS, "ml-100k", movielens._Set(spec.url, official, spec.env, spec.files))
    with pytest.raises(DatasetError, match=official):
        movielens.load("ml-100k", cache_dir=tmp_path / "cache")


def test_corrupt_zip(offline_100k, tmp_path, monkeypatch):
    offline_100k.write_bytes(b"not a zip")
    spec = movielens.SETS["ml-100k"]
    md5 = hashlib.md5(b"not a zip").hexdigest()
    monkeypatch.setitem(movielens.SETS, "ml-100k", movielens._Set(spec.url, md5, spec.env, spec.files))
    with pytest.raises(DatasetError, match="cannot extract"):
        movielens.load("ml-100k", cache_dir=tmp_path / "cache")


def test_download_failure_tells_to_pass_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("MULTIREC_ML100K", raising=False)

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(download.urllib.request, "urlopen", offline)
    with pytest.raises(DatasetError, match="network unreachable.*data_dir=") as err:
        movielens.load("ml-100k", cache_dir=tmp_path)
    assert "https://files.grouplens.org/datasets/movielens/ml-100k.zip" in str(err.value)
    assert not any(tmp_path.iterdir())
