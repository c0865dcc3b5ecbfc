"""Does a --time-limit run end at its planned step (the rate decayed to zero) on any corpus size?

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/plan_end.py \
        [--seconds 60,300] [--sizes 100k,5m,50m] [--dir /tmp/charrnn-plan-end]

Corpora made from the bundled tinyshakespeare: its first 100 KB, and the whole text repeated to
about 5 MB and 50 MB (so the held-out 10%, validated every 200 steps, grows from 10 KB to 5 MB).
Each run is `charrnn train CORPUS --time-limit S` with the defaults, in a fresh process; the
report reads its last checkpoint: how it stopped ("finished" = at the planned step, where the
rate reaches zero; "time limit" = cut off before it), the planned and the last step, the seconds
of training, and the best held-out loss.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SIZES = {"100k": 100_000, "5m": 5_000_000, "50m": 50_000_000}  # characters


def make(size: int, folder: Path) -> Path:
    """The first `size` characters of tinyshakespeare repeated as often as needed."""
    text = (ROOT / "data" / "tinyshakespeare.txt").read_text(encoding="utf-8")
    path = folder / f"shakespeare-{size}.txt"
    if not path.exists():
        path.write_text((text * (size // len(text) + 1))[:size], encoding="utf-8")
    return path


def run(corpus: Path, seconds: float, run_dir: Path) -> dict:
    from charrnn import checkpoint as ckpt
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "charrnn", "train", str(corpus), "--time-limit",
                        str(seconds), "--checkpoint-dir", str(run_dir), "--overwrite", "--quiet"],
                       capture_output=True, text=True, check=False,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if p.returncode != 0:
        raise SystemExit(f"charrnn train failed on {corpus}: {p.stderr.strip()}")
    rec = ckpt.read(run_dir / "last.npz")
    prog = rec.progress
    planned = prog.plan[1] if prog.plan else None
    return {"corpus": corpus.name, "seconds": seconds, "planned": planned, "step": prog.step,
            "trained_s": prog.seconds, "wall_s": time.perf_counter() - t0,
            "ended": "planned step" if planned is not None and prog.step >= planned
            else "time limit", "best_val": prog.best_val_loss}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", default="60,300")
    ap.add_argument("--sizes", default=",".join(SIZES))
    ap.add_argument("--dir", default="/tmp/charrnn-plan-end")
    a = ap.parse_args()
    folder = Path(a.dir)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for seconds in (float(s) for s in a.seconds.split(",")):
        for name in a.sizes.split(","):
            corpus = make(SIZES[name], folder)
            r = run(corpus, seconds, folder / f"run-{name}-{seconds:g}")
            print(r, file=sys.stderr, flush=True)
            rows.append(r)
    print("| budget | corpus | planned step | last step | ended at | seconds trained | "
          "best held-out |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        planned = "none" if r["planned"] is None else f"{r['planned']:,}"
        print(f"| {r['seconds']:g} s | {r['corpus']} | {planned} | {r['step']:,} | "
              f"{r['ended']} | {r['trained_s']:.1f} | {r['best_val']:.4f} |")


if __name__ == "__main__":
    main()
