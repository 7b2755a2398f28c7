"""`multirec` command line: demo, fit, recommend, encode.

    multirec demo [--size small|default]         train on built-in synthetic multimodal data
    multirec fit interactions.csv --content items.csv --text-col title --out model/
    multirec recommend model/ --users u1 u2 --n 10
    multirec encode items.csv --column title --encoder text-hash --out vectors.npy

`main(argv)` returns the exit code, so it is testable without a subprocess.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import MultirecError

__all__ = ["main"]


def _read_table(path: str) -> Any:
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise MultirecError(f"file not found: {path!r}")
    if p.suffix in (".parquet", ".pq"):
        return pd.read_parquet(p)
    return pd.read_csv(p, sep="\t" if p.suffix == ".tsv" else ",")


def _demo(args: argparse.Namespace) -> int:
    from .baselines import LightFMRecommender, PopularityRecommender
    from .datasets.synthetic import make_synthetic
    from .evaluation import evaluate
    from .model import MultimodalRecommender
    from .splits import cold_item_split, random_split

    sizes = {"tiny": (150, 120, 10), "small": (300, 240, 40), "default": (600, 500, 60)}
    n_users, n_items, epochs = sizes[args.size]
    t0 = time.perf_counter()
    ds = make_synthetic(n_users=n_users, n_items=n_items, seed=args.seed)
    print(f"synthetic data: {ds.data}  ({time.perf_counter() - t0:.1f}s)")
    encoders = {"text": "text-hash", "image": "image-stats", "audio": "audio-mel"}
    rows = []
    for name, split in (("warm", random_split(ds.data, 0.2, seed=args.seed)),
                        ("cold-item", cold_item_split(ds.data, 0.2, seed=args.seed))):
        models = {
            "popularity": PopularityRecommender(),
            "LightFM": LightFMRecommender(no_components=32, epochs=20, num_threads=args.threads),
            "multirec": MultimodalRecommender(encoders=encoders, epochs=epochs, lr=3e-3, dim=32,
                                              batch_size=32,
                                              show_progress=False, seed=args.seed,
                                              cf={"no_components": 32, "epochs": 20,
                                                  "num_threads": args.threads}),
        }
        for label, model in models.items():
            t = time.perf_counter()
            model.fit(split.train)
            res = evaluate(model, split, k=10)
            rows.append((name, label, res["ndcg"], res["recall"], time.perf_counter() - t))
    print(f"\n{'split':10s} {'model':12s} {'NDCG@10':>8s} {'R@10':>8s} {'seconds':>8s}")
    for r in rows:
        print(f"{r[0]:10s} {r[1]:12s} {r[2]:8.4f} {r[3]:8.4f} {r[4]:8.1f}")
    model = models["multirec"]
    user = model.user_map_.ids([0])[0]
    ids, scores = model.recommend(user, n=5)
    print(f"\ntop-5 for {user}: " + ", ".join(f"{i} ({s:.2f})" for i, s in zip(ids, scores)))
    expl = model.explain(user, ids[0])
    print(f"why {ids[0]}: " + ", ".join(f"{k} {v:+.2f}" for k, v in expl["contributions"].items()))
    print(f"\ndone in {time.perf_counter() - t0:.1f}s")
    return 0


def _fit(args: argparse.Namespace) -> int:
    from .data import InteractionData
    from .model import MultimodalRecommender

    df = _read_table(args.interactions)
    content: dict[str, dict[Any, Any]] = {}
    encoders: dict[str, str] = {}
    if args.content:
        items = _read_table(args.content)
        if args.item_col not in items.columns:
            raise MultirecError(f"content table has no {args.item_col!r} column: {list(items.columns)}")
        for modality, col, enc in (("text", args.text_col, args.text_encoder),
                                   ("image", args.image_col, args.image_encoder),
                                   ("audio", args.audio_col, args.audio_encoder)):
            if col:
                if col not in items.columns:
                    raise MultirecError(f"content table has no {col!r} column: {list(items.columns)}")
                content[modality] = {k: v for k, v in zip(items[args.item_col], items[col])
                                     if isinstance(v, str) and v}
                encoders[modality] = enc
    data = InteractionData.from_dataframe(df, args.user_col, args.item_col, item_content=content or None)
    print(f"data: {data}")
    model = MultimodalRecommender(encoders=encoders, epochs=args.epochs, dim=args.dim,
                                  cache_dir=args.cache_dir, show_progress=not args.quiet)
    model.fit(data)
    model.save_pretrained(args.out)
    print(f"saved to {args.out} (best epoch {model.history_.best_epoch}, "
          f"validation NDCG@10 {model.history_.best_score:.4f})")
    return 0


def _recommend(args: argparse.Namespace) -> int:
    from .model import MultimodalRecommender

    model = MultimodalRecommender.from_pretrained(args.model)
    users: list[Any] = [_maybe_int(u, model.user_map_) for u in args.users]
    ids, scores = model.recommend(users, n=args.n)
    out = [{"user": u, "items": [None if i is None else (i.item() if hasattr(i, "item") else i)
                                 for i in row], "scores": [round(float(s), 6) for s in sc]}
           for u, row, sc in zip(users, ids, scores)]
    print(json.dumps(out, indent=None if args.jsonl else 2, default=str))
    return 0


def _maybe_int(raw: str, idmap: Any) -> Any:
    if raw not in idmap and raw.lstrip("-").isdigit() and int(raw) in idmap:
        return int(raw)
    return raw


def _encode(args: argparse.Namespace) -> int:
    from encoders import get_encoder

    table = _read_table(args.table)
    if args.column not in table.columns:
        raise MultirecError(f"table has no {args.column!r} column: {list(table.columns)}")
    enc = get_encoder(args.encoder)
    vecs = enc.encode_all(list(table[args.column]), args.batch_size, cache=args.cache_dir,
                          show_progress=not args.quiet)
    np.save(args.out, vecs.numpy())
    print(f"wrote {tuple(vecs.shape)} vectors to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="multirec", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train on built-in synthetic text+image+audio data")
    demo.add_argument("--size", choices=["tiny", "small", "default"], default="default")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--threads", type=int, default=2)
    demo.set_defaults(func=_demo)

    fit = sub.add_parser("fit", help="train on a CSV/parquet of interactions (+ content table)")
    fit.add_argument("interactions")
    fit.add_argument("--content", help="CSV/parquet with one row per item")
    fit.add_argument("--user-col", default="user")
    fit.add_argument("--item-col", default="item")
    fit.add_argument("--text-col")
    fit.add_argument("--image-col", help="column of image file paths")
    fit.add_argument("--audio-col", help="column of audio file paths")
    fit.add_argument("--text-encoder", default="text")
    fit.add_argument("--image-encoder", default="image")
    fit.add_argument("--audio-encoder", default="audio")
    fit.add_argument("--epochs", type=int, default=60)
    fit.add_argument("--dim", type=int, default=64)
    fit.add_argument("--cache-dir")
    fit.add_argument("--out", required=True)
    fit.add_argument("--quiet", action="store_true")
    fit.set_defaults(func=_fit)

    rec = sub.add_parser("recommend", help="top-n items for users of a saved model")
    rec.add_argument("model")
    rec.add_argument("--users", nargs="+", required=True)
    rec.add_argument("--n", type=int, default=10)
    rec.add_argument("--jsonl", action="store_true")
    rec.set_defaults(func=_recommend)

    enc = sub.add_parser("encode", help="encode one column of a table to a .npy matrix")
    enc.add_argument("table")
    enc.add_argument("--column", required=True)
    enc.add_argument("--encoder", default="text")
    enc.add_argument("--batch-size", type=int, default=32)
    enc.add_argument("--cache-dir")
    enc.add_argument("--out", required=True)
    enc.add_argument("--quiet", action="store_true")
    enc.set_defaults(func=_encode)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (errors are printed, not raised)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except MultirecError as exc:
        print(f"multirec {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # encoder errors live in `encoders`
        from encoders import EncoderError

        if isinstance(exc, EncoderError):
            print(f"multirec {args.command}: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
