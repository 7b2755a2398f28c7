"""Cold items scored exactly beside a narrower FAISS index (`multirec.coldblock`)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from test_training import planted_problem

import encoders.precomputed  # noqa: F401  (registers "precomputed")
from multirec.coldblock import ColdBlock, merge_top
from multirec.data import InteractionData
from multirec.errors import ModelFileError
from multirec.model import MultimodalRecommender
from multirec.ranking import topk

faiss = pytest.importorskip("faiss")
from multirec.index import ItemIndex  # noqa: E402


def _vectors(n: int = 200, d: int = 6, extra: int = 3, cold: tuple[int, ...] = (5, 40, 41, 199),
             seed: int = 0) -> np.ndarray:  # (n, d + extra): extra columns only on `cold`
    rng = np.random.default_rng(seed)
    x = np.zeros((n, d + extra), np.float32)
    x[:, :d] = rng.normal(size=(n, d))
    x[list(cold), d:] = rng.normal(size=(len(cold), extra)) * 3
    return x


def test_split_keeps_the_cold_rows_and_the_other_columns():
    x = _vectors()
    block = ColdBlock.split(x, slice(6, 9))
    np.testing.assert_array_equal(block.rows, [5, 40, 41, 199])
    np.testing.assert_array_equal(block.base, np.arange(6))
    np.testing.assert_array_equal(block.vectors, x[[5, 40, 41, 199]])
    assert block.dim == 9 and block.narrow(x).shape == (200, 6)
    assert ColdBlock.split(x, None) is None
    assert ColdBlock.split(x, slice(9, 9)) is None  # no extra columns
    x0 = x.copy()
    x0[:, 6:] = 0
    assert ColdBlock.split(x0, slice(6, 9)) is None  # no cold item
    assert ColdBlock.split(x, slice(6, 9), max_rows=3) is None  # too many to score exactly
    many = _vectors(n=10, cold=tuple(range(6)))
    assert ColdBlock.split(many, slice(6, 9)) is None  # more than half the items


def test_block_top_merged_with_the_rest_is_the_exact_top():
    x = _vectors()
    block = ColdBlock.split(x, slice(6, 9))
    rng = np.random.default_rng(1)
    q = rng.normal(size=(7, 9)).astype(np.float32)
    exclude = sp.random(7, 200, density=0.05, random_state=2, format="lil")
    exclude[0, 40] = 1.0  # a cold item excluded
    exclude = sp.csr_matrix(exclude)
    full = q.astype(np.float64) @ x.astype(np.float64).T
    want_idx, want_val = topk(full, 10, exclude=exclude)
    warm = np.setdiff1d(np.arange(200), block.rows)
    w_pos, w_val = topk(full[:, warm], 10, exclude=sp.csr_matrix(exclude)[:, warm])
    w_idx = np.where(w_pos >= 0, warm[np.maximum(w_pos, 0)], -1)
    got_idx, got_val = merge_top(w_idx, w_val, *block.top(q, 10, exclude), 10)
    np.testing.assert_array_equal(got_idx, want_idx)
    np.testing.assert_allclose(got_val, want_val, rtol=1e-6)
    assert 40 not in got_idx[0]


def _fitted_with_new_items() -> MultimodalRecommender:
    """A fitted model with the content-neighbour term on and three new items; with the
    items nobody interacted with they are the cold ones, their shift set so that they
    compete with the warm items (they reach some top-10s)."""
    train, valid, content = planted_problem(n_users=150, n_items=240, seed=1)
    coo = (train + valid).tocoo()
    data = InteractionData.from_arrays(coo.row, coo.col, item_content={"vec": dict(enumerate(content))})
    model = MultimodalRecommender(encoders={"vec": {"name": "precomputed", "dim": content.shape[1]}},
                                  cf=False, dim=8, epochs=4, eval_every=2, cold_valid_items=0.15,
                                  show_progress=False, seed=0).fit(data)
    model.network.set_content_weight("vec", 4.0)
    # near (not equal to) existing items, so no new item ties with its twin
    model.add_items({"vec": {f"new-{j}": 0.8 * content[j] + 0.2 * content[j + 1] for j in (3, 30, 60)}})
    z = model.score_users(np.arange(150))  # (150, n_items) calibrated logits
    cold = ~model.network.warm_item.numpy()
    warm5 = np.sort(z[:, ~cold], axis=1)[:, -5].mean()
    with torch.no_grad():
        model.network.cold_bias.add_(float(warm5 - z[:, cold].mean()) / float(model.network.logit_scale))
    model.scorer_.invalidate()
    return model


def _assert_same_top(got_ids, got_p, want_ids, want_p) -> None:
    """The same scores in order, and the same items where the scores are not float ties."""
    np.testing.assert_allclose(got_p, want_p, rtol=1e-5, atol=1e-6)
    differ = got_ids != want_ids
    assert differ.sum() <= 0.01 * differ.size  # only float ties may swap places
    for r, c in zip(*np.nonzero(differ)):
        assert set(got_ids[r]) == set(want_ids[r])
        tied = np.abs(want_p[r] - want_p[r, c]) < 1e-6
        assert got_ids[r, c] in set(want_ids[r][tied])


@pytest.fixture(scope="module")
def model() -> MultimodalRecommender:
    return _fitted_with_new_items()


@pytest.mark.parametrize("kind, kw", [("hnsw", {"ef_search": 512}),
                                      ("ivf", {"nlist": 4, "nprobe": 4})])
def test_index_with_a_cold_block_returns_the_models_own_top_n(model, kind, kw):
    index = ItemIndex.build(model, kind=kind, show_progress=False, **kw)
    cold = np.flatnonzero(~model.network.warm_item.numpy())
    assert {240, 241, 242} <= set(cold.tolist()) and cold.size < 240 // 2
    np.testing.assert_array_equal(index.cold_items, cold)
    head = model.scorer_.retrieval_head()
    assert index.dim == head.dim and index.faiss_index.d - int(index.transform) < head.dim
    users = list(model.user_map_.ids(np.arange(150)))
    want_ids, want_p = model.recommend(users, n=10)
    got_ids, got_p = index.recommend(model, users, n=10)
    _assert_same_top(got_ids, got_p, want_ids, want_p)
    hits = np.isin(want_ids, list(model.item_map_.ids(cold)))
    assert 0 < hits.any(axis=1).sum() < 150  # new items in some lists, not all
    assert f"cold_items={cold.size}" in repr(index)


def test_flat_index_stays_full_width_and_exact(model):
    index = ItemIndex.build(model, kind="flat")
    assert index.cold_items.size == 0 and index.faiss_index.d == index.dim
    users = list(model.user_map_.ids(np.arange(150)))
    _assert_same_top(*index.recommend(model, users, n=10), *model.recommend(users, n=10))


def test_saved_cold_block_loads_and_a_corrupt_one_is_refused(model, tmp_path):
    index = ItemIndex.build(model, kind="hnsw", ef_search=512, show_progress=False)
    index.save(tmp_path / "ix")
    loaded = ItemIndex.load(tmp_path / "ix")
    users = list(model.user_map_.ids(np.arange(40)))
    _assert_same_top(*loaded.recommend(model, users, n=10), *index.recommend(model, users, n=10))
    np.testing.assert_array_equal(loaded.cold_items, index.cold_items)
    cold = next((tmp_path / "ix").rglob("cold.npz"))
    good = cold.read_bytes()
    cold.write_bytes(good[:-8] + b"\0" * 8)
    with pytest.raises(ModelFileError, match="cold.npz"):
        ItemIndex.load(tmp_path / "ix")
    # a block whose checksum was updated to match, with item rows past the catalogue
    cold.write_bytes(good)
    with np.load(cold, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["rows"] = arrays["rows"] + 10_000  # past the 243 items
    np.savez(cold, **arrays)
    meta_path = cold.with_name("index.json")
    meta = json.loads(meta_path.read_text())
    meta["files"]["cold.npz"] = hashlib.sha256(cold.read_bytes()).hexdigest()
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="rows must be sorted distinct indices"):
        ItemIndex.load(tmp_path / "ix")


def test_fully_warm_model_keeps_one_index():
    """Without cold items the head has no content-neighbour columns: no block."""
    train, valid, content = planted_problem(n_users=100, n_items=120, seed=2)
    every = sp.csr_matrix((np.ones(120), (np.arange(120) % 100, np.arange(120))), shape=(100, 120))
    coo = sp.csr_matrix(train + valid + every).tocoo()  # every item has a user
    data = InteractionData.from_arrays(coo.row, coo.col, item_content={"vec": dict(enumerate(content))})
    m = MultimodalRecommender(encoders={"vec": {"name": "precomputed", "dim": content.shape[1]}},
                              cf=False, dim=8, epochs=2, show_progress=False, seed=0).fit(data)
    m.network.set_content_weight("vec", 1.0)
    m.scorer_.invalidate()
    assert bool(m.network.warm_item.all())
    index = ItemIndex.build(m, kind="hnsw", show_progress=False)
    assert index.cold_items.size == 0 and index.dim == m.scorer_.retrieval_head().dim
    assert index.faiss_index.d == index.dim
