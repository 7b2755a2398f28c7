"""evaluate(), the baselines and the LightFM wrapper on a small planted data set."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from multirec.baselines import LightFMRecommender, PopularityRecommender, RandomRecommender
from multirec.cf import CFConfig, LightFMFactors
from multirec.data import InteractionData
from multirec.errors import ConfigError, DataError, NotFittedError, TrainingDivergedError
from multirec.evaluation import Recommender, evaluate
from multirec.metrics import METRICS, ranking_metrics
from multirec.splits import Split, cold_item_split, cold_user_split, leave_last_out, random_split

FAST = dict(no_components=16, epochs=20, num_threads=1)


def planted(seed: int = 0, n_users: int = 200, n_items: int = 150, n_clusters: int = 5,
            per_user: int = 20, p_own: float = 0.8) -> InteractionData:
    """Users and items in clusters: 80% of a user's items come from its cluster, all
    choices weighted by a skewed item popularity; cluster labels are the side features."""
    rng = np.random.default_rng(seed)
    item_cluster = rng.integers(0, n_clusters, n_items)
    pop = rng.zipf(1.6, n_items).clip(max=50).astype(float)
    users, items, times = [], [], []
    for u in range(n_users):
        own = item_cluster == u % n_clusters
        p = np.where(own, p_own * pop / pop[own].sum(), (1 - p_own) * pop / pop[~own].sum())
        users += [f"u{u}"] * per_user
        items += [f"i{i}" for i in rng.choice(n_items, per_user, replace=False, p=p)]
        times += list(rng.random(per_user))
    return InteractionData.from_arrays(
        users, items, timestamps=times, item_ids=[f"i{i}" for i in range(n_items)],
        item_features={f"i{i}": [f"cluster:{c}"] for i, c in enumerate(item_cluster)},
        user_features={f"u{u}": [f"cluster:{u % n_clusters}"] for u in range(n_users)})


@pytest.fixture(scope="module")
def data() -> InteractionData:
    return planted(0)


# ---------------------------------------------------------------------- baselines, planted
@pytest.mark.parametrize("seed", [0, 1])
def test_lightfm_beats_popularity_beats_random(seed):
    split = random_split(planted(seed), 0.2, seed)
    res = {name: evaluate(model.fit(split.train), split, k=10) for name, model in [
        ("random", RandomRecommender(seed)), ("pop", PopularityRecommender()),
        ("lightfm", LightFMRecommender(**FAST, seed=seed))]}
    ndcg = {name: r["ndcg"] for name, r in res.items()}
    assert ndcg["lightfm"] > ndcg["pop"] + 0.1, ndcg  # measured ≈ 0.50 vs 0.27
    assert ndcg["pop"] > ndcg["random"] + 0.1, ndcg  # measured ≈ 0.27 vs 0.06
    assert res["lightfm"]["auc"] > res["pop"]["auc"] > res["random"]["auc"] + 0.1
    assert res["random"]["auc"] == pytest.approx(0.5, abs=0.05)
    for r in res.values():
        assert r["n_users"] == len(np.unique(split.test.user_index))
        assert set(r) == set(METRICS) | {"n_users", "coverage"}
        assert 0 < r["coverage"] <= 1
    assert res["pop"]["coverage"] < res["random"]["coverage"]  # popularity shows few items


def test_cold_item_split_with_item_features(data):
    split = cold_item_split(data, 0.2, seed=0)
    lfm = evaluate(LightFMRecommender(**FAST, use_item_features=True).fit(split.train), split)
    rnd = evaluate(RandomRecommender(0).fit(split.train), split)
    pop = evaluate(PopularityRecommender().fit(split.train), split)
    assert lfm["ndcg"] > rnd["ndcg"] + 0.15 and lfm["auc"] > 0.6  # features carry the cluster
    assert pop["auc"] == pytest.approx(0.5)  # every cold item has count 0: all tied
    for r in (lfm, rnd, pop):
        assert r["n_users"] > 0 and 0 < r["coverage"] <= 1  # coverage over the candidate items


def test_cold_user_split_folds_in_history(data):
    split = cold_user_split(data, 0.2, fold_in=5, seed=0)
    lfm = evaluate(LightFMRecommender(**FAST).fit(split.train), split)
    pop = evaluate(PopularityRecommender().fit(split.train), split)
    rnd = evaluate(RandomRecommender(0).fit(split.train), split)
    assert lfm["ndcg"] > pop["ndcg"] + 0.1 > rnd["ndcg"] + 0.1  # measured ≈ 0.67 / 0.44 / 0.08
    assert lfm["n_users"] == len(split.test_users)


def test_leave_last_out_runs(data):
    split = leave_last_out(data, 1, seed=0)
    res = evaluate(PopularityRecommender().fit(split.train), split, k=5)
    assert res["n_users"] == data.n_users and 0 <= res["ndcg"] <= 1


# ---------------------------------------------------------------------- evaluate()
class FixedScores:
    """Scores from a fixed matrix; records what evaluate() passes."""

    def __init__(self, scores: np.ndarray) -> None:
        self.scores, self.calls = scores, []

    def fit(self, data: InteractionData) -> FixedScores:
        return self

    def score_users(self, users, history=None):
        self.calls.append((np.array(users), history))
        return self.scores[users]


def _small(seed: int) -> InteractionData:
    rng = np.random.default_rng(seed)
    return InteractionData.from_arrays(rng.integers(0, 25, 200), rng.integers(0, 30, 200),
                                       item_ids=range(32), user_ids=range(25))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.integers(0, 2**31), st.integers(1, 40), st.integers(1, 12), st.booleans())
def test_evaluate_equals_direct_metrics_for_any_batch_size(seed, batch_size, k, exclude_train):
    data = _small(seed)
    split = random_split(data, 0.3, seed)
    scores = np.random.default_rng(seed).integers(0, 5, (data.n_users, data.n_items)).astype(float)
    got = evaluate(FixedScores(scores), split, k, batch_size=batch_size, exclude_train=exclude_train)
    direct = ranking_metrics(scores, split.test.to_csr(), k,
                             exclude=split.train.to_csr() if exclude_train else None)
    assert got["n_users"] == len(direct["users"])
    for m in METRICS:
        vals = direct[m][~np.isnan(direct[m])]
        assert got[m] == pytest.approx(vals.mean(), abs=1e-12), m


def test_exclude_train_masks_training_items(data):
    split = random_split(data, 0.2, 0)
    train = split.train.to_csr().toarray()
    cheat = FixedScores(train + 0.001 * np.random.default_rng(0).random(train.shape))
    masked = evaluate(cheat, split, exclude_train=True)
    unmasked = evaluate(cheat, split, exclude_train=False)
    assert unmasked["precision"] < masked["precision"]  # train items crowd the top-k
    assert all(h is None for _, h in cheat.calls)


def test_cold_user_history_is_passed_and_masked(data):
    split = cold_user_split(data, 0.1, fold_in=3, seed=1)
    history = split.fold_in.toarray()
    spy = FixedScores(history * 10.0)  # would rank the fold-in items first if not masked
    res = evaluate(spy, split, batch_size=7)
    users = np.concatenate([u for u, _ in spy.calls])
    np.testing.assert_array_equal(np.sort(users), split.test_users)
    for u, h in spy.calls:
        assert (h != split.fold_in[u]).nnz == 0
    assert res["precision"] < 0.5  # the fold-in items were excluded from the ranking


def test_evaluate_errors(data):
    split = random_split(data, 0.2, 0)
    with pytest.raises(DataError, match="score_users"):
        evaluate(object(), split)
    with pytest.raises(DataError, match="Split"):
        evaluate(PopularityRecommender().fit(data), (split.train, split.test))
    with pytest.raises(DataError, match="k must be"):
        evaluate(PopularityRecommender().fit(data), split, k=0)
    with pytest.raises(DataError, match="batch_size"):
        evaluate(PopularityRecommender().fit(data), split, batch_size=0)
    wrong = FixedScores(np.zeros((data.n_users, data.n_items - 1)))
    with pytest.raises(DataError, match="expected"):
        evaluate(wrong, split)
    nan = FixedScores(np.full((data.n_users, data.n_items), np.nan))
    with pytest.raises(DataError, match="NaN"):
        evaluate(nan, split)
    # every test item masked as a training item: nothing to evaluate
    overlap = Split(split.train, split.train, "random")
    with pytest.raises(DataError, match="no test user"):
        evaluate(PopularityRecommender().fit(data), overlap)


# ---------------------------------------------------------------------- baselines
def test_baselines_follow_the_protocol(data):
    for model in (RandomRecommender(0), PopularityRecommender(), LightFMRecommender(**FAST)):
        assert isinstance(model, Recommender)
        with pytest.raises(NotFittedError, match="fit"):
            model.score_users(np.arange(2))
        assert model.fit(data) is model
        s = model.score_users(np.array([0, 3]))
        assert s.shape == (2, data.n_items) and np.isfinite(s).all()
        with pytest.raises(DataError, match="out of range"):
            model.score_users(np.array([data.n_users]))


def test_random_scores_do_not_depend_on_batching(data):
    m = RandomRecommender(3).fit(data)
    np.testing.assert_array_equal(m.score_users(np.arange(10))[4:], m.score_users(np.arange(4, 10)))
    assert not np.array_equal(m.score_users(np.array([0])), RandomRecommender(4).fit(data).score_users(
        np.array([0])))


def test_popularity_counts(data):
    s = PopularityRecommender().fit(data).score_users(np.array([1, 2]))
    np.testing.assert_array_equal(s[0], data.item_counts())
    np.testing.assert_array_equal(s[0], s[1])


def test_lightfm_fold_in_is_mean_item_factor(data):
    m = LightFMRecommender(**FAST).fit(data)
    cf = m.cf_
    history = sp.csr_matrix(([2.0, 1.0, 5.0], ([0, 0, 0], [3, 7, 9])), shape=(2, data.n_items))
    history.data.flags.writeable = False  # the caller's history must not be modified
    s = m.score_users(np.array([5, 6]), history=history)
    user_vec = cf.item_factors_[[3, 7, 9]].mean(0)
    np.testing.assert_allclose(s[0], user_vec @ cf.item_factors_.T + cf.item_biases_, rtol=1e-5)
    np.testing.assert_allclose(s[1], cf.predict(np.array([6]))[0], rtol=1e-6)  # empty history
    with pytest.raises(DataError, match="history"):
        m.score_users(np.array([0]), history=np.zeros((1, data.n_items)))


def test_lightfm_recommender_validates_config_in_fit(data):
    m = LightFMRecommender(no_components=0)
    with pytest.raises(ConfigError, match="no_components=0"):
        m.fit(data)
    with pytest.raises(TypeError):
        LightFMRecommender(n_factors=3).fit(data)


# ---------------------------------------------------------------------- LightFMFactors
def test_factors_match_lightfm_predict(data):
    cf = LightFMFactors(**FAST, use_item_features=False, use_user_features=False).fit(data)
    k = FAST["no_components"]
    assert cf.user_factors_.shape == (data.n_users, k) and cf.item_factors_.shape == (data.n_items, k)
    assert cf.user_biases_.shape == (data.n_users,) and cf.item_biases_.shape == (data.n_items,)
    assert all(a.dtype == np.float32 for a in (cf.user_factors_, cf.item_factors_, cf.item_biases_))
    assert cf.n_epochs_ == FAST["epochs"]
    users = np.array([0, 5, 9])
    ours = cf.predict(users)
    u, i = np.repeat(users, data.n_items), np.tile(np.arange(data.n_items), len(users))
    theirs = cf.model_.predict(u.astype(np.int32), i.astype(np.int32)).reshape(len(users), -1)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_factors_are_seeded_with_one_thread(data):
    a = LightFMFactors(**FAST, seed=7).fit(data).item_factors_
    b = LightFMFactors(CFConfig(**FAST, seed=7)).fit(data).item_factors_
    c = LightFMFactors(**FAST, seed=8).fit(data).item_factors_
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_cold_items_get_feature_based_factors(data):
    split = cold_item_split(data, 0.2, seed=0)
    cf = LightFMFactors(**FAST, use_item_features=True).fit(split.train)
    assert cf.item_features_.shape == (data.n_items, data.n_items + len(data.item_features.names))
    np.testing.assert_allclose(np.asarray(cf.item_features_.sum(1)).ravel(), 1.0, rtol=1e-6)
    emb = cf.model_.item_embeddings  # (n_items + n_features, k): identity rows, then features
    cold = split.candidate_items[0]
    feature = data.n_items + data.item_features.matrix[cold].indices[0]
    np.testing.assert_allclose(cf.item_factors_[cold], (emb[cold] + emb[feature]) / 2, rtol=1e-5)
    plain = LightFMFactors(**FAST, use_item_features=False).fit(split.train)
    assert plain.item_features_ is None
    auto = LightFMFactors(**FAST).fit(split.train)  # "auto": the data's features are used
    np.testing.assert_allclose(auto.item_factors_, cf.item_factors_, rtol=1e-6)


def test_cf_config_errors_name_the_value():
    for bad, match in [(dict(no_components=0), "no_components=0"), (dict(loss="hinge"), "hinge"),
                       (dict(learning_rate=0), "learning_rate=0"), (dict(epochs=2.5), "epochs=2.5"),
                       (dict(item_alpha=-1), "item_alpha=-1"), (dict(use_item_features="yes"), "yes")]:
        with pytest.raises(ConfigError, match=match):
            CFConfig(**bad)
    with pytest.raises(ConfigError, match="unknown CFConfig field"):
        LightFMFactors(components=3)
    with pytest.raises(ConfigError, match="CFConfig"):
        LightFMFactors({"no_components": 3})


def test_cf_fit_and_predict_errors(data):
    with pytest.raises(NotFittedError, match="fit"):
        LightFMFactors().predict(np.array([0]))
    with pytest.raises(DataError, match="InteractionData"):
        LightFMFactors().fit(np.zeros((3, 3)))
    with pytest.raises(DataError, match="empty"):
        LightFMFactors().fit(sp.csr_matrix((3, 3)))
    with pytest.raises(TrainingDivergedError, match="learning_rate"):
        LightFMFactors(learning_rate=1e10, epochs=2, num_threads=1).fit(data)
    cf = LightFMFactors(no_components=4, epochs=1).fit(data, show_progress=True)
    with pytest.raises(DataError, match="out of range"):
        cf.predict(np.array([-1]))
    with pytest.raises(DataError, match="1-D"):
        cf.predict(np.array([[0]]))
