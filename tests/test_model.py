"""MultimodalRecommender: learning a planted signal, cold start, recommend, save/load."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from nopickle import assert_not_pickle  # tests/ is on sys.path

import encoders.precomputed  # noqa: F401  (registers "precomputed")
from multirec.data import InteractionData
from multirec.errors import ConfigError, DataError, ModelFileError, NotFittedError, UnknownIDError
from multirec.model import MultimodalRecommender

N_USERS, N_ITEMS, K = 200, 150, 6


def _planted(seed: int = 0, cold_fraction: float = 0.2, missing: float = 0.0):
    """Users/items with planted factors; content vectors = noisy item factors."""
    rng = np.random.default_rng(seed)
    U = rng.normal(size=(N_USERS, K))
    V = rng.normal(size=(N_ITEMS, K))
    logits = U @ V.T * 1.5
    cold = rng.choice(N_ITEMS, int(cold_fraction * N_ITEMS), replace=False)
    rows, cols = [], []
    for u in range(N_USERS):
        p = np.exp(logits[u] - logits[u].max())
        p /= p.sum()
        items = rng.choice(N_ITEMS, 15, replace=False, p=p)
        rows += [u] * len(items)
        cols += list(items)
    rows, cols = np.array(rows), np.array(cols)
    content = {f"i{i}": (V[i] + 0.3 * rng.normal(size=K)).astype(np.float32) for i in range(N_ITEMS)
               if rng.random() >= missing}
    return rows, cols, cold, content


def _split(rows, cols, cold, seed=0):
    rng = np.random.default_rng(seed)
    is_cold = np.isin(cols, cold)
    test = (rng.random(len(rows)) < 0.2) | is_cold
    return ~test, test, is_cold


def _data(rows, cols, mask, content):
    return InteractionData.from_arrays(
        [f"u{u}" for u in rows[mask]], [f"i{i}" for i in cols[mask]],
        user_ids=[f"u{u}" for u in range(N_USERS)], item_ids=[f"i{i}" for i in range(N_ITEMS)],
        item_content={"vec": content})


def _ndcg(scores, train, test_rows, test_cols, candidates=None, k=10):
    s = scores.copy()
    s[train.nonzero()] = -np.inf
    if candidates is not None:
        keep = np.zeros(s.shape[1], bool)
        keep[candidates] = True
        s[:, ~keep] = -np.inf
    disc = 1 / np.log2(np.arange(2, k + 2))
    out = []
    for u in np.unique(test_rows):
        rel = test_cols[test_rows == u]
        top = np.argsort(-s[u], kind="stable")[:k]
        out.append((np.isin(top, rel) * disc).sum() / disc[: min(len(rel), k)].sum())
    return float(np.mean(out))


FAST = dict(epochs=40, eval_every=5, lr=3e-3, show_progress=False, seed=0, dim=32)
CF = {"no_components": 16, "epochs": 10, "num_threads": 1}


@pytest.fixture(scope="module")
def planted():
    rows, cols, cold, content = _planted()
    train, test, is_cold = _split(rows, cols, cold)
    data = _data(rows, cols, train, content)
    model = MultimodalRecommender(encoders={"vec": {"name": "precomputed", "dim": K}}, cf=CF,
                                  **FAST).fit(data)
    return rows, cols, cold, content, train, test, is_cold, data, model


def test_beats_popularity_and_lightfm_warm_and_cold(planted):
    from multirec.cf import LightFMFactors

    rows, cols, cold, content, train, test, is_cold, data, model = planted
    X = data.to_csr()
    users = np.arange(N_USERS)
    ours = model.score_users(users)
    pop = np.tile(np.asarray(X.sum(0)).ravel().astype(float), (N_USERS, 1))
    lfm = LightFMFactors(**CF).fit(data).predict(users)
    warm_t = test & ~is_cold
    warm = {name: _ndcg(s, X, rows[warm_t], cols[warm_t]) for name, s in
            [("ours", ours), ("pop", pop), ("lfm", lfm)]}
    cold_t = is_cold
    cold_n = {name: _ndcg(s, X, rows[cold_t], cols[cold_t], candidates=cold) for name, s in
              [("ours", ours), ("pop", pop), ("lfm", lfm)]}
    assert warm["ours"] > warm["pop"] + 0.05, warm
    assert warm["ours"] > warm["lfm"] + 0.02, warm
    assert cold_n["ours"] > cold_n["pop"] + 0.10, cold_n
    assert cold_n["ours"] > cold_n["lfm"] + 0.10, cold_n


def test_content_only_model_personalises(planted):
    """Without LightFM, ID residuals or item-item weights, users are their history's content."""
    rows, cols, cold, content, train, test, is_cold, data, _ = planted
    model = MultimodalRecommender(encoders={"vec": {"name": "precomputed", "dim": K}}, cf=False,
                                  use_id_embeddings=False, item_item=False, **FAST).fit(data)
    X = data.to_csr()
    ours = model.score_users(np.arange(N_USERS))
    pop = np.tile(np.asarray(X.sum(0)).ravel().astype(float), (N_USERS, 1))
    t = test & ~is_cold
    assert _ndcg(ours, X, rows[t], cols[t]) > _ndcg(pop, X, rows[t], cols[t]) + 0.1
    assert (_ndcg(ours, X, rows[is_cold], cols[is_cold], candidates=cold)
            > _ndcg(pop, X, rows[is_cold], cols[is_cold], candidates=cold) + 0.1)


