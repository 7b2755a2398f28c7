"""MIND-small loader on tiny files in the official layout (never downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_datasets_download import serve, zip_folder

from multirec.datasets import download, mind
from multirec.errors import DataError, DatasetError

NEWS = [
    ["N1", "sports", "football_nfl", 'The "Big" Game', "A recap of the game.", "https://x/1", "[]", "[]"],
    ["N2", "news", "newsworld", "Élection results", "", "https://x/2", '[{"Label": "x"}]', "[]"],
    ["N3", "lifestyle", "lifestyleroyals", "Royal news", "Short abstract", "https://x/3", "[]", "[]"],
    ["N4", "sports", "tennis", "Never clicked", "Abstract four", "https://x/4", "[]", "[]"],
]
BEHAVIORS = [
    ["1", "U1", "11/11/2019 9:05:58 AM", "N1 N2", "N3-1 N4-0"],
    ["2", "U1", "11/12/2019 2:00:00 PM", "N1 N2", "N4-0 N2-1"],  # N2 clicked again: kept once
    ["3", "U2", "11/13/2019 12:30:00 AM", "", "N1-1 N4-0 N3-0"],  # empty history
]


def write_mind(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "news.tsv").write_text("".join("\t".join(r) + "\n" for r in NEWS), encoding="utf-8")
    (folder / "behaviors.tsv").write_text("".join("\t".join(r) + "\n" for r in BEHAVIORS))
    return folder


def unix(text: str) -> float:
    return pd.Timestamp(pd.to_datetime(text, format="%m/%d/%Y %I:%M:%S %p")).timestamp()


def test_parses_the_official_layout(tmp_path):
    m = mind.load("train", write_mind(tmp_path / "MINDsmall_train"))
    d = m.data
    assert d.items.ids(np.arange(d.n_items)).tolist() == ["N1", "N2", "N3", "N4"]
    assert (d.n_users, d.nnz) == (2, 4)
    pairs = {(d.users.ids([u])[0], d.items.ids([i])[0]): t
             for u, i, t in zip(d.user_index, d.item_index, d.timestamps)}
    first = unix("11/11/2019 9:05:58 AM")
    assert pairs == {("U1", "N1"): first - 1, ("U1", "N2"): first - 1,  # history: before line 1
                     ("U1", "N3"): first, ("U2", "N1"): unix("11/13/2019 12:30:00 AM")}
    assert d.item_counts()[3] == 0  # N4 shown, never clicked: a cold item
    text, tags = d.content["text"], d.content["tags"]
    assert text[0] == 'The "Big" Game. A recap of the game.'
    assert text[1] == "Élection results"  # no abstract
    assert tags[2] == ["lifestyle", "lifestyleroyals"]
    names = d.item_features.names
    assert {names[j] for j in d.item_features.matrix[0].indices} == {"category:sports",
                                                                     "subcategory:football_nfl"}
    assert m.impressions is None and len(m.behaviors) == 3
    assert m.news.loc[1, "title_entities"] == '[{"Label": "x"}]'


def test_impressions_and_no_history(tmp_path):
    folder = write_mind(tmp_path / "dev")
    m = mind.load("dev", folder, impressions=True, history=False)
    imp = m.impressions
    assert len(imp) == 7 and imp["clicked"].sum() == 3
    assert imp[imp["impression"] == 3][["item", "clicked"]].values.tolist() == [
        ["N1", True], ["N4", False], ["N3", False]]
    assert m.data.nnz == 3  # U1-N3, U1-N2, U2-N1
    u1_n2 = [t for u, i, t in zip(m.data.user_index, m.data.item_index, m.data.timestamps)
             if (u, i) == (0, 1)]
    assert u1_n2 == [unix("11/12/2019 2:00:00 PM")]


def test_errors(tmp_path, monkeypatch):
    with pytest.raises(DatasetError, match="unknown MIND split 'test'"):
        mind.load("test", tmp_path)
    with pytest.raises(DatasetError, match="behaviors.tsv") as err:
        mind.load("train", tmp_path)
    assert mind.SOURCES["train"].url in str(err.value)
    monkeypatch.setenv("MULTIREC_MIND_DEV", str(tmp_path / "none"))
    with pytest.raises(DatasetError, match=r"\$MULTIREC_MIND_DEV"):
        mind.load("dev")
    folder = write_mind(tmp_path / "bad")
    (folder / "behaviors.tsv").write_text("1\tU1\t11/11/2019 9:05:58 AM\t\tN3-yes\n")
    with pytest.raises(DatasetError, match="N3-yes"):
        mind.load("train", folder)
    (folder / "behaviors.tsv").write_text("1\tU1\tyesterday\t\tN3-1\n")
    with pytest.raises(DatasetError, match="official layout"):
        mind.load("train", folder)
    with pytest.raises(DataError, match="impressions"):
        mind.load("train", write_mind(tmp_path / "ok"), impressions="yes")


def test_download_records_hashes_and_verify(tmp_path, monkeypatch):
    """No checksums are published: the download is recorded (trust on first use)."""
    monkeypatch.delenv("MULTIREC_MIND_TRAIN", raising=False)
    src = write_mind(tmp_path / "src")
    zpath = zip_folder(src, tmp_path / "MINDsmall_train.zip")  # files at the root, as shipped
    urls = serve(monkeypatch, {"MINDsmall_train.zip": zpath})
    cache = tmp_path / "cache"
    m = mind.load("train", cache_dir=cache)
    assert urls == ["https://mind201910small.blob.core.windows.net/release/MINDsmall_train.zip"]
    assert m.path == cache / "MINDsmall_train" and m.data.nnz == 4
    assert (m.path / download.RECORD).is_file()
    assert mind.load("train", cache_dir=cache, verify=True).data.nnz == 4 and len(urls) == 1
    (m.path / "news.tsv").write_text("\t".join(NEWS[0]) + "\n")
    with pytest.raises(DatasetError, match="news.tsv.*recorded"):
        mind.load("train", cache_dir=cache, verify=True)
    with pytest.raises(DatasetError, match="cannot be verified"):
        mind.load("train", src, verify=True)  # a hand-made folder has no record


def test_default_split_is_train(tmp_path):
    assert mind.load(None, write_mind(tmp_path / "train")).data.nnz == 4
