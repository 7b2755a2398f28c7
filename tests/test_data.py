"""Raw-ID handling (property-based): IdMap round-trips and recommend's filters."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multirec.data import InteractionData
from multirec.errors import DataError, UnknownIDError
from multirec.idmap import IdMap
from multirec.model import MultimodalRecommender

SETTINGS = dict(deadline=None, derandomize=True)
raw_ids = st.one_of(st.text(max_size=12), st.integers(-(2**80), 2**80))
unique_ids = st.lists(raw_ids, max_size=40, unique_by=lambda x: (type(x), x))


@settings(max_examples=300, **SETTINGS)
@given(unique_ids)
def test_idmap_round_trips_any_ids(ids):
    m = IdMap(ids, kind="user")
    assert len(m) == len(ids)
    np.testing.assert_array_equal(m.index(ids), np.arange(len(ids)))
    assert list(m.ids(np.arange(len(ids)))) == ids
    again = IdMap.from_list(json.loads(json.dumps(m.to_list())), kind="user")
    assert again == m and all(type(a) is type(b) for a, b in zip(again, ids))
    for raw in ids:
        assert raw in m and int(m.index(raw)) == ids.index(raw)


@settings(max_examples=100, **SETTINGS)
@given(st.integers(-(2**62), 2**62))
def test_int_and_str_ids_are_distinct_and_unknown_ids_name_the_type(x):
    m = IdMap([x, str(x)])
    assert len(m) == 2 and m.index([x, str(x)]).tolist() == [0, 1]
    with pytest.raises(UnknownIDError, match=repr(x + 1)):
        IdMap([x]).index(x + 1)
    with pytest.raises(UnknownIDError, match="type int, you passed str"):
        IdMap([x]).index(f"{x}?")


def test_idmap_rejects_bad_ids():
    with pytest.raises(DataError, match="str or int"):
        IdMap([1.5])
    with pytest.raises(DataError, match="duplicates"):
        IdMap.from_list(["a", "a"])


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 30, 300)
    items = rng.integers(0, 25, 300)
    data = InteractionData.from_arrays([f"u{u}" for u in users], [f"i{i}" for i in items],
                                       item_ids=[f"i{i}" for i in range(25)])
    model = MultimodalRecommender(dim=8, epochs=2, show_progress=False, seed=0,
                                  cf=dict(no_components=4, epochs=2)).fit(data)
    return model, data


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], **SETTINGS)
@given(st.data())
def test_recommend_never_returns_filtered_items(fitted, draw):
    model, data = fitted
    users = draw.draw(st.lists(st.sampled_from(list(model.user_map_)), min_size=1, max_size=5))
    n = draw.draw(st.integers(1, 30))
    filter_seen = draw.draw(st.booleans())
    allowed = draw.draw(st.none() | st.lists(st.sampled_from(list(model.item_map_)), min_size=1,
                                             max_size=10, unique=True))
    ids, scores = model.recommend(users, n=n, filter_seen=filter_seen, items=allowed)
    assert ids.shape == scores.shape == (len(users), min(n, data.n_items))
    seen = model.user_items_
    for row, user in zip(ids, users):
        got = [x for x in row if x is not None]
        assert len(got) == len(set(got))  # no repeats
        if allowed is not None:
            assert set(got) <= set(allowed)
        if filter_seen:
            u = int(model.user_map_.index(user))
            seen_ids = set(model.item_map_.ids(seen[u].indices))
            assert not set(got) & seen_ids


# ---------------------------------------------------------------------- validation (issue #15)
def test_zero_weights_are_no_interaction_but_stay_in_the_catalogue():
    data = InteractionData.from_arrays(["u1", "u1", "u2"], ["i1", "i2", "i3"], [2.0, 0.0, 1.0])
    assert data.nnz == 2 and data.n_items == 3 and "i2" in data.items
    assert sorted(data.items.ids(data.item_index)) == ["i1", "i3"]


def test_negative_ratings_below_the_threshold_are_fine():
    data = InteractionData.from_arrays(["u1", "u2", "u3"], ["i1", "i2", "i3"], [-1.0, 5.0, 4.0],
                                       rating_threshold=4)
    assert data.nnz == 2 and set(data.weights) == {1.0}


def test_weights_up_to_float32_max_are_kept():
    data = InteractionData.from_arrays(["u1"], ["i1"], [3e38], binary=False)
    assert np.isfinite(data.weights).all() and data.weights[0] == np.float32(3e38)


@pytest.mark.parametrize("name", ["text", "image_2", "_x", "Audio"])
def test_identifier_modality_names_are_accepted(name):
    data = InteractionData.from_arrays(["u"], ["i"], item_content={name: {"i": "x"}})
    assert data.modalities == [name]


def test_content_keys_of_another_type_warn_and_become_cold_items():
    with pytest.warns(UserWarning, match="key 7 is of type int"):
        data = InteractionData.from_arrays(["u1"], ["a"], item_content={"text": {"a": "x", 7: "y"}})
    assert data.n_items == 2 and data.content_mask("text").tolist() == [True, True]


def test_content_nan_values_are_missing():
    data = InteractionData.from_arrays(["u1", "u2"], ["a", "b"],
                                       item_content={"text": {"a": "x", "b": np.float64("nan")}})
    assert data.content_mask("text").tolist() == [True, False]


def test_string_ids_with_leading_zeros_survive():
    import pandas as pd

    df = pd.DataFrame({"user": ["001", "002"], "item": ["00017", "017"]})
    data = InteractionData.from_dataframe(df)
    assert list(data.users) == ["001", "002"] and list(data.items) == ["00017", "017"]


def test_validate_helpers_return_clean_values():
    import pandas as pd

    from multirec.validate import check_id_list, check_items_arg, check_n, check_user_ids

    assert check_n(np.int64(5)) == 5 and type(check_n(np.int64(5))) is int
    assert check_id_list(("a", "b")) == ["a", "b"]
    assert check_id_list(np.array([1, 2])) == [1, 2]
    assert check_id_list(pd.Series(["x"])) == ["x"]
    assert check_user_ids("u1") == (["u1"], True)
    assert check_user_ids(np.int64(3)) == ([3], True)
    assert check_user_ids(["u1", "u2"]) == (["u1", "u2"], False)
    assert check_items_arg(None) is None and check_items_arg(("i",)) == ["i"]
