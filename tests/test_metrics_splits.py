"""Metrics against hand-computed cases and a slow reference; splits never leak."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from multirec.data import InteractionData
from multirec.errors import DataError
from multirec.metrics import ranking_metrics
from multirec.ranking import tie_order
from multirec.splits import cold_item_split, cold_user_split, leave_last_out, random_split, temporal_split


def _tie_pos(n):
    """Position of each item in the seeded tie order of `multirec.ranking`."""
    return np.argsort(tie_order(n))

def _reference(scores, test, k, exclude=None):
    """Slow, obviously-correct per-user metrics."""
    out = {m: [] for m in ("precision", "recall", "ndcg", "map", "hit_rate", "mrr", "auc")}
    for u in range(scores.shape[0]):
        banned = set(exclude[u].indices) if exclude is not None else set()
        items = [i for i in range(scores.shape[1]) if i not in banned]
        rel = set(test[u].indices) - banned
        if not rel:
            continue
        ranked = sorted(items, key=lambda i: (-scores[u, i], _tie_pos(scores.shape[1])[i]))[:k]
        hits = [1 if i in rel else 0 for i in ranked]
        out["precision"].append(sum(hits) / k)
        out["recall"].append(sum(hits) / len(rel))
        dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(rel))))
        out["ndcg"].append(dcg / idcg)
        ap = sum(sum(hits[: r + 1]) / (r + 1) * h for r, h in enumerate(hits))
        out["map"].append(ap / min(k, len(rel)))
        out["hit_rate"].append(float(any(hits)))
        out["mrr"].append(next((1 / (r + 1) for r, h in enumerate(hits) if h), 0.0))
        neg = [i for i in items if i not in rel]
        if neg:
            pairs = [(1.0 if scores[u, p] > scores[u, n] else 0.5 if scores[u, p] == scores[u, n] else 0.0)
                     for p in rel for n in neg]
            out["auc"].append(sum(pairs) / len(pairs))
    return {m: np.array(v) for m, v in out.items()}


def test_hand_computed_case():
    scores = np.array([[0.9, 0.8, 0.7, 0.1]])
    test = sp.csr_matrix(np.array([[0, 1, 0, 1]]))
    m = ranking_metrics(scores, test, k=2)
    assert m["precision"][0] == pytest.approx(0.5)
    assert m["recall"][0] == pytest.approx(0.5)
    assert m["ndcg"][0] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert m["map"][0] == pytest.approx(0.5 * 1 / 2)
    assert m["mrr"][0] == pytest.approx(0.5)
    assert m["auc"][0] == pytest.approx(0.25)  # 1 of 4 (pos, neg) pairs ordered right
    excl = sp.csr_matrix(np.array([[1, 0, 0, 0]]))
    m = ranking_metrics(scores, test, k=2, exclude=excl)
    assert m["precision"][0] == pytest.approx(0.5) and m["mrr"][0] == pytest.approx(1.0)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.integers(1, 6), st.integers(2, 12), st.integers(1, 5), st.integers(0, 2**31 - 1))
def test_matches_reference(n_users, n_items, k, seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 4, size=(n_users, n_items)).astype(float)  # many ties
    test = sp.csr_matrix(rng.random((n_users, n_items)) < 0.3)
    exclude = sp.csr_matrix((rng.random((n_users, n_items)) < 0.2) & ~test.toarray())
    got = ranking_metrics(scores, test, k, exclude=exclude)
    ref = _reference(scores, test, k, exclude)
    for name in ("precision", "recall", "ndcg", "map", "hit_rate", "mrr"):
        np.testing.assert_allclose(got[name], ref[name], atol=1e-9, err_msg=name)
        assert np.all((got[name] >= 0) & (got[name] <= 1))
    np.testing.assert_allclose(got["auc"][~np.isnan(got["auc"])], ref["auc"], atol=1e-9)


def test_metric_errors():
    with pytest.raises(DataError, match="shape"):
        ranking_metrics(np.zeros((2, 3)), sp.csr_matrix((2, 4)), 2)
    with pytest.raises(DataError, match="NaN"):
        ranking_metrics(np.full((1, 3), np.nan), sp.csr_matrix(np.ones((1, 3))), 2)


def _data(seed, n_users=30, n_items=40, n=300):
    rng = np.random.default_rng(seed)
    return InteractionData.from_arrays(rng.integers(0, n_users, n), rng.integers(0, n_items, n),
                                       timestamps=rng.random(n))


def _pairs(d):
    return set(zip(d.user_index.tolist(), d.item_index.tolist()))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.integers(0, 10**6), st.floats(0.05, 0.9))
def test_splits_never_leak(seed, fraction):
    data = _data(seed)
    for split in (random_split(data, fraction, seed), temporal_split(data, fraction, seed),
                  leave_last_out(data, 1, seed)):
        tr, te = _pairs(split.train), _pairs(split.test)
        assert not tr & te
        assert split.train.nnz + split.test.nnz == data.nnz
        assert split.train.items is data.items or split.train.items == data.items
    t = temporal_split(data, fraction, seed)
    assert t.train.timestamps.max() <= t.test.timestamps.min()
    ci = cold_item_split(data, fraction, seed)
    assert not set(ci.train.item_index) & set(ci.candidate_items)
    assert set(ci.test.item_index) <= set(ci.candidate_items)
    cu = cold_user_split(data, min(fraction, 0.5), fold_in=2, seed=seed)
    assert not set(cu.train.user_index) & set(cu.test.user_index)
    fold_users = set(cu.fold_in.nonzero()[0])
    assert fold_users <= set(cu.test_users)
    assert not _pairs(cu.test) & set(zip(*cu.fold_in.nonzero()))


def test_split_errors():
    data = _data(0)
    with pytest.raises(DataError, match="test_fraction"):
        random_split(data, 1.5)
    no_time = InteractionData.from_arrays([1, 2, 3], [1, 2, 3])
    with pytest.raises(DataError, match="timestamps"):
        temporal_split(no_time)
