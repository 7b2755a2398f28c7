"""ItemIndex: exact reduction to one inner product, FAISS kinds, filter_seen, save/load, errors."""

from __future__ import annotations

import copy
import json
import sys

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("faiss")

from nopickle import assert_not_pickle  # tests/ is on sys.path

import encoders.precomputed  # noqa: E402, F401  (registers "precomputed")
from multirec.data import InteractionData  # noqa: E402
from multirec.errors import (  # noqa: E402
    ConfigError,
    DataError,
    MissingBackendError,
    ModelFileError,
    NotFittedError,
    UnknownIDError,
)
from multirec.index import ItemIndex, item_vectors, mips_transform  # noqa: E402
from multirec.model import MultimodalRecommender  # noqa: E402

N_USERS, N_ITEMS, K = 120, 90, 6
FAST = dict(epochs=3, eval_every=3, lr=3e-3, show_progress=False, seed=0, dim=16)
CF = {"no_components": 8, "epochs": 5, "num_threads": 1}


def _data(seed: int = 0) -> InteractionData:
    rng = np.random.default_rng(seed)
    U, V = rng.normal(size=(N_USERS, K)), rng.normal(size=(N_ITEMS, K))
    rows, cols = [], []
    for u in range(N_USERS):
        p = np.exp(1.5 * U[u] @ V.T)
        items = rng.choice(N_ITEMS, 12, replace=False, p=p / p.sum())
        rows += [u] * len(items)
        cols += list(items)
    content = {f"i{i}": (V[i] + 0.3 * rng.normal(size=K)).astype(np.float32) for i in range(N_ITEMS)}
    return InteractionData.from_arrays(
        [f"u{u}" for u in rows], [f"i{i}" for i in cols],
        user_ids=[f"u{u}" for u in range(N_USERS)], item_ids=[f"i{i}" for i in range(N_ITEMS)],
        item_content={"vec": content})


def _fit(item_item: bool) -> MultimodalRecommender:
    return MultimodalRecommender(encoders={"vec": {"name": "precomputed", "dim": K}}, cf=CF,
                                 item_item=item_item, **FAST).fit(_data())


@pytest.fixture(scope="module")
def models():
    """A plain two-tower model (one inner product) and one with the item-item term."""
    return {"plain": _fit(False), "item_item": _fit(True)}


@pytest.fixture(scope="module")
def big(models):
    """A model grown to a few thousand (cold, content-only) items, with its exact index."""
    model = copy.deepcopy(models["plain"])
    rng = np.random.default_rng(1)
    model.add_items({"vec": {f"new{j}": rng.normal(size=K).astype(np.float32) for j in range(3000)}})
    return model, ItemIndex.build(model, "flat")


USERS = ["u0", "u3", "u17", "u42", "u119"]


def _assert_same(a, b, atol=1e-5):
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(np.asarray(a[1], float), np.asarray(b[1], float), atol=atol)


# ---------------------------------------------------------------------- exactness
@pytest.mark.parametrize("name", ["plain", "item_item"])
def test_inner_product_reproduces_model_logits(models, name):
    model = models[name]
    index = ItemIndex.build(model, "flat")
    net = model.network
    prior = int(model.scorer_.has_prior)  # the popularity prior's column, when it is on
    assert index.dim == net.dim + net.cf_user.shape[1] + prior + 1 and len(index) == N_ITEMS
    uidx = model.user_map_.index(USERS)
    q, bu = index.user_vectors(model, USERS)
    x = item_vectors(model)
    a, c = float(net.logit_scale), float(net.logit_shift)  # the model's calibration
    logits = q.astype(np.float64) @ x.T.astype(np.float64) + bu[:, None]
    want = (model.score_users(uidx) - c) / a  # raw logits
    if name == "plain":
        np.testing.assert_allclose(logits, want, atol=1e-4)
        _, _, _, ii = index._queries(model, USERS, None, with_seen=False)
        assert ii is None
    else:  # the item-item term is the only difference, and it matters
        _, _, _, ii = index._queries(model, USERS, None, with_seen=False)
        np.testing.assert_allclose(logits + ii, want, atol=1e-4)
        assert np.abs(ii).max() > 1e-3
    # fold-in users: score_users(history=...) is what recommend(history=...) uses
    hist = {"newbie": ["i1", "i5", "i9"]}
    qn, bn = index.user_vectors(model, ["newbie"], history=hist)
    bag = sp.csr_matrix((np.ones(3, np.float32), ([0, 0, 0], [1, 5, 9])), shape=(1, N_ITEMS))
    got = qn.astype(np.float64) @ x.T.astype(np.float64) + bn[:, None]
    if name == "item_item":
        got = got + index._queries(model, ["newbie"], hist, with_seen=False)[3]
    np.testing.assert_allclose(a * got + c, model.score_users(np.zeros(1, np.int64), history=bag),
                               atol=1e-4)


