"""`refit=True`: once validation has chosen the epoch and the post-hoc settings, LightFM and
the towers are retrained on every interaction (train + validation, carved items included)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_training import planted_net, planted_problem

import encoders.precomputed  # noqa: F401  (registers "precomputed")
from multirec.config import TrainConfig
from multirec.data import InteractionData
from multirec.errors import ConfigError
from multirec.fit import holdout_split
from multirec.model import MultimodalRecommender
from multirec.posthoc import carry_over
from multirec.scoring import Scorer


def _data(n_items: int = 400) -> InteractionData:
    train, valid, content = planted_problem(n_users=150, n_items=n_items)
    coo = (train + valid).tocoo()
    return InteractionData.from_arrays(coo.row, coo.col,
                                       item_content={"vec": dict(enumerate(content))})


def _model(refit: bool, **kw) -> MultimodalRecommender:
    enc = {"vec": {"name": "precomputed", "dim": planted_problem()[2].shape[1]}}
    kw = {"cf": False, "dim": 16, "epochs": 6, "eval_every": 2, "patience": 2,
          "cold_valid_items": 0.1, **kw}
    return MultimodalRecommender(encoders=enc, refit=refit, show_progress=False, seed=0, **kw)


def _auc(z: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> float:
    return float((z[pos][:, None] > z[neg][None, :]).mean())


def test_refit_trains_on_the_validation_pairs():
    """Validation pairs are training data for the refit model, held out for the other: the
    refit model ranks them higher against the pairs nobody chose (among items with
    interactions; measured: AUC 0.846 without, 0.860 with)."""
    data = _data()
    full = data.to_csr()
    train, valid = holdout_split(full, 0.1, 0)  # the pairs `fit` holds out (same rule and seed)
    users = np.arange(data.n_users)
    pos = valid.toarray() > 0
    neg = (full.toarray() == 0) & (np.asarray(full.sum(axis=0)) > 0)
    aucs = {}
    for refit in (False, True):
        model = _model(refit, item_item=False, cold_valid_items=0.0, epochs=30,
                       patience=10).fit(data)
        z = Scorer(model.network).logits(users, train).numpy()  # (U, I), training histories
        aucs[refit] = _auc(z, pos, neg)
    assert aucs[True] > aucs[False] + 0.005, aucs


def test_refit_keeps_the_chosen_epochs_and_needs_no_fold_in():
    data = _data()
    model = _model(True).fit(data)
    cfg = model.fit_config_
    assert cfg["refit_epochs"] == model.history_.best_epoch + 1
    assert "folded_in_items" not in cfg  # carved items were trained, not folded in
    interacted = np.diff(data.to_csr().tocsc().indptr) > 0
    assert model.network.warm_item.numpy()[interacted].all()
    assert float(model.network.cold_cf_scale) == pytest.approx(cfg.get("cold_cf_scale", 1.0))


def test_without_refit_the_carved_items_are_folded_in():
    model = _model(False).fit(_data())
    assert "refit_epochs" not in model.fit_config_
    assert model.fit_config_["folded_in_items"] >= model.fit_config_["cold_valid_items"]


def test_refit_is_deterministic():
    data = _data()
    users = np.arange(20)
    a, b = (Scorer(_model(True).fit(data).network).score_users(users, None, data.to_csr())
            for _ in range(2))
    np.testing.assert_array_equal(a, b)


def test_carry_over_applies_multipliers_to_the_new_weights_and_copies_the_rest():
    train, _, content = planted_problem()
    old, new = planted_net(train, content, seed=0), planted_net(train, content, seed=1)
    with torch.no_grad():
        for name, value in {"cold_cf_scale": 8.0, "prior_weight": 1.5, "prior_halflife": 3.0,
                            "logit_scale": 0.7, "logit_shift": -0.2}.items():
            getattr(old, name).fill_(value)
        new.ii_scale.fill_(2.0)
        new.cold_bias.fill_(0.5)
    carry_over(old, new, item_item_scale=4.0, cold_shift=-1.25)
    assert float(new.ii_scale.detach()) == 8.0 and float(new.cold_bias.detach()) == pytest.approx(-0.75)
    for name in ("cold_cf_scale", "prior_weight", "prior_halflife", "logit_scale", "logit_shift"):
        assert torch.equal(getattr(new, name), getattr(old, name)), name


def test_refit_must_be_a_bool():
    with pytest.raises(ConfigError, match="refit"):
        TrainConfig(refit="yes")


def test_refit_continues_fine_tuned_encoders():
    """The tags encoder (trainable embeddings) is trained on in the refit, and the content
    buffers the model serves with are its final weights."""
    train, valid, _ = planted_problem(n_users=150, n_items=200)
    coo = (train + valid).tocoo()
    tags = {i: [f"t{i % 7}", f"g{i % 3}"] for i in range(200)}
    data = InteractionData.from_arrays(coo.row, coo.col, item_content={"tags": tags})
    model = MultimodalRecommender(encoders={"tags": "tags"}, cf=False, dim=8, epochs=4,
                                  eval_every=2, cold_valid_items=0.1, show_progress=False,
                                  seed=0).fit(data)
    net = model.network
    assert model.fit_config_["refit_epochs"] == model.history_.best_epoch + 1
    assert net.finetuned == ["tags"]
    served = net.content_tags.clone()
    net.refresh_content()  # re-embed with the encoder's current weights
    torch.testing.assert_close(net.content_tags, served)


def test_warm_started_refit_continues_the_trained_weights(monkeypatch):
    """`refit_warm_start=s`: the refit network starts from the towers as the validation run
    trained them (before the post-hoc steps), LightFM continues its model, and both run a
    share s of the epochs."""
    import multirec.fit as fit_module
    from multirec.cf import LightFMFactors

    calls: list[dict[str, torch.Tensor]] = []
    real_train = fit_module.train_network

    def spy(net, *args, **kwargs):  # weights at the start and end of each training run
        calls.append({n: p.detach().clone() for n, p in net.named_parameters()})
        history = real_train(net, *args, **kwargs)
        calls.append({n: p.detach().clone() for n, p in net.named_parameters()})
        return history

    passes: list[int] = []
    real_more = LightFMFactors.fit_more

    def more(self, interactions, epochs, show_progress=False):
        passes.append(epochs)
        return real_more(self, interactions, epochs, show_progress)

    monkeypatch.setattr(fit_module, "train_network", spy)
    monkeypatch.setattr(LightFMFactors, "fit_more", more)
    model = _model(True, cf={"epochs": 8}, epochs=8, patience=4, refit_warm_start=0.5)
    model.fit(_data())
    trained, refit_start = calls[1], calls[2]
    for name in ("item_id.weight", "hist.weight", "user_bias.weight"):
        torch.testing.assert_close(refit_start[name], trained[name], rtol=0, atol=0)
    assert not torch.equal(calls[3]["item_id.weight"], trained["item_id.weight"])  # it trained on
    assert model.fit_config_["refit_epochs"] == max(1, round(0.5 * (model.history_.best_epoch + 1)))
    assert passes == [4]


def test_scratch_refit_starts_from_fresh_weights(monkeypatch):
    import multirec.fit as fit_module

    starts: list[torch.Tensor] = []
    real_train = fit_module.train_network

    def spy(net, *args, **kwargs):
        starts.append(net.item_id.weight.detach().clone())
        history = real_train(net, *args, **kwargs)
        starts.append(net.item_id.weight.detach().clone())
        return history

    monkeypatch.setattr(fit_module, "train_network", spy)
    _model(True).fit(_data())
    assert not torch.allclose(starts[2], starts[1])


def test_lightfm_fit_more_continues_training():
    from multirec.cf import LightFMFactors
    from multirec.errors import DataError, NotFittedError

    data = _data(n_items=120)
    x = data.to_csr()
    once = LightFMFactors(no_components=8, epochs=2).fit(x)
    before = once.item_factors_.copy()
    once.fit_more(x, 3)
    assert once.n_epochs_ == 5
    assert not np.allclose(once.item_factors_, before)
    five = LightFMFactors(no_components=8, epochs=5).fit(x)  # same passes, same seed, 1 thread
    np.testing.assert_allclose(once.item_factors_, five.item_factors_, rtol=1e-5, atol=1e-6)
    with pytest.raises(DataError, match="shape fit\\(\\) saw"):
        once.fit_more(x[:, :10], 1)
    with pytest.raises(ConfigError, match="epochs must be an integer >= 1"):
        once.fit_more(x, 0)
    with pytest.raises(NotFittedError):
        LightFMFactors().fit_more(x, 1)


def test_refit_warm_start_is_a_share():
    for bad in (1.5, -0.1, "yes", None):
        with pytest.raises(ConfigError, match="refit_warm_start"):
            TrainConfig(refit_warm_start=bad)


def test_warm_start_auto_follows_the_catalogue_size():
    from multirec.config import WARM_REFIT_MIN_ITEMS, WARM_REFIT_SHARE, resolve_warm_start

    assert resolve_warm_start("auto", WARM_REFIT_MIN_ITEMS) == 0.0
    assert resolve_warm_start("auto", WARM_REFIT_MIN_ITEMS + 1) == WARM_REFIT_SHARE
    assert resolve_warm_start(0.5, 10) == 0.5
    model = _model(True).fit(_data())  # 400 items: the full refit
    assert model.fit_config_["refit_warm_start"] == 0.0
    assert model.fit_config_["refit_epochs"] == model.history_.best_epoch + 1
