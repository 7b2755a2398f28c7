"""Metrics@k: hand-computed cases and a slow pure-Python reference (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from multirec.errors import DataError
from multirec.metrics import METRICS, coverage, ranking_metrics, top_k
from multirec.ranking import ndcg_at_k, tie_order

SETTINGS = dict(deadline=None, derandomize=True)


# ---------------------------------------------------------------------- reference
def reference_metrics(scores, test, k, exclude=None, candidates=None):
    """Obviously-correct per-user metrics, one user and one item at a time."""
    n_users, n_items = scores.shape
    out = {m: [] for m in ("users",) + METRICS}
    allowed = set(range(n_items)) if candidates is None else {int(c) for c in candidates}
    for u in range(n_users):
        banned = set() if exclude is None else {int(i) for i in exclude[u].indices}
        items = [i for i in range(n_items)
                 if i in allowed and i not in banned and scores[u, i] != -math.inf]
        rel = {i for i in items if test[u, i] > 0}
        if not rel:
            continue
        ranked = sorted(items, key=lambda i: (-scores[u, i], _tie_pos(scores.shape[1])[i]))[:k]
        hits = [1 if i in rel else 0 for i in ranked]
        out["users"].append(u)
        out["precision"].append(sum(hits) / k)
        out["recall"].append(sum(hits) / len(rel))
        dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(rel))))
        out["ndcg"].append(dcg / idcg)
        ap = sum(sum(hits[: r + 1]) / (r + 1) for r, h in enumerate(hits) if h)
        out["map"].append(ap / min(k, len(rel)))
        out["hit_rate"].append(1.0 if any(hits) else 0.0)
        out["mrr"].append(next((1 / (r + 1) for r, h in enumerate(hits) if h), 0.0))
        neg = [i for i in items if i not in rel]
        pairs = [1.0 if scores[u, p] > scores[u, q] else 0.5 if scores[u, p] == scores[u, q] else 0.0
                 for p in rel for q in neg]
        out["auc"].append(sum(pairs) / len(pairs) if pairs else math.nan)
    return {m: np.array(v, dtype=np.int64 if m == "users" else float) for m, v in out.items()}



def _tie_pos(n):
    """Position of each item in the seeded tie order of `multirec.ranking`."""
    return np.argsort(tie_order(n))

def reference_top_k(scores, k):
    rows = []
    for row in scores:
        pos = _tie_pos(len(row))
        ranked = sorted((i for i in range(len(row)) if row[i] != -math.inf), key=lambda i: (-row[i], pos[i]))
        ranked = ranked[: min(k, len(row))]
        rows.append(ranked + [-1] * (min(k, len(row)) - len(ranked)))
    return np.array(rows, dtype=np.int64).reshape(len(scores), min(k, scores.shape[1]))


# ---------------------------------------------------------------------- strategies
@st.composite
def ranking_problems(draw):
    n_users = draw(st.integers(1, 6))
    n_items = draw(st.integers(1, 14))
    shape = (n_users, n_items)
    # few distinct values → many ties; ±inf appear now and then
    values = st.sampled_from([0.0, 1.0, 2.0, 3.0, -1.5, 0.25]) | st.sampled_from([np.inf, -np.inf])
    if draw(st.booleans()):
        values = st.floats(-5, 5, allow_nan=False, width=32)
    scores = draw(hnp.arrays(np.float64, shape, elements=values))
    test = draw(hnp.arrays(bool, shape))
    exclude = draw(hnp.arrays(bool, shape)) if draw(st.booleans()) else None
    candidates = None
    if draw(st.booleans()):
        candidates = np.array(sorted(draw(st.sets(st.integers(0, n_items - 1), min_size=1))))
    k = draw(st.integers(1, 16))
    return scores, sp.csr_matrix(test), k, None if exclude is None else sp.csr_matrix(exclude), candidates


@settings(max_examples=350, **SETTINGS)
@given(ranking_problems())
def test_matches_reference(problem):
    scores, test, k, exclude, candidates = problem
    got = ranking_metrics(scores, test, k, exclude=exclude, candidates=candidates, return_topk=True)
    ref = reference_metrics(scores, test, k, exclude, candidates)
    np.testing.assert_array_equal(got["users"], ref["users"])
    for name in METRICS:
        np.testing.assert_allclose(got[name], ref[name], atol=1e-12, err_msg=name)
        finite = got[name][~np.isnan(got[name])]
        assert np.all((finite >= 0) & (finite <= 1)), name
    assert got["topk"].shape == (len(ref["users"]), min(k, scores.shape[1]))


@settings(max_examples=250, **SETTINGS)
@given(ranking_problems())
def test_validation_ndcg_kernel_matches_reference(problem):
    """`ranking.ndcg_at_k` (validation, the λ search, post-hoc grids) gives the reference
    NDCG sum and user count, for float64 and float32 scores alike."""
    scores, test, k, exclude, _ = problem
    ref = reference_metrics(scores, test, k, exclude)
    for dtype in (np.float64, np.float32):
        total, n = ndcg_at_k(scores.astype(dtype), test, k, exclude=exclude)
        assert n == len(ref["users"])
        assert total == pytest.approx(float(ref["ndcg"].sum()), abs=1e-9)


def test_validation_ndcg_kernel_reads_targets_as_given():
    """Explicit zeros in the target are not relevant, duplicates count once, and the
    caller's matrix is left as it was."""
    scores = np.array([[3.0, 2.0, 1.0, 0.0]])
    target = sp.csr_matrix((np.array([0.0, 1.0, 1.0]), np.array([0, 2, 2]), np.array([0, 3])),
                           shape=(1, 4))
    before = (target.data.copy(), target.indices.copy())
    total, n = ndcg_at_k(scores, target, 2)
    assert n == 1 and total == pytest.approx(0.0)  # item 2 is third, item 0 is not relevant
    total, n = ndcg_at_k(scores, target, 3)
    assert total == pytest.approx(1 / math.log2(4))
    np.testing.assert_array_equal(target.data, before[0])
    np.testing.assert_array_equal(target.indices, before[1])


