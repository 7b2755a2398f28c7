"""The popularity prior for short histories (`multirec.prior`) and how scoring carries it."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from test_training import planted_net, planted_problem

from multirec.config import NetworkConfig
from multirec.network import TwoTowerNetwork
from multirec.prior import popularity_prior, set_item_prior, tune_prior
from multirec.scoring import Scorer
from multirec.training import validation_ndcg


def _popular_problem(n_users: int = 200, n_items: int = 100, seed: int = 0):
    """Interactions drawn from a steep popularity curve only (no personal taste):
    (train, valid) with 8 training and 4 validation items per user."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, n_items + 1) ** 1.2
    p = p[rng.permutation(n_items)]
    rows, cols, held = [], [], []
    for u in range(n_users):
        items = rng.choice(n_items, 12, replace=False, p=p / p.sum())
        rows += [u] * 12
        cols += list(items)
        held += [False] * 8 + [True] * 4
    rows, cols, held = np.array(rows), np.array(cols), np.array(held)
    ones = np.ones(len(rows), np.float32)
    shape = (n_users, n_items)
    return (sp.csr_matrix((ones[~held], (rows[~held], cols[~held])), shape=shape),
            sp.csr_matrix((ones[held], (rows[held], cols[held])), shape=shape))


def test_popularity_prior_is_log_one_plus_count():
    x = sp.csr_matrix(np.array([[1, 0, 1], [1, 0, 0], [1, 0, 1]], np.float32))
    np.testing.assert_allclose(popularity_prior(x), np.log1p([3, 0, 2]), rtol=1e-6)


def test_prior_weight_shrinks_with_the_history_and_adds_to_the_logit():
    train, _, content = planted_problem(n_items=40)
    net = planted_net(train, content).eval()
    set_item_prior(net, train)
    scorer = Scorer(net)
    hist = sp.csr_matrix(np.vstack([np.eye(40, dtype=np.float32)[0],
                                    (np.arange(40) < 20).astype(np.float32)]))
    before = scorer.logits(None, hist, calibrated=False)
    with torch.no_grad():
        net.prior_weight.fill_(2.0)
        net.prior_halflife.fill_(4.0)
    scorer.invalidate()
    user = scorer.users(None, hist)
    torch.testing.assert_close(user.prior, torch.tensor([2.0 * 4 / 5, 2.0 * 4 / 24]))
    after = scorer.logits(None, hist, calibrated=False)
    expected = before + user.prior[:, None] * net.item_prior[None, :]
    torch.testing.assert_close(after, expected, rtol=1e-5, atol=1e-5)


def test_retrieval_head_carries_the_prior():
    """query · item + b_u is the raw logit, prior included, for a one-item history."""
    train, _, content = planted_problem(n_items=40)
    net = planted_net(train, content).eval()
    set_item_prior(net, train)
    scorer = Scorer(net)
    d0 = scorer.retrieval_head().dim
    with torch.no_grad():
        net.prior_weight.fill_(1.5)
    scorer.invalidate()
    head = scorer.retrieval_head()
    assert head.dim == d0 + 1
    hist = sp.csr_matrix(np.eye(40, dtype=np.float32)[[3]])
    q, bu = scorer.queries(None, hist)
    raw = scorer.logits(None, hist, calibrated=False).numpy()
    np.testing.assert_allclose(q @ head.items.T + bu[:, None], raw, rtol=1e-4, atol=1e-4)


def test_tune_prior_turns_it_on_when_popularity_is_the_signal():
    """An untrained network knows nothing; the items' popularity is everything: the tuner
    picks a positive weight and short histories rank the validation items far better."""
    train, valid = _popular_problem()
    torch.manual_seed(0)
    net = TwoTowerNetwork(NetworkConfig(n_users=200, n_items=100, dim=8)).eval()
    with torch.no_grad():
        net.warm_item.fill_(True)
    before = validation_ndcg(net, train, valid, 10)
    chosen = tune_prior(net, train, valid, k=10, seed=0)
    assert chosen["prior_weight"] > 0 and float(net.prior_weight) == chosen["prior_weight"]
    assert validation_ndcg(net, train, valid, 10) > before + 0.1


def test_tune_prior_leaves_it_off_when_popularity_says_nothing():
    """Every item equally popular in training: the prior is a constant, ties keep w = 0."""
    n_users, n_items = 120, 60
    rows = np.repeat(np.arange(n_users), 6)
    cols = (np.arange(n_users * 6) * 7) % n_items  # each item used by 12 users
    train = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(n_users, n_items))
    assert np.unique(np.diff(train.tocsc().indptr)).size == 1
    valid = sp.csr_matrix((np.ones(n_users, np.float32),
                           (np.arange(n_users), (np.arange(n_users) * 5 + 3) % n_items)),
                          shape=(n_users, n_items))
    valid = sp.csr_matrix(valid - valid.multiply(train))
    valid.eliminate_zeros()
    _, _, content = planted_problem(n_users=n_users, n_items=n_items)
    net = planted_net(train, content).eval()
    chosen = tune_prior(net, train, valid, k=10, seed=0)
    assert chosen["prior_weight"] == 0.0 and float(net.prior_weight) == 0.0