@pytest.mark.parametrize("name", ["plain", "item_item"])
def test_flat_index_equals_model_recommend(models, name):
    model = models[name]
    index = ItemIndex.build(model, "flat")
    for filter_seen in (True, False):
        _assert_same(index.recommend(model, USERS, n=10, filter_seen=filter_seen),
                     model.recommend(USERS, n=10, filter_seen=filter_seen))
    # scalar input → 1-D; n larger than the catalogue → model's shape and NaN/None padding
    ids, probs = index.recommend(model, "u3", n=5)
    assert ids.shape == (5,) and probs.shape == (5,)
    _assert_same((ids, probs), model.recommend("u3", n=5))
    big_n = index.recommend(model, ["u0", "u1"], n=N_ITEMS + 7)
    ref = model.recommend(["u0", "u1"], n=N_ITEMS + 7)
    assert big_n[0].shape == ref[0].shape
    assert [list(r) for r in big_n[0]] == [list(r) for r in ref[0]]
    np.testing.assert_allclose(big_n[1], ref[1], atol=1e-5)
    assert big_n[0][0, -1] is None and np.isnan(big_n[1][0, -1])
    # restricted candidates and fold-in users (mixed with known users)
    cand = ["i1", "i2", "i3", "i4", "i50"]
    _assert_same(index.recommend(model, ["u3", "u4"], n=3, items=cand),
                 model.recommend(["u3", "u4"], n=3, items=cand))
    hist = {"newbie": ["i1", "i5", "i9"], "u3": ["i2"]}  # history overrides a known user
    _assert_same(index.recommend(model, ["u0", "newbie", "u3"], n=8, history=hist),
                 model.recommend(["u0", "newbie", "u3"], n=8, history=hist))


def test_item_item_recommend_serves_large_batches_in_bounded_blocks(models, monkeypatch):
    """With the item-item term each user costs dense (n_items,) rows: a batch is served in
    blocks within the dense budget, with the same results as one block."""
    import multirec.index as index_module

    model = models["item_item"]
    index = ItemIndex.build(model, "flat")
    users = [f"u{u}" for u in range(0, N_USERS, 3)] + ["newbie"]  # 41 users, one fold-in
    hist = {"newbie": ["i1", "i5", "i9"]}
    whole = index.recommend(model, users, n=7, history=hist)
    sizes = []
    block = ItemIndex._recommend_block

    def spy(self, model, raw, *args):
        sizes.append(len(raw))
        return block(self, model, raw, *args)

    monkeypatch.setattr(ItemIndex, "_recommend_block", spy)
    monkeypatch.setattr(index_module, "_DENSE_BUDGET", 5 * N_ITEMS)  # 5 users per block
    blocked = index.recommend(model, users, n=7, history=hist)
    assert sizes == [5] * 8 + [1]
    _assert_same(blocked, whole)
    _assert_same(blocked, model.recommend(users, n=7, history=hist))
    sizes.clear()
    empty = index.recommend(model, [], n=3)
    assert empty[0].shape == (0, 3) and sizes == [0]
    sizes.clear()  # one inner product per user, no dense rows: one block
    plain = models["plain"]
    ItemIndex.build(plain, "flat").recommend(plain, users, n=7, history=hist)
    assert sizes == [len(users)]


# ---------------------------------------------------------------------- approximate kinds
@pytest.mark.parametrize("kind,kw", [("hnsw", {"m": 16, "ef_search": 64}),
                                     ("ivf", {"nlist": 32, "nprobe": 8})])
