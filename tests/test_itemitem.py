"""Item-item term (EASE weights): dense and sparse paths, λ selection, use in the recommender."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

import encoders.precomputed  # noqa: F401  (registers "precomputed")
from multirec.data import InteractionData
from multirec.errors import ConfigError, DataError
from multirec.itemitem import (
    DEFAULT_L2_GRID,
    CachedScores,
    ItemItemWeights,
    _EigenPath,
    default_l2,
    ease_weights,
    fit_item_item,
    l2_grid,
    select_l2,
)
from multirec.model import MultimodalRecommender
from multirec.ranking import ndcg_at_k, topk


def _random_x(seed: int = 0, users: int = 60, items: int = 25, p: float = 0.2) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    return sp.csr_matrix((rng.random((users, items)) < p).astype(np.float32))


def _planted(seed: int = 0, users: int = 600, items: int = 240, groups: int = 12,
             per_user: int = 8, noise: float = 0.15) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Users take most items from one group of the catalogue; (train, valid) with 1 held out."""
    rng = np.random.default_rng(seed)
    size = items // groups
    rows, cols = [], []
    for u in range(users):
        g = u % groups
        own = rng.choice(size, per_user, replace=False) + g * size
        swap = rng.random(per_user) < noise
        own[swap] = rng.choice(items, int(swap.sum()), replace=False)
        own = np.unique(own)
        rows += [u] * own.size
        cols += own.tolist()
    x = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(users, items))
    coo = x.tocoo()
    held = np.zeros(coo.nnz, bool)
    _, first = np.unique(coo.row, return_index=True)
    held[first] = True  # one validation item per user
    train = sp.csr_matrix((coo.data[~held], (coo.row[~held], coo.col[~held])), shape=x.shape)
    valid = sp.csr_matrix((coo.data[held], (coo.row[held], coo.col[held])), shape=x.shape)
    return train, valid


def _explicit_edlae(x: sp.csr_matrix, l2: float, dropout: float) -> np.ndarray:  # (n, n) float64
    """Column j: ridge regression of item j on every other item, penalty λ + q·count (q = p/(1-p))."""
    g = (x.T @ x).toarray().astype(np.float64)
    n = g.shape[0]
    pen = l2 + dropout / (1 - dropout) * np.diag(g)
    b = np.zeros((n, n))
    for j in range(n):
        o = np.delete(np.arange(n), j)
        b[o, j] = np.linalg.solve(g[np.ix_(o, o)] + np.diag(pen[o]), g[o, j])
    return b


def _explicit_ease(x: sp.csr_matrix, l2: float, dropout: float = 0.0) -> np.ndarray:  # (n, n)
    """EASE's closed form; with `dropout`, the penalty λ + q·count (the same as `_explicit_edlae`)."""
    g = (x.T @ x).toarray().astype(np.float64)
    p = np.linalg.inv(g + np.diag(l2 + dropout / (1 - dropout) * np.diag(g)))
    b = np.eye(g.shape[0]) - p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


# ----------------------------------------------------------------------------- dense path


def test_ease_weights_solve_the_constrained_least_squares():
    x = _random_x()
    l2 = 3.0
    w = ease_weights(x, l2).double().numpy()
    g = (x.T @ x).toarray().astype(np.float64)
    assert w.shape == (25, 25)
    np.testing.assert_array_equal(np.diag(w), 0.0)
    # stationarity of ||X - XW||² + λ||W||² with diag(W) = 0: off-diagonal of (G + λI)W equals G
    lhs = (g + l2 * np.eye(25)) @ w
    off = ~np.eye(25, dtype=bool)
    np.testing.assert_allclose(lhs[off], g[off], atol=1e-4)


def test_ease_weights_reject_a_non_positive_penalty():
    with pytest.raises(ValueError, match="item_item_l2"):
        ease_weights(_random_x(), 0.0)


def test_eigen_path_equals_the_per_lambda_inverse():
    x = _random_x(seed=3, users=80, items=30)
    path = _EigenPath(x)
    hist = x[:17]
    hv = hist @ path.v
    g = (x.T @ x).toarray().astype(np.float64)
    for l2 in (0.5, 4.0, 60.0):
        np.testing.assert_allclose(path.p(l2), np.linalg.inv(g + l2 * np.eye(30)), atol=1e-5)
        # X_u B = X_u − (X_u P) diag(1/diag(P)) with the explicit B = I − P diag(1/diag(P))
        np.testing.assert_allclose(path.scores(hist, hv, l2), hist @ _explicit_ease(x, l2),
                                   atol=1e-5)


