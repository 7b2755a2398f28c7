"""Long-tail generator: real-catalogue statistics, content coverage, determinism, and a
planted signal that predicts held-out interactions."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from multirec.datasets.longtail import make_longtail
from multirec.errors import DataError


@pytest.fixture(scope="module")
def ds():
    return make_longtail(n_users=4000, n_items=20_000, interactions_per_user=40, seed=0)


def test_long_tail_statistics(ds):
    d = ds.data
    counts = d.item_counts()
    assert d.n_items == 20_000 and d.n_users == 4000
    assert 0.85 * 4000 * 40 < d.nnz <= 4000 * 40 * 1.05  # about the asked-for volume
    assert counts.min() >= 1  # every item has a user
    assert 1 <= np.median(counts) <= 3
    assert np.mean(counts <= 5) > 0.6  # most items have 1–5 users
    top = np.sort(counts)[::-1]
    assert top[:200].sum() / counts.sum() > 0.25  # the top 1% of items: a heavy head
    assert top[0] > 50 * np.median(counts)
    users = d.user_counts()
    assert users.min() >= 1 and users.max() > 8 * np.median(users)  # lognormal activity
    # one row per (user, item), sorted, binary
    keys = d.user_index * d.n_items + d.item_index
    assert np.all(np.diff(keys) > 0) and np.all(d.weights == 1.0)
    assert d.timestamps is not None and len(d.timestamps) == d.nnz


def test_content_coverage_and_features(ds):
    d = ds.data
    tags, text = d.content["tags"], d.content["text"]
    has = np.array([t is not None for t in tags])
    assert abs(has.mean() - 2 / 3) < 0.02
    assert np.array_equal(has, [t is not None for t in text])  # metadata: both or neither
    assert d.content_mask("tags").sum() == has.sum()
    i = int(np.flatnonzero(has)[0])
    assert 1 <= len(tags[i]) <= 5 and len(set(tags[i])) == len(tags[i])
    assert 8 <= len(text[i].split(":", 1)[1].split()) <= 15
    names = d.item_features.names
    for i in np.flatnonzero(has)[:50]:
        feats = {names[j] for j in d.item_features.matrix[i].indices}
        assert feats == {f"tag:{t}" for t in tags[i]}
    assert d.item_features.matrix[np.flatnonzero(~has)].nnz == 0


def test_content_follows_the_latent_cluster(ds):
    tags, cluster = ds.data.content["tags"], ds.item_cluster
    rng = np.random.default_rng(1)
    has = np.flatnonzero([t is not None for t in tags])
    a, b = rng.choice(has, 3000), rng.choice(has, 3000)

    def overlap(x, y):
        return np.mean([bool(set(tags[i]) & set(tags[j])) for i, j in zip(x, y)])

    by_cluster = {c: has[cluster[has] == c] for c in np.unique(cluster[has])}
    pairs = [(i, rng.choice(by_cluster[cluster[i]])) for i in a[:1000]]
    same = [(i, j) for i, j in pairs if i != j]
    assert overlap(*zip(*same)) > 0.5 > 0.1 > overlap(a, b)
    i, j = same[0]
    assert np.array_equal(ds.item_factors[i], ds.item_factors[j])  # an item's factor = its cluster's


def test_planted_signal_predicts_held_out_interactions(ds):
    """Leave one interaction out for 400 users: recall@100 of the generator's own scores and
    of an item-kNN learned from the rest both clearly beat popularity."""
    d = ds.data
    rng = np.random.default_rng(0)
    users = rng.choice(d.n_users, 400, replace=False)
    keep = np.ones(d.nnz, bool)
    held = {}
    for u in users:
        row = rng.choice(np.flatnonzero(d.user_index == u))
        held[u], keep[row] = d.item_index[row], False
    X = sp.csr_matrix((np.ones(keep.sum()), (d.user_index[keep], d.item_index[keep])),
                      shape=(d.n_users, d.n_items))
    pop = np.asarray(X.sum(axis=0)).ravel()
    cooc = (X.T @ X).tocsr()
    cooc.setdiag(0)
    oracle = ds.true_scores(users)  # (400, n_items)
    assert oracle.shape == (400, d.n_items)
    hits = {"oracle": 0, "knn": 0, "pop": 0}
    for row, u in enumerate(users):
        knn = np.asarray((X[u] @ cooc).todense()).ravel() / (np.sqrt(pop) + 1e-9) + 1e-6 * pop
        for name, s in (("oracle", oracle[row].copy()), ("knn", knn), ("pop", pop.astype(float))):
            s[X[u].indices] = -np.inf  # the known items
            hits[name] += held[u] in np.argpartition(-s, 100)[:100]
    assert hits["oracle"] > 1.5 * hits["pop"], hits  # measured: 179 vs 88
    assert hits["knn"] > 1.25 * hits["pop"], hits  # measured: 138 vs 88


def test_true_scores_are_log_probabilities(ds):
    s = ds.true_scores([0, 5])
    np.testing.assert_allclose(np.exp(s.astype(np.float64)).sum(axis=1), 1.0, rtol=1e-3)
    with pytest.raises(DataError, match="4000"):
        ds.true_scores([4000])


def test_deterministic_by_seed():
    a = make_longtail(300, 2000, 10, seed=3)
    b = make_longtail(300, 2000, 10, seed=3)
    c = make_longtail(300, 2000, 10, seed=4)
    assert np.array_equal(a.data.item_index, b.data.item_index)
    assert np.array_equal(a.data.user_index, b.data.user_index)
    assert np.array_equal(a.data.timestamps, b.data.timestamps)
    assert a.data.content == b.data.content
    assert not np.array_equal(a.data.item_index[:500], c.data.item_index[:500])
    assert a.data.content["tags"] != c.data.content["tags"]


def test_knobs_move_the_statistics():
    flat = make_longtail(1000, 5000, 20, alpha=0.3, seed=0).data.item_counts()
    steep = make_longtail(1000, 5000, 20, alpha=1.5, seed=0).data.item_counts()
    assert steep.max() > 3 * flat.max() and np.median(steep) < np.median(flat)
    none = make_longtail(200, 1000, 5, tag_coverage=0.0, seed=0).data
    assert none.content_mask("tags").sum() == 0 and none.item_features.matrix.nnz == 0
    full = make_longtail(200, 1000, 5, tag_coverage=1.0, activity_sigma=0.0, seed=0).data
    assert full.content_mask("text").all()
    # sigma 0: every user asks for 5 (a few get more: each item's one guaranteed user)
    assert np.median(full.user_counts()) == 5 and np.mean(full.user_counts() == 5) > 0.5


@pytest.mark.parametrize("kwargs, bad", [
    ({"interactions_per_user": 600}, "600"), ({"alpha": -1}, "-1"), ({"tag_coverage": 1.5}, "1.5"),
    ({"n_items": 1}, "1"), ({"seed": -2}, "-2"), ({"n_tags": 2}, "2"), ({"noise": "x"}, "'x'"),
])
def test_bad_arguments_name_the_value(kwargs, bad):
    args = {"n_users": 50, "n_items": 1000, "interactions_per_user": 5} | kwargs
    with pytest.raises(DataError, match=next(iter(kwargs))) as err:
        make_longtail(**args)
    assert bad in str(err.value)
