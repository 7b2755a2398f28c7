"""Cold-item validation carve, folding carved items back in, simulated cold items in
training (the CF factor a cold item would have) and unknown items as prior-only negatives."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from test_training import planted_net, planted_problem

import encoders.precomputed  # noqa: F401  (registers "precomputed")
from multirec.cf import LightFMFactors
from multirec.coldvalid import MIN_CARVED_ITEMS, carve_items, fold_in_items
from multirec.config import NetworkConfig
from multirec.data import FeatureMatrix, InteractionData
from multirec.model import MultimodalRecommender
from multirec.network import TwoTowerNetwork
from multirec.training import TrainConfig, train_network, validation_ndcg


def test_carve_moves_the_items_out_of_training_and_keeps_every_history():
    train, valid, _ = planted_problem(n_items=200)
    eligible = np.ones(200, dtype=bool)
    new_train, new_valid, carve = carve_items(train, valid, eligible, 0.2, seed=0)
    assert carve is not None and carve.items.size >= MIN_CARVED_ITEMS
    cols = carve.items
    assert new_train[:, cols].nnz == 0 and new_valid[:, cols].nnz == 0
    # every interaction of a carved item (train or valid) is a cold target, nothing else is
    expected = (train + valid)[:, cols]
    assert carve.target[:, cols].nnz == expected.nnz
    other = np.setdiff1d(np.arange(200), cols)
    assert carve.target[:, other].nnz == 0
    assert new_train.nnz + new_valid.nnz + carve.target.nnz == train.nnz + valid.nnz
    had = np.diff(train.indptr) > 0
    assert (np.diff(new_train.indptr)[had] > 0).all()  # no user lost their whole history


def test_carve_only_takes_eligible_items_and_skips_tiny_carves():
    train, valid, _ = planted_problem(n_items=200)
    eligible = np.zeros(200, dtype=bool)
    eligible[:100] = True
    _, _, carve = carve_items(train, valid, eligible, 0.3, seed=1)
    assert carve is not None and carve.items.max() < 100
    same_train, same_valid, none = carve_items(train, valid, eligible, 0.01, seed=1)
    assert none is None and same_train is train and same_valid is valid


def cold_ndcg(net, inputs, carve, k):
    return validation_ndcg(net, inputs, carve.target, k, columns=carve.items)


def test_cold_ndcg_ranks_only_the_carved_items():
    train, valid, content = planted_problem(n_items=200)
    new_train, _, carve = carve_items(train, valid, np.ones(200, bool), 0.2, seed=0)
    net = planted_net(new_train, content).eval()
    score = cold_ndcg(net, new_train, carve, k=5)
    assert 0.0 < score <= 1.0
    # a constant scorer ranks the carved items at random: clearly below the planted model
    cfg = TrainConfig(epochs=16, batch_size=32, eval_every=4, patience=10, show_progress=False)
    train_network(net, new_train, None, cfg)
    trained = cold_ndcg(net, new_train, carve, k=5)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
    flat = cold_ndcg(net, new_train, carve, k=5)
    assert trained > flat + 0.05


def test_fold_in_fits_the_carved_items_biases_from_their_interactions():
    train, valid, content = planted_problem(n_items=200)
    full = sp.csr_matrix(train + valid)
    new_train, _, carve = carve_items(train, valid, np.ones(200, bool), 0.25, seed=0)
    net = planted_net(new_train, content)
    cfg = TrainConfig(epochs=10, batch_size=32, eval_every=5, patience=10, show_progress=False)
    train_network(net, new_train, None, cfg)
    items = torch.from_numpy(carve.items)
    assert not net.warm_item[items].any()
    auc_before = _carved_auc(net, full, carve)
    fold_in_items(net, full, carve.items)
    assert net.warm_item[items].all()
    assert _carved_auc(net, full, carve) > auc_before + 0.05  # their interactions are learned


def _carved_auc(net, full, carve) -> float:
    """AUC of the carved items' interactions against the other carved pairs."""
    from multirec.scoring import Scorer

    users = np.arange(full.shape[0])
    z = Scorer(net).score_users(users, None, full)[:, carve.items]  # (U, C)
    y = full[:, carve.items].toarray() > 0
    pos, neg = z[y], z[~y]
    return float((pos[:, None] > neg[None, :]).mean())


