"""Content neighbours for cold items: the vectors, the term in the network and the retrieval
head, its weights chosen on the carve, and a fitted model that saves, loads and adds items."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from test_training import planted_problem

import encoders.precomputed  # noqa: F401  (registers "precomputed")
from multirec.coldvalid import carve_items
from multirec.config import NetworkConfig
from multirec.data import InteractionData
from multirec.gridscore import pointwise
from multirec.model import MultimodalRecommender
from multirec.neighbours import content_basis, feature_basis, modality_basis
from multirec.network import TwoTowerNetwork
from multirec.posthoc import CONTENT_WEIGHTS, best_weight, tune_cold_items
from multirec.scoring import Scorer
from multirec.training import validation_ndcg


# ------------------------------------------------------------------ the vectors
def _tags(n_items: int = 60, n_groups: int = 4, per_group: int = 5, seed: int = 0) -> sp.csr_matrix:
    """Each item has 2 of its group's `per_group` tags; items 0..3 have none."""
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for i in range(4, n_items):
        g = i % n_groups
        for t in rng.choice(per_group, 2, replace=False):
            rows.append(i)
            cols.append(g * per_group + t)
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_items, n_groups * per_group))


def test_feature_vectors_are_unit_rows_that_make_items_of_one_group_alike():
    f = _tags()
    g = feature_basis(f, rank=8)
    assert g.shape == (60, 8) and g.dtype == np.float32
    norms = np.linalg.norm(g, axis=1)
    np.testing.assert_allclose(norms[4:], 1.0, atol=1e-5)
    assert np.all(norms[:4] == 0)  # no features: a zero row
    sim = g @ g.T
    group = np.arange(60) % 4
    same = (group[:, None] == group[None, :]) & (norms[:, None] > 0) & (norms[None, :] > 0)
    other = (group[:, None] != group[None, :]) & (norms[:, None] > 0) & (norms[None, :] > 0)
    # items of one group that share no tag are still alike (the smoothing), others are not
    a = 4 + np.flatnonzero(np.asarray((f[4:] @ f[4:].T).toarray()[0] == 0) & (group[4:] == group[4]))
    assert a.size and sim[4, a].min() > 0.3  # their raw tag vectors are orthogonal
    assert sim[same].mean() > 0.7 and np.abs(sim[other]).max() < 1e-4


def test_sparse_and_dense_feature_paths_agree():
    """Above `_DENSE_FEATURES` distinct features the vectors come from a truncated SVD:
    the same similarities as the eigendecomposition."""
    import multirec.neighbours as nb

    f = _tags(n_items=80, n_groups=6)
    dense = feature_basis(f, rank=6)
    old = nb._DENSE_FEATURES
    try:
        nb._DENSE_FEATURES = 1
        sparse = feature_basis(f, rank=6)
    finally:
        nb._DENSE_FEATURES = old
    np.testing.assert_allclose(sparse @ sparse.T, dense @ dense.T, atol=1e-4)


def test_modality_vectors_are_centred_unit_rows_and_zero_where_missing():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 5)) + 7.0  # far from the origin: centring matters
    has = np.ones(10, bool)
    has[[2, 5]] = False
    g = modality_basis(x, has)
    np.testing.assert_allclose(np.linalg.norm(g[has], axis=1), 1.0, atol=1e-5)
    assert np.all(g[~has] == 0)
    centred = x[has] - x[has].mean(0)
    np.testing.assert_allclose(g[has], centred / np.linalg.norm(centred, axis=1, keepdims=True),
                               atol=1e-5)


def test_content_basis_puts_sources_side_by_side_in_order():
    f = _tags()
    vec = np.random.default_rng(1).normal(size=(60, 3))
    basis, widths = content_basis(60, f, {"text": (vec, np.ones(60, bool))}, rank=8)
    assert widths == {"item_features": 8, "text": 3} and basis.shape == (60, 11)
    np.testing.assert_allclose(basis[:, :8], feature_basis(f, rank=8))
    empty, none = content_basis(60, None, {})
    assert empty.shape == (60, 0) and none == {}
    with pytest.raises(ValueError, match="60 rows"):
        content_basis(60, f[:50], {})


