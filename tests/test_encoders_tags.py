"""TagEncoder: vocabulary, OOV, weights and normalisation, gradients, configs, end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from encoders import Encoder, EncoderConfigError, EncoderInputError, get_encoder
from encoders.tags import TagEncoder

ITEMS = [["rock", "indie"], ["jazz"], ["rock"], ["rock", "jazz", "blues"], []]


def _enc(**kw) -> TagEncoder:
    return get_encoder("tags", dim=8, device="cpu", **kw)


def test_vocabulary_from_all_items_min_count_max_vocab():
    enc = _enc().fit_vocabulary(ITEMS)
    assert enc.vocabulary_ == ["blues", "indie", "jazz", "rock"]
    assert _enc(min_count=2).fit_vocabulary(ITEMS).vocabulary_ == ["jazz", "rock"]
    assert _enc(max_vocab=1).fit_vocabulary(ITEMS).vocabulary_ == ["rock"]
    assert enc.bag.weight.shape == (5, 8)  # + the out-of-vocabulary row
    ints = _enc().fit_vocabulary([[3, 1], [1], "x"])
    assert ints.vocabulary_ == [1, 3, "x"]


def test_encode_all_builds_vocabulary_from_every_item_before_encoding():
    enc = _enc()
    vecs = enc.encode_all(iter(ITEMS), batch_size=2, show_progress=False)  # a generator, too
    assert enc.vocabulary_ == ["blues", "indie", "jazz", "rock"]  # not only the first batch
    assert vecs.shape == (5, 8)
    assert torch.equal(vecs[4], torch.zeros(8))  # no tags: the zero vector


def test_mean_of_embeddings_with_weights_and_normalisation():
    enc = _enc(count_feature=False).fit_vocabulary(ITEMS)
    w = enc.bag.weight.detach()  # (V + 1, 8)
    row = {t: i + 1 for i, t in enumerate(enc.vocabulary_)}
    got = enc.encode([["rock", "jazz"], {"rock": 3.0, "jazz": 1.0}, "rock", ("rock", "rock")]).detach()
    torch.testing.assert_close(got[0], (w[row["rock"]] + w[row["jazz"]]) / 2)
    torch.testing.assert_close(got[1], 0.75 * w[row["rock"]] + 0.25 * w[row["jazz"]])
    torch.testing.assert_close(got[2], w[row["rock"]])
    torch.testing.assert_close(got[3], w[row["rock"]])  # repeats add up, then normalised
    sqrt = _enc(count_feature=False, normalize="sqrt").fit_vocabulary(ITEMS)
    ws = sqrt.bag.weight.detach()
    torch.testing.assert_close(sqrt.encode([["rock", "jazz"]])[0].detach(),
                               (ws[row["rock"]] + ws[row["jazz"]]) / math.sqrt(2))
    none = _enc(count_feature=False, normalize="none").fit_vocabulary(ITEMS)
    wn = none.bag.weight.detach()
    torch.testing.assert_close(none.encode([{"rock": 2.0, "jazz": 1.0}])[0].detach(),
                               2 * wn[row["rock"]] + wn[row["jazz"]])


def test_count_feature_keeps_the_number_of_tags():
    enc = _enc().fit_vocabulary(ITEMS)
    inputs = enc.preprocess([["rock"], ["rock", "jazz", "blues"], []])
    torch.testing.assert_close(inputs["counts"], torch.tensor([math.log1p(1), math.log1p(3), 0.0]))
    w, c = enc.bag.weight.detach(), enc.count_vector.detach()
    torch.testing.assert_close(enc.encode([["rock"]])[0].detach(), w[4] + math.log1p(1) * c)


def test_oov_bucket_or_ignored():
    bucket = _enc(count_feature=False, min_count=2).fit_vocabulary(ITEMS)  # indie, blues: rare
    w = bucket.bag.weight.detach()
    got = bucket.encode([["never-seen"], ["indie"], ["rock", "unknown"]]).detach()
    torch.testing.assert_close(got[0], w[0])
    torch.testing.assert_close(got[1], w[0])
    torch.testing.assert_close(got[2], (w[0] + w[2]) / 2)  # rock is row 2 of [jazz, rock]
    ignore = _enc(count_feature=False, oov="ignore").fit_vocabulary(ITEMS)
    wi = ignore.bag.weight.detach()
    got = ignore.encode([["never-seen"], ["rock", "unknown"]]).detach()
    assert torch.equal(got[0], torch.zeros(8))
    torch.testing.assert_close(got[1], wi[4])


def test_gradients_reach_the_used_rows_only():
    enc = _enc().fit_vocabulary(ITEMS)
    assert all(p.requires_grad for p in enc.parameters())
    enc.encode([["rock", "jazz"], []]).sum().backward()
    touched = enc.bag.weight.grad.abs().sum(1) > 0  # (V + 1,)
    assert touched.tolist() == [False, False, False, True, True]  # jazz, rock
    assert enc.count_vector.grad.abs().sum() > 0
    frozen = _enc(trainable=False).fit_vocabulary(ITEMS)
    assert not any(p.requires_grad for p in frozen.parameters())


def test_config_round_trip_and_state_dict_give_identical_outputs():
    enc = _enc().fit_vocabulary(ITEMS)
    with torch.no_grad():
        enc.bag.weight.add_(1.0)  # as if trained
    config = json.loads(json.dumps(enc.to_config()))
    assert config["vocabulary"] == ["blues", "indie", "jazz", "rock"]
    again = Encoder.from_config(config, device="cpu")
    assert again.vocabulary_ == enc.vocabulary_
    again.load_state_dict(enc.state_dict(), strict=True)
    torch.testing.assert_close(again.encode(ITEMS), enc.encode(ITEMS), rtol=0, atol=0)


def test_seeded_and_independent_of_global_rng():
    torch.manual_seed(1)
    a = _enc().fit_vocabulary(ITEMS).encode(ITEMS)
    torch.manual_seed(2)
    b = _enc().fit_vocabulary(ITEMS).encode(ITEMS)
    c = _enc(seed=5).fit_vocabulary(ITEMS).encode(ITEMS)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_item_key_ignores_set_and_dict_order():
    enc = _enc()
    assert enc.item_key({"a", "b"}) == enc.item_key(["b", "a"])
    assert enc.item_key({"a": 1.0, "b": 2.0}) == enc.item_key({"b": 2.0, "a": 1.0})
    assert enc.item_key(["a"]) != enc.item_key([1])


def test_cache_round_trip(tmp_path):
    enc = _enc().fit_vocabulary(ITEMS)
    first = enc.encode_all(ITEMS, cache=tmp_path, show_progress=False)
    second = enc.encode_all(ITEMS, cache=tmp_path, show_progress=False)
    assert torch.equal(first, second)


def test_bad_inputs_and_config_name_the_value():
    enc = _enc().fit_vocabulary(ITEMS)
    with pytest.raises(EncoderInputError, match="float"):
        enc.encode([[1.5]])
    with pytest.raises(EncoderInputError, match="NoneType"):
        enc.encode([None])
    with pytest.raises(EncoderInputError, match="-1"):
        enc.encode([{"rock": -1}])
    with pytest.raises(EncoderConfigError, match="'mean'"):
        _enc(normalize="mean")
    with pytest.raises(EncoderConfigError, match="'drop'"):
        _enc(oov="drop")
    with pytest.raises(EncoderConfigError, match="min_count"):
        _enc(min_count=0)
    with pytest.raises(EncoderConfigError, match="'rock' twice"):
        _enc(vocabulary=["rock", "rock"])


# ------------------------------------------------------------------ end to end in multirec
N_USERS, N_ITEMS, N_TAGS = 120, 90, 9


def _planted_tags(seed: int = 0):
    """Each user likes one tag; items carry 1-2 tags; users pick items with their tag."""
    rng = np.random.default_rng(seed)
    tags = [sorted({f"t{t}" for t in rng.choice(N_TAGS, rng.integers(1, 3), replace=False)})
            for _ in range(N_ITEMS)]
    liked = rng.integers(0, N_TAGS, N_USERS)
    rows, cols = [], []
    for u in range(N_USERS):
        good = [i for i in range(N_ITEMS) if f"t{liked[u]}" in tags[i]]
        picks = rng.choice(good, min(len(good), 8), replace=False)
        rows += [u] * len(picks)
        cols += list(picks)
    return np.array(rows), np.array(cols), tags


def _ndcg(scores, train, test_rows, test_cols, k=10):
    s = scores.copy()
    s[train.nonzero()] = -np.inf
    disc = 1 / np.log2(np.arange(2, k + 2))
    out = []
    for u in np.unique(test_rows):
        rel = test_cols[test_rows == u]
        top = np.argsort(-s[u], kind="stable")[:k]
        out.append((np.isin(top, rel) * disc).sum() / disc[: min(len(rel), k)].sum())
    return float(np.mean(out))


def test_multirec_learns_a_planted_tag_signal(tmp_path):
    from multirec.data import InteractionData
    from multirec.model import MultimodalRecommender

    rows, cols, tags = _planted_tags()
    test = np.random.default_rng(1).random(len(rows)) < 0.25
    data = InteractionData.from_arrays(
        [f"u{u}" for u in rows[~test]], [f"i{i}" for i in cols[~test]],
        user_ids=[f"u{u}" for u in range(N_USERS)], item_ids=[f"i{i}" for i in range(N_ITEMS)],
        item_content={"tags": {f"i{i}": t for i, t in enumerate(tags)}})
    model = MultimodalRecommender(encoders={"tags": {"name": "tags", "dim": 16, "device": "cpu"}},
                                  cf=False, use_id_embeddings=False, item_item=False, epochs=60,
                                  eval_every=10, lr=1e-2, show_progress=False, seed=0, dim=16,
                                  negatives="all", device="cpu").fit(data)
    X = data.to_csr()
    ours = model.score_users(np.arange(N_USERS))
    rand = np.random.default_rng(0).random(ours.shape)
    got, chance = _ndcg(ours, X, rows[test], cols[test]), _ndcg(rand, X, rows[test], cols[test])
    assert got > chance + 0.25, (got, chance)
    assert model.encoder_configs_["tags"]["vocabulary"] == [f"t{t}" for t in range(N_TAGS)]

    model.save_pretrained(tmp_path / "m")
    again = MultimodalRecommender.from_pretrained(tmp_path / "m", device="cpu")
    np.testing.assert_allclose(again.score_users(np.arange(N_USERS)), ours, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name, typo, valid", [
    ("text", "model_nme", "model_name_or_path"), ("audio", "max_second", "max_seconds"),
    ("image", "pretraind", "pretrained"), ("tags", "min_cnt", "min_count")])
def test_config_typo_names_the_encoder_the_key_and_the_valid_keys(name, typo, valid):
    with pytest.raises(EncoderConfigError) as info:
        get_encoder(name, **{typo: 1})
    msg = str(info.value)
    assert f"encoder {name!r}" in msg and repr(typo) in msg and f"did you mean {valid!r}" in msg
    assert "Valid options:" in msg and "device" in msg
    with pytest.raises(EncoderConfigError, match=repr(typo)):
        Encoder.from_config({"name": name, typo: 1})


def _shard_worker(rank: int, world: int, cache_dir: str) -> tuple[np.ndarray, int, str]:
    enc = TagEncoder(dim=4, device="cpu").fit_vocabulary(_SHARD_ITEMS)
    seen = []
    plain = enc.preprocess
    enc.preprocess = lambda batch: seen.append(len(batch)) or plain(batch)
    vecs = enc.encode_all(_SHARD_ITEMS, batch_size=4, cache=cache_dir, show_progress=False,
                          shard=True)
    try:
        enc.encode_all(_SHARD_ITEMS, shard=True, show_progress=False)
        error = ""
    except EncoderConfigError as exc:
        error = str(exc)
    return vecs.detach().numpy(), sum(seen), error


_SHARD_ITEMS = [[f"t{i % 7}", f"u{i}"] for i in range(20)] + [[f"only-{i}"] for i in range(5)]


def test_encode_all_shards_across_two_gloo_ranks(tmp_path):
    from multirec.distributed import launch

    (v0, n0, e0), (v1, n1, _) = launch(_shard_worker, 2, str(tmp_path / "cache"), threads=1,
                                       timeout_s=300)
    expected = TagEncoder(dim=4, device="cpu").fit_vocabulary(_SHARD_ITEMS).encode(_SHARD_ITEMS)
    np.testing.assert_allclose(v0, expected.detach().numpy(), rtol=0, atol=1e-7)
    np.testing.assert_array_equal(v0, v1)
    assert (n0, n1) == (13, 12)  # each item encoded once, by one rank
    assert "cache=" in e0  # sharding without a shared cache is refused
    alone = TagEncoder(dim=4, device="cpu").fit_vocabulary(_SHARD_ITEMS)
    assert alone.encode_all(_SHARD_ITEMS, shard=True, show_progress=False).shape == (25, 4)


def test_encode_iter_does_not_leak_inference_mode_to_the_caller():
    enc = _enc().fit_vocabulary(ITEMS)
    modes = [torch.is_inference_mode_enabled()
             for _ in enc.encode_iter(ITEMS, batch_size=2, show_progress=False)]
    assert modes == [False, False, False]
    vecs = enc.encode_all(ITEMS, show_progress=False)
    assert not vecs.requires_grad and torch.equal(vecs, enc.encode(ITEMS).detach())


# ---------------------------------------------------------------------- prepared catalogue
CATALOGUE = [["rock", "indie"], None, {"jazz": 2.0, "rock": 0.5}, [], ["unknown-tag", "rock"],
             "blues", [3, 3, "jazz"], None, ["indie"]]


@pytest.mark.parametrize("normalize", ["sum", "sqrt", "none"])
@pytest.mark.parametrize("oov", ["bucket", "ignore"])
def test_prepared_catalogue_encodes_exactly_like_encode(normalize, oov):
    enc = _enc(normalize=normalize, oov=oov).fit_vocabulary([["rock", "indie"], ["jazz"], [3], "blues"])
    prepared = enc.prepare(CATALOGUE)
    assert len(prepared) == len(CATALOGUE)
    for positions in ([0], [8, 2, 0], [3, 4, 5, 6], [6, 6, 2]):  # any order, repeats, empty items
        want = enc.encode([CATALOGUE[i] for i in positions])
        got = enc.encode_prepared(prepared, positions)
        assert torch.equal(got, want), positions
    with pytest.raises(EncoderInputError, match="positions"):
        enc.encode_prepared(prepared, [9])
    with pytest.raises(EncoderInputError, match="no positions"):
        enc.encode_prepared(prepared, [])


def test_prepared_catalogue_keeps_gradients_and_follows_a_new_vocabulary():
    enc = _enc()
    prepared = enc.prepare(CATALOGUE)  # not fitted yet: the vocabulary comes from the items
    assert enc.vocabulary_ == [3, "blues", "indie", "jazz", "rock", "unknown-tag"]
    enc.encode_prepared(prepared, [0, 2]).sum().backward()
    assert enc.bag.weight.grad is not None and enc.bag.weight.grad.abs().sum() > 0
    enc.fit_vocabulary([["jazz"]])  # rebuilt: "rock" is now out of vocabulary
    assert torch.equal(enc.encode_prepared(prepared, [0, 2]), enc.encode([CATALOGUE[0], CATALOGUE[2]]))


def test_base_prepare_preprocesses_the_asked_items():
    class Lengths(Encoder):
        modality = "text"

        def __init__(self) -> None:
            super().__init__()
            self.dim = 1
            self.calls: list[list[str]] = []

        def preprocess(self, raw_batch):
            self.calls.append(list(raw_batch))
            return torch.tensor([[float(len(x))] for x in raw_batch])

        def forward(self, inputs):
            return inputs

    enc = Lengths()
    prepared = enc.prepare(["a", None, "abc"])
    assert enc.calls == []  # nothing done up front
    assert enc.encode_prepared(prepared, [2, 0]).tolist() == [[3.0], [1.0]]
    assert enc.calls == [["abc", "a"]]