@settings(max_examples=150, **SETTINGS)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=12),
                  elements=st.sampled_from([0.0, 1.0, 2.0, -np.inf, np.inf])),
       st.integers(1, 15))
def test_top_k_matches_full_sort(scores, k):
    np.testing.assert_array_equal(top_k(scores, k), reference_top_k(scores, k))


@settings(max_examples=40, **SETTINGS)
@given(st.integers(0, 2**32 - 1))
def test_larger_random_problems(seed):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(20, 120)).round(1)  # some ties
    test = sp.csr_matrix(rng.random((20, 120)) < 0.05)
    exclude = sp.csr_matrix(rng.random((20, 120)) < 0.1)
    got = ranking_metrics(scores, test, 10, exclude=exclude)
    ref = reference_metrics(scores, test, 10, exclude)
    for name in METRICS:
        np.testing.assert_allclose(got[name], ref[name], atol=1e-12, err_msg=name)


# ---------------------------------------------------------------------- hand-computed
def _one(scores, relevant, k, **kw):
    scores = np.array([scores], dtype=float)
    test = np.zeros_like(scores)
    test[0, relevant] = 1
    m = ranking_metrics(scores, sp.csr_matrix(test), k, **kw)
    return {name: float(m[name][0]) for name in METRICS}


def test_hand_computed_basic():
    m = _one([0.9, 0.8, 0.7, 0.1], [1, 3], k=2)  # top-2 = [0, 1]; hit at rank 2
    assert m["precision"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(0.5)
    assert m["ndcg"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert m["map"] == pytest.approx((1 / 2) / 2)  # P@2 · 1 / min(2, 2)
    assert m["hit_rate"] == 1.0 and m["mrr"] == pytest.approx(0.5)
    assert m["auc"] == pytest.approx(0.25)  # of (1,0) (1,2) (3,0) (3,2) only (1,2) is right


def test_hand_computed_exclude():
    excl = sp.csr_matrix(np.array([[1, 0, 0, 0]]))
    m = _one([0.9, 0.8, 0.7, 0.1], [1, 3], k=2, exclude=excl)  # ranking 1, 2, 3
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(0.5)
    assert m["mrr"] == 1.0 and m["map"] == pytest.approx(0.5)
    assert m["ndcg"] == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert m["auc"] == pytest.approx(0.5)  # (1,2) right, (3,2) wrong


def test_hand_computed_k_larger_than_catalogue():
    m = _one([3, 2, 1], [0, 2], k=5)  # all three ranked: hits at 1 and 3
    assert m["precision"] == pytest.approx(2 / 5) and m["recall"] == 1.0
    assert m["ndcg"] == pytest.approx((1 + 1 / 2) / (1 + 1 / math.log2(3)))
    assert m["map"] == pytest.approx((1 + 2 / 3) / 2)


def test_recall_is_hits_over_all_relevant():
    m = _one([5, 4, 3, 2, 1], [0, 1, 2, 3], k=2)  # 2 hits of 4 relevant
    assert m["recall"] == pytest.approx(0.5) and m["precision"] == 1.0
    assert m["ndcg"] == pytest.approx(1.0) and m["map"] == pytest.approx(1.0)


def test_ties_follow_the_seeded_tie_order_not_item_index():
    order = tie_order(4)  # items in the order ties are ranked
    m = _one([1, 1, 1, 1], [int(order[2])], k=2)  # third in the tie order: not in the top 2
    assert m["hit_rate"] == 0.0 and m["auc"] == pytest.approx(0.5)
    m = _one([1, 1, 1, 1], [int(order[1])], k=2)
    assert m["mrr"] == pytest.approx(0.5)
    tied = [int(i) for i in tie_order(5) if i in (1, 2, 4)][:2]  # the tied 5s, in tie order
    np.testing.assert_array_equal(top_k(np.array([[2, 5, 5, 1, 5.0]]), 2), [tied])


def test_constant_scorer_gets_random_level_ndcg_even_when_ids_follow_popularity():
    # 2,000 items, relevant items concentrated on low IDs (as when IDs follow popularity):
    # ranking ties by index would give a constant scorer a high NDCG.
    rng = np.random.default_rng(0)
    n_users, n_items, k = 300, 2000, 10
    rows = np.repeat(np.arange(n_users), 5)
    cols = rng.integers(0, 50, rows.size)
    test = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n_users, n_items))
    constant = ranking_metrics(np.zeros((n_users, n_items)), test, k)["ndcg"].mean()
    random = ranking_metrics(rng.random((n_users, n_items)), test, k)["ndcg"].mean()
    by_index = ranking_metrics(-np.arange(n_items)[None, :].repeat(n_users, 0).astype(float), test, k)
    assert by_index["ndcg"].mean() > 0.1  # what index order would have given
    assert constant < 0.05 and abs(constant - random) < 0.03