def test_recommend_filters_seen_returns_raw_ids(planted):
    *_, data, model = planted
    users = ["u0", "u1", "u5"]
    ids, scores = model.recommend(users, n=10)
    assert ids.shape == (3, 10) and scores.shape == (3, 10)
    assert all(isinstance(x, str) and x.startswith("i") for x in ids.ravel())
    assert np.all(np.diff(scores, axis=1) <= 1e-7)
    assert np.all((scores > 0) & (scores < 1))
    df = data.to_dataframe()
    for u, row in zip(users, ids):
        assert not set(row) & set(df.loc[df.user == u, "item"])
    one_ids, one_scores = model.recommend("u0", n=5)
    assert one_ids.shape == (5,) and list(one_ids) == list(ids[0, :5])
    unfiltered, _ = model.recommend(["u0"], n=N_ITEMS, filter_seen=False)
    assert set(df.loc[df.user == "u0", "item"]) <= set(unfiltered[0])


def test_recommend_restricted_items_and_errors(planted):
    *_, model = planted
    ids, _ = model.recommend(["u3"], n=3, items=["i1", "i2", "i3", "i4"], filter_seen=False)
    assert set(ids[0]) <= {"i1", "i2", "i3", "i4"}
    with pytest.raises(UnknownIDError, match="nobody"):
        model.recommend(["nobody"])
    with pytest.raises(ConfigError, match="n must be"):
        model.recommend(["u0"], n=0)


def test_cold_user_fold_in_and_add_users(planted):
    rows, cols, *_, data, model = planted
    model = copy.deepcopy(model)  # the module fixture is shared: never mutate it
    hist = [f"i{i}" for i in cols[rows == 7][:10]]
    ids_new, _ = model.recommend("newbie", n=5, history={"newbie": hist})
    assert not set(ids_new) & set(hist)
    model2_idx = model.add_users({"newbie": hist})
    assert model.user_map_.ids(model2_idx)[0] == "newbie"
    ids_added, _ = model.recommend("newbie", n=5)
    assert list(ids_added) == list(ids_new)


def test_add_items_cold_start(planted):
    *_, model = planted
    model = copy.deepcopy(model)  # the module fixture is shared: never mutate it
    n_before = model.network.n_items
    vec = np.ones(K, np.float32)
    idx = model.add_items({"vec": {"brand_new": vec}})
    assert model.network.n_items == n_before + 1 and idx[0] == n_before
    ids, scores = model.recommend(["u0"], n=1, items=["brand_new"])
    assert ids[0, 0] == "brand_new" and 0 < scores[0, 0] < 1
    expl = model.explain("u0", "brand_new")
    assert "cf" not in expl["contributions"] and "vec" in expl["contributions"]
    sims_ids, sims = model.similar_items("brand_new", n=3)
    assert "brand_new" not in sims_ids and sims.shape == (3,)


def test_explain_sums_for_sum_fusion(planted):
    *_, model = planted
    e = model.explain("u0", "i3")
    total = sum(e["contributions"].values()) + e["user_bias"] + e["item_bias"] + e["global_bias"]
    assert total == pytest.approx(e["logit"], abs=1e-4)
    assert e["score"] == pytest.approx(1 / (1 + np.exp(-e["logit"])))


def test_save_load_identical_scores_no_pickle(planted, tmp_path):
    *_, model = planted
    model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir())[0] == "multirec.json"
    (version,) = [p for p in (tmp_path / "m").iterdir() if p.is_dir()]
    assert sorted(p.name for p in version.iterdir()) == [
        "config.json", "history.json", "ids.json", "interactions.safetensors",
        "item_item.safetensors", "manifest.json", "model.safetensors"]
    for p in version.iterdir():
        assert_not_pickle(p)
    loaded = MultimodalRecommender.from_pretrained(tmp_path / "m")
    users = np.arange(10)
    np.testing.assert_array_equal(loaded.score_users(users), model.score_users(users))
    a, b = model.recommend(["u1", "u2"], n=7), loaded.recommend(["u1", "u2"], n=7)
    np.testing.assert_array_equal(a[0], b[0])
    # overwrite in place keeps a loadable model; a corrupted file is detected
    model.save_pretrained(tmp_path / "m", overwrite=True)
    MultimodalRecommender.from_pretrained(tmp_path / "m")
    (version,) = [p for p in (tmp_path / "m").iterdir() if p.is_dir()]
    weights = version / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-5] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="checksum"):
        MultimodalRecommender.from_pretrained(tmp_path / "m")
    with pytest.raises(ModelFileError, match="nothing"):
        MultimodalRecommender.from_pretrained(tmp_path / "nothing")


