"""Bad input over the public API: every case raises a `multirec` error (or warns) whose message
names the bad value. One tiny fitted model per module, never mutated (mutating cases copy it)."""

from __future__ import annotations

import copy
import re
import warnings
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from encoders import EncoderError
from multirec import splits
from multirec.cli import main
from multirec.data import InteractionData
from multirec.errors import ConfigError, DataError, NotFittedError, UnknownIDError
from multirec.evaluation import evaluate
from multirec.metrics import ranking_metrics
from multirec.model import MultimodalRecommender
from multirec.validate import check_content_has_encoders

N_USERS, N_ITEMS = 8, 10
FAST = dict(epochs=1, dim=8, show_progress=False, seed=0)
TEXT = {f"i{k}": f"song {k} about {'rain' if k % 2 else 'sun'}" for k in range(N_ITEMS)}


def _frame() -> pd.DataFrame:
    rows = [(f"u{u}", f"i{(u * 3 + j) % N_ITEMS}", float(1 + (u + j) % 5), float(u * 10 + j))
            for u in range(N_USERS) for j in range(4)]
    return pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    df = _frame()
    data = InteractionData.from_dataframe(df, weight_col=None, item_content={"text": TEXT})
    model = MultimodalRecommender(encoders={"text": "text-hash"}, cf=False, item_item=False,
                                  **FAST).fit(data)
    folder = tmp_path_factory.mktemp("bad-inputs")
    model.save_pretrained(folder / "model")
    df[["user", "item"]].to_csv(folder / "inter.csv", index=False)
    pd.DataFrame({"item": list(TEXT), "title": list(TEXT.values())}).to_csv(folder / "items.csv",
                                                                            index=False)
    return SimpleNamespace(df=df, data=data, model=model, dir=folder,
                           split=splits.random_split(data, 0.25, seed=0),
                           fresh=lambda: copy.deepcopy(model))


def _arrays(**kw):
    return InteractionData.from_arrays(["u1", "u2", "u3"], ["i1", "i2", "i3"], **kw)


def _df(**cols):
    base = {"user": ["u1", "u2", "u3"], "item": ["i1", "i2", "i3"]}
    return pd.DataFrame({**base, **cols})


def _str_ids(table):  # interaction IDs are str "1", "2", "3"
    return InteractionData.from_arrays(["u1", "u2", "u3"], ["1", "2", "3"], item_content=table)


def _scores(shape=(2, N_ITEMS)):
    return np.random.default_rng(0).random(shape)


def _test_matrix():
    return sp.csr_matrix(np.eye(2, N_ITEMS))


