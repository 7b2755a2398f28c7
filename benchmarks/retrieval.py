"""Retrieval benchmark: `ItemIndex` kinds (flat / ivf / hnsw) at catalogue scale.

    python benchmarks/retrieval.py [--sizes 20000 200000 1000000] [--dim 64] [--threads 1]
                                   [--dists gauss tail model] [--queries 1000] [--out DIR] [--merge]

For each catalogue size and vector distribution, every kind is built with its defaults
(nprobe / ef_search calibrated for recall@10 >= 0.95) and measured against exact search:
build seconds (calibration included), recall@10 over `--queries` queries, median latency of
one single-query `ItemIndex.search(q, 10)` call, of one batch call with all queries, and the
library overhead = median single-query `ItemIndex.search` − median `faiss_index.search` on
the same (already transformed) query. Sizes up to `--variants-up-to` (200k) also measure the
non-default metric of each approximate kind (ivf-ip: inner-product cells; hnsw-l2: the
MIPS→L2 transform) to show why the defaults are what they are.

Distributions (`dim`-dimensional items, Gaussian queries unless said):
    gauss  items ~ N(0, I): no structure, the hard case for any ANN index
    tail   items ~ N(0, I) · lognormal(0, 0.8) per item: long-tailed norms like item factors
    model  a MultimodalRecommender fitted on make_synthetic (2,000 items, 2,000 users; content:
           the planted factors plus noise), grown to the size with `add_items` (cold items with
           content drawn like the real ones); queries are its users' vectors, nprobe /
           ef_search are calibrated on 512 other users (as `ItemIndex.build(model)` does); the
           dimension is the model's (49), not --dim
Writes <out>/retrieval.{md,json,png} (out: benchmarks/results) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

KINDS = [("flat", {}), ("ivf", {}), ("hnsw", {})]
VARIANTS = [("ivf-ip", "ivf", {"transform": False}), ("hnsw-l2", "hnsw", {"transform": True})]


def _fit_model(seed: int) -> tuple[Any, np.ndarray, np.ndarray]:
    """A small fitted model, its content factors' spread and its users' query vectors."""
    import encoders.precomputed  # noqa: F401  (registers "precomputed")
    from multirec.data import InteractionData
    from multirec.datasets.synthetic import make_synthetic
    from multirec.index import ItemIndex
    from multirec.model import MultimodalRecommender

    ds = make_synthetic(n_users=2000, n_items=2000, n_factors=16, interactions_per_user=20,
                        modalities=(), seed=seed)
    d = ds.data
    rng = np.random.default_rng(seed)
    vec = ds.item_factors + 0.3 * rng.standard_normal(ds.item_factors.shape).astype(np.float32)
    users, items = list(d.users.ids(np.arange(len(d.users)))), list(d.items.ids(np.arange(len(d.items))))
    data = InteractionData.from_arrays(
        [users[u] for u in d.user_index], [items[i] for i in d.item_index], user_ids=users,
        item_ids=items, item_content={"vec": {items[i]: vec[i] for i in range(len(items))}})
    model = MultimodalRecommender(encoders={"vec": {"name": "precomputed", "dim": vec.shape[1]}},
                                  cf={"no_components": 16, "epochs": 10, "num_threads": 1},
                                  item_item=False, epochs=10, dim=32, show_progress=False,
                                  seed=seed).fit(data)
    q, _ = ItemIndex.build(model, "flat").user_vectors(model, users)  # (U, D)
    return model, vec, q


def _model_items(fitted: tuple, n: int, seed: int) -> np.ndarray:  # (n, D)
    """The fitted model's items plus n − 2000 cold items (content drawn like the real ones)."""
    import copy

    from multirec.index import item_vectors

    model, vec, _ = fitted
    if n > len(vec):
        model = copy.deepcopy(model)
        rng = np.random.default_rng(seed + n)
        mu, sd = vec.mean(0), vec.std(0)
        new = (mu + sd * rng.standard_normal((n - len(vec), vec.shape[1]))).astype(np.float32)
        model.add_items({"vec": {f"cold{j}": new[j] for j in range(len(new))}})
    return item_vectors(model)[:n]


