"""Scale benchmark: fit time, peak memory, NDCG@10 and recommend latency vs catalogue size.

    python benchmarks/scale.py [--sizes 2000 20000 200000] [--threads 1] [--max-minutes 30]
                               [--out benchmarks/results]
    python benchmarks/scale.py --size tiny          # 300 items, a smoke run (the test)

For each n_items in --sizes: `make_longtail(n_users=n_items // 2, n_items, interactions_per_user=50,
seed)` and a `random_split(data, 0.2, seed)`; then, each in a fresh subprocess (so peak RSS
is that measurement's own: `os.wait4` rusage of the child, plus the child's own peak when
its fit returned), with OMP/MKL/OpenBLAS threads and `torch.set_num_threads` all set to
--threads before torch is imported:

    multirec CF-only            MultimodalRecommender(encoders=None)
    multirec tags + text-hash   MultimodalRecommender(encoders={"text": "text-hash", "tags": "tags"})
    LightFM WARP                LightFMRecommender(no_components=64, epochs=20)
    LightFM WARP + tags         the same with use_item_features=True (the "tag:" item features)

→ fit seconds, seconds per epoch and epochs (`history_`), the item-item kind (`fit_config_`),
NDCG@10 on the test split (`evaluate`; at most --eval-users test users, a seeded sample
above that), `recommend` latency for 1 user and for 1,000 users
(median of repeats) exact and after `build_index("hnsw")` (multirec; LightFM: `score_users`
+ top-10), the hnsw top-10's overlap with the exact top-10 for those 1,000 users, and
ratios vs the matching LightFM row. Data generation and the split are not
in the fit seconds (they are in the peak RSS: the data lives in the process).

`--merge` keeps the rows of the earlier scale.json in --out for every (size, method) cell
not run now, and the markdown then says which run measured which row.

A fit that runs past --max-minutes is killed and reported as "not finished within M min"
with what was measured until then (epochs done, seconds); larger sizes of that method are
reported as not run. Nothing is dropped silently. Rows of benchmarks/results/retrieval.json
(`benchmarks/retrieval.py`, FAISS at up to 1M items) are quoted in the markdown for the
retrieval side at sizes no fit reaches here; `--retrieval` runs it for 1M items first.
Writes <out>/scale.{md,json,png}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
METHODS: dict[str, dict[str, Any]] = {
    "multirec CF-only": {"kind": "multirec", "encoders": None},
    "multirec tags + text-hash": {"kind": "multirec", "encoders": {"text": "text-hash", "tags": "tags"}},
    "LightFM WARP": {"kind": "lightfm", "use_item_features": False},
    "LightFM WARP + tags": {"kind": "lightfm", "use_item_features": True},
}
BASELINE_OF = {"multirec CF-only": "LightFM WARP", "multirec tags + text-hash": "LightFM WARP + tags"}
TINY = [300]


# ------------------------------------------------------------------------------ worker
def _rss_mb() -> float:
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kb / 1024.0


def _median_ms(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000.0 * statistics.median(times)


def _worker(method: str, n_items: int, threads: int, seed: int, partial: Path, repeats: int,
            eval_users: int) -> None:
    """One measurement; writes its (growing) result dict to `partial` after every stage."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from multirec.datasets.longtail import make_longtail
    from multirec.evaluation import evaluate
    from multirec.splits import Split, random_split

    spec = METHODS[method]
    res: dict[str, Any] = {"stage": "data"}

    def save() -> None:
        tmp = partial.with_suffix(".tmp")
        tmp.write_text(json.dumps(res))
        tmp.replace(partial)

    save()
    t = time.perf_counter()
    ds = make_longtail(n_items // 2, n_items, interactions_per_user=50, seed=seed)
    split = random_split(ds.data, 0.2, seed=seed)
    res.update(data_seconds=time.perf_counter() - t, n_users=len(ds.data.users),
               n_interactions=int(ds.data.nnz), n_train=int(split.train.nnz),
               n_test=int(split.test.nnz), rss_after_data_mb=_rss_mb())
    del ds
    res.update(stage="fit", fit_started=time.time(), epochs_done=0)
    save()

    t0 = time.perf_counter()

    def on_epoch(epoch: int, logs: dict) -> bool:
        res.update(epochs_done=epoch + 1, seconds_in_fit=time.perf_counter() - t0)
        save()
        return False

    if spec["kind"] == "multirec":
        from multirec import MultimodalRecommender

        model = MultimodalRecommender(encoders=spec["encoders"], num_threads=threads,
                                      show_progress=False, seed=seed)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # CF-only: "content given but no encoder"
            model.fit(split.train, callbacks=[on_epoch])
        fit_s = time.perf_counter() - t0
        h = model.history_
        n_ep = len(h.epochs)
        res.update(fit_seconds=fit_s, train_seconds=h.seconds, epochs=n_ep,
                   seconds_per_epoch=h.seconds / max(n_ep, 1), stopped_early=bool(h.stopped_early),
                   fit_config=model.fit_config_,
                   item_item=(model.fit_config_.get("item_item") or {}).get("kind", "none"))
    else:
        from multirec.baselines import LightFMRecommender

        model = LightFMRecommender(no_components=64, epochs=20, num_threads=threads,
                                   use_item_features=spec["use_item_features"])
        model.fit(split.train)
        fit_s = time.perf_counter() - t0
        res.update(fit_seconds=fit_s, epochs=20, seconds_per_epoch=fit_s / 20)
    res.update(stage="evaluate", fit_peak_rss_mb=_rss_mb())
    save()

    t = time.perf_counter()
    test_users = np.unique(split.test.user_index)
    if len(test_users) > eval_users:  # a seeded sample of the test users (large sizes)
        keep = np.random.default_rng(seed).choice(test_users, eval_users, replace=False)
        split = Split(split.train, split.test.subset(np.isin(split.test.user_index, keep)), split.kind)
    res["eval_users"] = int(min(len(test_users), eval_users))
    res["ndcg_at_10"] = float(evaluate(model, split, k=10)["ndcg"])
    res["eval_seconds"] = time.perf_counter() - t
    res["stage"] = "latency"
    save()

    rng = np.random.default_rng(seed)
    n_users = split.train.n_users if hasattr(split.train, "n_users") else len(split.train.users)
    one = int(rng.integers(n_users))
    batch = np.sort(rng.choice(n_users, min(1000, n_users), replace=False))
    res["batch_users"] = int(len(batch))
    if spec["kind"] == "multirec":
        raw_one = split.train.users.ids([one])[0]
        raw_batch = list(split.train.users.ids(batch))
        res["rec1_exact_ms"] = _median_ms(lambda: model.recommend(raw_one, n=10), repeats)
        res["rec1000_exact_ms"] = _median_ms(lambda: model.recommend(raw_batch, n=10),
                                             max(3, repeats // 20))
        exact_ids = model.recommend(raw_batch, n=10)[0]
        t = time.perf_counter()
        index = model.build_index("hnsw")
        res["hnsw_build_seconds"] = time.perf_counter() - t
        recall = index.params.get("estimated_recall") if hasattr(index, "params") else None
        if isinstance(recall, (int, float)):
            res["hnsw_estimated_recall"] = float(recall)
        res["hnsw_transform"] = bool(getattr(index, "transform", False))
        res["rec1_hnsw_ms"] = _median_ms(lambda: model.recommend(raw_one, n=10), repeats)
        res["rec1000_hnsw_ms"] = _median_ms(lambda: model.recommend(raw_batch, n=10),
                                            max(3, repeats // 20))
        got = model.recommend(raw_batch, n=10)[0]  # vs exact recommend, seen items removed
        res["hnsw_overlap_at_10"] = float(np.mean(
            [len(set(a) & set(b)) / max(len(set(b) - {None}), 1) for a, b in zip(got, exact_ids)]))
    else:  # LightFM has no recommend: score every item, take the top 10 (seen items not removed)
        def top(users: np.ndarray) -> np.ndarray:
            s = model.score_users(users)  # (B, n_items)
            return np.argpartition(-s, 10, axis=1)[:, :10]

        res["rec1_exact_ms"] = _median_ms(lambda: top(np.array([one])), repeats)
        res["rec1000_exact_ms"] = _median_ms(lambda: top(batch), max(3, repeats // 20))
    res["stage"] = "done"
    res["process_peak_rss_mb"] = _rss_mb()
    save()


# ------------------------------------------------------------------------------ parent
def _measure(method: str, n_items: int, args: argparse.Namespace) -> dict[str, Any]:
    """Run one worker subprocess with a fit time limit; returns its row (status ok/timeout/error)."""
    limit = args.max_minutes * 60.0
    with tempfile.TemporaryDirectory() as tmp:
        partial = Path(tmp) / "row.json"
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
                   OPENBLAS_NUM_THREADS=str(args.threads), HF_HUB_OFFLINE="1")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", method,
               "--sizes", str(n_items), "--threads", str(args.threads), "--seed", str(args.seed),
               "--repeats", str(args.repeats), "--eval-users", str(args.eval_users),
               "--partial", str(partial)]
        err = open(Path(tmp) / "stderr", "w+")  # noqa: SIM115 (closed below, after the wait loop)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        start, killed, rusage, status = time.time(), False, None, 0
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = status
                break
            time.sleep(0.5)
            res = _read(partial)
            fit_started = res.get("fit_started")
            over_fit = res.get("stage") == "fit" and fit_started and time.time() - fit_started > limit
            if over_fit or time.time() - start > 3 * limit + 600:  # the fit, or a stuck worker
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
        res = _read(partial)
        err.seek(0)
        stderr = err.read()[-2000:]
        err.close()
    row: dict[str, Any] = {"n_items": n_items, "method": method, **res}
    row.pop("fit_started", None)
    row["peak_rss_mb"] = rusage.ru_maxrss / 1024.0  # KiB → MiB, this child alone
    row["wall_seconds"] = time.time() - start
    if killed and "fit_seconds" in res:  # the fit finished; evaluation or latency did not
        cap = 3 * args.max_minutes + 10
        row["status"] = f"fit ok; {res.get('stage')} not finished (run killed at {cap:g} min)"
        row["killed_in_stage"] = res.get("stage")
    elif killed:
        row["status"] = f"not finished within {args.max_minutes:g} min"
        row["killed_in_stage"] = res.get("stage")
    elif res.get("stage") != "done":
        row["status"] = "error"
        row["error"] = stderr
    else:
        row["status"] = "ok"
    row.pop("stage", None)
    return row


def _read(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _git_head() -> str:
    try:
        return subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _add_ratios(rows: list[dict[str, Any]]) -> None:
    by = {(r["n_items"], r["method"]): r for r in rows}
    for r in rows:
        base = by.get((r["n_items"], BASELINE_OF.get(r["method"], "")))
        if base is None or r["status"] != "ok" or base["status"] != "ok":
            continue
        r["fit_vs_lightfm"] = r["fit_seconds"] / base["fit_seconds"]
        r["peak_rss_vs_lightfm"] = r["peak_rss_mb"] / base["peak_rss_mb"]
        r["ndcg_vs_lightfm"] = r["ndcg_at_10"] / base["ndcg_at_10"] if base["ndcg_at_10"] else math.nan
        r["rec1000_exact_vs_lightfm"] = r["rec1000_exact_ms"] / base["rec1000_exact_ms"]


def run(args: argparse.Namespace, on_row: Callable[[dict[str, Any]], None] | None = None,
        argv: str = "") -> dict[str, Any]:
    """Measure every (size, method) in a subprocess; `on_row(payload)` after each row."""
    payload: dict[str, Any] = {"rows": [], "config": {"argv": argv,
        "sizes": args.sizes, "methods": args.methods, "threads": args.threads,
        "max_minutes": args.max_minutes,
        "seed": args.seed, "repeats": args.repeats, "eval_users": args.eval_users,
        "interactions_per_user": 50,
        "users_per_item": 0.5, "test_fraction": 0.2, "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "load_avg_start": os.getloadavg()[0],
        "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()), "git_head": _git_head()}}
    gave_up: dict[str, int] = {}
    for n in args.sizes:
        for method in args.methods:
            if method in gave_up:
                row = {"n_items": n, "method": method,
                       "status": f"not run (n_items={gave_up[method]:,} did not finish)"}
            else:
                row = _measure(method, n, args)
                if row["status"] != "ok":
                    gave_up[method] = n
            row.update(run_started_utc=payload["config"]["started_utc"], run_argv=argv)
            payload["rows"].append(row)
            _add_ratios(payload["rows"])
            print(_line(row), flush=True)
            if on_row is not None:
                on_row(payload)
    payload["config"]["load_avg_end"] = os.getloadavg()[0]
    return payload


# ------------------------------------------------------------------------------ output
_HEAD = ("| n_items | users | train nnz | method | status | fit s | s/epoch | epochs "
         "| peak RSS MB (at fit end) | item-item | NDCG@10 | fit × LightFM | NDCG × LightFM "
         "| recommend 1 user ms (exact / hnsw) "
         "| 1,000 users ms (exact / hnsw) | hnsw build s | hnsw top-10 overlap with exact |")


def _f(r: dict[str, Any], key: str, fmt: str = "{:.1f}") -> str:
    v = r.get(key)
    return "–" if v is None else fmt.format(v)


def _line(r: dict[str, Any]) -> str:
    st = r["status"]
    if st.startswith("not finished"):
        st += f" (in {r.get('killed_in_stage')}, {r.get('epochs_done', 0)} epochs done)"
    return (f"| {r['n_items']:,} | {_f(r, 'n_users', '{:,}')} | {_f(r, 'n_train', '{:,}')} "
            f"| {r['method']} | {st} | {_f(r, 'fit_seconds')} | {_f(r, 'seconds_per_epoch', '{:.2f}')} "
            f"| {_f(r, 'epochs', '{}')} "
            f"| {_f(r, 'peak_rss_mb', '{:.0f}')} ({_f(r, 'fit_peak_rss_mb', '{:.0f}')}) "
            f"| {r.get('item_item', '–')} "
            f"| {_f(r, 'ndcg_at_10', '{:.4f}')} | {_f(r, 'fit_vs_lightfm', '{:.2f}')} "
            f"| {_f(r, 'ndcg_vs_lightfm', '{:.2f}')} "
            f"| {_f(r, 'rec1_exact_ms', '{:.2f}')} / {_f(r, 'rec1_hnsw_ms', '{:.2f}')} "
            f"| {_f(r, 'rec1000_exact_ms')} / {_f(r, 'rec1000_hnsw_ms')} "
            f"| {_f(r, 'hnsw_build_seconds')} | {_f(r, 'hnsw_overlap_at_10', '{:.4f}')} |")


def _retrieval_rows(path: Path) -> list[dict[str, Any]]:
    rows = _read(path).get("rows", [])
    top = max((r.get("size", 0) for r in rows), default=0)
    return [r for r in rows if r.get("size") == top and top >= 200000]


def _markdown(payload: dict[str, Any], retrieval: list[dict[str, Any]]) -> str:
    c = payload["config"]
    lines = [
        "## Scale: fit time, peak memory, NDCG@10 and latency vs catalogue size", "",
        f"Command: `python benchmarks/scale.py {c.get('argv', '')}`".rstrip() + " — "
        f"{c['threads']} thread(s) (torch + OMP/MKL/OpenBLAS), {c['cpu_count']} CPUs "
        f"(shared; load average {c['load_avg_start']:.1f} at start, "
        f"{c.get('load_avg_end', float('nan')):.1f} at end), started {c['started_utc']} UTC. "
        "Data: `make_longtail(n_items // 2, n_items, interactions_per_user=50)`, random 80/20 "
        "split. Every cell is one fit in a fresh subprocess; peak RSS is that process's "
        "maximum (imports and data included; evaluation and latency runs too), in brackets its "
        "peak when the fit returned; fit s excludes data generation; s/epoch is the "
        "tower training time / epochs (multirec) or fit s / 20 (LightFM); NDCG@10 over at most "
        f"{c.get('eval_users', 10000):,} test users (a seeded sample above). LightFM "
        "`recommend` = `score_users` + top-10. Ratios are vs the LightFM row of the same "
        "size (CF-only vs WARP, tags + text vs WARP + tag features).", "",
        _HEAD, "|" + "---|" * (_HEAD.count("|") - 1)]
    if "merged_from" in c:  # --merge: the other sizes come from an earlier run
        m = c["merged_from"]
        lines[2:2] = [f"Sizes {', '.join(f'{n:,}' for n in m['sizes'])}: `python benchmarks/scale.py "
                      f"{m.get('argv', '')}` (started {m['started_utc']} UTC, kept by --merge).", ""]
    lines += [_line(r) for r in payload["rows"]]
    lines.append("")
    runs: dict[tuple[str, str], list[str]] = {}
    for r in payload["rows"]:
        key = (r.get("run_started_utc", ""), r.get("run_argv", ""))
        runs.setdefault(key, []).append(f"{r['method']} at {r['n_items']:,}")
    if len(runs) > 1:  # --merge: say which run measured which row
        for (started, argv), cells in runs.items():
            where = (f"`python benchmarks/scale.py {argv}` (started {started} UTC)" if started
                     else f"`python benchmarks/scale.py {argv}` (an earlier run)" if argv
                     else "an earlier run (above)")
            lines.append(f"- {where}: {'; '.join(cells)}.")
        lines.append("")
    if retrieval:
        lines += [f"Retrieval at {retrieval[0]['size']:,} items (from benchmarks/results/retrieval.json, "
                  "`benchmarks/retrieval.py`):", "",
                  "| dist | kind | build s | recall@10 | 1 query ms | 1000 queries ms |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['dist']} | {r['kind']} | {r['build_s']:.1f} | {r['recall_at_10']:.3f} "
                  f"| {r['single_ms']:.3f} | {r['batch_ms']:.1f} |" for r in retrieval]
        if retrieval[0]["size"] < 1_000_000:
            lines += ["", "No 1M-item row in retrieval.json yet: `python benchmarks/retrieval.py "
                      "--sizes 1000000 --merge` (or this script with `--retrieval`) adds it."]
    else:
        lines.append("Retrieval at 1M items: no 1M row in benchmarks/results/retrieval.json; run "
                     "`python benchmarks/retrieval.py --sizes 1000000 --merge` (or this script with "
                     "`--retrieval`).")
    return "\n".join(lines) + "\n"


def _plot(payload: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for method in METHODS:
        rows = [r for r in payload["rows"] if r["method"] == method]
        for ax, key in zip(axes, ("fit_seconds", "peak_rss_mb")):
            ok = [(r["n_items"], r[key]) for r in rows if r["status"] == "ok"]
            line, = ax.plot(*zip(*ok), marker="o", label=method) if ok else ax.plot([], [], label=method)
            cut = [(r["n_items"], r.get("seconds_in_fit", payload["config"]["max_minutes"] * 60)
                    if key == "fit_seconds" else r.get("peak_rss_mb"))
                   for r in rows if r["status"].startswith("not finished")]
            cut = [(x, y) for x, y in cut if y]
            if cut:  # a lower bound: killed at the limit
                ax.plot(*zip(*cut), marker="^", ls="none", mfc="none", color=line.get_color())
    for ax, label in zip(axes, ("fit seconds", "peak RSS (MB)")):
        ax.set(xscale="log", yscale="log", xlabel="n_items (users = n_items / 2, 50 per user)",
               ylabel=label)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"multirec vs LightFM, {payload['config']['threads']} thread(s); "
                 "hollow ^ = killed at the time limit (lower bound)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _merged(payload: dict[str, Any], before: dict[str, Any] | None) -> dict[str, Any]:
    """`payload` plus the rows of `before` (an earlier scale.json) for the (size, method)
    cells not run now."""
    if not before:
        return payload
    payload = json.loads(json.dumps(payload))  # a copy
    sizes = set(payload["config"]["sizes"])
    methods = set(payload["config"].get("methods", METHODS))
    order = {m: k for k, m in enumerate(METHODS)}
    rows = [r for r in before["rows"]
            if not (r["n_items"] in sizes and r["method"] in methods)] + payload["rows"]
    payload["rows"] = sorted(rows, key=lambda r: (r["n_items"], order.get(r["method"], 99)))
    _add_ratios(payload["rows"])
    payload["config"]["merged_from"] = before["config"]
    return payload


def _write(payload: dict[str, Any], out: Path, plot: bool, before: dict[str, Any] | None = None
           ) -> None:
    out.mkdir(parents=True, exist_ok=True)
    payload = _merged(payload, before)
    retrieval = (_retrieval_rows(out / "retrieval.json")
                 or _retrieval_rows(HERE / "results" / "retrieval.json"))
    (out / "scale.json").write_text(json.dumps(payload, indent=2))
    (out / "scale.md").write_text(_markdown(payload, retrieval))
    if plot:
        _plot(payload, out / "scale.png")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000, 200000])
    ap.add_argument("--size", choices=["tiny"], help="tiny: --sizes 300 (smoke run)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-minutes", type=float, default=30.0, help="time limit of one fit")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--repeats", type=int, default=50, help="timed 1-user recommend calls")
    ap.add_argument("--eval-users", type=int, default=10000,
                    help="NDCG@10 on at most this many test users (a seeded sample above it)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--retrieval", action="store_true",
                    help="first run benchmarks/retrieval.py --sizes 1000000 --merge into --out")
    ap.add_argument("--merge", action="store_true",
                    help="keep the rows of <out>/scale.json for the sizes not run now")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--partial", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.size == "tiny":
        args.sizes = TINY
    for name, v in (("--sizes", min(args.sizes)), ("--threads", args.threads),
                    ("--repeats", args.repeats), ("--eval-users", args.eval_users)):
        if v < 1:
            ap.error(f"{name} must be >= 1, got {v}")
    if min(args.sizes) < 20:
        ap.error(f"--sizes must be >= 20 items (10 users), got {min(args.sizes)}")
    if not args.max_minutes > 0:
        ap.error(f"--max-minutes must be > 0, got {args.max_minutes}")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    raw = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(raw)
    if args.worker:
        _worker(args.worker, args.sizes[0], args.threads, args.seed, Path(args.partial), args.repeats,
                args.eval_users)
        return {}
    out = Path(args.out)
    if args.retrieval:
        subprocess.run([sys.executable, str(HERE / "retrieval.py"), "--sizes", "1000000",
                        "--threads", str(args.threads), "--merge", "--out", str(out)], check=True)
    before = _read(out / "scale.json") if args.merge else None  # read once, before any write
    print(_HEAD + "\n|" + "---|" * (_HEAD.count("|") - 1), flush=True)
    payload = run(args, on_row=lambda p: _write(p, out, False, before), argv=shlex.join(raw))
    _write(payload, out, True, before)
    print(_markdown(payload, []))
    return payload


if __name__ == "__main__":
    main()