def test_ann_recall_and_seen_filter(big, kind, kw):
    model, exact = big
    index = ItemIndex.build(model, kind, num_threads=1, **kw)
    assert index.kind == kind and len(index) == len(exact) == model.network.n_items
    users = [f"u{u}" for u in range(N_USERS)]
    want, _ = exact.recommend(model, users, n=10)
    got, probs = index.recommend(model, users, n=10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want)])
    assert recall >= 0.9, recall
    # scores of the returned items are the exact probabilities, best first
    assert np.all(np.diff(probs, axis=1) <= 1e-7)
    df = model.user_items_
    for r, u in enumerate(model.user_map_.index(users)):
        seen = set(model.item_map_.ids(df[u].indices))
        assert not seen & set(got[r])
    unfiltered, _ = index.recommend(model, users[:3], n=10, filter_seen=False)
    assert unfiltered.shape == (3, 10)


@pytest.mark.parametrize("name", ["plain", "item_item"])
@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_filter_seen_never_returns_seen(models, name, kind):
    model = models[name]
    index = ItemIndex.build(model, kind, nlist=4, nprobe=4) if kind == "ivf" else ItemIndex.build(model, kind)
    users = [f"u{u}" for u in range(N_USERS)]
    ids, probs = index.recommend(model, users, n=N_ITEMS)
    seen_rows = model.user_items_[model.user_map_.index(users)]
    for r in range(len(users)):
        row = [i for i in ids[r] if i is not None]
        seen = set(model.item_map_.ids(seen_rows[r].indices))
        assert not seen & set(row)
        # every unseen item, then padding (hnsw widens its beam, ivf probes all 4 cells here)
        assert len(row) == N_ITEMS - len(seen) and np.isnan(probs[r, len(row):]).all()


def test_search_overfetch_padding_and_bias():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 4)).astype(np.float32)
    q = rng.normal(size=(2, 4)).astype(np.float32)
    index = ItemIndex.from_vectors(x, "flat")
    idx, val = index.search(q, 10)
    assert idx.shape == val.shape == (2, 10)
    np.testing.assert_array_equal(idx[:, :6], np.argsort(-(q @ x.T), axis=1))
    assert (idx[:, 6:] == -1).all() and np.isneginf(val[:, 6:]).all()
    # exclude the best 5 of row 0 and everything of row 1; bias shifts the scores
    best = idx[0, :5]
    ex = sp.csr_matrix((np.ones(11), ([0] * 5 + [1] * 6, [*best, *range(6)])), shape=(2, 6))
    idx2, val2 = index.search(q, 3, ex, bias=np.array([1.0, 2.0]))
    assert idx2[0, 0] == idx[0, 5] and (idx2[0, 1:] == -1).all()
    assert val2[0, 0] == pytest.approx(val[0, 5] + 1.0, abs=1e-5)
    assert (idx2[1] == -1).all() and np.isneginf(val2[1]).all()
    empty = ItemIndex.from_vectors(np.zeros((0, 4), np.float32), "flat")
    assert (empty.search(q, 2)[0] == -1).all()


# ---------------------------------------------------------------------- persistence
def _saved(directory):
    """The version folder an index save points at."""
    from multirec._files import current_version

    return current_version(directory, "multirec.ItemIndex")


