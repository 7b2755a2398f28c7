"""Time and memory of `multirec.itemitem.fit_item_item` on a random long-tailed matrix.

    OMP_NUM_THREADS=1 python benchmarks/itemitem.py --items 200000 --users 200000 \\
        --interactions 5500000 --neighbours 64 [--search]

Item popularity follows a power law (p_i ∝ (i + 1)^-alpha), users are uniform; duplicates
are merged, so the matrix holds somewhat fewer interactions than asked for. `--search`
also picks λ on a 10% holdout (≤ 2,000 validation users). Prints one JSON line: wall and
CPU seconds, peak RSS (MB) and the weights' size.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import scipy.sparse as sp

from multirec.itemitem import fit_item_item


def long_tail(users: int, items: int, interactions: int, alpha: float = 0.8,
              seed: int = 0) -> sp.csr_matrix:
    """(users, items) binary CSR with power-law item popularity."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, items + 1) ** alpha
    rows = rng.integers(0, users, interactions)
    cols = rng.choice(items, interactions, p=p / p.sum())
    x = sp.csr_matrix((np.ones(interactions, np.float32), (rows, cols)), shape=(users, items))
    x.sum_duplicates()
    x.data[:] = 1.0
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--users", type=int, default=200_000)
    ap.add_argument("--interactions", type=int, default=5_500_000)
    ap.add_argument("--alpha", type=float, default=0.8)
    ap.add_argument("--neighbours", type=int, default=64)
    ap.add_argument("--dense-max-items", type=int, default=None)
    ap.add_argument("--search", action="store_true", help="choose λ on a 10%% holdout")
    args = ap.parse_args()
    x = long_tail(args.users, args.items, args.interactions, args.alpha)
    opts = {} if args.dense_max_items is None else {"dense_max_items": args.dense_max_items}
    valid = None
    if args.search:
        held = np.random.default_rng(1).random(x.nnz) < 0.1
        coo = x.tocoo()
        valid = sp.csr_matrix((coo.data[held], (coo.row[held], coo.col[held])), shape=x.shape)
        x = sp.csr_matrix((coo.data[~held], (coo.row[~held], coo.col[~held])), shape=x.shape)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    wall, cpu = time.perf_counter(), time.process_time()
    ii = fit_item_item(x, valid, neighbours=args.neighbours, **opts)  # no valid: default_l2
    out = {
        "items": args.items, "users": args.users, "interactions": int(x.nnz),
        "neighbours": args.neighbours, "search": args.search, "kind": ii.kind, "l2": ii.l2,
        "l2_at_edge": ii.l2_at_edge, "searched": len(ii.validation_ndcg),
        "wall_s": round(time.perf_counter() - wall, 1), "cpu_s": round(time.process_time() - cpu, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_before_fit_mb": round(rss0), "weights_mb": round(ii.nbytes / 2**20, 1),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
