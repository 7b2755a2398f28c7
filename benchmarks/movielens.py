"""MovieLens benchmark (kept for old commands): `benchmarks/run.py` on a MovieLens set.

    python benchmarks/movielens.py --dataset ml-100k --data-dir PATH [--seeds 0 1 2]

is the same as `python benchmarks/run.py --dataset ml-100k --data-dir PATH ...`: every
protocol (warm, cold-item, cold-user), every peer, one metric function; results in
benchmarks/results/<dataset>.{md,json,png}.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import run  # noqa: E402  (benchmarks/run.py)

if __name__ == "__main__":
    argv = sys.argv[1:]
    if "--dataset" not in argv:
        argv = ["--dataset", "ml-100k", *argv]
    run.main(argv)