def test_index_save_never_deletes_user_files(models, tmp_path):
    index = ItemIndex.build(models["plain"], "flat")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ModelFileError, match="mine"):
        index.save(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    index.save(tmp_path / "ix")
    with pytest.raises(ModelFileError, match="overwrite"):
        index.save(tmp_path / "ix")
    (tmp_path / "ix" / "notes.txt").write_text("mine too")
    index.save(tmp_path / "ix", overwrite=True)
    assert (tmp_path / "ix" / "notes.txt").read_text() == "mine too"
    assert len(ItemIndex.load(tmp_path / "ix")) == len(index)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_save_load_round_trip(models, kind, tmp_path):
    model = models["plain"]
    index = ItemIndex.build(model, kind, nlist=4, nprobe=2) if kind == "ivf" else ItemIndex.build(model, kind)
    index.save(tmp_path / "ix")
    assert sorted(p.name for p in _saved(tmp_path / "ix").iterdir()) == ["index.faiss", "index.json"]
    assert sorted(p.name for p in (tmp_path / "ix").iterdir())[0] == "multirec.json"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp leftovers
    for p in _saved(tmp_path / "ix").iterdir():
        assert_not_pickle(p)
    loaded = ItemIndex.load(tmp_path / "ix", num_threads=1)
    assert (loaded.kind, loaded.dim, len(loaded), loaded.params) == (
        index.kind, index.dim, len(index), index.params)
    a = index.recommend(model, USERS, n=10)
    b = loaded.recommend(model, USERS, n=10)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    index.save(tmp_path / "ix", overwrite=True)  # replace the previous index
    ItemIndex.load(tmp_path / "ix")
    if kind == "flat":  # a saved index serves the saved-and-reloaded model
        model.save_pretrained(tmp_path / "m")
        again = MultimodalRecommender.from_pretrained(tmp_path / "m")
        _assert_same(loaded.recommend(again, USERS, n=10, history={"u0": ["i1"]}),
                     model.recommend(USERS, n=10, history={"u0": ["i1"]}))


def test_load_errors(models, tmp_path):
    index = ItemIndex.build(models["plain"], "flat")
    with pytest.raises(ModelFileError, match="index.json"):
        ItemIndex.load(tmp_path / "nothing")
    index.save(tmp_path / "ix")
    path = _saved(tmp_path / "ix") / "index.faiss"
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="checksum"):
        ItemIndex.load(tmp_path / "ix")
    (_saved(tmp_path / "ix") / "index.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="corrupt"):
        ItemIndex.load(tmp_path / "ix")


# ---------------------------------------------------------------------- errors
def test_errors(models, monkeypatch):
    model = models["plain"]
    with pytest.raises(NotFittedError, match="fit"):
        ItemIndex.build(MultimodalRecommender())
    with pytest.raises(ConfigError, match="'annoy'.*flat"):
        ItemIndex.build(model, "annoy")
    with pytest.raises(ConfigError, match="nlist"):
        ItemIndex.build(model, "ivf", nlist=0)
    with pytest.raises(ConfigError, match="nlist=1000"):
        ItemIndex.build(model, "ivf", nlist=1000)
    index = ItemIndex.build(model, "hnsw")
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match="n must be"):
            index.recommend(model, ["u0"], n=bad)
    with pytest.raises(UnknownIDError, match="nobody"):
        index.recommend(model, ["nobody"])
    with pytest.raises(DataError, match="shape"):
        index.search(np.zeros((2, index.dim + 1), np.float32), 3)
    with pytest.raises(ConfigError, match="nprobe applies to 'ivf'"):
        index.set_params(nprobe=4)
    assert index.set_params(ef_search=128).params["ef_search"] == 128
    other = models["item_item"]  # another model: the index does not describe its items
    with pytest.raises(ConfigError, match="rebuild"):
        ItemIndex.build(model, "flat").recommend(other, ["u0"])
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(MissingBackendError, match=r"multirec\[ann\]") as info:
        ItemIndex.build(model, "flat")
    assert isinstance(info.value, ImportError)


def test_stale_index_after_add_items(models):
    model = copy.deepcopy(models["plain"])
    index = ItemIndex.build(model, "flat")
    model.add_items({"vec": {"brand_new": np.ones(K, np.float32)}})
    with pytest.raises(ConfigError, match="rebuild"):
        index.recommend(model, ["u0"])
    ids, _ = ItemIndex.build(model, "flat").recommend(model, ["u0"], n=N_ITEMS + 1, filter_seen=False)
    assert "brand_new" in set(ids[0])