def test_dense_fit_matches_the_closed_form():
    x = _random_x(seed=4)
    ii = fit_item_item(x, l2=5.0, dropout=0.0)
    assert ii.kind == "dense" and ii.neighbours is None and ii.l2 == 5.0 and ii.dropout == 0.0
    assert isinstance(ii.weights, np.ndarray) and ii.weights.dtype == np.float32
    np.testing.assert_allclose(ii.weights, _explicit_ease(x, 5.0), atol=1e-5)
    assert ii.nbytes == 25 * 25 * 4


@pytest.mark.parametrize("dropout", [0.0, 0.25, 0.5])
def test_dropout_is_a_per_item_penalty_on_both_paths(dropout):
    x = _random_x(seed=6, users=150, items=20, p=0.25)
    want = _explicit_edlae(x, 3.0, dropout)
    dense = fit_item_item(x, l2=3.0, dropout=dropout)
    sparse = fit_item_item(x, l2=3.0, dropout=dropout, dense_max_items=5, neighbours=19)
    assert dense.dropout == sparse.dropout == dropout
    np.testing.assert_allclose(dense.weights, want, atol=1e-5)
    np.testing.assert_allclose(sparse.weights.toarray(), want, atol=1e-4)
    if dropout:  # the penalty shrinks popular items' weights more: a different matrix
        assert not np.allclose(want, _explicit_ease(x, 3.0), atol=1e-3)


def test_dropout_is_searched_with_the_same_eigen_path():
    train, valid = _planted(seed=1)
    ii = fit_item_item(train, valid, dropout=0.5)
    direct = fit_item_item(train, l2=ii.l2, dropout=0.5)
    np.testing.assert_allclose(ii.weights, direct.weights, atol=1e-5)
    ndcg = {lam: v for lam, v in ii.validation_ndcg.items()}
    assert ii.l2 == max(ndcg, key=ndcg.get)


# ----------------------------------------------------------------------------- λ selection


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_chosen_l2_maximises_validation_ndcg_among_the_grid(dropout):
    train, valid = _planted(seed=1)
    ii = fit_item_item(train, valid, max_valid_users=300, seed=0, dropout=dropout)
    users = np.flatnonzero(np.diff(valid.indptr))
    users = np.sort(np.random.default_rng(0).choice(users, 300, replace=False))
    explicit = {}
    for l2 in ii.validation_ndcg:  # the searched grid (with its extension, if any)
        scores = train[users] @ _explicit_ease(train, l2, dropout)
        explicit[l2] = ndcg_at_k(scores, valid[users], 10, exclude=train[users])[0] / users.size
    assert set(l2_grid(train)) <= set(ii.validation_ndcg)
    np.testing.assert_allclose([ii.validation_ndcg[l2] for l2 in explicit],
                               list(explicit.values()), atol=1e-6)
    assert ii.l2 == max(explicit, key=explicit.get)
    assert ii.validation_ndcg[ii.l2] > min(explicit.values())  # λ matters here


def test_grid_is_extended_once_past_an_edge():
    # item pairs (2j, 2j+1) always co-occur: the smallest λ keeps the pair signal best
    rng = np.random.default_rng(1)
    users, pairs = 300, 20
    rows, cols, vrows, vcols = [], [], [], []
    for u in range(users):
        for j, c in enumerate(rng.choice(pairs, 3, replace=False)):
            rows += [u, u] if j else [u]
            cols += [2 * c, 2 * c + 1] if j else [2 * c]
            if not j:
                vrows.append(u)
                vcols.append(2 * c + 1)
    n = 2 * pairs
    train = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(users, n))
    valid = sp.csr_matrix((np.ones(len(vrows)), (vrows, vcols)), shape=(users, n))
    assert select_l2(train, valid, (0.1, 1e6)) == 0.1  # a huge λ washes the pair signal out
    ii = fit_item_item(train, valid, grid=(0.1, 1e6))
    assert ii.l2 == 0.1 and ii.l2_at_edge and sorted(ii.validation_ndcg) == [0.1, 1e6]
    auto = fit_item_item(train, valid)
    grid = l2_grid(train)
    assert len(auto.validation_ndcg) == len(grid) + 4  # extended once, below the grid
    assert min(auto.validation_ndcg) < min(grid)
    best = max(auto.validation_ndcg.values())
    assert auto.l2 == min(l2 for l2, v in auto.validation_ndcg.items() if v == best)  # ties: smallest


def test_default_l2_is_the_mean_item_popularity_and_used_without_validation():
    x = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 0, 1]], np.float32))
    assert default_l2(x) == pytest.approx((3 + 2 + 1) / 3)
    assert fit_item_item(x).l2 == pytest.approx(2.0)
    assert fit_item_item(x, sp.csr_matrix(x.shape)).l2 == pytest.approx(2.0)  # empty valid
    assert l2_grid(x)[0] < 2.0 < l2_grid(x)[-1]


