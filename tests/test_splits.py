"""Splits: one shared catalogue, disjoint parts, nothing lost, no leakage (hypothesis)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from multirec.data import InteractionData
from multirec.errors import DataError
from multirec.splits import (
    Split,
    cold_item_split,
    cold_user_split,
    leave_last_out,
    random_split,
    temporal_split,
    train_valid_split,
)

SETTINGS = dict(deadline=None, derandomize=True)


def make_data(seed: int, n_users: int = 12, n_items: int = 15, n: int = 80, n_times: int = 6,
              timestamps: bool = True) -> InteractionData:
    """Random interactions with coarse timestamps (many ties), content and side features."""
    rng = np.random.default_rng(seed)
    users = [f"u{i}" for i in rng.integers(0, n_users, n)]
    items = [int(i) for i in rng.integers(0, n_items, n)]
    return InteractionData.from_arrays(
        users, items, rng.integers(1, 6, n).astype(float),
        rng.integers(0, n_times, n) if timestamps else None,
        binary=False, duplicates="max",
        item_ids=range(n_items + 2),  # two items without interactions
        item_content={"text": {i: f"item {i}" for i in range(0, n_items, 2)}},
        item_features={i: [f"g{i % 3}"] for i in range(n_items)},
        user_features={f"u{i}": [f"a{i % 2}"] for i in range(n_users)},
    )


def rows(d: InteractionData) -> dict[tuple[int, int], tuple[float, float | None]]:
    times = d.timestamps if d.timestamps is not None else [None] * d.nnz
    return {(int(u), int(i)): (float(w), t)
            for u, i, w, t in zip(d.user_index, d.item_index, d.weights, times)}


def check_common(data: InteractionData, split: Split) -> None:
    """Shared catalogue, disjoint parts, every interaction kept once with its weight and time."""
    for part in (split.train, split.test):
        assert part.users == data.users and part.items == data.items
        assert (part.n_users, part.n_items) == (data.n_users, data.n_items)
        assert part.content == data.content
        assert (part.item_features.matrix != data.item_features.matrix).nnz == 0
        assert (part.user_features.matrix != data.user_features.matrix).nnz == 0
    tr, te = rows(split.train), rows(split.test)
    fold = {}
    if split.fold_in is not None:
        assert split.fold_in.shape == (data.n_users, data.n_items)
        fold = {(int(u), int(i)): None for u, i in zip(*split.fold_in.nonzero())}
    assert not tr.keys() & te.keys() and not tr.keys() & fold.keys() and not te.keys() & fold.keys()
    assert len(tr) + len(te) + len(fold) == data.nnz
    assert {**tr, **te}.items() <= rows(data).items()
    assert split.train.nnz > 0 and split.test.nnz > 0


data_params = st.tuples(st.integers(0, 2**31), st.integers(2, 15), st.integers(2, 20),
                        st.integers(2, 120), st.integers(1, 8))
fractions = st.floats(0.01, 0.99)


@settings(max_examples=120, **SETTINGS)
@given(data_params, fractions, st.integers(0, 1000))
def test_random_and_train_valid(params, fraction, seed):
    data = make_data(*params)
    assume(data.nnz >= 2)
    split = random_split(data, fraction, seed)
    check_common(data, split)
    assert split.test.nnz == min(max(round(fraction * data.nnz), 1), data.nnz - 1)
    again = random_split(data, fraction, seed)
    assert rows(again.test) == rows(split.test)  # seeded
    tr, va = train_valid_split(data, fraction, seed)
    assert not rows(tr).keys() & rows(va).keys() and tr.nnz + va.nnz == data.nnz


@settings(max_examples=100, **SETTINGS)
@given(data_params, st.integers(1, 4), st.integers(0, 1000))
def test_leave_last_out(params, n, seed):
    data = make_data(*params)
    counts = data.user_counts()
    assume(data.nnz >= 2 and (counts > n).any())
    split = leave_last_out(data, n, seed)
    check_common(data, split)
    per_user = defaultdict(list)
    for (u, _), (_, t) in rows(split.test).items():
        per_user[u].append(t)
    assert set(per_user) == set(np.flatnonzero(counts > n).tolist())
    train_times = defaultdict(list)
    for (u, _), (_, t) in rows(split.train).items():
        train_times[u].append(t)
    for u, times in per_user.items():
        assert len(times) == n
        assert max(train_times[u]) <= min(times)  # the test part is the user's latest
    assert rows(leave_last_out(data, n, seed).test) == rows(split.test)


@settings(max_examples=100, **SETTINGS)
@given(data_params, fractions)
def test_temporal_cut(params, fraction):
    data = make_data(*params)
    assume(data.nnz >= 2 and len(np.unique(data.timestamps)) >= 2)
    split = temporal_split(data, fraction)
    check_common(data, split)
    assert split.train.timestamps.max() < split.test.timestamps.min()  # strict: no same-time leak
    achievable = [int((data.timestamps >= c).sum()) for c in np.unique(data.timestamps)[1:]]
    best = min(abs(a - fraction * data.nnz) for a in achievable)
    assert abs(split.test.nnz - fraction * data.nnz) == pytest.approx(best)  # closest possible cut


@settings(max_examples=100, **SETTINGS)
@given(data_params, fractions, st.integers(0, 1000))
def test_cold_items_never_in_train(params, fraction, seed):
    data = make_data(*params)
    active = np.flatnonzero(data.item_counts() > 0)
    assume(active.size >= 2)
    split = cold_item_split(data, fraction, seed)
    check_common(data, split)
    cold = split.candidate_items
    assert len(cold) == min(max(round(fraction * active.size), 1), active.size - 1)
    assert set(cold.tolist()) <= set(active.tolist()) and np.all(np.diff(cold) > 0)
    assert not np.isin(split.train.item_index, cold).any()
    assert np.isin(split.test.item_index, cold).all()
    assert split.test.nnz == int(data.item_counts()[cold].sum())  # all their interactions


@settings(max_examples=120, **SETTINGS)
@given(data_params, fractions, st.integers(0, 3), st.integers(0, 1000), st.booleans())
def test_cold_users_fold_in_then_test(params, fraction, k, seed, with_time):
    data = make_data(*params, timestamps=with_time)
    counts = data.user_counts()
    assume(np.count_nonzero(counts) >= 2 and (counts > k).any())
    split = cold_user_split(data, fraction, fold_in=k, seed=seed)
    check_common(data, split)
    cold = split.test_users
    assert np.all(np.diff(cold) > 0) and (counts[cold] > k).all()
    assert not np.isin(split.train.user_index, cold).any()
    assert set(np.unique(split.test.user_index).tolist()) == set(cold.tolist())
    fold = split.fold_in
    np.testing.assert_array_equal(np.diff(fold.indptr)[cold], k)  # k history items each
    assert np.diff(fold.indptr).sum() == k * len(cold)
    if with_time:  # history is each user's earliest interactions
        t = {key: v[1] for key, v in rows(data).items()}
        for u in cold:
            hist = [t[(int(u), int(i))] for i in fold[u].indices]
            target = [t[(int(u), int(i))] for i in split.test.item_index[split.test.user_index == u]]
            assert not hist or max(hist) <= min(target)


def test_different_seeds_give_different_splits():
    data = make_data(0, n=300)
    assert rows(random_split(data, 0.2, 1).test) != rows(random_split(data, 0.2, 2).test)
    a, b = cold_item_split(data, 0.3, 1), cold_item_split(data, 0.3, 2)
    assert not np.array_equal(a.candidate_items, b.candidate_items)


def test_leave_last_out_tie_break_is_seeded():
    # one user, five items all at the same time: the "last" one is a seeded random pick
    data = InteractionData.from_arrays(["u"] * 5 + ["v"], [0, 1, 2, 3, 4, 0], timestamps=[1.0] * 6)
    picks = {int(leave_last_out(data, 1, s).test.item_index[0]) for s in range(30)}
    assert len(picks) > 1
    assert leave_last_out(data, 1, 3).test.nnz == 1


def test_split_repr_and_kinds():
    data = make_data(1, n=200)
    assert random_split(data).kind == "random" and "test=" in repr(random_split(data))
    assert "candidate_items" in repr(cold_item_split(data))
    assert cold_user_split(data).fold_in.nnz == 0  # fold_in=0: pure cold start, empty history


def test_errors_name_the_problem():
    data = make_data(0)
    for bad in (0, 1, 1.5, -0.1, "0.2", True, float("nan")):
        with pytest.raises(DataError, match="test_fraction"):
            random_split(data, bad)
    with pytest.raises(DataError, match="item_fraction"):
        cold_item_split(data, 0)
    with pytest.raises(DataError, match="user_fraction"):
        cold_user_split(data, 2)
    no_time = make_data(0, timestamps=False)
    with pytest.raises(DataError, match="timestamps"):
        temporal_split(no_time)
    with pytest.raises(DataError, match="timestamps"):
        leave_last_out(no_time)
    with pytest.raises(DataError, match="n must be"):
        leave_last_out(data, 0)
    with pytest.raises(DataError, match="lower n"):
        leave_last_out(data, 1000)
    with pytest.raises(DataError, match="fold_in"):
        cold_user_split(data, fold_in=-1)
    with pytest.raises(DataError, match="lower fold_in"):
        cold_user_split(data, fold_in=1000)
    with pytest.raises(DataError, match="at least 2"):
        random_split(InteractionData.from_arrays(["u"], ["i"]))
    with pytest.raises(DataError, match="2 items"):
        cold_item_split(InteractionData.from_arrays(["u", "v"], ["i", "i"]))
    same_time = InteractionData.from_arrays(["u", "v"], ["i", "j"], timestamps=[5, 5])
    with pytest.raises(DataError, match="one timestamp"):
        temporal_split(same_time)
    with pytest.raises(DataError, match="InteractionData"):
        random_split([("u", "i")])
    with pytest.raises(DataError, match="catalogue"):
        Split(data, InteractionData.from_arrays(["x"], ["y"]), "random")