@pytest.mark.parametrize("support", ["dense", "random", "top"])
def test_item_item_merge_is_exact(monkeypatch, support):
    """Scores = ⟨q, x⟩ + b_u + ii, ii as strong as ⟨q, x⟩: on every item (dense rows are
    scored in full), on random 2% of the items, or on each user's 150 best items by ⟨q, x⟩
    but the 6th and negative there (the index's first candidates are nearly all in the
    support, so its pool must widen, and items found twice must count once)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4000, 5)).astype(np.float32)
    q = rng.normal(size=(60, 5)).astype(np.float32)
    bu = rng.normal(size=60).astype(np.float32)
    ii = (2.0 * rng.normal(size=(60, 4000))).astype(np.float32)
    if support == "random":
        ii[rng.random(ii.shape) > 0.02] = 0.0
    elif support == "top":
        best = np.delete(np.argsort(-(q @ x.T), axis=1)[:, :150], 5, axis=1)  # not the 6th
        ii = np.zeros_like(ii)
        np.put_along_axis(ii, best, -np.abs(rng.normal(size=best.shape)).astype(np.float32), 1)
    ex = sp.random(60, 4000, density=0.01, format="csr", random_state=3)
    index = ItemIndex.from_vectors(x, "flat")
    fetched = []
    search = ItemIndex.search
    monkeypatch.setattr(ItemIndex, "search", lambda self, *a, **kw: fetched.append(a[1]) or search(
        self, *a, **kw))
    for n, exclude in [(1, None), (10, ex), (4000, ex)]:
        idx, val = index._rank_with_item_item(x, q, bu, ii, exclude, n)
        full = q.astype(np.float64) @ x.T.astype(np.float64) + bu[:, None] + ii
        if exclude is not None:
            full[exclude.nonzero()] = -np.inf
        order = np.argsort(-full, axis=1, kind="stable")[:, :n]
        want = np.take_along_axis(full, order, 1)
        np.testing.assert_allclose(val, want, atol=1e-4)
        ok = np.isfinite(want)
        np.testing.assert_array_equal(idx >= 0, ok)
        got = np.take_along_axis(full, np.maximum(idx, 0), 1)  # the true scores of what came back
        np.testing.assert_allclose(np.where(ok, got, 0), np.where(ok, want, 0), atol=1e-4)
        assert all(len(set(r[r >= 0])) == int((r >= 0).sum()) for r in idx)  # each item once
    if support == "dense":
        assert not fetched  # every row's support is the catalogue: no index search
    elif support == "top":
        assert {20, 40} <= set(fetched)  # n=10: the pool of 20 widened


def test_model_build_index_serves_recommend_until_the_catalogue_changes(models):
    model = copy.deepcopy(models["item_item"])
    exact = model.recommend(USERS, n=7)
    index = model.build_index("flat")
    assert model.index_ is index
    _assert_same(model.recommend(USERS, n=7), exact)
    with pytest.warns(UserWarning, match="build_index"):
        model.add_items({"vec": {"brand_new": np.ones(K, np.float32)}})
    assert model.index_ is None
    model.build_index("hnsw", m=8)
    model.fit(_data())
    assert model.index_ is None  # refit: the old index is stale


# ---------------------------------------------------------------------- MIPS → L2 transform
def _long_tailed(n: int, d: int, seed: int) -> np.ndarray:
    """Gaussian directions with log-normal norms, like real item factors."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)) * rng.lognormal(0.0, 0.8, size=(n, 1))).astype(np.float32)