@pytest.mark.parametrize("fusion", ["sum", "concat", "gated"])
@pytest.mark.parametrize("drop", [0.0, 0.3])
def test_fusions_train_with_missing_modality(fusion, drop):
    rows, cols, cold, content = _planted(seed=1, missing=0.3)
    data = _data(rows, cols, np.ones(len(rows), bool), content)
    assert 0 < sum(x is None for x in data.content["vec"]) < N_ITEMS
    model = MultimodalRecommender(encoders={"vec": {"name": "precomputed", "dim": K}}, cf=CF,
                                  fusion=fusion, modality_dropout=drop, **{**FAST, "epochs": 10})
    model.fit(data)
    scores = model.score_users(np.arange(5))
    assert scores.shape == (5, N_ITEMS) and np.isfinite(scores).all()
    assert model.history_.best_epoch >= 0


def test_errors_and_not_fitted():
    with pytest.raises(ConfigError, match="unknown argument"):
        MultimodalRecommender(epoch=3)
    with pytest.raises(NotFittedError):
        MultimodalRecommender().recommend(["u0"])
    with pytest.raises(DataError, match="InteractionData"):
        MultimodalRecommender().fit([(1, 2)])
    rows, cols, cold, content = _planted()
    data = _data(rows, cols, np.ones(len(rows), bool), content)
    with pytest.raises(DataError, match="audio"):
        MultimodalRecommender(encoders={"audio": {"name": "precomputed", "dim": K}}).fit(data)


def test_same_seed_same_scores():
    rows, cols, cold, content = _planted(seed=2)
    data = _data(rows, cols, np.ones(len(rows), bool), content)
    kw = dict(encoders={"vec": {"name": "precomputed", "dim": K}}, cf=CF, **{**FAST, "epochs": 6})
    torch.manual_seed(123)
    a = MultimodalRecommender(**kw).fit(data).score_users(np.arange(20))
    torch.manual_seed(456)
    b = MultimodalRecommender(**kw).fit(data).score_users(np.arange(20))
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_platt_calibration_recovers_a_planted_link():
    from multirec.posthoc import platt

    rng = np.random.default_rng(0)
    x = rng.normal(size=20000) * 3
    y = rng.random(20000) < 1 / (1 + np.exp(-(0.5 * x - 2.0)))
    a, c = platt(x, y)
    assert a == pytest.approx(0.5, abs=0.05) and c == pytest.approx(-2.0, abs=0.1)
    assert platt(x, np.zeros_like(y)) is None  # one class: nothing to fit
    # negatives subsampled 1 in 4 and weighted 4: the same link
    keep = y | (rng.random(20000) < 0.25)
    w = np.where(y[keep], 1.0, 4.0)
    a2, c2 = platt(x[keep], y[keep], w)
    assert a2 == pytest.approx(0.5, abs=0.07) and c2 == pytest.approx(-2.0, abs=0.15)


def test_probabilities_are_calibrated_on_held_out_pairs(planted):
    """Mean predicted probability of unseen items ≈ the held-out positive rate."""
    rows, cols, cold, content, train, test, is_cold, data, model = planted
    X = data.to_csr()
    net = model.network
    assert float(net.logit_scale) > 0 and float(net.logit_shift) != 0.0
    p = 1 / (1 + np.exp(-model.score_users(np.arange(N_USERS))))
    warm_t = test & ~is_cold
    target = np.zeros_like(p)
    target[rows[warm_t], cols[warm_t]] = 1
    unseen = (X.toarray() == 0)
    unseen[:, cold] = False
    assert p[unseen].mean() == pytest.approx(target[unseen].mean(), rel=0.5)
    assert p[unseen][target[unseen] == 1].mean() > 3 * p[unseen][target[unseen] == 0].mean()


def test_added_users_get_the_popularity_prior_and_it_is_explained(planted):
    """A user added by fold-in is scored with the prior (known users are not), and
    `explain` reports it so the contributions still sum to the logit."""
    rows, cols, *_, model = planted
    model = copy.deepcopy(model)  # the module fixture is shared: never mutate it
    with torch.no_grad():
        model.network.prior_weight.fill_(2.0)
    model.scorer_.invalidate()
    model.add_users({"newbie": [f"i{cols[0]}"]})
    popular = f"i{int(np.argmax(model.network.item_prior.cpu().numpy()))}"
    e = model.explain("newbie", popular)
    assert e["contributions"]["popularity"] > 0
    total = sum(e["contributions"].values()) + e["user_bias"] + e["item_bias"] + e["global_bias"]
    assert total == pytest.approx(e["logit"], abs=1e-4)
    assert "popularity" not in model.explain("u0", popular)["contributions"]
