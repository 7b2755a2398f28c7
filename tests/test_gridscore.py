"""Post-hoc grids from two logit passes: every tuned setting is affine in the logits, the
interpolated logits match a direct pass, and the grid scores and choices match scoring
each value on its own."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from test_training import planted_problem

import encoders.precomputed  # noqa: F401  (registers "precomputed")
from multirec.coldvalid import carve_items
from multirec.data import InteractionData
from multirec.gridscore import carve_grid, grid_logits, pointwise, validation_grid
from multirec.model import MultimodalRecommender
from multirec.posthoc import best_weight, cold_candidates
from multirec.ranking import sample_target_rows
from multirec.scoring import Scorer
from multirec.training import validation_ndcg

N_USERS, N_ITEMS, N_COLD = 120, 160, 20


@pytest.fixture(scope="module")
def fitted():
    """A fitted model with every term the settings touch: LightFM with item features (cold
    items get a feature-based factor), content neighbours, item-item weights, and
    `N_COLD` items nobody has interacted with."""
    train, valid, content = planted_problem(n_users=N_USERS, n_items=N_ITEMS, seed=2)
    x = (train + valid).tolil()
    x[:, N_ITEMS - N_COLD:] = 0  # the last items are cold
    coo = sp.coo_matrix(x.tocsr())
    feats = {i: [f"g:{i % 7}", f"h:{i % 5}"] for i in range(N_ITEMS)}
    data = InteractionData.from_arrays(coo.row, coo.col, item_features=feats,
                                       item_content={"vec": dict(enumerate(content))},
                                       item_ids=range(N_ITEMS))
    model = MultimodalRecommender(encoders={"vec": {"name": "precomputed", "dim": content.shape[1]}},
                                  cf={"epochs": 3, "seed": 0, "num_threads": 1}, dim=8, epochs=3,
                                  eval_every=1, refit=False, show_progress=False, seed=0).fit(data)
    net = model.network
    with torch.no_grad():  # every setting away from 0, so each term is on
        net.ii_scale.fill_(0.7)
        net.cold_cf_scale.fill_(1.3)
        net.content_weight.fill_(0.9)
        net.cold_bias.fill_(0.2)
    assert model.item_item_ is not None and net.cf_item_proj is not None
    assert net.content_weight.numel() and not bool(net.warm_item.all())
    return model


def _settings(net):
    """(name, tensor, apply) of every setting `multirec.posthoc` tunes."""
    return [("ii_scale", net.ii_scale, lambda b, v: b * v),
            ("cold_cf_scale", net.cold_cf_scale, lambda b, v: b * v),
            ("content_weight", net.content_weight, lambda b, v: torch.full_like(b, v)),
            ("cold_bias", net.cold_bias, lambda b, v: b + v)]


def _setter(weight, apply):
    base = weight.detach().clone()

    def set_value(v: float) -> None:
        with torch.no_grad():
            weight.copy_(apply(base, v))
    return set_value, base


@pytest.mark.parametrize("which", range(4))
@pytest.mark.parametrize("columns", [False, True])
def test_interpolated_logits_match_a_direct_pass(fitted, which, columns):
    net, ii, x = fitted.network, fitted.item_item_, fitted.user_items_
    name, weight, apply = _settings(net)[which]
    set_value, base = _setter(weight, apply)
    values = [0.0, 0.5, 3.0, -1.0, 16.0] if name == "cold_bias" else [0.0, 0.5, 1.0, 4.0, 16.0]
    cols = np.arange(N_ITEMS - 2 * N_COLD, N_ITEMS) if columns else None
    users = np.arange(N_USERS)
    blocks = list(grid_logits(net, set_value, values, x, users, ii, columns=cols))
    far = int(np.argmax(np.abs(np.array(values) - values[0])))  # the second pass
    assert all((history != x[u]).nnz == 0 for u, history, _ in blocks)  # each block's inputs
    assert torch.equal(weight, apply(base, values[0]))  # left at the first value
    for j, v in enumerate(values):
        set_value(v)
        direct = Scorer(net, ii).logits(users, x[users], calibrated=False, columns=cols).numpy()
        got = np.concatenate([at(j) for _, _, at in blocks])
        assert got.dtype == np.float32 and got.shape == direct.shape
        if j in (0, far):  # the two passes themselves: exact
            assert np.array_equal(got, direct), name
        else:
            np.testing.assert_allclose(got, direct, rtol=1e-5, atol=1e-5, err_msg=name)
        # the setting changes the logits (else this test could not fail)
    assert not np.allclose(blocks[0][2](0), blocks[0][2](far))
    set_value(1.0 if name != "cold_bias" else 0.0)


@pytest.mark.parametrize("which", range(4))
def test_validation_grid_equals_validation_ndcg_per_value(fitted, which):
    net, ii, x = fitted.network, fitted.item_item_, fitted.user_items_
    name, weight, apply = _settings(net)[which]
    set_value, base = _setter(weight, apply)
    target = sp.csr_matrix(x[::-1])  # any held-out rows: other users' items
    values = [0.0, 0.25, 1.0, 2.0, 8.0]
    got = validation_grid(net, x, target, 5, item_item=ii, max_users=60, seed=1)(set_value, values)

    def score() -> float:
        return validation_ndcg(net, x, target, 5, item_item=ii, max_users=60, seed=1)
    want = pointwise(score)(set_value, values)
    np.testing.assert_allclose(got, want, atol=1e-9, err_msg=name)
    assert np.ptp(want) > 0  # the values rank differently
    set_value(1.0 if name != "cold_bias" else 0.0)


def test_carve_grid_matches_ndcg_among_the_carved_and_the_cold_items(fitted):
    net, ii, x = fitted.network, fitted.item_item_, fitted.user_items_
    warm = np.diff(x.tocsc().indptr) > 0
    train, valid, carve = carve_items(x, sp.csr_matrix(x.shape, dtype=np.float32), warm, 0.2, seed=0)
    cold = cold_candidates(~net.warm_item.numpy(), carve.items, seed=0)
    assert cold.size > carve.items.size
    set_value, _ = _setter(net.cold_cf_scale, lambda b, v: b * v)
    values = [0.0, 1.0, 4.0]
    got = carve_grid(net, x, carve, cold, k=5, item_item=ii, max_users=50, seed=0)(set_value, values)
    assert sample_target_rows(carve.target, 50, 0).size

    def score() -> float:
        return sum(validation_ndcg(net, x, carve.target, 5, item_item=ii, max_users=50, seed=0,
                                   columns=c) for c in (carve.items, cold))
    np.testing.assert_allclose(got, pointwise(score)(set_value, values), atol=1e-6)
    set_value(1.0)


def test_no_target_rows_score_nan_and_the_default_is_kept(fitted):
    net, x = fitted.network, fitted.user_items_
    empty = sp.csr_matrix(x.shape, dtype=np.float32)
    set_value, _ = _setter(net.ii_scale, lambda b, v: b * v)
    assert np.isnan(validation_grid(net, x, empty, 5)(set_value, [0.0, 1.0])).all()
    w = torch.full((3,), 5.0)
    assert best_weight(w, (1.0, 2.0), lambda set_value, values: np.full(len(values), np.nan)) == 0.0
    assert torch.all(w == 0.0)


def test_a_single_value_is_scored_from_one_pass(fitted):
    net, ii, x = fitted.network, fitted.item_item_, fitted.user_items_
    set_value, _ = _setter(net.ii_scale, lambda b, v: b * v)
    calls = []

    def tracked(v: float) -> None:
        calls.append(v)
        set_value(v)
    blocks = list(grid_logits(net, tracked, [2.0, 2.0], x, np.arange(10), ii))
    assert set(calls) == {2.0}
    np.testing.assert_array_equal(blocks[0][2](0), blocks[0][2](1))
    set_value(1.0)