# ------------------------------------------------------------------ the term
def _net(n_users: int = 5, n_items: int = 8, width: int = 3, seed: int = 0) -> TwoTowerNetwork:
    torch.manual_seed(seed)
    net = TwoTowerNetwork(NetworkConfig(n_users=n_users, n_items=n_items, cf_dim=2, dim=4,
                                        content_neighbours={"tags": width}))
    with torch.no_grad():
        net.content_basis.normal_()
        net.cf_item.normal_()
        net.cf_user.normal_()
        net.has_cf.fill_(True)
        net.warm_user.fill_(True)
        net.warm_item[: n_items // 2] = True  # the rest are cold
    return net.eval()


def test_the_term_adds_weighted_content_similarity_to_cold_items_only():
    net = _net()
    history = sp.csr_matrix(np.array([[1, 1, 0, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0, 0, 0]], np.float32))
    users = np.array([0, 1])
    before = Scorer(net).logits(users, history, calibrated=False).numpy()
    net.set_content_weight("tags", 0.5)
    assert net.content_weights() == {"tags": 0.5} and net.uses_content_neighbours
    after = Scorer(net).logits(users, history, calibrated=False).numpy()
    basis = net.content_basis.numpy()
    h = history.toarray()
    p = h @ basis / np.sqrt(h.sum(1, keepdims=True))  # (2, R) pooled history vectors
    expected = 0.5 * p @ basis.T  # (2, n_items)
    cold = ~net.warm_item.numpy()
    np.testing.assert_allclose(after[:, ~cold], before[:, ~cold], atol=1e-6)  # warm: untouched
    np.testing.assert_allclose(after[:, cold] - before[:, cold], expected[:, cold], atol=1e-5)
    with pytest.raises(KeyError, match="tags"):
        net.set_content_weight("text", 1.0)


def test_retrieval_head_carries_the_term():
    """⟨query, item⟩ + b_u equals the raw logit with the term on (what the index searches)."""
    net = _net()
    net.set_content_weight("tags", 2.0)
    scorer = Scorer(net)
    history = sp.csr_matrix(np.array([[1, 0, 1, 0, 0, 0, 0, 0], [0, 1, 0, 1, 0, 0, 0, 0]], np.float32))
    users = np.array([2, 3])
    q, bu = scorer.queries(users, history)
    head = scorer.retrieval_head()
    raw = scorer.logits(users, history, calibrated=False).numpy()
    np.testing.assert_allclose(q @ head.items.T + bu[:, None], raw, atol=1e-4)
    assert head.dim == 4 + 2 + 3 + 1  # h, cf, knn, bias


def test_retrieval_head_drops_knn_columns_that_are_zero_for_every_item():
    """A source with weight 0, or a catalogue with no cold item, adds no column to the
    index; the head still gives the raw logit."""
    net = TwoTowerNetwork(NetworkConfig(n_users=5, n_items=8, cf_dim=2, dim=4,
                                        content_neighbours={"tags": 3, "text": 5}))
    with torch.no_grad():
        net.content_basis.normal_()
        net.warm_user.fill_(True)
        net.warm_item[:4] = True
    net.eval()
    net.set_content_weight("text", 1.5)  # "tags" stays 0
    history = sp.csr_matrix(np.array([[1, 0, 1, 0, 0, 0, 0, 0], [0, 1, 0, 1, 0, 0, 0, 0]], np.float32))
    users = np.array([0, 1])

    def check(expected_dim: int) -> None:
        scorer = Scorer(net)
        q, bu = scorer.queries(users, history)
        head = scorer.retrieval_head()
        assert head.dim == q.shape[1] == expected_dim
        raw = scorer.logits(users, history, calibrated=False).numpy()
        np.testing.assert_allclose(q @ head.items.T + bu[:, None], raw, atol=1e-4)

    check(4 + 2 + 5 + 1)  # h, cf, the text columns, bias
    with torch.no_grad():
        net.warm_item.fill_(True)
    check(4 + 2 + 1)


def test_weights_are_chosen_on_the_carve():
    """Cold items' only signal is their content: its weight is turned up, and cold-item NDCG
    on the carve rises; a source of noise stays off."""
    train, valid, content = planted_problem(n_users=150, n_items=200, seed=3)
    new_train, new_valid, carve = carve_items(train, valid, np.ones(200, bool), 0.3, seed=0)
    noise = np.random.default_rng(0).normal(size=content.shape)
    basis, widths = content_basis(200, None, {"vec": (content, np.ones(200, bool)),
                                              "noise": (noise, np.ones(200, bool))})
    torch.manual_seed(0)
    net = TwoTowerNetwork(NetworkConfig(n_users=150, n_items=200, dim=8, content_neighbours=widths))
    with torch.no_grad():
        net.content_basis.copy_(torch.from_numpy(basis))
        net.warm_item.copy_(torch.from_numpy(np.diff(new_train.tocsc().indptr) > 0))
        net.warm_user.fill_(True)
        net.cold_bias.fill_(0.0)
    net.eval()
    before = validation_ndcg(net, new_train, carve.target, 10, columns=carve.items)
    chosen = tune_cold_items(net, new_train, new_valid, carve, k=10)
    weights = chosen["content_weights"]
    assert weights["vec"] > 0 and weights["vec"] in CONTENT_WEIGHTS
    assert weights["noise"] == 0.0
    after = validation_ndcg(net, new_train, carve.target, 10, columns=carve.items)
    assert after > before + 0.1


@pytest.mark.parametrize(("optimum", "expected", "largest_tried"),
                         [(3.0, 4.0, 64.0), (300.0, 256.0, 512.0), (1e6, 1024.0, 1024.0)])
def test_best_weight_doubles_past_the_grid_while_the_largest_wins(optimum, expected, largest_tried):
    """The grid's largest value winning means the optimum may lie beyond: doubled up to 4
    times (64 → 1024), no further; inside the grid the nearest grid value wins."""
    w = torch.zeros(3)
    tried = []

    def score() -> float:
        tried.append(float(w[0]))
        return -abs(np.log(float(w[0]) + 1e-9) - np.log(optimum))

    got = best_weight(w, CONTENT_WEIGHTS, pointwise(score))
    assert got == expected and torch.all(w == expected)
    assert max(tried) == largest_tried


# ------------------------------------------------------------------ a fitted model
K_DIM = planted_problem()[2].shape[1]

def _data(n_users: int = 150, n_items: int = 240):
    train, valid, content = planted_problem(n_users=n_users, n_items=n_items, seed=1)
    coo = (train + valid).tocoo()
    data = InteractionData.from_arrays(coo.row, coo.col,
                                       item_content={"vec": dict(enumerate(content))})
    return data, content


def _model(**kw) -> MultimodalRecommender:
    return MultimodalRecommender(encoders={"vec": {"name": "precomputed", "dim": K_DIM}}, cf=False,
                                 dim=8, epochs=4, eval_every=2, cold_valid_items=0.15,
                                 show_progress=False, seed=0, **kw)


def test_fit_saves_and_loads_the_term(tmp_path):
    data, content = _data()
    model = _model().fit(data)
    widths = model.network.config.content_neighbours
    assert widths == {"vec": content.shape[1]}
    assert "content_weights" in model.fit_config_
    model.network.set_content_weight("vec", 1.0)  # on, whatever the carve chose
    model.save_pretrained(tmp_path / "m")
    loaded = MultimodalRecommender.from_pretrained(tmp_path / "m")
    assert loaded.network.content_weights() == {"vec": 1.0}
    users = np.arange(5)
    np.testing.assert_allclose(loaded.score_users(users), model.score_users(users), atol=1e-5)


def test_content_neighbours_off_builds_no_vectors():
    data, _ = _data()
    model = _model(content_neighbours=False).fit(data)
    assert model.network.config.content_neighbours == {}
    assert model.network.content_basis.shape == (data.n_items, 0)


def test_added_items_get_their_content_vector():
    data, content = _data()
    model = _model().fit(data)
    model.network.set_content_weight("vec", 1.0)
    new = content[7] * 1.0  # a copy of item 7's content
    model.add_items({"vec": {"new-item": new}})
    basis = model.network.content_basis.numpy()
    row = int(model.item_map_.index([7])[0])  # item ID 7
    np.testing.assert_allclose(basis[-1], basis[row], atol=1e-5)  # same content, same vector
    assert not model.network.warm_item[-1]
    user = model.user_map_.ids(np.array([0]))[0]
    e = model.explain(user, "new-item")  # the new item's logit, the term included, adds up
    assert e["contributions"]["neighbours:vec"] != 0.0
    total = sum(e["contributions"].values()) + e["user_bias"] + e["item_bias"] + e["global_bias"]
    assert total == pytest.approx(e["logit"], abs=1e-4)


def test_index_serves_a_new_item_with_its_neighbour_score():
    """A flat index over a model with a cold item and the term on returns what the model's
    own exact `recommend` returns, and the new item's score through it is its logit."""
    pytest.importorskip("faiss")
    from multirec.index import ItemIndex

    data, content = _data()
    model = _model().fit(data)
    model.network.set_content_weight("vec", 4.0)
    model.add_items({"vec": {"new-item": content[7] * 1.0}})
    index = ItemIndex.build(model, kind="flat")
    assert index.dim == model.scorer_.retrieval_head().dim
    users = list(model.user_map_.ids(np.arange(20)))
    want_ids, want_p = model.recommend(users, n=10)
    got_ids, got_p = index.recommend(model, users, n=10)
    np.testing.assert_array_equal(got_ids, want_ids)
    np.testing.assert_allclose(got_p, want_p, rtol=1e-4, atol=1e-6)
    # the new item's score through the index is its raw logit (it has no item-item term,
    # which the index adds on its candidates)
    rows = np.arange(20)
    q, bu = model.scorer_.queries(rows, model.user_items_[rows])
    idx, val = index.search(q, n=len(index), bias=bu)  # (20, n_items), best first
    raw = model.scorer_.logits(rows, model.user_items_[rows], calibrated=False).numpy()
    new_val = val[idx == len(index) - 1]  # (20,) the new item's score in each row
    np.testing.assert_allclose(new_val, raw[:, -1], rtol=1e-4, atol=1e-4)
    model.network.set_content_weight("vec", 0.0)
    model.scorer_.invalidate()
    off = model.scorer_.logits(rows, model.user_items_[rows], calibrated=False).numpy()
    assert np.abs(raw[:, -1] - off[:, -1]).max() > 1e-3  # the new item's term is in it
