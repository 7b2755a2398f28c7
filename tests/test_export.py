"""multirec.export.recommend_all: streamed Parquet/CSV equals recommend(); bounded memory."""

from __future__ import annotations

import os
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from multirec.data import InteractionData
from multirec.datasets.synthetic import make_synthetic
from multirec.errors import ConfigError, NotFittedError, UnknownIDError
from multirec.export import recommend_all
from multirec.model import MultimodalRecommender

pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(scope="module")
def model():
    ds = make_synthetic(n_users=50, n_items=40, interactions_per_user=6, modalities=("text",), seed=4)
    return MultimodalRecommender(encoders={"text": "text-hash"}, epochs=2, dim=8,
                                 show_progress=False, seed=0).fit(ds.data)


def _expected(model, users, n, filter_seen=True):
    ids, scores = model.recommend(users, n=n, filter_seen=filter_seen)
    rows = []
    for u, row_ids, row_scores in zip(users, ids, scores):
        rows += [(u, i, s, r + 1) for r, (i, s) in enumerate(zip(row_ids, row_scores)) if i is not None]
    return pd.DataFrame(rows, columns=["user", "item", "score", "rank"])


def _check(df, want):
    assert list(df.columns) == ["user", "item", "score", "rank"]
    assert df["user"].tolist() == want["user"].tolist()
    assert df["item"].tolist() == want["item"].tolist()
    assert df["rank"].tolist() == want["rank"].tolist()
    np.testing.assert_allclose(df["score"].to_numpy(), want["score"].to_numpy(), rtol=1e-6)


def test_parquet_equals_recommend_for_every_user(model, tmp_path):
    out = recommend_all(model, n=7, path=tmp_path / "recs.parquet", batch_size=8, show_progress=False)
    assert out == tmp_path / "recs.parquet" and out.is_file()
    table = pq.read_table(out)
    assert str(table.schema.field("score").type) == "float"  # float32
    assert str(table.schema.field("rank").type) == "int32"
    assert str(table.schema.field("user").type) == "string"
    assert pq.ParquetFile(out).num_row_groups == 7  # ceil(50 / 8): one row group per batch
    df = table.to_pandas()
    users = model.user_map_.to_list()
    assert df["user"].unique().tolist() == users
    _check(df, _expected(model, users, 7))
    assert [p.name for p in tmp_path.iterdir()] == ["recs.parquet"]  # no temp file left
    umask = os.umask(0o022)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # an ordinary file, not a 0600 temp


def test_csv_for_given_users_and_filter_seen_false(model, tmp_path):
    users = ["user_0003", "user_0010", "user_0042"]
    out = recommend_all(model, users, n=40, path=tmp_path / "recs.csv", filter_seen=False,
                        show_progress=False)
    df = pd.read_csv(out, dtype={"user": str, "item": str})
    _check(df, _expected(model, users, 40, filter_seen=False))
    assert len(df) == 3 * 40


def test_padding_rows_are_dropped(model, tmp_path):
    users = ["user_0000", "user_0001"]
    df = pq.read_table(recommend_all(model, users, n=40, path=tmp_path / "r.parquet",
                                     show_progress=False)).to_pandas()
    seen = model.user_items_[model.user_map_.index(users)].getnnz(axis=1)
    assert df.groupby("user", sort=False).size().tolist() == (40 - seen).tolist()
    assert df["item"].notna().all() and np.isfinite(df["score"]).all()


def test_int_ids_are_written_as_int64(tmp_path):
    rng = np.random.default_rng(0)
    data = InteractionData.from_arrays(rng.integers(0, 15, 90).tolist(),
                                       rng.integers(500, 520, 90).tolist())
    m = MultimodalRecommender(epochs=1, dim=8, show_progress=False).fit(data)
    table = pq.read_table(recommend_all(m, n=5, path=tmp_path / "r.parquet", show_progress=False))
    assert str(table.schema.field("user").type) == "int64"
    assert str(table.schema.field("item").type) == "int64"
    users = m.user_map_.to_list()
    _check(table.to_pandas(), _expected(m, users, 5))
    csv = pd.read_csv(recommend_all(m, users[:3], n=5, path=tmp_path / "r.csv", show_progress=False))
    assert csv["item"].dtype == np.int64 and csv["user"].tolist()[0] == users[0]