def test_candidates_restrict_ranking_and_relevance():
    m = _one([0.9, 0.8, 0.7, 0.1], [0, 3], k=1, candidates=np.array([2, 3]))
    assert m["recall"] == 0.0 and m["auc"] == 0.0  # only item 3 is relevant; item 2 ranks above
    mask = np.array([False, False, True, True])
    assert _one([0.9, 0.8, 0.7, 0.1], [3], k=2, candidates=mask)["recall"] == 1.0


def test_users_without_rankable_test_items_are_left_out():
    scores = np.arange(12, dtype=float).reshape(3, 4)
    test = sp.csr_matrix(np.array([[0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0]]))
    exclude = sp.csr_matrix(np.array([[0, 0, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]))
    m = ranking_metrics(scores, test, 2, exclude=exclude)
    np.testing.assert_array_equal(m["users"], [2])
    assert all(len(m[name]) == 1 for name in METRICS)


def test_auc_nan_when_everything_is_relevant_and_minus_inf_is_unrankable():
    assert math.isnan(_one([1, 2], [0, 1], k=1)["auc"])
    m = _one([1, -np.inf, 0.5], [2], k=2)
    assert m["auc"] == 0.0 and m["mrr"] == 0.5
    np.testing.assert_array_equal(top_k(np.array([[1.0, -np.inf, -np.inf]]), 3), [[0, -1, -1]])


def test_coverage():
    assert coverage(np.array([[0, 1], [1, 2], [2, -1]]), 10) == pytest.approx(0.3)
    assert coverage(np.zeros((0, 5), dtype=int), 4) == 0.0
    with pytest.raises(DataError, match="n_items"):
        coverage(np.array([[0]]), 0)
    with pytest.raises(DataError, match="out of range"):
        coverage(np.array([[7]]), 5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(scores=np.zeros((2, 3)), test=sp.csr_matrix((2, 4))), "shape"),
    (dict(scores=np.full((1, 3), np.nan), test=sp.csr_matrix(np.ones((1, 3)))), "NaN"),
    (dict(scores=np.zeros(3), test=sp.csr_matrix((1, 3))), "shape"),
    (dict(scores=np.zeros((1, 3)), test=np.ones((1, 3))), "sparse"),
    (dict(scores=np.zeros((1, 3)), test=sp.csr_matrix((1, 3)), k=0), "k must be"),
    (dict(scores=np.zeros((1, 3)), test=sp.csr_matrix((1, 3)), candidates=np.array([5])), "out of range"),
    (dict(scores=np.zeros((1, 3)), test=sp.csr_matrix((1, 3)), candidates=np.array([], int)), "empty"),
    (dict(scores=np.zeros((1, 3)), test=sp.csr_matrix((1, 3)), exclude=sp.csr_matrix((2, 3))), "exclude"),
])
def test_errors_name_the_problem(kwargs, match):
    with pytest.raises(DataError, match=match):
        ranking_metrics(**kwargs)