def test_select_l2_without_validation_users_returns_the_grid_median():
    x = _random_x()
    assert select_l2(x, sp.csr_matrix(x.shape)) == float(np.median(DEFAULT_L2_GRID))


# ----------------------------------------------------------------------------- sparse path


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_sparse_with_all_neighbours_equals_dense_ease(dropout):
    x = _random_x(seed=5, users=200, items=30, p=0.15)
    dense = fit_item_item(x, l2=5.0, dropout=dropout)
    sparse = fit_item_item(x, l2=5.0, dense_max_items=10, neighbours=29, dropout=dropout)
    assert sparse.kind == "sparse" and isinstance(sparse.weights, sp.csr_matrix)
    assert sparse.weights.dtype == np.float32
    np.testing.assert_allclose(sparse.weights.toarray(), dense.weights, atol=1e-4)


def test_sparse_neighbourhoods_keep_the_top_recommendations():
    train, valid = _planted(seed=2)
    dense = fit_item_item(train, l2=20.0)
    sparse = fit_item_item(train, l2=20.0, dense_max_items=100, neighbours=30)
    w = sparse.weights
    assert np.diff(w.tocsc().indptr).max() <= 30
    assert not w.diagonal().any()
    hist, target = train[:300], valid[:300]
    top_d, _ = topk(dense.scores(hist), 10, exclude=hist)
    top_s, _ = topk(sparse.scores(hist), 10, exclude=hist)
    overlap = [np.intersect1d(a, b).size / 10 for a, b in zip(top_d, top_s)]
    assert np.mean(overlap) >= 0.8
    ndcg_d = ndcg_at_k(dense.scores(hist), target, 10, exclude=hist)
    ndcg_s = ndcg_at_k(sparse.scores(hist), target, 10, exclude=hist)
    assert ndcg_s[0] >= 0.9 * ndcg_d[0] and ndcg_s[1] == ndcg_d[1]


def test_items_without_co_occurrences_get_empty_columns():
    x = sp.csr_matrix(np.array([[1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 0, 0, 1, 0]], np.float32))
    w = fit_item_item(x, l2=1.0, dense_max_items=2, neighbours=2).weights.tocsc()
    counts = np.diff(w.indptr)
    assert counts[3] == 0 and counts[4] == 0  # item 3 alone in its baskets, item 4 never seen
    assert counts[0] == 2 and not w.diagonal().any()


def test_sparse_path_never_allocates_an_n_by_n_array():
    n, users = 20_000, 2000
    rng = np.random.default_rng(0)
    pop = 1.0 / np.arange(1, n + 1) ** 0.8
    cols = rng.choice(n, users * 10, p=pop / pop.sum())
    rows = np.repeat(np.arange(users), 10)
    x = sp.csr_matrix((np.ones(cols.size, np.float32), (rows, cols)), shape=(users, n))
    tracemalloc.start()
    try:
        ii = fit_item_item(x, x[:, :], dense_max_items=1000, neighbours=32, max_valid_users=100)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ii.kind == "sparse" and ii.weights.shape == (n, n)
    assert peak < n * n * 4 / 4, f"peak {peak / 1e6:.0f} MB"


# ----------------------------------------------------------------------------- ItemItemWeights


