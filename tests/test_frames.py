"""multirec.frames: recommendations as a long DataFrame, (user, item) pairs from a DataFrame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from multirec.errors import DataError
from multirec.frames import pairs_from_frame, recommendations_frame


def test_long_frame_drops_padding_and_ranks_per_user():
    ids = np.array([["a", "b", "c"], ["d", None, None]], dtype=object)
    scores = np.array([[0.9, 0.5, 0.1], [0.7, np.nan, np.nan]])
    df = recommendations_frame(["u1", "u2"], ids, scores)
    assert list(df.columns) == ["user", "item", "score", "rank"]
    assert df["user"].tolist() == ["u1", "u1", "u1", "u2"]
    assert df["item"].tolist() == ["a", "b", "c", "d"]
    assert df["rank"].tolist() == [1, 2, 3, 1]
    assert df["score"].dtype == np.float32 and df["rank"].dtype == np.int32
    np.testing.assert_allclose(df["score"], [0.9, 0.5, 0.1, 0.7], rtol=1e-6)


def test_int_ids_stay_int64_even_with_padding():
    ids = np.array([[10, 11], [12, None]], dtype=object)  # recommend pads int IDs with None
    df = recommendations_frame(np.array([1, 2]), ids, np.array([[0.5, 0.4], [0.3, np.nan]]))
    assert df["item"].dtype == np.int64 and df["user"].dtype == np.int64
    assert df["item"].tolist() == [10, 11, 12] and df["user"].tolist() == [1, 1, 2]


def test_scalar_user_gives_one_ranked_block():
    df = recommendations_frame("u9", np.array(["x", "y"], dtype=object), np.array([0.8, 0.2]))
    assert df["user"].tolist() == ["u9", "u9"] and df["rank"].tolist() == [1, 2]


def test_all_padding_gives_an_empty_frame_with_the_columns():
    df = recommendations_frame(["u1"], np.array([[None, None]], dtype=object),
                               np.array([[np.nan, np.nan]]))
    assert len(df) == 0 and list(df.columns) == ["user", "item", "score", "rank"]


def test_shape_mismatch_names_the_shapes():
    with pytest.raises(DataError, match=r"\(2, 3\).*\(2, 2\)"):
        recommendations_frame(["u1", "u2"], np.zeros((2, 3), object), np.zeros((2, 2)))
    with pytest.raises(DataError, match="3 users"):
        recommendations_frame(["u1", "u2", "u3"], np.zeros((2, 2), object), np.zeros((2, 2)))


def test_round_trip_with_recommend_output():
    from multirec.datasets.synthetic import make_synthetic
    from multirec.model import MultimodalRecommender

    ds = make_synthetic(n_users=30, n_items=25, interactions_per_user=5, modalities=("text",), seed=2)
    model = MultimodalRecommender(encoders={"text": "text-hash"}, epochs=1, dim=8,
                                  show_progress=False).fit(ds.data)
    users = ["user_0000", "user_0007"]
    ids, scores = model.recommend(users, n=25)  # n > eligible: None padding
    df = recommendations_frame(users, ids, scores)
    for r, u in enumerate(users):
        sub = df[df["user"] == u]
        assert sub["item"].tolist() == [i for i in ids[r] if i is not None]
    u, i = pairs_from_frame(df)
    np.testing.assert_allclose(model.score(u, i), df["score"].to_numpy(), rtol=1e-5)


def test_pairs_from_frame_keeps_id_types_and_custom_columns():
    df = pd.DataFrame({"uid": [3, 1, 3], "iid": ["a", "b", "c"], "x": [0, 0, 0]})
    users, items = pairs_from_frame(df, user_col="uid", item_col="iid")
    assert users.dtype == np.int64 and users.tolist() == [3, 1, 3]
    assert items.tolist() == ["a", "b", "c"] and all(isinstance(x, str) for x in items)


def test_pairs_from_frame_errors_name_the_column():
    df = pd.DataFrame({"user": ["u1"], "product": ["i1"]})
    with pytest.raises(DataError, match=r"'item'.*\['user', 'product'\].*item_col"):
        pairs_from_frame(df)
    with pytest.raises(DataError, match="'nope'"):
        pairs_from_frame(df, user_col="nope", item_col="product")
    with pytest.raises(DataError, match="missing value.*index 1"):
        pairs_from_frame(pd.DataFrame({"user": ["u1", None], "item": ["a", "b"]}))
    with pytest.raises(DataError, match="floats"):
        pairs_from_frame(pd.DataFrame({"user": [1.0, 2.0], "item": ["a", "b"]}))
    with pytest.raises(DataError, match="list"):
        pairs_from_frame([("u1", "i1")])
