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