@pytest.mark.parametrize("refit", [True, False])  # carved items retrained, or folded in
def test_fit_with_content_carves_and_folds_back_every_item(refit):
    train, valid, content = planted_problem(n_users=150, n_items=400)
    coo = (train + valid).tocoo()
    data = InteractionData.from_arrays(coo.row, coo.col,
                                       item_content={"vec": dict(enumerate(content))})
    model = MultimodalRecommender(encoders={"vec": {"name": "precomputed", "dim": K_DIM}}, cf=False,
                                  dim=16, epochs=4, eval_every=2, cold_valid_items=0.1,
                                  refit=refit, show_progress=False, seed=0)
    model.fit(data)
    n_carved = model.fit_config_["cold_valid_items"]
    assert n_carved >= MIN_CARVED_ITEMS
    logs = [e for e in model.history_.epochs if "val_ndcg@10" in e]
    assert logs and all("val_cold_ndcg@10" in e for e in logs)
    interacted = np.diff(data.to_csr().tocsc().indptr) > 0
    assert model.network.warm_item.numpy()[interacted].all()  # carved items are warm again


def test_cf_only_model_does_not_carve():
    train, valid, _ = planted_problem(n_items=200)
    coo = (train + valid).tocoo()
    data = InteractionData.from_arrays(coo.row, coo.col)
    model = MultimodalRecommender(cf={"epochs": 2}, dim=8, epochs=2, show_progress=False, seed=0)
    model.fit(data)
    assert "cold_valid_items" not in model.fit_config_


K_DIM = planted_problem()[2].shape[1]


# ------------------------------------------------------------------ simulated cold items
def _hybrid():
    train, valid, _ = planted_problem(n_items=60)
    coo = (train + valid).tocoo()
    data = InteractionData.from_arrays(coo.row, coo.col)
    feats = {data.items.ids(np.array([i]))[0]: [f"g{i % 5}"] for i in range(40)}  # 40 of 60 items
    fm = FeatureMatrix.build(feats, data.items.copy(), "item")
    return train, fm


def test_lightfm_cold_factors_are_the_side_feature_part():
    train, fm = _hybrid()
    lfm = LightFMFactors(epochs=2, no_components=8, seed=0).fit(train, item_features=fm)
    cold = lfm.item_cold_factors_
    assert cold.shape == (60, 8)
    assert np.isnan(cold[40:]).all() and np.isfinite(cold[:40]).all()
    side = lfm.item_features_[:, 60:]
    np.testing.assert_allclose(cold[:40], (side @ lfm.model_.item_embeddings[60:])[:40], rtol=1e-5)
    # same genre, same cold factor: it no longer depends on the item's own identity
    np.testing.assert_allclose(cold[0], cold[5], rtol=1e-5)
    assert LightFMFactors(epochs=1, no_components=8).fit(train).item_cold_factors_ is None


def _cf_net(n_items: int = 6, with_content: bool = True) -> TwoTowerNetwork:
    cfg = NetworkConfig(n_users=3, n_items=n_items, cf_dim=4, dim=8,
                        content_dims={"vec": 5} if with_content else {})
    net = TwoTowerNetwork(cfg)
    with torch.no_grad():
        net.cf_item.copy_(torch.randn(n_items, 4))
        net.has_cf.fill_(True)
        net.warm_item.fill_(True)
        if with_content:
            net.content_vec.copy_(torch.randn(n_items, 5))
            net.has_vec.fill_(True)
    return net.train()


def test_items_made_to_look_cold_get_their_side_feature_factor():
    net = _cf_net()
    cold = torch.randn(6, 4)
    cold[3:] = float("nan")  # items 3..5 have no side features
    net.cf_item_cold = cold
    items = torch.arange(6)
    always_cold = torch.tensor([0.0, 0.0, 1.0])  # sources kept, ID residual always hidden
    out = net.items(items, drop_p=always_cold)
    np.testing.assert_allclose(out.cf[:3].detach(), cold[:3] * 1.0, rtol=1e-6)
    assert out.mask[:3, 0].all() and not out.mask[3:, 0].any()  # no cold factor: no CF source
    assert out.memory.sum() == 0  # the item-item term is hidden with the ID residual
    kept = net.items(items, drop_p=torch.tensor([0.0, 0.0, 0.0]))
    np.testing.assert_allclose(kept.cf.detach(), net.cf_item, rtol=1e-6)


def test_cf_only_items_keep_their_factor_when_nothing_else_can_stand_in():
    net = _cf_net(with_content=False)
    out = net.items(torch.arange(6), drop_p=torch.tensor([0.0, 1.0]))
    assert out.mask[:, 0].all()  # a CF-only model has no other source for a cold item


