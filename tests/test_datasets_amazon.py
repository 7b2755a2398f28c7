"""Amazon Reviews 2023 loader on tiny gzipped JSON-lines files in the official layout."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from test_datasets_download import go_offline, serve

from multirec.datasets import amazon, download
from multirec.errors import DataError, DatasetError

REVIEWS = [  # user, product, rating, time (ms)
    ("A1", "P1", 5.0, 1588687728923), ("A1", "P2", 4.0, 1588687729000), ("A2", "P1", 3.0, 1588000000000),
    ("A2", "P3", 5.0, 1588100000000), ("A3", "P1", 4.0, 1589000000000), ("A3", "P2", 2.0, 1589000001000),
    ("A1", "P1", 1.0, 1590000000000),  # A1 re-rates P1 later: the latest (1.0) is kept
    ("A4", "P9", 5.0, 1590000000000),  # P9 has no metadata
]
META = [
    {"main_category": "All Beauty", "title": "Howard LC0008 Leather Conditioner", "average_rating": 4.8,
     "features": ["Safe for leather", "8 oz"], "description": ["Restores dry leather."],
     "images": [{"thumb": "https://m/t1.jpg", "large": "https://m/l1.jpg", "variant": "MAIN",
                 "hi_res": None}],
     "store": "Howard Products", "categories": ["Beauty", "Skin Care"], "parent_asin": "P1",
     "details": {"Brand": "Howard"}},
    {"title": "Crème Brûlée Soap", "features": [], "description": [], "images": [{"thumb": "https://m/t2.jpg"}],
     "store": None, "categories": [], "parent_asin": "P2"},
    {"title": "", "features": [], "description": [], "images": [], "store": "", "categories": [],
     "parent_asin": "P3"},
    {"title": "Never rated", "features": ["x"], "description": [], "images": [], "store": "S",
     "categories": ["Beauty"], "parent_asin": "P4"},
]


def write_amazon(folder: Path, category: str = "All_Beauty") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / f"{category}.jsonl.gz", "wt", encoding="utf-8") as f:
        for user, item, rating, ts in REVIEWS:
            f.write(json.dumps({"rating": rating, "title": "t", "text": "r", "images": [], "asin": item + "x",
                                "parent_asin": item, "user_id": user, "timestamp": ts,
                                "helpful_vote": 0, "verified_purchase": True}) + "\n")
    with gzip.open(folder / f"meta_{category}.jsonl.gz", "wt", encoding="utf-8") as f:
        for row in META:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return folder


def test_parses_the_official_layout(tmp_path):
    az = amazon.load("All_Beauty", write_amazon(tmp_path / "amazon"))
    d = az.data
    assert d.items.ids(np.arange(d.n_items)).tolist() == ["P1", "P2", "P3", "P4", "P9"]
    assert (d.n_users, d.nnz) == (4, 7)
    ratings = {(d.users.ids([u])[0], d.items.ids([i])[0]): (w, t)
               for u, i, w, t in zip(d.user_index, d.item_index, d.weights, d.timestamps)}
    assert ratings[("A1", "P1")] == (1.0, 1590000000.0)  # latest rating, seconds
    assert ratings[("A2", "P1")] == (3.0, 1588000000.0)
    text, tags = d.content["text"], d.content["tags"]
    assert text[0] == "Howard LC0008 Leather Conditioner. Safe for leather 8 oz Restores dry leather."
    assert tags[0] == ["Beauty", "Skin Care", "Howard Products"]
    assert text[1] == "Crème Brûlée Soap" and tags[1] is None  # no categories, no store
    assert text[2] is None and tags[2] is None  # empty metadata
    assert text[4] is None and tags[4] is None  # P9: rated, not in the metadata
    assert d.item_counts()[3] == 0  # P4: metadata only, a cold item
    assert az.image_urls == {"P1": "https://m/l1.jpg", "P2": "https://m/t2.jpg"}
    names = d.item_features.names
    assert {names[j] for j in d.item_features.matrix[0].indices} == {
        "category:Beauty", "category:Skin Care", "store:Howard Products"}
    assert list(az.items["item"]) == ["P1", "P2", "P3", "P4"]


def test_min_rating_and_k_core(tmp_path):
    folder = write_amazon(tmp_path / "amazon")
    d = amazon.load("All_Beauty", folder, min_rating=4).data
    assert d.nnz == 4 and np.all(d.weights == 1.0)  # A1-P2, A2-P3, A3-P1, A4-P9 (A1-P1 is now 1)
    core = amazon.load("All_Beauty", folder, k_core=2).data
    # P3, P9 (1 rating) go, then A2 and A4 (1 left); A1, A3 × P1, P2 remain
    assert sorted(core.items.ids(np.arange(core.n_items))) == ["P1", "P2"]
    assert sorted(core.users.ids(np.arange(core.n_users))) == ["A1", "A3"] and core.nnz == 4
    assert core.content["tags"][core.items.index("P1")] == ["Beauty", "Skin Care", "Howard Products"]
    with pytest.raises(DataError, match="3-core"):
        amazon.load("All_Beauty", folder, k_core=3)
    with pytest.raises(DataError, match="k_core.*0"):
        amazon.load("All_Beauty", folder, k_core=0)
    with pytest.raises(DataError, match="min_rating=6"):
        amazon.load("All_Beauty", folder, min_rating=6)


def test_errors(tmp_path):
    with pytest.raises(DatasetError, match="'../etc'"):
        amazon.load("../etc", tmp_path)
    with pytest.raises(DatasetError, match="All_Beauty.jsonl.gz") as err:
        amazon.load("All_Beauty", tmp_path)
    assert f"{amazon.BASE_URL}/review_categories/All_Beauty.jsonl.gz" in str(err.value)
    folder = write_amazon(tmp_path / "amazon")
    (folder / "meta_All_Beauty.jsonl.gz").unlink()
    with pytest.raises(DatasetError, match="meta_All_Beauty.jsonl.gz"):
        amazon.load("All_Beauty", folder)
    write_amazon(folder)
    (folder / "All_Beauty.jsonl.gz").write_bytes(b"not gzip")
    with pytest.raises(DatasetError, match="official layout"):
        amazon.load("All_Beauty", folder)
    with gzip.open(folder / "All_Beauty.jsonl.gz", "wt") as f:
        f.write('{"user_id": "A1", "parent_asin": "P1", "timestamp": 1}\n')  # no rating
    with pytest.raises(DatasetError, match="rating"):
        amazon.load("All_Beauty", folder)


def test_download_two_files_record_and_verify(tmp_path, monkeypatch):
    monkeypatch.delenv("MULTIREC_AMAZON2023", raising=False)
    src = write_amazon(tmp_path / "src", "Video_Games")
    urls = serve(monkeypatch, {f.name: f for f in src.iterdir()})
    cache = tmp_path / "cache"
    az = amazon.load("Video_Games", cache_dir=cache)
    assert urls == [f"{amazon.BASE_URL}/review_categories/Video_Games.jsonl.gz",
                    f"{amazon.BASE_URL}/meta_categories/meta_Video_Games.jsonl.gz"]
    assert az.path == cache / "amazon-2023" and az.data.nnz == 7
    record = json.loads((az.path / download.RECORD).read_text())
    assert set(record) == {"Video_Games.jsonl.gz", "meta_Video_Games.jsonl.gz"}
    assert amazon.load("Video_Games", cache_dir=cache, verify=True).data.nnz == 7 and len(urls) == 2
    with gzip.open(az.path / "meta_Video_Games.jsonl.gz", "wt") as f:
        f.write(json.dumps(META[0]) + "\n")
    with pytest.raises(DatasetError, match="meta_Video_Games.jsonl.gz.*recorded"):
        amazon.load("Video_Games", cache_dir=cache, verify=True)


def test_offline_says_where_to_put_the_files(tmp_path, monkeypatch):
    monkeypatch.delenv("MULTIREC_AMAZON2023", raising=False)
    go_offline(monkeypatch, "no route to host")
    with pytest.raises(DatasetError, match="no route to host") as err:
        amazon.load("All_Beauty", cache_dir=tmp_path)
    msg = str(err.value)
    assert "All_Beauty.jsonl.gz" in msg and "data_dir=" in msg and "$MULTIREC_AMAZON2023" in msg
    assert not any(tmp_path.iterdir())


def test_default_category(tmp_path):
    assert amazon.DEFAULT_CATEGORY == "All_Beauty"
    assert amazon.load(None, write_amazon(tmp_path / "amazon")).data.nnz == 7