# (id, call(ctx), exception class, regex the message must match: it names the bad value)
CASES = [
    # ---------------------------------------------------------------- from_dataframe
    ("df-not-frame", lambda c: InteractionData.from_dataframe([1, 2]), DataError, "got list"),
    ("df-no-user-col", lambda c: InteractionData.from_dataframe(c.df, user_col="uid"), DataError,
     "'uid'"),
    ("df-no-weight-col", lambda c: InteractionData.from_dataframe(c.df, weight_col="stars"),
     DataError, "'stars'"),
    ("df-none-user-id", lambda c: InteractionData.from_dataframe(
        pd.DataFrame({"user": ["u1", None], "item": ["i1", "i2"]})), DataError, "dropna"),
    ("df-nan-item-id", lambda c: InteractionData.from_dataframe(
        pd.DataFrame({"user": ["u1", "u2"], "item": [1.0, np.nan]})), DataError, "row 1.*dropna"),
    ("df-float-id", lambda c: InteractionData.from_arrays(["u1"], [1.5]), DataError, "1.5"),
    ("df-bool-id", lambda c: InteractionData.from_arrays([True], ["i1"]), DataError, "True"),
    ("df-nan-weight", lambda c: InteractionData.from_dataframe(_df(weight=[1, np.nan, 2])),
     DataError, "nan"),
    ("df-inf-weight", lambda c: InteractionData.from_dataframe(_df(weight=[1, np.inf, 2])),
     DataError, "inf"),
    ("df-weight-overflows-float32", lambda c: InteractionData.from_dataframe(
        _df(weight=[1, 1e39, 2])), DataError, r"1e\+39"),
    ("df-negative-weight-binary", lambda c: InteractionData.from_dataframe(
        _df(weight=[1, -2, 1]), binary=True), DataError, "-2"),
    ("df-negative-weight", lambda c: InteractionData.from_dataframe(_df(weight=[1, -1.5, 1])),
     DataError, r"-1\.5"),
    ("df-all-zero-weights", lambda c: InteractionData.from_dataframe(_df(weight=[0, 0, 0])),
     DataError, "all 3 weights are zero"),
    ("df-threshold-too-high", lambda c: InteractionData.from_dataframe(
        c.df, rating_threshold=10), DataError, "rating_threshold=10"),
    ("df-threshold-no-ratings", lambda c: _arrays(rating_threshold=4), DataError,
     "rating_threshold"),
    ("df-bad-duplicates", lambda c: _arrays(duplicates="mean"), DataError, "'mean'"),
    ("df-merged-weights-overflow", lambda c: InteractionData.from_arrays(
        ["u", "u"], ["i", "i"], [3e38, 3e38]), DataError, "duplicates='sum'"),
    ("df-timestamps-text", lambda c: InteractionData.from_dataframe(
        _df(timestamp=["a", "b", "c"])), DataError, "timestamps"),
    ("df-timestamps-nan", lambda c: InteractionData.from_dataframe(
        _df(timestamp=[1.0, np.nan, 3.0])), DataError, "timestamps.*nan"),
    # ---------------------------------------------------------------- content and features
    ("content-modality-dot", lambda c: _arrays(item_content={"a.b": {"i1": "x"}}), DataError,
     r"'a\.b'.*\[A-Za-z_\]"),
    ("content-modality-empty", lambda c: _arrays(item_content={"": {"i1": "x"}}), DataError,
     "''"),
    ("content-modality-digit", lambda c: _arrays(item_content={"1text": {"i1": "x"}}),
     DataError, "'1text'"),
    ("content-modality-int", lambda c: _arrays(item_content={3: {"i1": "x"}}), DataError,
     "name 3"),
    ("content-empty-table", lambda c: _arrays(item_content={"text": {}}), DataError,
     r"item_content\['text'\] has no content"),
    ("content-all-missing", lambda c: _arrays(item_content={"text": {"i1": None}}), DataError,
     r"item_content\['text'\]"),
    ("content-not-mapping", lambda c: _arrays(item_content=["x"]), DataError, "list"),
    ("content-table-list", lambda c: _arrays(item_content={"text": ["x"]}), DataError,
     r"item_content\['text'\].*list"),
    ("content-int-keys-str-ids", lambda c: _str_ids({"text": {1: "a", 2: "b"}}), DataError,
     "key 1 is of type int.*'1'"),
    ("content-str-keys-int-ids", lambda c: InteractionData.from_arrays(
        ["u1", "u2"], [1, 2], item_content={"text": {"1": "a"}}), DataError,
     "key '1' is of type str"),
    ("content-int-keys-among-new", lambda c: _str_ids({"text": {99: "new", 1: "a"}}), DataError,
     "key 1 is of type int"),
    ("content-numpy-int-keys", lambda c: _str_ids({"text": {np.int64(2): "b"}}), DataError,
     "key 2"),
    ("features-int-keys-str-ids", lambda c: InteractionData.from_arrays(
        ["u1"], ["7"], item_features={7: ["genre:x"]}), DataError, "item_features: key 7"),
    ("features-non-numeric-frame", lambda c: _arrays(item_features=pd.DataFrame(
        {"genre": ["a", "b", "c"]}, index=["i1", "i2", "i3"])), DataError, r"\['genre'\]"),
    ("features-scalar-value", lambda c: _arrays(item_features={"i1": 3}), DataError,
     r"item_features\['i1'\]"),
    ("features-nan-weight", lambda c: _arrays(user_features={"u1": {"age": np.nan}}),
     DataError, "'age'.*nan"),
    ("features-not-mapping", lambda c: _arrays(item_features=["a"]), DataError, "list"),
    # ---------------------------------------------------------------- from_arrays / from_sparse
    ("arrays-single-string", lambda c: InteractionData.from_arrays("abc", ["i1"]), DataError,
     "'abc'"),
    ("arrays-length-mismatch", lambda c: InteractionData.from_arrays(["u1", "u2", "u3"],
                                                                     ["i1", "i2"]),
     DataError, "3 entries but items has 2"),
    ("arrays-weights-length", lambda c: _arrays(weights=[1.0, 2.0]), DataError,
     "weights has 2 entries"),
    ("arrays-not-iterable", lambda c: InteractionData.from_arrays(5, ["i1"]), DataError, "int"),
    ("sparse-dense", lambda c: InteractionData.from_sparse(np.eye(3)), DataError, "ndarray"),
    ("sparse-ids-length", lambda c: InteractionData.from_sparse(sp.eye(3), user_ids=["a", "b"]),
     DataError, "2 user_ids"),
    ("sparse-duplicate-ids", lambda c: InteractionData.from_sparse(
        sp.eye(2), user_ids=["a", "a"]), DataError, "duplicates"),
    ("sparse-all-zero", lambda c: InteractionData.from_sparse(sp.csr_matrix((3, 4))), DataError,
     r"\(3, 4\).*all weights are zero"),
    ("sparse-negative", lambda c: InteractionData.from_sparse(-sp.eye(3)), DataError, "-1"),
    # ---------------------------------------------------------------- constructor / fit
    ("init-unknown-kwarg", lambda c: MultimodalRecommender(epoch=3), ConfigError, "'epoch'"),
    ("init-item-item", lambda c: MultimodalRecommender(item_item="yes"), ConfigError, "'yes'"),
    ("init-item-item-l2", lambda c: MultimodalRecommender(item_item_l2=-1.0), ConfigError,
     r"-1\.0"),
    ("init-epochs-zero", lambda c: MultimodalRecommender(epochs=0).fit(c.data), ConfigError,
     "epochs"),
    ("init-lr-negative", lambda c: MultimodalRecommender(lr=-1.0).fit(c.data), ConfigError,
     r"-1\.0"),
    ("init-optimizer", lambda c: MultimodalRecommender(optimizer="sgd").fit(c.data), ConfigError,
     "'sgd'"),
    ("init-loss", lambda c: MultimodalRecommender(loss="mse").fit(c.data), ConfigError, "'mse'"),
    ("init-negatives", lambda c: MultimodalRecommender(negatives=0).fit(c.data), ConfigError,
     "negatives"),
    ("init-checkpoint-no-dir", lambda c: MultimodalRecommender(checkpoint_every=2).fit(c.data),
     ConfigError, "checkpoint_dir"),
    ("fit-unknown-encoder", lambda c: MultimodalRecommender(encoders={"text": "nope"},
                                                            **FAST).fit(c.data),
     EncoderError, "'nope'"),
    ("fit-cf-bad", lambda c: MultimodalRecommender(cf="yes", **FAST).fit(c.data), ConfigError,
     "'yes'"),
    ("fit-fusion-bad", lambda c: MultimodalRecommender(fusion="max", cf=False, **FAST).fit(c.data),
     ConfigError, "'max'"),
    ("fit-dim-zero", lambda c: MultimodalRecommender(dim=0, cf=False, epochs=1,
                                                     show_progress=False).fit(c.data),
     ConfigError, "dim"),
    ("fit-dataframe", lambda c: MultimodalRecommender(**FAST).fit(c.df), DataError, "DataFrame"),
    ("fit-encoder-without-content", lambda c: MultimodalRecommender(
        encoders={"audio": "audio-mel"}, cf=False, **FAST).fit(c.data), DataError, "'audio'"),
    ("fit-valid-other-maps", lambda c: MultimodalRecommender(cf=False, **FAST).fit(
        c.data, valid=_arrays()), DataError, "valid"),
    ("fit-content-without-encoder", lambda c: check_content_has_encoders(
        ["text", "image"], ["text"]), DataError, "'image'"),
    ("not-fitted", lambda c: MultimodalRecommender().recommend("u1"), NotFittedError, "fit"),
    # ---------------------------------------------------------------- recommend
    ("rec-n-bool", lambda c: c.model.recommend("u1", n=True), ConfigError, "True"),
    ("rec-n-float", lambda c: c.model.recommend("u1", n=2.5), ConfigError, r"2\.5"),
    ("rec-n-zero", lambda c: c.model.recommend("u1", n=0), ConfigError, "got 0"),
    ("rec-n-negative", lambda c: c.model.recommend("u1", n=-5), ConfigError, "-5"),
    ("rec-n-str", lambda c: c.model.recommend("u1", n="10"), ConfigError, "'10'"),
    ("rec-set", lambda c: c.model.recommend({"u1", "u2"}), DataError, "set"),
    ("rec-none", lambda c: c.model.recommend(None), DataError, "None"),
    ("rec-nan", lambda c: c.model.recommend(np.nan), DataError, "nan"),
    ("rec-nan-in-list", lambda c: c.model.recommend(["u1", np.nan]), DataError, "nan"),
    ("rec-float-id", lambda c: c.model.recommend(1.5), DataError, r"1\.5"),
    ("rec-unknown-user", lambda c: c.model.recommend("ghost"), UnknownIDError, "'ghost'"),
    ("rec-int-for-str-ids", lambda c: c.model.recommend(5), UnknownIDError,
     "type str, you passed int"),
    ("rec-items-empty", lambda c: c.model.recommend("u1", items=[]), DataError, r"items=\[\]"),
    ("rec-items-set", lambda c: c.model.recommend("u1", items={"i1"}), DataError, "set"),
    ("rec-items-str", lambda c: c.model.recommend("u1", items="i1"), DataError, "'i1'"),
    ("rec-items-unknown", lambda c: c.model.recommend("u1", items=["zz"]), UnknownIDError,
     "'zz'"),
    ("rec-history-list", lambda c: c.model.recommend("new", history=["i1"]), DataError, "list"),
    ("rec-history-str", lambda c: c.model.recommend("new", history={"new": "i1"}), DataError,
     "'i1'"),
    ("rec-history-unknown-item", lambda c: c.model.recommend("new", history={"new": ["zz"]}),
     UnknownIDError, "'zz'"),
    # ---------------------------------------------------------------- score
    ("score-strings", lambda c: c.model.score("u1", "i1"), DataError, "single string 'u1'"),
    ("score-lengths", lambda c: c.model.score(["u1", "u2"], ["i1"]), DataError, "2 and 1"),
    ("score-set", lambda c: c.model.score({"u1"}, ["i1"]), DataError, "set"),
    ("score-none", lambda c: c.model.score(None, ["i1"]), DataError, "None"),
    ("score-unknown-item", lambda c: c.model.score(["u1"], ["zz"]), UnknownIDError, "'zz'"),
    # ---------------------------------------------------------------- similar_items / search
    ("similar-n-negative", lambda c: c.model.similar_items("i1", n=-5), ConfigError, "-5"),
    ("similar-n-bool", lambda c: c.model.similar_items("i1", n=True), ConfigError, "True"),
    ("similar-unknown", lambda c: c.model.similar_items("zz"), UnknownIDError, "'zz'"),
    ("search-n-negative", lambda c: c.model.search("rain", n=-5), ConfigError, "-5"),
    ("search-empty", lambda c: c.model.search("  "), DataError, "'  '"),
    ("search-not-str", lambda c: c.model.search(5), DataError, "5"),
    ("search-unknown-modality", lambda c: c.model.search("rain", modality="image"), ConfigError,
     "'image'"),
    # ---------------------------------------------------------------- add_items / add_users
    ("add-items-no-encoder", lambda c: c.fresh().add_items({"audio": {"i99": "x.wav"}}),
     DataError, "'audio'"),
    ("add-items-empty", lambda c: c.fresh().add_items({}), DataError, "empty"),
    ("add-items-empty-table", lambda c: c.fresh().add_items({"text": {}}), DataError,
     r"content\['text'\] is empty"),
    ("add-items-list", lambda c: c.fresh().add_items(["x"]), DataError, "list"),
    ("add-items-table-list", lambda c: c.fresh().add_items({"text": ["x"]}), DataError,
     r"content\['text'\].*list"),
    ("add-items-none-key", lambda c: c.fresh().add_items({"text": {None: "x"}}), DataError,
     "None"),
    ("add-items-float-key", lambda c: c.fresh().add_items({"text": {1.5: "x"}}), DataError,
     r"1\.5"),
    ("add-users-frame-columns", lambda c: c.fresh().add_users(pd.DataFrame({"user": ["n"]})),
     DataError, "'item'"),
    ("add-users-str-history", lambda c: c.fresh().add_users({"n": "i1"}), DataError, "'i1'"),
    ("add-users-unknown-item", lambda c: c.fresh().add_users({"n": ["zz"]}), UnknownIDError,
     "'zz'"),
    # ---------------------------------------------------------------- explain
    ("explain-unknown-user", lambda c: c.model.explain("ghost", "i1"), UnknownIDError, "'ghost'"),
    ("explain-unknown-item", lambda c: c.model.explain("u1", "zz"), UnknownIDError, "'zz'"),
    # ---------------------------------------------------------------- splits
    ("split-fraction-big", lambda c: splits.random_split(c.data, 1.5), DataError, r"1\.5"),
    ("split-fraction-bool", lambda c: splits.random_split(c.data, True), DataError, "True"),
    ("split-not-data", lambda c: splits.random_split([1, 2]), DataError, "list"),
    ("split-temporal-no-times", lambda c: splits.temporal_split(
        InteractionData.from_dataframe(c.df, timestamp_col=None)), DataError, "timestamps"),
    ("split-leave-last-n", lambda c: splits.leave_last_out(c.data, n=0), DataError, "got 0"),
    ("split-cold-item-zero", lambda c: splits.cold_item_split(c.data, 0), DataError, "got 0"),
    ("split-cold-user-fold-in", lambda c: splits.cold_user_split(c.data, 0.3, fold_in=-1),
     DataError, "-1"),
    # ---------------------------------------------------------------- evaluate / metrics
    ("eval-not-split", lambda c: evaluate(c.model, c.data), DataError, "InteractionData"),
    ("eval-k-zero", lambda c: evaluate(c.model, c.split, k=0), DataError, "got 0"),
    ("eval-batch-bool", lambda c: evaluate(c.model, c.split, batch_size=True), DataError, "True"),
    ("eval-no-score-users", lambda c: evaluate(object(), c.split), DataError, "object"),
    ("metrics-k-zero", lambda c: ranking_metrics(_scores(), _test_matrix(), 0), DataError,
     "got 0"),
    ("metrics-nan-scores", lambda c: ranking_metrics(np.full((2, N_ITEMS), np.nan),
                                                     _test_matrix(), 5), DataError, "NaN"),
    ("metrics-1d-scores", lambda c: ranking_metrics(np.zeros(N_ITEMS), _test_matrix(), 5),
     DataError, r"\(10,\)"),
    ("metrics-candidate-range", lambda c: ranking_metrics(_scores(), _test_matrix(), 5,
                                                          candidates=np.array([1, 99])),
     DataError, "99"),
    ("metrics-candidates-empty", lambda c: ranking_metrics(_scores(), _test_matrix(), 5,
                                                           candidates=np.zeros(N_ITEMS, bool)),
     DataError, "empty"),
    ("metrics-exclude-shape", lambda c: ranking_metrics(_scores(), _test_matrix(), 5,
                                                        exclude=sp.eye(3, format="csr")),
     DataError, r"\(3, 3\)"),
]

