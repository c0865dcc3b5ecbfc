"""Does a --time-limit run end at its planned step (the rate decayed to zero) on any corpus size?

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/plan_end.py \
        [--seconds 60,300] [--sizes 100k,5m,50m] [--seeds 0,1,2] [--dir /tmp/charrnn-plan-end] \
        [-- EXTRA charrnn train OPTIONS]

Corpora made from the bundled tinyshakespeare: its first 100 KB, and the whole text repeated to
about 5 MB and 50 MB (so the held-out 10%, validated every 200 steps, grows from 10 KB to 5 MB).
Each run is `charrnn train CORPUS --time-limit S --seed N EXTRA` (the defaults unless EXTRA says
otherwise), in a fresh process, one after the other; the report reads its last checkpoint: how it
stopped ("planned step" = the rate decayed to zero; "time limit" = cut off before it), the
planned and the last step, the seconds of training, the held-out characters it validated on, and
the best held-out loss (with several seeds, then each budget and corpus's median and range).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SIZES = {"100k": 100_000, "5m": 5_000_000, "50m": 50_000_000}  # characters
SCORED_ON = 1_000_000  # held-out characters every run's best.npz is scored on


def make(size: int, folder: Path) -> Path:
    """The first `size` characters of tinyshakespeare repeated as often as needed."""
    text = (ROOT / "data" / "tinyshakespeare.txt").read_text(encoding="utf-8")
    path = folder / f"shakespeare-{size}.txt"
    if not path.exists():
        path.write_text((text * (size // len(text) + 1))[:size], encoding="utf-8")
    return path


def held_out(corpus: Path) -> str:
    """The first SCORED_ON characters of the corpus's held-out part (the defaults' last 10%)."""
    text = corpus.read_text(encoding="utf-8")
    return text[len(text) - int(len(text) * 0.1):][:SCORED_ON]


def run(corpus: Path, seconds: float, seed: int, extra: list[str], run_dir: Path) -> dict:
    import charrnn
    from charrnn import checkpoint as ckpt
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "charrnn", "train", str(corpus), "--time-limit",
                        str(seconds), "--seed", str(seed), *extra, "--checkpoint-dir",
                        str(run_dir), "--overwrite", "--quiet"],
                       capture_output=True, text=True, check=False,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if p.returncode != 0:
        raise SystemExit(f"charrnn train failed on {corpus}: {p.stderr.strip()}")
    rec = ckpt.read(run_dir / "last.npz")
    prog = rec.progress
    planned = prog.plan[1] if prog.plan else None
    return {"corpus": corpus.name, "seconds": seconds, "seed": seed, "planned": planned,
            "step": prog.step, "val_chars": rec.train.val_max_chars,
            "scored": charrnn.evaluate(charrnn.load(run_dir / "best.npz"),
                                       held_out(corpus)).nats_per_char,
            "trained_s": prog.seconds, "wall_s": time.perf_counter() - t0,
            "ended": "planned step" if planned is not None and prog.step >= planned
            else "time limit", "best_val": prog.best_val_loss}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", default="60,300")
    ap.add_argument("--sizes", default=",".join(SIZES))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--dir", default="/tmp/charrnn-plan-end")
    ap.add_argument("extra", nargs="*", help="after --: options for every charrnn train")
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    folder = Path(a.dir)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for seconds in (float(s) for s in a.seconds.split(",")):
        for name in a.sizes.split(","):
            corpus = make(SIZES[name], folder)
            for seed in seeds:
                r = run(corpus, seconds, seed, a.extra, folder / f"run-{name}-{seconds:g}-{seed}")
                print(r, file=sys.stderr, flush=True)
                rows.append(r)
    print(f"charrnn train CORPUS --time-limit S --seed N {' '.join(a.extra)}".rstrip())
    print("| budget | corpus | seed | planned step | last step | ended at | seconds trained | "
          "validated on | best held-out | best.npz on the first 1M held-out |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        planned = "none" if r["planned"] is None else f"{r['planned']:,}"
        print(f"| {r['seconds']:g} s | {r['corpus']} | {r['seed']} | {planned} | {r['step']:,} | "
              f"{r['ended']} | {r['trained_s']:.1f} | {r['val_chars']:,} | "
              f"{r['best_val']:.4f} | {r['scored']:.4f} |")
    if len(seeds) > 1:
        print("\n| budget | corpus | ended at the planned step | median best.npz on the first 1M held-out (range) |")
        print("|---|---|---|---|")
        for i in range(0, len(rows), len(seeds)):
            group, best = rows[i:i + len(seeds)], [r["scored"] for r in rows[i:i + len(seeds)]]
            done = sum(r["ended"] == "planned step" for r in group)
            print(f"| {group[0]['seconds']:g} s | {group[0]['corpus']} | {done} of {len(group)} | "
                  f"{statistics.median(best):.4f} ({min(best):.4f}-{max(best):.4f}) |")


if __name__ == "__main__":
    main()