@pytest.mark.parametrize("negatives", ["all", 24])
def test_items_without_interactions_never_train_the_content_path(negatives):
    """Two runs that differ only in the content of never-interacted items end with the same
    weights (the cold prior frozen): such items pass no gradient to the shared towers."""
    train, _, content = planted_problem(n_items=60)
    train = sp.lil_matrix(train)
    train[:, 50:] = 0  # items 50..59: nobody has interacted with them
    train = sp.csr_matrix(train)
    train.eliminate_zeros()
    weights = []
    for flip in (1.0, -3.0):
        c = content.copy()
        c[50:] *= flip
        net = planted_net(train, c)
        net.cold_bias.requires_grad_(False)
        cfg = TrainConfig(epochs=2, batch_size=32, eval_every=2, patience=5, negatives=negatives,
                          show_progress=False, seed=0)
        train_network(net, train, None, cfg)
        weights.append({k: v.detach().clone() for k, v in net.named_parameters()})
    for name in weights[0]:
        torch.testing.assert_close(weights[0][name], weights[1][name], msg=name)


# ------------------------------------------------------------------ the cold CF weight
def test_cold_cf_scale_weights_only_cold_items_lightfm_score():
    net = _cf_net().eval()
    with torch.no_grad():
        net.warm_item[3:] = False
        net.cold_cf_scale.fill_(5.0)
    out = net.items(torch.arange(6))
    torch.testing.assert_close(out.cf[:3], net.cf_item[:3])
    torch.testing.assert_close(out.cf[3:], 5.0 * net.cf_item[3:])


def _svd_carve_net(cf_scale: float):
    """A carve of a planted problem and a CF-only network whose LightFM-like factors are a
    truncated SVD of all the interactions (they reproduce them, carved items included);
    `cf_scale` is the learned weight of their score. Returns (net, train, valid, carve)."""
    train, valid, _ = planted_problem(n_users=150, n_items=200, seed=3)
    full = sp.csr_matrix(train + valid)
    new_train, new_valid, carve = carve_items(train, valid, np.ones(200, bool), 0.3, seed=0)
    u, s, vt = np.linalg.svd(full.toarray(), full_matrices=False)
    torch.manual_seed(0)
    net = TwoTowerNetwork(NetworkConfig(n_users=150, n_items=200, cf_dim=8, dim=8))
    with torch.no_grad():
        net.cf_user.copy_(torch.from_numpy((u[:, :8] * s[:8]).astype(np.float32)))
        net.cf_item.copy_(torch.from_numpy(vt[:8].T.astype(np.float32)))
        net.has_cf.fill_(True)
        net.warm_item.copy_(torch.from_numpy(np.diff(new_train.tocsc().indptr) > 0))
        net.warm_user.fill_(True)
        net.cf_scale.fill_(cf_scale)
    return net.eval(), new_train, new_valid, carve


def test_cold_cf_scale_is_chosen_on_the_carve():
    """The LightFM score is the only signal for the carved items: the tuner turns it up."""
    from multirec.posthoc import COLD_CF_SCALES, tune_cold_cf_scale

    net, new_train, new_valid, carve = _svd_carve_net(0.01)  # weak, as after training with IDs
    with torch.no_grad():
        net.content_bias.bias.fill_(0.0)
    before = cold_ndcg(net, new_train, carve, k=10)
    mult = tune_cold_cf_scale(net, new_train, new_valid, carve, k=10)
    assert mult == float(net.cold_cf_scale) and mult in COLD_CF_SCALES and mult >= 16
    assert cold_ndcg(net, new_train, carve, k=10) > before + 0.05


def test_fold_in_in_groups_matches_one_group():
    """A small memory budget folds the items in several groups with the same result (each
    item's regression is independent of the others')."""
    train, valid, content = planted_problem(n_items=200)
    full = sp.csr_matrix(train + valid)
    new_train, _, carve = carve_items(train, valid, np.ones(200, bool), 0.25, seed=0)
    net = planted_net(new_train, content)
    train_network(net, new_train, None, TrainConfig(epochs=4, batch_size=32, eval_every=4,
                                                    patience=10, show_progress=False))
    state = {k: v.clone() for k, v in net.state_dict().items()}
    results = []
    for budget in (10**9, 150 * 12):  # one group; one item per group (all 150 users each)
        net.load_state_dict(state)
        fold_in_items(net, full, carve.items, budget=budget)
        results.append((net.item_id.weight[carve.items].detach().clone(),
                        net.item_bias.weight[carve.items].detach().clone()))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-4, atol=1e-5)