def _exact_top(x: np.ndarray, q: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    s = q.astype(np.float64) @ x.T.astype(np.float64)  # (B, N)
    order = np.argsort(-s, axis=1, kind="stable")[:, :n]
    return order, np.take_along_axis(s, order, 1)


def test_transform_makes_l2_ranking_the_inner_product_ranking():
    x = _long_tailed(300, 8, seed=0)
    q = np.random.default_rng(1).normal(size=(20, 8)).astype(np.float32)
    xt, m2 = mips_transform(x)
    assert xt.shape == (300, 9) and m2 == pytest.approx(float((x.astype(np.float64) ** 2).sum(1).max()))
    np.testing.assert_allclose((xt.astype(np.float64) ** 2).sum(1), m2, rtol=1e-5)  # one sphere
    qt = np.hstack([q, np.zeros((20, 1), np.float32)]).astype(np.float64)
    l2 = ((qt[:, None, :] - xt.astype(np.float64)[None]) ** 2).sum(-1)  # (B, N)
    ip = q.astype(np.float64) @ x.T.astype(np.float64)
    np.testing.assert_allclose(l2, (q.astype(np.float64) ** 2).sum(1)[:, None] + m2 - 2 * ip, atol=1e-3)
    np.testing.assert_array_equal(np.argsort(l2, axis=1, kind="stable")[:, :50],
                                  np.argsort(-ip, axis=1, kind="stable")[:, :50])
    # an HNSW graph (and IVF probing every cell) over the transformed vectors is then exact
    want_idx, want_val = _exact_top(x, q, 10)
    for index in (ItemIndex.from_vectors(x, "hnsw", transform=True, ef_search=300, num_threads=1),
                  ItemIndex.from_vectors(x, "ivf", transform=True, nlist=4, nprobe=4, num_threads=1)):
        assert index.transform and index.dim == 8 and index.faiss_index.d == 9
        idx, val = index.search(q, 10)
        np.testing.assert_array_equal(idx, want_idx)
        np.testing.assert_allclose(val, want_val, atol=1e-5)  # exact inner products, not distances
        ex = sp.csr_matrix((np.ones(20), (np.arange(20), want_idx[:, 0])), shape=(20, 300))
        idx2, _ = index.search(q, 10, ex)  # the excluded best item is skipped, the rest shifts
        np.testing.assert_array_equal(idx2[:, :9], want_idx[:, 1:])


def test_default_transform_per_kind_and_errors():
    x = _long_tailed(500, 6, seed=2)
    assert ItemIndex.from_vectors(x, "ivf", num_threads=1).transform
    assert not ItemIndex.from_vectors(x, "hnsw", num_threads=1).transform
    assert not ItemIndex.from_vectors(x, "flat").transform
    with pytest.raises(ConfigError, match="'flat'"):
        ItemIndex.from_vectors(x, "flat", transform=True)
    for bad in (0, 1.5, True):
        with pytest.raises(ConfigError, match=f"target_recall.*{bad!r}"):
            ItemIndex.from_vectors(x, "ivf", target_recall=bad)
    with pytest.raises(DataError, match=r"\(7, 5\)"):
        ItemIndex.from_vectors(x, "hnsw", queries=np.zeros((7, 5)))
    with pytest.raises(ConfigError, match="ef_search must be an int >= 1, got 0"):
        ItemIndex.from_vectors(x, "hnsw", ef_search=0)


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_defaults_reach_recall_on_long_tailed_norms(kind):
    x = _long_tailed(4000, 32, seed=3)
    q = np.random.default_rng(4).normal(size=(300, 32)).astype(np.float32)  # not the calibration ones
    index = ItemIndex.from_vectors(x, kind, num_threads=1)
    knob = "nprobe" if kind == "ivf" else "ef_search"
    assert index.params["estimated_recall"] >= 0.95 and index.params[knob] >= 1
    got, val = index.search(q, 10)
    want, _ = _exact_top(x, q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want)])
    assert recall >= 0.95, (recall, index.params)
    np.testing.assert_allclose(val, np.einsum("bd,bkd->bk", q.astype(np.float64), x[got].astype(np.float64)),
                               atol=1e-4)  # the scores are the exact inner products of what was found
    if kind == "ivf":  # probing fewer cells than calibrated loses recall: the knob matters
        small = ItemIndex.from_vectors(x, kind, num_threads=1, nprobe=1)
        low = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(small.search(q, 10)[0], want)])
        assert low < recall - 0.1
        assert "estimated_recall" not in small.params


def test_model_build_calibrates_on_its_users(big):
    model, exact = big
    index = ItemIndex.build(model, "ivf", num_threads=1)
    assert index.transform and index.params["estimated_recall"] >= 0.95
    users = [f"u{u}" for u in range(N_USERS)]
    want, _ = exact.recommend(model, users, n=10)
    got, _ = index.recommend(model, users, n=10)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, want)]) >= 0.9


def test_chunked_hnsw_add_builds_the_whole_graph(monkeypatch):
    import multirec.index as mi

    monkeypatch.setattr(mi, "_ADD_CHUNK", 300)
    x = _long_tailed(1000, 8, seed=5)
    q = np.random.default_rng(6).normal(size=(10, 8)).astype(np.float32)
    index = ItemIndex.from_vectors(x, "hnsw", ef_search=1000, num_threads=1, show_progress=False)
    assert len(index) == 1000
    np.testing.assert_array_equal(index.search(q, 10)[0], _exact_top(x, q, 10)[0])


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_save_load_round_trip_of_the_transform(kind, tmp_path):
    x = _long_tailed(2000, 16, seed=7)
    q = np.random.default_rng(8).normal(size=(50, 16)).astype(np.float32)
    index = ItemIndex.from_vectors(x, kind, transform=True, num_threads=1)
    index.save(tmp_path / "ix")
    meta = json.loads((_saved(tmp_path / "ix") / "index.json").read_text())
    assert meta["format_version"] == 3 and meta["dim"] == meta["faiss_dim"] == 16
    assert meta["cold_items"] == 0
    assert meta["transform"]["max_norm2"] == pytest.approx(float((x.astype(np.float64) ** 2).sum(1).max()))
    loaded = ItemIndex.load(tmp_path / "ix", num_threads=1)
    assert loaded.transform and (loaded.kind, loaded.dim, len(loaded)) == (kind, 16, 2000)
    assert loaded.params == index.params
    a, b = index.search(q, 10), loaded.search(q, 10)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], rtol=1e-6)
    np.testing.assert_array_equal(index.faiss_queries(q), loaded.faiss_queries(q))  # same scaling