def _data(dist: str, n: int, dim: int, n_queries: int, seed: int, fitted: tuple | None
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:  # items, queries, calibration
    rng = np.random.default_rng(seed)
    calib = None
    if dist == "model":
        x = _model_items(fitted, n, seed)
        users = fitted[2]
        calib, rest = users[:512], users[512:]  # calibrate on other users than measured
        q = rest[rng.integers(0, len(rest), n_queries)] if n_queries > len(rest) else rest[:n_queries]
    else:
        x = rng.standard_normal((n, dim))
        if dist == "tail":
            x *= rng.lognormal(0.0, 0.8, size=(n, 1))
        q = rng.standard_normal((n_queries, dim))
    return np.ascontiguousarray(x, np.float32), np.ascontiguousarray(q, np.float32), calib


def _paired_ms(lib, raw, n_queries: int, reps: int) -> dict[str, float]:
    """Single-query timings of `lib(i)` and `raw(i)` run back to back on the same query.

    Wall and thread-CPU medians of each, and the median of the paired CPU-time differences:
    the overhead. The CPU time of this thread (FAISS with 1 thread runs in it) is not inflated
    when other processes share the cores; the wall time is.
    """
    wall: dict[str, list[float]] = {"lib": [], "raw": []}
    cpu: dict[str, list[float]] = {"lib": [], "raw": []}
    for i in range(reps):
        for name in (("lib", "raw") if i % 2 == 0 else ("raw", "lib")):
            fn = lib if name == "lib" else raw
            w, c = time.perf_counter(), time.thread_time()
            fn(i % n_queries)
            cpu[name].append(time.thread_time() - c)
            wall[name].append(time.perf_counter() - w)
    diff = [a - b for a, b in zip(cpu["lib"], cpu["raw"])]
    med = statistics.median
    return {"single_ms": 1000 * med(wall["lib"]), "raw_single_ms": 1000 * med(wall["raw"]),
            "single_cpu_ms": 1000 * med(cpu["lib"]), "raw_single_cpu_ms": 1000 * med(cpu["raw"]),
            "overhead_ms": 1000 * med(diff)}


def _measure(name: str, kind: str, kw: dict, x: np.ndarray, q: np.ndarray, truth: np.ndarray,
             reps: int, threads: int, calib: np.ndarray | None) -> dict[str, Any]:
    from multirec.index import ItemIndex

    if kind != "flat" and calib is not None:
        kw = {**kw, "queries": calib}  # as ItemIndex.build(model) does with the model's users
    t, c = time.perf_counter(), time.process_time()
    index = ItemIndex.from_vectors(x, kind, num_threads=threads, show_progress=False, **kw)
    build, build_cpu = time.perf_counter() - t, time.process_time() - c
    t = time.perf_counter()
    found, _ = index.search(q, 10)  # (Q, 10)
    batch_ms = 1000 * (time.perf_counter() - t)
    recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)]))
    raw, fq = index.faiss_index, index.faiss_queries(q)  # the transformed queries, made once
    index.search(q[:1], 10), raw.search(fq[:1], 10)  # warm up
    timing = _paired_ms(lambda i: index.search(q[i][None], 10),
                        lambda i: raw.search(fq[i][None], 10), len(q), reps)
    params = {k: v for k, v in index.params.items() if k not in ("seed", "max_norm2")}
    return {"kind": name, "build_s": round(build, 3), "build_cpu_s": round(build_cpu, 3),
            "recall_at_10": round(recall, 4), **{k: round(v, 4) for k, v in timing.items()},
            "batch_ms": round(batch_ms, 2), "params": params}


def run(args: argparse.Namespace, on_row=None) -> dict[str, Any]:
    """Measure every (size, dist, kind); `on_row(payload)` after each row (partial results)."""
    import faiss

    faiss.omp_set_num_threads(args.threads)
    payload: dict[str, Any] = {"rows": [], "config": {
        "sizes": args.sizes, "dim": args.dim, "threads": args.threads, "queries": args.queries,
        "dists": args.dists, "reps": args.reps, "seed": args.seed, "faiss": faiss.__version__,
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "load_avg_start": os.getloadavg()[0]}}
    fitted = _fit_model(args.seed) if "model" in args.dists else None
    for n in args.sizes:
        for dist in args.dists:
            x, q, calib = _data(dist, n, args.dim, args.queries, args.seed, fitted)
            t = time.perf_counter()
            _, truth = faiss.knn(q, x, 10, metric=faiss.METRIC_INNER_PRODUCT)  # exact, (Q, 10)
            exact_ms = 1000 * (time.perf_counter() - t)
            kinds = [(k, k, kw) for k, kw in KINDS]
            if n <= args.variants_up_to:
                kinds += VARIANTS
            for name, kind, kw in kinds:
                if kind == "hnsw" and n > args.hnsw_up_to:
                    continue
                row = {"size": n, "dist": dist, "dim": int(x.shape[1]), "threads": args.threads,
                       **_measure(name, kind, kw, x, q, truth, args.reps, args.threads, calib)}
                row["exact_batch_ms"] = round(exact_ms, 2)
                payload["rows"].append(row)
                print(_line(row), flush=True)
                if on_row is not None:
                    on_row(payload)
            del x
    payload["config"]["load_avg_end"] = os.getloadavg()[0]
    return payload


_HEAD = ("| size | dist | kind | build s (cpu s) | recall@10 | 1 query ms (cpu ms) | raw FAISS cpu ms "
         "| overhead cpu ms | 1000 queries ms | params |")