@pytest.mark.parametrize("sparse", [False, True])
def test_scores_at_round_trip_and_refit(sparse, tmp_path):
    from safetensors.numpy import load_file, save_file

    train, valid = _planted(seed=3, users=200, items=60, groups=6)
    opts = dict(dense_max_items=10, neighbours=12) if sparse else {}
    ii = fit_item_item(train, valid, **opts, dropout=0.25)
    assert ii.kind == ("sparse" if sparse else "dense")
    hist = train[:20]
    cols = np.array([5, 0, 59, 5, 17])
    full = ii.scores(hist)
    assert full.shape == (20, 60) and full.dtype == np.float32
    np.testing.assert_allclose(ii.scores_at(hist, cols), full[:, cols], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(full, hist @ (ii.weights.toarray() if sparse else ii.weights),
                               rtol=1e-5, atol=1e-6)
    save_file(ii.to_arrays(), str(tmp_path / "ii.safetensors"))
    again = ItemItemWeights.from_arrays(load_file(str(tmp_path / "ii.safetensors")))
    assert (again.kind, again.l2, again.neighbours, again.l2_at_edge, again.dropout) == \
        (ii.kind, ii.l2, ii.neighbours, ii.l2_at_edge, 0.25)
    np.testing.assert_array_equal(again.scores(hist), full)
    assert again.nbytes == ii.nbytes
    old = {k: v for k, v in ii.to_arrays().items() if k != "dropout"}  # saved before dropout
    assert ItemItemWeights.from_arrays(old).dropout == 0.0
    whole = train + valid
    refit = ii.refit(whole)
    direct = fit_item_item(whole, l2=ii.l2, **opts, dropout=0.25)
    assert (refit.kind, refit.l2, refit.neighbours, refit.dropout) == \
        (ii.kind, ii.l2, ii.neighbours, 0.25)
    np.testing.assert_allclose(refit.scores(hist), direct.scores(hist), atol=1e-6)
    assert not np.allclose(refit.scores(hist), full)  # the new interactions changed W


def test_bad_inputs_name_the_value():
    x = _random_x()
    with pytest.raises(ConfigError, match="-1"):
        fit_item_item(x, l2=-1.0)
    with pytest.raises(ConfigError, match="neighbours.*0"):
        fit_item_item(x, neighbours=0)
    for bad in (1.0, -0.1, "0.5", True):
        with pytest.raises(ConfigError, match=r"item_item_dropout.*\[0, 1\)"):
            fit_item_item(x, dropout=bad)
    with pytest.raises(DataError, match=r"\(10, 25\)"):
        fit_item_item(x, sp.csr_matrix((10, 25)))
    with pytest.raises(DataError, match="ndarray"):
        fit_item_item(x.toarray())
    ii = fit_item_item(x, l2=1.0)
    with pytest.raises(DataError, match=r"\(2, 3\)"):
        ii.scores(sp.csr_matrix((2, 3)))
    with pytest.raises(DataError, match="0..24"):
        ii.scores_at(x[:2], np.array([3, 25]))
    with pytest.raises(DataError, match="keys"):
        ItemItemWeights.from_arrays({"l2": np.array([1.0])})


# ----------------------------------------------------------------------------- in the models


def _data(seed: int = 0) -> tuple[InteractionData, list[str]]:
    rng = np.random.default_rng(seed)
    n_users, n_items = 120, 40
    rows = np.repeat(np.arange(n_users), 8)
    cols = np.concatenate([rng.choice(n_items, 8, replace=False) for _ in range(n_users)])
    items = [f"i{i}" for i in range(n_items)]
    content = {it: rng.normal(size=4).astype(np.float32) for it in items}
    data = InteractionData.from_arrays(
        [f"u{u}" for u in rows], [f"i{i}" for i in cols], item_ids=items,
        item_content={"vec": content})
    return data, items


def _fit(data: InteractionData, **kw) -> MultimodalRecommender:
    enc = {"vec": {"name": "precomputed", "dim": 4}}
    return MultimodalRecommender(enc, dim=8, epochs=3, seed=0, show_progress=False,
                                 cf=dict(no_components=4, epochs=2), **kw).fit(data)


def test_recommender_uses_item_item_and_round_trips(tmp_path):
    from multirec.posthoc import ITEM_ITEM_SCALES

    data, items = _data()
    model = _fit(data, item_item=True)
    ii = model.item_item_
    assert ii.kind == "dense" and ii.weights.shape == (data.n_items, data.n_items)
    assert model.history_.item_item_scale in ITEM_ITEM_SCALES
    assert model.get_config()["item_item_l2"] == ii.l2
    # W is refit on all interactions (train + the internal validation part)
    np.testing.assert_allclose(ii.weights, fit_item_item(model.user_items_, l2=ii.l2).weights,
                               atol=1e-5)
    model.save_pretrained(tmp_path / "m")
    again = MultimodalRecommender.from_pretrained(tmp_path / "m")
    assert again.network.use_item_item and again.item_item_.l2 == ii.l2
    np.testing.assert_array_equal(again.item_item_.weights, ii.weights)
    users = [u for u in ("u0", "u5", "u17") for _ in items]
    pairs = items * 3
    np.testing.assert_allclose(again.score(users, pairs), model.score(users, pairs), rtol=1e-6)
    ids, _ = model.recommend(["u0", "u5"], n=5)
    np.testing.assert_array_equal(again.recommend(["u0", "u5"], n=5)[0], ids)


def test_item_item_options():
    data, _ = _data()
    off = _fit(data, item_item=False)
    assert not off.network.use_item_item and off.item_item_ is None
    assert _fit(data, item_item="auto").network.use_item_item
    assert _fit(data, item_item=True, item_item_l2=7.0).item_item_.l2 == 7.0
    with pytest.raises(ConfigError, match="item_item"):
        MultimodalRecommender(item_item="yes")
    with pytest.raises(ConfigError, match="item_item_l2"):
        MultimodalRecommender(item_item_l2=-1.0)
    with pytest.raises(ConfigError, match=r"item_item_dropout.*1\.5"):
        MultimodalRecommender(item_item_dropout=1.5)


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_item_item_dropout_reaches_the_weights_and_the_save(tmp_path, dropout):

    data, _ = _data()
    kw = {} if dropout == 0.5 else {"item_item_dropout": dropout}  # 0.5 is the default
    model = _fit(data, item_item=True, **kw)
    ii = model.item_item_
    assert ii.dropout == dropout and model.get_config()["item_item_dropout"] == dropout
    assert model.fit_config_["item_item"]["dropout"] == dropout
    np.testing.assert_allclose(
        ii.weights, fit_item_item(model.user_items_, l2=ii.l2, dropout=dropout).weights, atol=1e-5)
    model.save_pretrained(tmp_path / "m")
    again = MultimodalRecommender.from_pretrained(tmp_path / "m")
    assert again.item_item_dropout == dropout and again.item_item_.dropout == dropout


def test_ease_baseline_is_plain_ease_unless_told():
    from multirec.baselines import EASERecommender

    data, _ = _data()
    x = data.to_csr()
    plain = EASERecommender(l2=4.0).fit(data)
    assert plain.item_item_.dropout == 0.0
    np.testing.assert_allclose(plain.weights_, fit_item_item(x, l2=4.0, dropout=0.0).weights)
    assert EASERecommender(l2=4.0, dropout=0.5).fit(data).item_item_.dropout == 0.5


def test_ease_baseline_beats_popularity_and_folds_in_history():
    from multirec.baselines import EASERecommender, PopularityRecommender
    from multirec.evaluation import evaluate
    from multirec.splits import random_split

    # two tastes: users take items from one half of the catalogue only
    rng = np.random.default_rng(0)
    users, items = [], []
    for u in range(200):
        half = np.arange(20) + 20 * (u % 2)
        chosen = rng.choice(half, 6, replace=False)
        users += [f"u{u}"] * 6
        items += [f"i{i}" for i in chosen]
    popular = [f"i{i}" for i in range(20)] * 3  # popularity favours the first half
    users += [f"p{j}" for j in range(len(popular))]
    items += popular
    data = InteractionData.from_arrays(users, items)
    split = random_split(data, 0.2, seed=0)
    pop = evaluate(PopularityRecommender().fit(split.train), split, k=5)["ndcg"]
    for opts in ({}, dict(dense_max_items=10, neighbours=15)):
        ease = EASERecommender(seed=0, **opts).fit(split.train)
        searched = ease.item_item_.validation_ndcg
        assert ease.l2_ == max(searched, key=searched.get)  # λ chosen on validation
        assert evaluate(ease, split, k=5)["ndcg"] > pop + 0.1
        # fold-in: a history in the second half ranks second-half items first
        n = data.n_items
        hist = sp.csr_matrix((np.ones(2), ([0, 0], data.items.index(["i25", "i30"]))), shape=(1, n))
        top = np.argsort(-ease.score_users(np.zeros(1, np.int64), history=hist)[0])[:5]
        assert all(int(raw[1:]) >= 20 for raw in data.items.ids(top))
    assert EASERecommender(seed=0, dense_max_items=10).fit(split.train).item_item_.kind == "sparse"
    with pytest.raises(DataError, match="l2"):
        EASERecommender(l2=0)


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_cached_scores_equal_the_weights_and_are_kept_up_to_the_budget(kind):
    import copy

    train, valid = _planted(seed=2)
    w = fit_item_item(train, valid, dense_max_items=10_000 if kind == "dense" else 10)
    assert w.kind == kind
    rows, cols = train[:40], np.array([3, 7, 100, 239])
    cached = CachedScores(w)
    assert cached.kind == kind and cached.l2 == w.l2  # the weights' attributes show through
    first = cached.scores(rows)
    np.testing.assert_array_equal(first, w.scores(rows))
    np.testing.assert_array_equal(cached.scores_at(rows, cols), w.scores_at(rows, cols))
    assert cached.scores(train[:40]) is first  # the same rows again: remembered
    assert cached.scores(train[1:41]) is not first  # other rows: computed
    np.testing.assert_array_equal(cached.scores(train[1:41]), w.scores(train[1:41]))
    small = CachedScores(w, max_bytes=first.nbytes - 1)  # no room: computed every time
    assert small.scores(rows) is not small.scores(rows)
    np.testing.assert_array_equal(copy.deepcopy(cached).scores(rows), first)
