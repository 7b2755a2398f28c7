"""Regenerate the README's MovieLens results table from benchmarks/results/ml-100k.json.

    python benchmarks/readme_table.py [--json PATH] [--readme PATH] [--check]

Rewrites the block between `<!-- results:start -->` and `<!-- results:end -->` in README.md
(NDCG@10 mean ± std, ratio to the best peer of that protocol, fit seconds). `--check`
exits 1 when the README is out of date instead of writing it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- results:start -->", "<!-- results:end -->"


def table(payload: dict) -> str:
    """Markdown: one row per model, NDCG@10 and fit seconds for each protocol side by side."""
    summary = payload["summary"]
    protocols = list(summary)
    names = list(dict.fromkeys(n for p in protocols for n in summary[p]["means"]))  # union, in order
    head = "| model | " + " | ".join(f"{p} NDCG@10 | {p} vs best peer | {p} fit s" for p in protocols)
    lines = [head + " |", "|---" * (1 + 3 * len(protocols)) + "|"]
    for name in names:
        cells = []
        for p in protocols:
            s = summary[p]
            if name not in s["means"]:  # a row not run on this protocol (benchmarks/run.py)
                cells += ["–", "–", "–"]
                continue
            mean, std = s["means"][name]["ndcg"], s["stds"][name]["ndcg"]
            cells += [f"{mean:.3f} ± {std:.3f}", f"{mean / s['reference_ndcg']:.2f}x",
                      f"{s['means'][name]['fit_seconds']:.1f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(readme: str, payload: dict) -> str:
    if START not in readme or END not in readme:
        raise SystemExit(f"README has no {START} ... {END} block to fill")
    before, rest = readme.split(START, 1)
    _, after = rest.split(END, 1)
    return f"{before}{START}\n{table(payload)}\n{END}{after}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/ml-100k.json")
    ap.add_argument("--readme", type=Path, default=ROOT / "README.md")
    ap.add_argument("--check", action="store_true", help="fail if the README is out of date")
    args = ap.parse_args(argv)
    old = args.readme.read_text(encoding="utf-8")
    new = render(old, json.loads(args.json.read_text(encoding="utf-8")))
    if args.check:
        if new != old:
            print(f"{args.readme} is out of date; run python benchmarks/readme_table.py")
            return 1
        return 0
    args.readme.write_text(new, encoding="utf-8")
    print(f"updated {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