def test_uses_the_item_index_when_built(model, tmp_path):
    pytest.importorskip("faiss")
    m = MultimodalRecommender.from_pretrained(_saved(model, tmp_path))
    m.build_index("flat")
    users = m.user_map_.to_list()[:10]
    df = pq.read_table(recommend_all(m, users, n=5, path=tmp_path / "r.parquet",
                                     show_progress=False)).to_pandas()
    _check(df, _expected(m, users, 5))  # m.recommend goes through the index too


def _saved(model, tmp_path):
    path = tmp_path / "model"
    model.save_pretrained(path)
    return path


def test_errors_name_the_bad_value(model, tmp_path):
    with pytest.raises(ConfigError, match=r"'\.json'.*\.csv"):
        recommend_all(model, path=tmp_path / "recs.json")
    with pytest.raises(ConfigError, match="n must be a positive int, got 0"):
        recommend_all(model, n=0, path=tmp_path / "r.csv")
    with pytest.raises(ConfigError, match="batch_size.*-1"):
        recommend_all(model, batch_size=-1, path=tmp_path / "r.csv")
    with pytest.raises(UnknownIDError, match="'nobody'"):
        recommend_all(model, ["user_0001", "nobody"], path=tmp_path / "r.csv")
    with pytest.raises(ConfigError, match="does not exist"):
        recommend_all(model, path=tmp_path / "missing" / "r.csv")
    with pytest.raises(NotFittedError):
        recommend_all(MultimodalRecommender(), path=tmp_path / "r.csv")
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_failure_midway_leaves_no_file(model, tmp_path, monkeypatch):
    old = tmp_path / "r.parquet"
    old.write_bytes(b"previous export")
    calls = {"n": 0}
    real = model.recommend

    def flaky(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("disk on fire")
        return real(*args, **kw)

    monkeypatch.setattr(model, "recommend", flaky)
    with pytest.raises(RuntimeError, match="disk on fire"):
        recommend_all(model, n=3, path=old, batch_size=5, show_progress=False)
    assert old.read_bytes() == b"previous export"  # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.parquet"]


def test_memory_stays_far_below_the_full_score_matrix(tmp_path):
    """20k items × 600 users: the dense float32 score matrix would be 48 MB.

    One batch of 8 users costs ~46 bytes per (user, item) inside `recommend` (float64 copies
    for the top-k), ~7.5 MB in all; holding every user's scores at once would not fit the bound.
    """
    n_items, n_users = 20_000, 600
    rng = np.random.default_rng(0)
    items = [f"i{i}" for i in range(n_items)]
    users = np.repeat(np.arange(n_users), 2)
    data = InteractionData.from_arrays(
        [f"u{u}" for u in users], [items[i] for i in rng.integers(0, n_items, users.size)],
        user_ids=[f"u{u}" for u in range(n_users)], item_ids=items,
        item_content={"text": {i: f"w{k % 97}" for k, i in enumerate(items)}})
    m = MultimodalRecommender(encoders={"text": {"name": "text-hash", "dim": 16}}, cf=False,
                              item_item=False, epochs=1, negatives=64, dim=8, valid_fraction=0,
                              show_progress=False).fit(data)
    full_matrix = n_users * n_items * 4
    tracemalloc.start()
    try:
        out = recommend_all(m, n=10, path=tmp_path / "big.parquet", batch_size=8,
                            show_progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < full_matrix / 4, f"peak {peak / 1e6:.1f} MB vs matrix {full_matrix / 1e6:.1f} MB"
    meta = pq.ParquetFile(out).metadata
    assert meta.num_rows == n_users * 10 and meta.num_row_groups == n_users // 8
    sample = [f"u{u}" for u in (0, 123, 599)]
    df = pq.read_table(out, filters=[("user", "in", sample)]).to_pandas()
    _check(df, _expected(m, sample, 10))
    assert os.path.getsize(out) > 0
