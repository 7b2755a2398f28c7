"""Fitting into the rest of a stack: batch export, HTTP serving, pandas, training curves.

What it shows, in order:

1. a small text model trained on synthetic data, saved with `save_pretrained`;
2. `multirec.export.recommend_all`: top-n for every user streamed to Parquet (CSV when
   pyarrow is missing), one batch of users at a time, written atomically;
3. `model.history_.to_dict()` → history.json and `History.plot()` → history.png;
4. `multirec.serve.create_app`: the HTTP API answered in-process (FastAPI's TestClient),
   the same items as the library calls; `--serve` runs it for real with uvicorn on
   127.0.0.1 (open http://127.0.0.1:8000/ for the one-page view).

    python examples/serve_and_export.py --small           # seconds, offline
    python examples/serve_and_export.py --serve --port 8000  # then open the page

The run writes `<out>/model`, `<out>/recs.parquet` (or .csv), `<out>/history.json`,
`<out>/history.png` (with matplotlib) and `<out>/results.json`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from pathlib import Path

import pandas as pd

from multirec import MultimodalRecommender
from multirec.datasets.synthetic import make_synthetic
from multirec.export import recommend_all
from multirec.history import History
from multirec.utils import torch_threads


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Batch export, serving, History plots.")
    ap.add_argument("--small", action="store_true", help="tiny run (tests, a first look)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--out", type=Path, help="output folder (default: a temporary one)")
    ap.add_argument("--serve", action="store_true", help="serve the model with uvicorn at the end")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, torch_threads(args.threads):
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        return run(args, out)


def run(args: argparse.Namespace, out: Path) -> int:
    t0 = time.perf_counter()
    n_users, n_items, epochs = (60, 50, 3) if args.small else (600, 500, 20)

    # 1. train and save
    ds = make_synthetic(n_users=n_users, n_items=n_items, interactions_per_user=8,
                        modalities=("text",), seed=args.seed)
    model = MultimodalRecommender(encoders={"text": "text-hash"}, dim=16, epochs=epochs,
                                  eval_every=1, seed=args.seed, show_progress=False).fit(ds.data)
    model.save_pretrained(out / "model")

    # 2. batch export, streamed
    suffix = ".parquet" if importlib.util.find_spec("pyarrow") else ".csv"
    path = recommend_all(model, n=10, path=out / f"recs{suffix}", batch_size=16, show_progress=False)
    recs = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
    print(f"exported {len(recs)} rows for {recs['user'].nunique()} users to {path.name}")
    print(recs.head(3).to_string(index=False))

    # 3. training history: JSON and a plot
    (out / "history.json").write_text(json.dumps(model.history_.to_dict(), indent=1))
    again = History.from_dict(json.loads((out / "history.json").read_text()))
    print(f"history: {len(again.epochs)} epochs, best epoch {again.best_epoch + 1}")
    if importlib.util.find_spec("matplotlib"):
        import matplotlib

        matplotlib.use("Agg")
        ax = again.plot()
        ax.figure.savefig(out / "history.png", dpi=100, bbox_inches="tight")

    # 4. the HTTP API, in-process
    results = {"rows": len(recs), "users": int(recs["user"].nunique()), "format": suffix[1:]}
    if importlib.util.find_spec("fastapi") and importlib.util.find_spec("httpx"):
        from fastapi.testclient import TestClient

        from multirec.serve import create_app

        user = str(recs["user"].iloc[0])
        with TestClient(create_app(model)) as client:
            health = client.get("/health").json()
            served = client.get("/recommend", params={"user": user, "n": 5}).json()
            missing = client.get("/recommend", params={"user": "no-such-user"})
        items = [r["item"] for r in served["items"]]
        same = items == [i for i in model.recommend(user, n=5)[0] if i is not None]
        print(f"served /health: {health}")
        print(f"served /recommend?user={user}: {items} (same as model.recommend: {same})")
        print(f"unknown user → {missing.status_code}: {missing.json()['detail'][:60]}...")
        results |= {"served_matches_library": same, "unknown_user_status": missing.status_code}
    results["seconds"] = round(time.perf_counter() - t0, 2)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"done in {results['seconds']} s; results in {out / 'results.json'}")

    if args.serve:
        from multirec.serve import serve

        print(f"serving {out / 'model'} on http://{args.host}:{args.port}/ (Ctrl-C stops)")
        serve(out / "model", host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