def test_users_seen_in_training_get_no_prior():
    train, _, content = planted_problem(n_items=40)
    net = planted_net(train, content).eval()
    set_item_prior(net, train)
    with torch.no_grad():
        net.prior_weight.fill_(2.0)
    scorer = Scorer(net)
    users = np.array([0, 1])
    assert bool(net.warm_user[users].all())
    known = scorer.users(users, train[users])
    new = scorer.users(None, train[users])
    torch.testing.assert_close(known.prior, torch.zeros(2))
    assert bool((new.prior > 0).all())


def _ease_net(halflife: float):
    """A content network with the item-item (EASE) term on, its weights from `train`."""
    from multirec.itemitem import fit_item_item

    train, _, content = planted_problem(n_items=40)
    torch.manual_seed(0)
    net = TwoTowerNetwork(NetworkConfig(n_users=train.shape[0], n_items=40, dim=8,
                                        content_dims={"vec": content.shape[1]}, item_item=True))
    with torch.no_grad():
        net.content_vec.copy_(torch.from_numpy(content))
        net.has_vec.fill_(True)
        net.warm_item.fill_(True)
        net.warm_user.fill_(True)
        net.new_user_ii_halflife.fill_(halflife)
    return net.eval(), train, fit_item_item(train, l2=5.0)


def test_new_users_item_item_term_is_weighted_by_history_length():
    """For users the model does not know the item-item part of the logit is t·ii·n/(n + κ);
    known users keep it whole, and κ = 0 keeps it whole for everyone."""
    net, train, ii = _ease_net(4.0)
    hist = sp.csr_matrix(np.vstack([np.eye(40, dtype=np.float32)[0],
                                    (np.arange(40) < 12).astype(np.float32)]))  # n = 1, 12
    scores = torch.from_numpy(np.asarray(ii.scores(hist), np.float32))
    scorer = Scorer(net, ii)
    new = scorer.logits(None, hist, calibrated=False)
    with torch.no_grad():
        net.use_item_item = False
    without = Scorer(net, ii).logits(None, hist, calibrated=False)
    net.use_item_item = True
    weight = torch.tensor([1 / 5, 12 / 16])[:, None]
    torch.testing.assert_close(new - without, net.ii_scale.detach() * scores * weight,
                               rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(scorer.item_item_term(None, hist), new - without, rtol=1e-4, atol=1e-4)
    known = np.array([0, 1])
    full = scorer.item_item_term(known, hist)  # the same rows as known users: no damping
    torch.testing.assert_close(full, net.ii_scale.detach() * scores, rtol=1e-4, atol=1e-4)
    net0, _, _ = _ease_net(0.0)
    torch.testing.assert_close(Scorer(net0, ii).item_item_term(None, hist),
                               net0.ii_scale.detach() * scores, rtol=1e-4, atol=1e-4)


def test_new_user_item_item_halflife_is_checked_and_used_where_the_prior_is_on():
    """The damping reaches the fitted network when validation turns the popularity prior
    on (popularity-only data), and is 0 when the prior is off."""
    import pytest

    from multirec.config import TrainConfig
    from multirec.data import InteractionData
    from multirec.errors import ConfigError
    from multirec.model import MultimodalRecommender

    for bad in (-1.0, float("nan"), "20", True):
        with pytest.raises(ConfigError, match="new_user_item_item_halflife"):
            TrainConfig(new_user_item_item_halflife=bad)
    train, valid = _popular_problem()
    coo = (train + valid).tocoo()
    data = InteractionData.from_arrays(coo.row, coo.col)
    kw = dict(epochs=2, dim=8, show_progress=False, seed=0, new_user_item_item_halflife=7.5)
    model = MultimodalRecommender(**kw).fit(data)
    assert model.fit_config_["prior_weight"] > 0
    assert float(model.network.new_user_ii_halflife) == 7.5 == model.fit_config_["new_user_ii_halflife"]
    off = MultimodalRecommender(popularity_prior=False, **kw).fit(data)
    assert float(off.network.new_user_ii_halflife) == 0.0


def test_raw_logits_block_is_the_raw_logits_and_their_item_item_part():
    net, train, ii = _ease_net(4.0)
    scorer = Scorer(net, ii)
    hist = train[:5]
    z, part = scorer.raw_logits_block(None, hist, item_item_part=True)
    torch.testing.assert_close(z, scorer.logits(None, hist, calibrated=False))
    torch.testing.assert_close(part, scorer.item_item_term(None, hist))
    assert scorer.raw_logits_block(None, hist)[1] is None
    net.use_item_item = False
    assert scorer.raw_logits_block(None, hist, item_item_part=True)[1] is None