CONFIG_CASES = [  # constructor checks of multirec/config.py
    ("init-epochs-str", lambda c: MultimodalRecommender(epochs="10"), ConfigError, "'10'"),
    ("init-epochs-float", lambda c: MultimodalRecommender(epochs=2.5), ConfigError, r"2\.5"),
    ("init-device-tpu", lambda c: MultimodalRecommender(device="tpu"), ConfigError, "'tpu'"),
    ("init-encoders-list", lambda c: MultimodalRecommender(encoders=["text"], **FAST).fit(c.data),
     ConfigError, "list"),
    ("init-dim-float", lambda c: MultimodalRecommender(dim=2.5), ConfigError, r"2\.5"),
]


@pytest.mark.parametrize("call, exc, match", [pytest.param(*case[1:], id=case[0])
                                              for case in CASES])
def test_bad_input_raises_naming_the_value(ctx, call, exc, match):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(exc, match=match):
            call(ctx)


@pytest.mark.parametrize("call, exc, match", [pytest.param(*case[1:], id=case[0])
                                              for case in CONFIG_CASES])
def test_bad_constructor_args(ctx, call, exc, match):
    with pytest.raises(exc, match=match):
        call(ctx)


def test_device_cuda_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ConfigError, match="'cuda'"):
        MultimodalRecommender(device="cuda")