def test_scorer_logits_for_some_columns_are_those_of_the_full_catalogue():
    from multirec.scoring import Scorer

    train, _, content = planted_problem(n_items=60)
    net = planted_net(train, content).eval()
    cols = np.array([3, 17, 40, 59])
    scorer = Scorer(net)
    full = scorer.logits(np.arange(5), train[:5])
    part = scorer.logits(np.arange(5), train[:5], columns=cols)
    assert part.shape == (5, 4)
    torch.testing.assert_close(part, full[:, cols])


def test_cold_shift_keeps_new_items_from_flooding_the_lists():
    """With a strong warm model, the cold weight chosen on the carve alone is large and would
    push new items above the relevant warm ones; the shift chosen on the whole catalogue
    puts them back in their place."""
    from multirec.posthoc import COLD_CF_SCALES, tune_cold_items

    net, new_train, new_valid, carve = _svd_carve_net(1.0)  # warm items ranked well by LightFM
    warm_alone = validation_ndcg(net, new_train, new_valid, 10)
    chosen = tune_cold_items(net, new_train, new_valid, carve, k=10)
    assert chosen["cold_cf_scale"] >= 16 and chosen["cold_cf_scale"] in COLD_CF_SCALES
    assert chosen["cold_shift"] < 0
    tuned = validation_ndcg(net, new_train, new_valid, 10)
    with torch.no_grad():
        net.cold_bias.sub_(chosen["cold_shift"])  # the carve's weight without the shift
    flooded = validation_ndcg(net, new_train, new_valid, 10)
    assert tuned > flooded + 0.05  # flooding hurts, and the shift undoes it
    assert tuned > warm_alone - 0.05


def test_cold_candidates_keep_every_carved_item_and_sample_the_rest_up_to_the_cap():
    from multirec.posthoc import cold_candidates

    cold = np.zeros(1000, dtype=bool)
    cold[100:] = True  # 900 cold items
    carved = np.array([3, 7, 150, 151])  # carved items are cold too in the network
    cold[carved] = True
    small = cold_candidates(cold, carved, cap=10_000)  # under the cap: every cold item
    np.testing.assert_array_equal(small, np.flatnonzero(cold))
    capped = cold_candidates(cold, carved, cap=50, seed=1)
    assert capped.size == 50 and np.isin(carved, capped).all() and cold[capped].all()
    assert np.array_equal(capped, np.unique(capped))  # sorted, no repeats
    np.testing.assert_array_equal(capped, cold_candidates(cold, carved, cap=50, seed=1))
    assert not np.array_equal(capped, cold_candidates(cold, carved, cap=50, seed=2))


def test_last_cold_shift_candidate_puts_new_items_below_every_warm_one():
    """The last offset places every sampled user's new items under all their warm items, so
    with it the catalogue ranks as if the new items were not there (a data set whose new
    items are rarely wanted can choose it); the earlier ones are the per-rank medians."""
    from multirec.posthoc import cold_shift_candidates
    from multirec.scoring import iter_logits

    net, new_train, new_valid, _ = _svd_carve_net(1.0)
    with torch.no_grad():
        net.cold_cf_scale.fill_(64.0)  # new items flood the lists
    cold = ~net.warm_item.numpy()
    warm_cols = np.flatnonzero(~cold)
    wanted_warm = sp.csr_matrix(new_valid @ sp.diags((~cold).astype(np.float32)))  # no new items
    flooded = validation_ndcg(net, new_train, wanted_warm, 10)
    alone = validation_ndcg(net, new_train, wanted_warm, 10, columns=warm_cols)
    assert flooded < alone - 0.05  # the new items push wanted warm ones out of the top 10

    offsets = cold_shift_candidates(net, new_train, new_valid, max_users=500)
    assert offsets[0] == 0.0 and len(offsets) >= 3
    assert offsets[1:] == sorted(offsets[1:], reverse=True)  # ranks 1, 2, 5, ..., then below all
    with torch.no_grad():
        net.cold_bias.add_(offsets[-1])
    for u, logits in iter_logits(net, new_train, np.flatnonzero(np.diff(new_valid.indptr))):
        z, seen = logits.numpy(), new_train[u].toarray() > 0
        warm_low = np.where(~cold & ~seen, z, np.inf).min(1)  # (B,)
        cold_high = np.where(cold & ~seen, z, -np.inf).max(1)  # (B,)
        assert (cold_high < warm_low).all()
    assert validation_ndcg(net, new_train, wanted_warm, 10) == pytest.approx(alone)