def _line(r: dict[str, Any]) -> str:
    p = ", ".join(f"{k}={v}" for k, v in r["params"].items() if k != "transform")
    kind = r["kind"] + (f" ({r['threads']} threads)" if r.get("threads", 1) != 1 else "")
    return (f"| {r['size']:,} | {r['dist']} | {kind} | {r['build_s']:.1f} ({r['build_cpu_s']:.1f}) "
            f"| {r['recall_at_10']:.3f} | {r['single_ms']:.3f} ({r['single_cpu_ms']:.3f}) "
            f"| {r['raw_single_cpu_ms']:.3f} | {r['overhead_ms']:+.3f} | {r['batch_ms']:.1f} | {p} |")


def _markdown(payload: dict[str, Any]) -> str:
    c = payload["config"]
    lines = [
        "# Retrieval: ItemIndex flat / ivf / hnsw",
        "",
        f"`python benchmarks/retrieval.py --sizes {' '.join(map(str, c['sizes']))} --dim {c['dim']} "
        f"--threads {c['threads']}` (merged runs: 1 FAISS thread unless the kind says otherwise); "
        f"FAISS {c['faiss']}, {c['queries']} queries, "
        f"top-10, {c['cpu_count']} cores shared with other jobs (load average {c['load_avg_start']:.1f} "
        f"at the start, {c.get('load_avg_end', float('nan')):.1f} at the end): wall times are inflated "
        "by the sharing, CPU times (of this process / thread) are not. Recall@10 is against exact "
        f"inner-product search. 1 query: median over {c['reps']} single-query `ItemIndex.search` "
        "calls; raw FAISS: `faiss_index.search` on the same (transformed) query, run back to back "
        "with it; overhead: median of the paired differences in thread CPU time. ivf and "
        "hnsw use their defaults (nprobe / ef_search calibrated for recall@10 ≥ 0.95 at build "
        "time, included in build s); ivf-ip and hnsw-l2 are the non-default metrics, for comparison.",
        "",
        _HEAD,
        "|" + "---|" * 10,
        *[_line(r) for r in payload["rows"]],
        "",
    ]
    return "\n".join(lines)


def _plot(payload: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dists = list(dict.fromkeys(r["dist"] for r in payload["rows"]))
    fig, axes = plt.subplots(1, len(dists), figsize=(5 * len(dists), 4), squeeze=False)
    for ax, dist in zip(axes[0], dists):
        for kind in dict.fromkeys(r["kind"] for r in payload["rows"]):
            pts = [r for r in payload["rows"] if r["dist"] == dist and r["kind"] == kind]
            if not pts:
                continue
            ax.plot([r["size"] for r in pts], [r["single_ms"] for r in pts], marker="o", label=kind)
            for r in pts:
                ax.annotate(f"{r['recall_at_10']:.2f}", (r["size"], r["single_ms"]), fontsize=7)
        ax.set(xscale="log", yscale="log", xlabel="items", ylabel="1-query ms (median)",
               title=f"{dist} (labels: recall@10)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[20000, 200000, 1000000])
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--dists", nargs="+", default=["gauss", "tail", "model"],
                    choices=["gauss", "tail", "model"])
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=400, help="single-query calls timed")
    ap.add_argument("--variants-up-to", type=int, default=200000,
                    help="largest size that also measures ivf-ip and hnsw-l2")
    ap.add_argument("--hnsw-up-to", type=int, default=10**9, help="largest size that builds hnsw")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--merge", action="store_true",
                    help="keep the rows of <out>/retrieval.json for the (size, dist) pairs not run now")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    return ap.parse_args(argv)


def _write(payload: dict[str, Any], out: Path, merge: bool, plot: bool) -> dict[str, Any]:
    """Write <out>/retrieval.{json,md} (and .png), merged with the rows already there."""
    out.mkdir(parents=True, exist_ok=True)
    payload = json.loads(json.dumps(payload))  # a copy
    if merge and (out / "retrieval.before.json").is_file():
        before = json.loads((out / "retrieval.before.json").read_text())
        done = {(r["size"], r["dist"]) for r in payload["rows"]}
        kept = [r for r in before["rows"] if (r["size"], r["dist"]) not in done]
        payload["rows"] = sorted(kept + payload["rows"], key=lambda r: (r["size"], r["dist"]))
        payload["config"]["sizes"] = sorted({r["size"] for r in payload["rows"]})
        payload["config"]["merged_from"] = before["config"]
    (out / "retrieval.json").write_text(json.dumps(payload, indent=2))
    (out / "retrieval.md").write_text(_markdown(payload))
    if plot:
        _plot(payload, out / "retrieval.png")
    return payload


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    out = Path(args.out)
    if args.merge and (out / "retrieval.json").is_file():  # the rows to keep, read once
        out.joinpath("retrieval.before.json").write_text((out / "retrieval.json").read_text())
    payload = run(args, on_row=lambda p: _write(p, out, args.merge, plot=False))
    payload = _write(payload, out, args.merge, plot=True)
    out.joinpath("retrieval.before.json").unlink(missing_ok=True)
    print(_markdown(payload))
    return payload


if __name__ == "__main__":
    main()
