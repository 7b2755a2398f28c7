"""New-user validation (`multirec.uservalid`): the user carve, its histories, and the
new-user settings chosen on it (`multirec.prior.tune_prior(new_users=...)`, `multirec.fit`)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from test_training import planted_problem

from multirec.config import NetworkConfig, TrainConfig
from multirec.data import InteractionData
from multirec.errors import ConfigError
from multirec.itemitem import fit_item_item
from multirec.model import MultimodalRecommender
from multirec.network import TwoTowerNetwork
from multirec.prior import II_HALFLIVES, tune_prior
from multirec.ranking import masked_scores, ndcg_at_k
from multirec.scoring import Scorer
from multirec.uservalid import MAX_CARVED_USERS, MIN_CARVED_USERS, arrival_order, carve_users


def test_arrival_order_ranks_by_time_and_keeps_the_earliest_repeat():
    users = np.array([0, 0, 0, 1, 1])
    items = np.array([2, 0, 2, 1, 0])
    times = np.array([5.0, 1.0, 0.0, 9.0, 3.0])
    order = arrival_order(users, items, times, (2, 3), seed=0).toarray()
    # global ranks by time: (0,2)@0 → 1, (0,0)@1 → 2, (1,0)@3 → 3, (0,2)@5 → 4 (a repeat), (1,1)@9 → 5
    np.testing.assert_array_equal(order, [[2, 0, 1], [3, 5, 0]])


def test_arrival_order_without_timestamps_is_a_seeded_permutation():
    users, items = np.repeat(np.arange(4), 5), np.tile(np.arange(5), 4)
    a = arrival_order(users, items, None, (4, 5), seed=3)
    b = arrival_order(users, items, None, (4, 5), seed=3)
    c = arrival_order(users, items, None, (4, 5), seed=4)
    np.testing.assert_array_equal(a.toarray(), b.toarray())
    np.testing.assert_array_equal(np.sort(a.data), np.arange(1, 21))
    assert not np.array_equal(a.toarray(), c.toarray())


def _problem(n_users: int = 300):
    train, valid, _ = planted_problem(n_users=n_users, n_items=60)
    both = (train + valid).tocoo()
    rng = np.random.default_rng(0)
    order = arrival_order(both.row, both.col, rng.random(both.nnz), train.shape, seed=0)
    return train, valid, order


def test_carve_users_moves_whole_users_out_of_training_and_validation():
    train, valid, order = _problem()
    new_train, new_valid, carve = carve_users(train, valid, order, 0.1, seed=0)
    assert carve is not None and carve.users.size == 30
    assert np.all(np.diff(carve.users) > 0)
    assert np.diff(new_train.indptr)[carve.users].sum() == 0
    assert np.diff(new_valid.indptr)[carve.users].sum() == 0
    others = np.setdiff1d(np.arange(train.shape[0]), carve.users)
    assert (new_train[others] != train[others]).nnz == 0 and (new_valid[others] != valid[others]).nnz == 0
    # the carve holds every interaction of its users (training and validation), with its rank
    held = sp.csr_matrix((train + valid)[carve.users], dtype=bool)
    assert (sp.csr_matrix(carve.order, dtype=bool) != held).nnz == 0
    np.testing.assert_array_equal(carve.order.toarray(), order[carve.users].toarray())


def test_carve_users_is_capped_and_skipped_when_too_small():
    train, valid, order = _problem(n_users=150)
    _, _, none = carve_users(train, valid, order, (MIN_CARVED_USERS - 1) / 150, seed=0)
    assert none is None
    same, _, off = carve_users(train, valid, order, 0.0, seed=0)
    assert off is None and same is train
    big = sp.csr_matrix(sp.random(6000, 50, density=0.1, random_state=0, format="csr"))
    big.data[:] = 1.0
    bo = big.tocoo()
    _, _, capped = carve_users(big, None, arrival_order(bo.row, bo.col, None, big.shape, 0), 0.5, seed=0)
    assert capped.users.size == MAX_CARVED_USERS


def test_carve_users_skips_users_with_a_single_interaction():
    rows = np.r_[np.arange(40), np.repeat(np.arange(40, 100), 3)]
    cols = np.r_[np.zeros(40, int), np.tile([1, 2, 3], 60)]
    x = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(100, 4))
    _, _, carve = carve_users(x, None, arrival_order(rows, cols, None, x.shape, 0), 0.5, seed=0)
    assert carve.users.size == 30 and carve.users.min() >= 40


def test_split_serves_the_first_n_and_targets_the_rest():
    train, valid, order = _problem()
    _, _, carve = carve_users(train, valid, order, 0.1, seed=0)
    counts = np.diff(carve.order.indptr)
    for n in (1, 3, 11):
        rows, history, target = carve.split(n)
        np.testing.assert_array_equal(rows, np.flatnonzero(counts > n))
        assert np.all(np.diff(history.indptr) == n)
        assert history.multiply(target).nnz == 0
        full = sp.csr_matrix(carve.order[rows], dtype=bool)
        assert (sp.csr_matrix(history + target, dtype=bool) != full).nnz == 0
        for r in range(rows.size):  # every history item came before every target item
            o = carve.order[rows[r]].toarray().ravel()
            assert o[history[r].indices].max() < o[target[r].indices].min()


def _ease_setup():
    """An untrained content network with the EASE term, the carve out of its training."""
    train, valid, order = _problem()
    new_train, new_valid, carve = carve_users(train, valid, order, 0.2, seed=0)
    _, _, content = planted_problem(n_users=300, n_items=60)
    torch.manual_seed(0)
    net = TwoTowerNetwork(NetworkConfig(n_users=300, n_items=60, dim=8,
                                        content_dims={"vec": content.shape[1]}, item_item=True))
    with torch.no_grad():
        net.content_vec.copy_(torch.from_numpy(content))
        net.has_vec.fill_(True)
        net.warm_item.fill_(True)
        net.warm_user.copy_(torch.from_numpy(np.diff(new_train.indptr) > 0))
        net.ii_scale.fill_(4.0)
    return net.eval(), new_train, new_valid, carve, fit_item_item(new_train, l2=5.0)


def _carve_ndcg(net, ii, carve) -> float:
    """Mean over history sizes of NDCG@10 of the carve's targets, scored with the network's
    own settings (no decomposition)."""
    scorer = Scorer(net, ii)
    out = []
    for n in (1, 3, 5, 10):
        _, history, target = carve.split(n)
        z = scorer.logits(None, history, calibrated=False).double().numpy()
        total, cnt = ndcg_at_k(masked_scores(z, history), target, 10)
        out.append(total / cnt)
    return float(np.mean(out))


def test_tune_prior_on_carved_users_sets_the_best_item_item_damping():
    """The κ_ii chosen on the carve is the best of the grid when each is set in the network
    itself (so the tuner's decomposition of the logits is the network's own)."""
    net, train, valid, carve, ii = _ease_setup()
    chosen = tune_prior(net, train, valid, ii, new_users=carve, k=10, seed=0, sizes=(1, 3, 5, 10))
    assert chosen["new_user_ii_halflife"] in II_HALFLIVES
    assert float(net.new_user_ii_halflife) == chosen["new_user_ii_halflife"]
    assert float(net.prior_weight) == pytest.approx(chosen["prior_weight"])
    scores = {}
    for kii in II_HALFLIVES:
        with torch.no_grad():
            net.new_user_ii_halflife.fill_(kii)
        scores[kii] = _carve_ndcg(net, ii, carve)
    assert len(set(np.round(list(scores.values()), 6))) > 1  # the damping matters here
    assert scores[chosen["new_user_ii_halflife"]] == pytest.approx(max(scores.values()), abs=1e-9)


def test_tune_prior_on_carved_users_without_item_item_reports_no_damping():
    net, train, valid, carve, _ = _ease_setup()
    net.use_item_item = False
    chosen = tune_prior(net, train, valid, None, new_users=carve, k=10, seed=0)
    assert chosen["new_user_ii_halflife"] == 0.0 and float(net.new_user_ii_halflife) == 0.0


def _data():
    train, valid, _ = planted_problem(n_users=300, n_items=60)
    coo = (train + valid).tocoo()
    times = np.random.default_rng(1).random(coo.nnz)
    return InteractionData.from_arrays(coo.row, coo.col, timestamps=times)


KW = dict(epochs=2, dim=8, show_progress=False, seed=0, cf={"epochs": 2}, new_user_valid_users=0.25)


def test_fit_carves_new_users_chooses_their_settings_and_trains_on_them_again():
    model = MultimodalRecommender(**KW).fit(_data())
    fc = model.fit_config_
    assert fc["new_user_valid_users"] == round(0.25 * 300)
    assert fc["new_user_ii_halflife"] in II_HALFLIVES
    assert float(model.network.new_user_ii_halflife) == fc["new_user_ii_halflife"]
    assert bool(model.network.warm_user.all())  # the refit trained on the carved users too


@pytest.mark.parametrize("kw", [{"refit": False}, {"new_user_valid_users": 0.0},
                                {"popularity_prior": False}])
def test_no_user_carve_without_refit_prior_or_share(kw):
    model = MultimodalRecommender(**{**KW, **kw}).fit(_data())
    assert "new_user_valid_users" not in model.fit_config_
    assert bool(model.network.warm_user.all())


def test_the_user_carve_is_off_by_default_and_then_kappa_ii_follows_the_prior():
    assert TrainConfig().new_user_valid_users == 0.0
    kw = {k: v for k, v in KW.items() if k != "new_user_valid_users"}
    model = MultimodalRecommender(**kw).fit(_data())
    fc = model.fit_config_
    assert "new_user_valid_users" not in fc
    assert fc["new_user_ii_halflife"] == (20.0 if fc["prior_weight"] > 0 else 0.0)


def test_a_fixed_item_item_halflife_is_kept_with_the_carve():
    model = MultimodalRecommender(**KW, new_user_item_item_halflife=7.5).fit(_data())
    assert model.fit_config_["new_user_valid_users"] == 75
    if model.fit_config_["prior_weight"] > 0:
        assert model.fit_config_["new_user_ii_halflife"] == 7.5
    else:
        assert model.fit_config_["new_user_ii_halflife"] == 0.0


@pytest.mark.parametrize("bad", [-0.1, 0.6, "0.1", None, True])
def test_new_user_valid_users_is_checked(bad):
    with pytest.raises(ConfigError, match="new_user_valid_users"):
        TrainConfig(new_user_valid_users=bad)


def test_item_item_halflife_accepts_auto_only_as_a_string():
    assert TrainConfig(new_user_item_item_halflife="auto").new_user_item_item_halflife == "auto"
    with pytest.raises(ConfigError, match="new_user_item_item_halflife"):
        TrainConfig(new_user_item_item_halflife="20")
