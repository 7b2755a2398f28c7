"""Item-item term (EASE weights): closed form, λ selection, use in the recommender."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import encoders.precomputed  # noqa: F401  (registers "precomputed")
from multirec.data import InteractionData
from multirec.errors import ConfigError
from multirec.itemitem import DEFAULT_L2_GRID, ITEM_ITEM_SCALES, ease_weights, select_l2
from multirec.model import MultimodalRecommender


def _random_x(seed: int = 0, users: int = 60, items: int = 25, p: float = 0.2) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    return sp.csr_matrix((rng.random((users, items)) < p).astype(np.float32))


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


def test_select_l2_picks_the_grid_value_that_ranks_validation_best():
    # item pairs (2j, 2j+1) always co-occur: a user holding one member should get the other
    rng = np.random.default_rng(1)
    users, pairs = 300, 20
    rows, cols, vrows, vcols = [], [], [], []
    for u in range(users):
        chosen = rng.choice(pairs, 3, replace=False)
        for j, c in enumerate(chosen):
            a, b = 2 * c, 2 * c + 1
            rows += [u, u] if j else [u]
            cols += [a, b] if j else [a]
            if not j:
                vrows.append(u)
                vcols.append(b)
    n = 2 * pairs
    train = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(users, n))
    valid = sp.csr_matrix((np.ones(len(vrows)), (vrows, vcols)), shape=(users, n))
    grid = (0.1, 1e6)
    assert select_l2(train, valid, grid) == 0.1  # a huge λ washes the pair signal out
    assert select_l2(train, valid) in DEFAULT_L2_GRID
    assert select_l2(train, sp.csr_matrix(valid.shape)) == float(np.median(DEFAULT_L2_GRID))


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
    data, items = _data()
    model = _fit(data, item_item=True)
    net = model.network
    assert net.item_item.shape == (data.n_items, data.n_items)
    assert model.item_item_l2_ in DEFAULT_L2_GRID
    assert model.history_.item_item_scale in ITEM_ITEM_SCALES
    assert model.get_config()["item_item_l2"] == model.item_item_l2_
    # W is refit on all interactions (train + the internal validation part)
    np.testing.assert_allclose(net.item_item.numpy(),
                               ease_weights(model.user_items_, model.item_item_l2_).numpy(),
                               atol=1e-5)
    explained = model.explain("u0", "i3")
    assert "item_item" in explained["contributions"]
    model.save_pretrained(tmp_path / "m")
    again = MultimodalRecommender.from_pretrained(tmp_path / "m")
    assert again.network.use_item_item
    users = [u for u in ("u0", "u5", "u17") for _ in items]
    pairs = items * 3
    np.testing.assert_allclose(again.score(users, pairs), model.score(users, pairs), rtol=1e-6)
    ids, _ = model.recommend(["u0", "u5"], n=5)
    np.testing.assert_array_equal(again.recommend(["u0", "u5"], n=5)[0], ids)


def test_item_item_options():
    data, _ = _data()
    assert not _fit(data, item_item=False).network.use_item_item
    assert _fit(data, item_item="auto").network.use_item_item  # 40 items: small catalogue
    assert _fit(data, item_item=True, item_item_l2=7.0).item_item_l2_ == 7.0
    with pytest.raises(ConfigError, match="item_item"):
        MultimodalRecommender(item_item="yes")
    with pytest.raises(ConfigError, match="item_item_l2"):
        MultimodalRecommender(item_item_l2=-1.0)


def test_auto_turns_item_item_off_for_large_catalogues(monkeypatch):
    import multirec.itemitem

    monkeypatch.setattr(multirec.itemitem, "AUTO_MAX_ITEMS", 10)
    data, _ = _data()
    assert not _fit(data).network.use_item_item


def test_ease_baseline_beats_popularity_and_folds_in_history():
    from multirec.baselines import EASERecommender, PopularityRecommender
    from multirec.errors import DataError
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
    ease = EASERecommender(seed=0).fit(split.train)
    assert ease.l2_ in DEFAULT_L2_GRID
    assert evaluate(ease, split, k=5)["ndcg"] > evaluate(PopularityRecommender().fit(split.train),
                                                         split, k=5)["ndcg"] + 0.1
    # fold-in: a history in the second half ranks second-half items first
    n = data.n_items
    hist = sp.csr_matrix((np.ones(2), ([0, 0], data.items.index(["i25", "i30"]))), shape=(1, n))
    top = np.argsort(-ease.score_users(np.zeros(1, np.int64), history=hist)[0])[:5]
    assert all(int(raw[1:]) >= 20 for raw in data.items.ids(top))
    with pytest.raises(DataError, match="l2"):
        EASERecommender(l2=0)