def test_huge_lr_warns_or_raises():
    named = re.compile(r"1e\+08|100000000")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            MultimodalRecommender(lr=1e8)
        except ConfigError as exc:  # rejecting it outright is fine too
            assert named.search(str(exc)), exc
            return
    assert any(named.search(str(w.message)) for w in caught), [str(w.message) for w in caught]


WARN_CASES = [
    ("content-other-type-keys", lambda c: _str_ids({"text": {99: "new"}}),
     "key 99 is of type int"),
    ("features-other-type-keys", lambda c: InteractionData.from_arrays(
        ["u1"], ["a"], item_features={5: ["x"]}), "key 5"),
]


@pytest.mark.parametrize("call, match", [pytest.param(*case[1:], id=case[0])
                                         for case in WARN_CASES])
def test_suspicious_input_warns(ctx, call, match):
    with pytest.warns(UserWarning, match=match):
        call(ctx)


def _cli(c, *argv):
    return [str(a).replace("{dir}", str(c.dir)) for a in argv]


CLI_CASES = [
    ("cli-missing-file", ("fit", "{dir}/nope.csv", "--out", "{dir}/m"), "nope.csv"),
    ("cli-no-user-col", ("fit", "{dir}/inter.csv", "--user-col", "uid", "--out", "{dir}/m"),
     "'uid'"),
    ("cli-no-text-col", ("fit", "{dir}/inter.csv", "--content", "{dir}/items.csv", "--text-col",
                         "name", "--out", "{dir}/m"), "'name'"),
    ("cli-text-col-no-content", ("fit", "{dir}/inter.csv", "--text-col", "title", "--out",
                                 "{dir}/m"), "--content"),
    ("cli-out-folder-missing", ("fit", "{dir}/inter.csv", "--out", "{dir}/no/such/m"),
     "does not exist"),
    ("cli-unknown-encoder", ("fit", "{dir}/inter.csv", "--content", "{dir}/items.csv",
                             "--text-col", "title", "--text-encoder", "nope", "--epochs", "1",
                             "--quiet", "--out", "{dir}/m"), "'nope'"),
    ("cli-min-rating-no-ratings", ("fit", "{dir}/inter.csv", "--min-rating", "4", "--out",
                                   "{dir}/m"), "rating_threshold"),
    ("cli-recommend-unknown-user", ("recommend", "{dir}/model", "--users", "ghost"), "'ghost'"),
    ("cli-recommend-no-model", ("recommend", "{dir}/nomodel", "--users", "u1"), "nomodel"),
    ("cli-recommend-all-no-out", ("recommend", "{dir}/model", "--all"), "--out"),
    ("cli-recommend-n-zero", ("recommend", "{dir}/model", "--users", "u1", "--n", "0"), "'0'"),
    ("cli-encode-no-column", ("encode", "{dir}/items.csv", "--column", "nope", "--encoder",
                              "text-hash", "--out", "{dir}/v.npz"), "'nope'"),
    ("cli-encode-no-folder", ("encode", "{dir}/items.csv", "--column", "title", "--encoder",
                              "text-hash", "--out", "{dir}/none/v.npz"), "none"),
    ("cli-threads-zero", ("fit", "{dir}/inter.csv", "--threads", "0", "--out", "{dir}/m"), "'0'"),
    ("cli-serve-no-model", ("serve", "{dir}/nomodel"), "nomodel"),
]


@pytest.mark.parametrize("argv, match", [pytest.param(*case[1:], id=case[0])
                                         for case in CLI_CASES])
def test_cli_bad_input_exits_nonzero_with_message(ctx, capsys, argv, match):
    capsys.readouterr()
    assert main(_cli(ctx, *argv)) == 2
    err = capsys.readouterr().err
    assert re.search(match, err), err
    assert "Traceback" not in err


def test_fixture_model_not_mutated(ctx):
    assert len(ctx.model.item_map_) == N_ITEMS and len(ctx.model.user_map_) == N_USERS
    assert len(CASES) + len(CONFIG_CASES) + len(WARN_CASES) + len(CLI_CASES) >= 80
