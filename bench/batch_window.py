"""Held-out loss per wall-clock budget across batch size and window length (issue 19, item 3):
`charrnn train --time-limit S` at the defaults but for --batch-size and --seq-len, the shapes
alternating within each seed (seed 0: every shape, seed 1: every shape, ...) so that a slow
stretch of the machine falls on all of them.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/batch_window.py \
        --minutes 5 --seeds 3 --shapes 50x50,32x50,100x50,50x100 [--variants "--lr 5e-3; ..."]
        [-- EXTRA charrnn train OPTIONS]

A shape is BATCHxSEQ; --variants adds runs of other options (semicolon-separated, each at the
defaults' shape unless it gives its own), alternating with the shapes. Scored as bench/budget.py
scores charrnn (the best validation on the last 10% of tinyshakespeare, validation inside the
budget); prints one JSON line per run, then budget.py's tables (a contender per variant) and the
characters each trained on.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import budget  # bench/budget.py: the run and the tables


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=5)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--shapes", default="50x50,32x50,100x50,50x100")
    ap.add_argument("--variants", default="", help="more runs: options, semicolon-separated")
    ap.add_argument("extra", nargs="*", help="after --: more `charrnn train` options")
    args = ap.parse_args()
    variants = [["--batch-size", b, "--seq-len", t] for b, t in
                (s.split("x") for s in args.shapes.split(",") if s)] + \
        [shlex.split(v) for v in args.variants.split(";") if v.strip()]
    budget.machine()
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for variant in variants:
            row = budget.run_charrnn(60 * args.minutes, False, seed, variant + args.extra)
            row["chars"] = row["steps"] * row["batch_size"] * row["seq_len"]
            print(json.dumps(row), flush=True)
            rows.append(row)
    budget.tables(rows)
    print("\n| contender | median characters trained |\n|---|---|")
    for who in dict.fromkeys(r["contender"] for r in rows):
        print(f"| {who} | {budget.median([r['chars'] for r in rows if r['contender'] == who]):,.0f} |")


if __name__ == "__main__":
    main()
