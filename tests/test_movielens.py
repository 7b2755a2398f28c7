"""MovieLens loader on the official 100K layout (skipped when MULTIREC_ML100K is unset)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from multirec.datasets import movielens
from multirec.errors import DatasetError

ML100K = os.environ.get("MULTIREC_ML100K")
needs_data = pytest.mark.skipif(not ML100K or not Path(ML100K, "u.data").is_file(),
                                reason="set MULTIREC_ML100K to the ml-100k folder (.ci/run does)")


@needs_data
def test_load_ml100k():
    ml = movielens.load("ml-100k", ML100K)
    assert (ml.data.n_users, ml.data.n_items, ml.data.nnz) == (943, 1682, 100000)
    pos = movielens.load("ml-100k", ML100K, min_rating=4)
    assert pos.data.nnz == 55375 and pos.data.n_items == 1682
    assert "Toy Story" in pos.data.content["text"][0] and "Animation" in pos.data.content["text"][0]
    assert pos.data.item_features is not None and pos.data.timestamps is not None


def test_bad_folder_and_name(tmp_path):
    with pytest.raises(DatasetError, match="u.data"):
        movielens.load("ml-100k", tmp_path)
    with pytest.raises(DatasetError, match="unknown MovieLens"):
        movielens.load("ml-5", tmp_path)


def test_download_failure_is_clear(tmp_path, monkeypatch):
    monkeypatch.delenv("MULTIREC_ML100K", raising=False)

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(movielens.urllib.request, "urlopen", offline)
    with pytest.raises(DatasetError, match="data_dir"):
        movielens.load("ml-100k", cache_dir=tmp_path)
