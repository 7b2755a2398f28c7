"""benchmarks/peers.py: implicit ALS/BPR and cornac VBPR behind the evaluation protocol."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from multirec.errors import ConfigError, DataError, NotFittedError
from multirec.evaluation import evaluate
from multirec.splits import cold_item_split, cold_user_split, random_split

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _peers():
    spec = importlib.util.spec_from_file_location("bench_peers", BENCH / "peers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


peers = _peers()


@pytest.fixture(scope="module")
def data():
    """Tiny synthetic set with content vectors = noisy true item factors (a real signal)."""
    from multirec.datasets.synthetic import make_synthetic

    ds = make_synthetic(n_users=80, n_items=60, modalities=("text",), interactions_per_user=12, seed=0)
    rng = np.random.default_rng(0)
    vecs = ds.item_factors + 0.3 * rng.normal(size=ds.item_factors.shape)
    d = ds.data
    d.content = {"text": [v.astype(np.float32) for v in vecs]}
    return d


def _random_ndcg(split):
    from multirec.baselines import RandomRecommender

    return evaluate(RandomRecommender(0).fit(split.train), split)["ndcg"]


@pytest.mark.parametrize("make", [
    lambda: peers.ImplicitALS(factors=8, regularization=1.0, iterations=10),
    lambda: peers.ImplicitBPR(factors=8, learning_rate=0.05, iterations=50),
    lambda: peers.CornacVBPR(k=4, k2=4, n_epochs=3),
])
def test_peers_score_the_catalogue_and_beat_random_warm(data, make):
    pytest.importorskip("implicit")
    pytest.importorskip("cornac")
    split = random_split(data, 0.2, seed=1)
    model = make()
    with pytest.raises(NotFittedError, match="fit"):
        model.score_users(np.array([0]))
    assert model.fit(split.train) is model
    scores = model.score_users(np.array([0, 5, 7]))
    assert scores.shape == (3, data.n_items) and scores.dtype == np.float32
    assert np.isfinite(scores).all()
    assert evaluate(model, split)["ndcg"] > _random_ndcg(split)


def test_als_warm_scores_are_its_factors_and_fold_in_is_recalculate_user(data):
    pytest.importorskip("implicit")
    split = cold_user_split(data, 0.2, fold_in=3, seed=0)
    model = peers.ImplicitALS(factors=8, regularization=1.0, iterations=10, seed=0).fit(split.train)
    u = np.array([1, 2])
    warm = model.model_.user_factors[u] @ model.model_.item_factors.T
    trained = split.train.to_csr().getnnz(0) > 0
    np.testing.assert_allclose(model.score_users(u)[:, trained], warm[:, trained], rtol=1e-5, atol=1e-6)
    cold = split.test_users[:4]
    hist = split.fold_in[cold]
    folded = model.score_users(cold, history=hist)
    expect = model.model_.recalculate_user(cold, hist) @ model.item_factors_.T
    np.testing.assert_allclose(folded, expect, rtol=1e-5, atol=1e-6)
    assert not np.allclose(folded, model.score_users(cold))  # the history changes the user vector
    # an empty history row keeps the stored vector
    empty = sp.csr_matrix((1, data.n_items), dtype=np.float32)
    np.testing.assert_array_equal(model.score_users(cold[:1], history=empty), model.score_users(cold[:1]))


def test_bpr_splits_the_bias_column_and_folds_in(data):
    pytest.importorskip("implicit")
    split = cold_user_split(data, 0.2, fold_in=3, seed=0)
    model = peers.ImplicitBPR(factors=8, learning_rate=0.05, iterations=50, seed=0).fit(split.train)
    assert model.item_factors_.shape == (data.n_items, 8) and model.item_bias_.shape == (data.n_items,)
    trained = split.train.to_csr().getnnz(0) > 0
    u = np.array([3])
    full = model.model_.user_factors[u] @ model.model_.item_factors.T  # bias via the constant column
    np.testing.assert_allclose(model.score_users(u)[:, trained], full[:, trained], rtol=1e-4, atol=1e-5)
    assert evaluate(model, split)["ndcg"] > _random_ndcg(split)


def test_bpr_fold_in_ranks_the_history_first_and_is_deterministic():
    rng = np.random.default_rng(0)
    items = rng.normal(size=(30, 4)).astype(np.float32)
    hist = sp.csr_matrix((np.ones(2), ([0, 0], [3, 17])), shape=(2, 30))  # row 1 empty
    a = peers.bpr_fold_in(items, np.zeros(30), hist, reg=0.001, steps=200)
    b = peers.bpr_fold_in(items, np.zeros(30), hist, reg=0.001, steps=200)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (2, 4) and not a[1].any()
    scores = a[0] @ items.T
    assert scores[[3, 17]].min() > np.median(scores)


def test_vbpr_matches_cornac_scores_and_ranks_cold_items_by_content(data):
    pytest.importorskip("cornac")
    split = cold_item_split(data, 0.25, seed=0)
    model = peers.CornacVBPR(k=4, k2=4, n_epochs=5, seed=0).fit(split.train)
    m = model.model_
    raw_u = next(iter(m.uid_map))
    ours = model.score_users(np.array([int(raw_u)]))[0]
    theirs = m.score(m.uid_map[raw_u])  # (n_known_items,) in cornac's item order
    known = np.array([int(i) for i in m.iid_map])
    np.testing.assert_allclose(ours[known], theirs[list(m.iid_map.values())], rtol=1e-4, atol=1e-5)
    cold = split.candidate_items
    assert np.ptp(ours[cold]) > 0  # cold items are ranked by their content, not tied
    assert evaluate(model, split)["ndcg"] > _random_ndcg(split)


def test_vbpr_without_vectors_names_the_modality(data):
    from multirec.data import InteractionData

    plain = InteractionData(data.users, data.items, data.user_index, data.item_index)
    with pytest.raises(DataError, match="'text'"):
        peers.CornacVBPR(modality="text").fit(plain)


def test_bad_input_names_the_value(data):
    pytest.importorskip("implicit")
    model = peers.ImplicitALS(factors=4, iterations=2).fit(data)
    with pytest.raises(DataError, match="999"):
        model.score_users(np.array([999]))
    with pytest.raises(DataError, match=r"\(1, 60\)"):
        model.score_users(np.array([0]), history=sp.csr_matrix((1, 5)))
    with pytest.raises(DataError, match="list"):
        model.fit([1, 2])


def test_missing_package_raises_config_error_naming_the_install(monkeypatch, data):
    monkeypatch.setitem(sys.modules, "implicit.cpu.als", None)  # import now fails
    with pytest.raises(ConfigError, match="pip install 'implicit>=0.7'"):
        peers.ImplicitALS().fit(data)


def test_vbpr_sampler_never_draws_a_positive_and_is_seeded(data):
    cornac = pytest.importorskip("cornac")
    x = data.to_csr().tocoo()
    train_set = cornac.data.Dataset.build([(str(u), str(i), 1.0) for u, i in zip(x.row, x.col)],
                                          fmt="UIR", seed=0)
    pos = {(int(u), int(i)) for u, i in zip(*train_set.uir_tuple[:2])}
    a = list(peers.UijSampler(train_set, 3)(64, shuffle=True))
    b = list(peers.UijSampler(train_set, 3)(64, shuffle=True))
    assert sum(len(u) for u, _, _ in a) == len(pos)  # one epoch = every positive once
    assert {(int(u), int(i)) for u_, i_, _ in a for u, i in zip(u_, i_)} == pos
    assert all((int(u), int(j)) not in pos for u_, _, j_ in a for u, j in zip(u_, j_))
    assert all(np.array_equal(p, q) for x_, y_ in zip(a, b) for p, q in zip(x_, y_))
