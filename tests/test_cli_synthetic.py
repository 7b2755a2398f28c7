"""CLI (demo, fit, recommend, encode), synthetic data and the weight-free encoders."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from encoders import Encoder, get_encoder
from multirec.cli import main
from multirec.datasets.synthetic import make_synthetic


@pytest.fixture(scope="module")
def synth():
    return make_synthetic(n_users=60, n_items=50, interactions_per_user=8, seed=3)


def test_synthetic_deterministic_with_missing(synth):
    again = make_synthetic(n_users=60, n_items=50, interactions_per_user=8, seed=3)
    other = make_synthetic(n_users=60, n_items=50, interactions_per_user=8, seed=4)
    np.testing.assert_array_equal(synth.data.item_index, again.data.item_index)
    assert synth.data.content["text"] == again.data.content["text"]
    assert not np.array_equal(synth.data.item_index, other.data.item_index)
    assert synth.data.nnz == 60 * 8
    for m in ("text", "image", "audio"):
        assert any(x is None for x in synth.data.content[m])


def test_content_carries_the_factors():
    ds = make_synthetic(n_users=50, n_items=200, seed=0, missing_rate=0.0)
    V = ds.item_factors
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 200, 2000), rng.integers(0, 200, 2000)
    # measured: text 0.28 (raw hashed words), image 0.76, audio 0.51 (standardised features)
    for modality, name, dims, low in (("text", "text-hash", slice(0, 4), 0.2),
                                      ("image", "image-stats", slice(2, 6), 0.5),
                                      ("audio", "audio-mel", slice(4, 8), 0.35)):
        emb = get_encoder(name).encode_all(ds.data.content[modality], show_progress=False).numpy()
        if modality != "text":
            emb = (emb - emb.mean(0)) / (emb.std(0) + 1e-6)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        f = V[:, dims] / np.linalg.norm(V[:, dims], axis=1, keepdims=True)
        r = np.corrcoef((emb[a] * emb[b]).sum(1), (f[a] * f[b]).sum(1))[0, 1]
        assert r > low, (modality, r)


def test_simple_encoders_paths_equal_arrays_and_config_roundtrip(synth, tmp_path):
    tables = synth.write_media(tmp_path)
    item = sorted(set(tables["image"]) & set(tables["audio"]))[0]
    for modality, name in (("image", "image-stats"), ("audio", "audio-mel")):
        enc = get_encoder(name)
        raw, path = synth.content_table(modality)[item], tables[modality][item]
        np.testing.assert_allclose(enc.encode([path]).numpy(), enc.encode([raw]).numpy(), atol=1e-4)
        clone = Encoder.from_config(enc.to_config())
        np.testing.assert_allclose(clone.encode([raw]).numpy(), enc.encode([raw]).numpy())
    texts = [t for t in synth.data.content["text"] if t][:5]
    enc = get_encoder("text-hash")
    batch = enc.encode(texts).numpy()
    single = np.concatenate([enc.encode([t]).numpy() for t in texts])
    np.testing.assert_allclose(batch, single, atol=1e-6)


def test_demo_runs(capsys):
    assert main(["demo", "--size", "tiny", "--threads", "1"]) == 0
    captured = capsys.readouterr()
    out, err = captured.out, captured.err
    assert "multirec" in out and "top-5 for" in out and "NDCG@10" in out
    for stage in ("encoding…", "training LightFM…", "training…", "evaluating…"):
        assert stage in err  # progress goes to stderr while it runs
    assert "evaluating…" not in out


def test_fit_recommend_encode_cli(tmp_path, capsys):
    ds = make_synthetic(n_users=40, n_items=40, interactions_per_user=6, seed=1,
                        modalities=("text",), missing_rate=0.0)
    df = ds.data.to_dataframe()[["user", "item"]]
    df.to_csv(tmp_path / "inter.csv", index=False)
    items = pd.DataFrame({"item": list(ds.content_table("text")),
                          "title": list(ds.content_table("text").values())})
    items.to_csv(tmp_path / "items.csv", index=False)
    code = main(["fit", str(tmp_path / "inter.csv"), "--content", str(tmp_path / "items.csv"),
                 "--text-col", "title", "--text-encoder", "text-hash", "--epochs", "3",
                 "--out", str(tmp_path / "model"), "--quiet"])
    assert code == 0
    capsys.readouterr()
    assert main(["recommend", str(tmp_path / "model"), "--users", "user_0001", "--n", "3"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert recs[0]["user"] == "user_0001" and len(recs[0]["items"]) == 3
    assert main(["recommend", str(tmp_path / "model"), "--users", "ghost"]) == 2
    assert "ghost" in capsys.readouterr().err
    assert main(["encode", str(tmp_path / "items.csv"), "--column", "title", "--encoder", "text-hash",
                 "--out", str(tmp_path / "v.npy"), "--quiet"]) == 0
    assert np.load(tmp_path / "v.npy").shape == (40, 256)