def test_old_format_loads_as_inner_product_and_newer_formats_raise(models, tmp_path):
    model = models["plain"]
    index = ItemIndex.build(model, "hnsw", ef_search=64)
    index.save(tmp_path / "ix")
    meta_path = _saved(tmp_path / "ix") / "index.json"
    meta = json.loads(meta_path.read_text())
    assert meta["transform"] is None
    v1 = {k: v for k, v in meta.items() if k != "transform"}  # what multirec wrote before
    v1["format_version"] = 1
    v1["params"] = {k: v for k, v in meta["params"].items() if k in ("m", "ef_construction", "ef_search")}
    meta_path.write_text(json.dumps(v1))
    old = ItemIndex.load(tmp_path / "ix")
    assert not old.transform and old.params["ef_search"] == 64
    _assert_same(old.recommend(model, USERS, n=10), index.recommend(model, USERS, n=10), atol=0)
    meta_path.write_text(json.dumps({**v1, "format_version": 4}))
    with pytest.raises(ModelFileError, match="format 4.*upgrade"):
        ItemIndex.load(tmp_path / "ix")
    meta_path.write_text(json.dumps({**meta, "transform": {"kind": "mips-l2", "max_norm2": 1.0}}))
    with pytest.raises(ModelFileError, match="inconsistent transform"):
        ItemIndex.load(tmp_path / "ix")


def test_retrieval_benchmark_runs_tiny(tmp_path):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "retrieval.py"
    spec = importlib.util.spec_from_file_location("bench_retrieval", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    payload = bench.main(["--sizes", "3000", "--dim", "8", "--dists", "tail", "--queries", "40",
                          "--reps", "10", "--out", str(tmp_path)])
    for ext in ("md", "json", "png"):
        assert (tmp_path / f"retrieval.{ext}").stat().st_size > 0
    rows = json.loads((tmp_path / "retrieval.json").read_text())["rows"]
    assert [r["kind"] for r in rows] == ["flat", "ivf", "hnsw", "ivf-ip", "hnsw-l2"] == [
        r["kind"] for r in payload["rows"]]
    assert rows[0]["recall_at_10"] == 1.0 and all(r["recall_at_10"] >= 0.9 for r in rows)
    assert all(np.isfinite([r["build_s"], r["single_ms"], r["overhead_ms"], r["batch_ms"]]).all()
               for r in rows)


def _outlier_bias_vectors(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Items `[h_i, b_i]` where 3% have a bias of -120 (as cold items shifted below every warm
    one), queries `[h_u, 1]`: under inner product those items are every item's nearest
    neighbour, so an IP graph routes through nodes no query can want."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(size=(3000, 8)), rng.normal(size=(3000, 1))], 1).astype(np.float32)
    x[rng.random(3000) < 0.03, -1] = -120.0
    q = np.concatenate([rng.normal(size=(300, 8)), np.ones((300, 1))], 1).astype(np.float32)
    return x, q


def test_hnsw_switches_space_when_inner_product_needs_every_item(tmp_path):
    x, q = _outlier_bias_vectors(0)
    forced = ItemIndex.from_vectors(x, "hnsw", transform=False, queries=q, show_progress=False)
    assert forced.params["ef_search"] == len(x)  # IP reaches the target only exhaustively
    index = ItemIndex.from_vectors(x, "hnsw", queries=q, show_progress=False)
    assert index.transform and index.params["ef_search"] < 100
    assert "ef_search=3000 of 3000" in index.params["transform_chosen"]
    truth, _ = _exact_top(x, q, 10)
    found, _ = index.search(q, 10)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)]) >= 0.95
    index.save(tmp_path / "ix")
    again = ItemIndex.load(tmp_path / "ix")
    assert again.transform and again.params == index.params
    plain = ItemIndex.from_vectors(_long_tailed(3000, 8, seed=1), "hnsw", show_progress=False)
    assert not plain.transform and "transform_chosen" not in plain.params  # default kept
