"""Every step strategy side by side, alternating, for a few models and batch shapes.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/strategies.py \
        [--hidden 128,256,512] [--layers 2] [--shapes 50x50,50x8,100x50] [--rounds 3] [--seconds 1.5]

Each round measures every strategy auto would choose among (strategy.candidates) with
strategy.measure (forward and backward on random ids, after a warm-up step), for --seconds
each; the rounds alternate so that a slow moment of the machine hits all of them. Prints the
training characters per second of each round, and each strategy's best against shards'.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from charrnn import strategy as S
from charrnn.config import ModelConfig


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lstm")
    ap.add_argument("--hidden", default="128,256,512")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--shapes", default="50x50,50x8,100x50", help="batch x seq-len, comma-separated")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    S.PROBE_SECONDS = a.seconds
    from threadpoolctl import threadpool_info
    print(f"# {S.cpu_name()}, {a.threads} threads, BLAS "
          f"{[(i['internal_api'], i.get('architecture')) for i in threadpool_info()]}")
    print("| model | batch x seq | strategy | chars/s by round | best / shards |\n"
          "|---|---|---|---|---|")
    for hidden in (int(h) for h in a.hidden.split(",")):
        cfg = ModelConfig(65, a.model, hidden, a.layers)
        for shape in a.shapes.split(","):
            batch, seq = (int(v) for v in shape.split("x"))
            names = S.candidates(cfg, a.threads)
            speeds = {s: [] for s in names}
            for _ in range(a.rounds):
                for s in names:
                    speeds[s].append(S.measure(cfg, batch, seq, a.threads, s))
            for s in names:
                rounds = ", ".join(f"{v:,.0f}" for v in speeds[s])
                ratio = max(speeds[s]) / max(speeds["shards"])
                print(f"| {a.model} {a.layers}x{hidden} | {batch} x {seq} | {s} | {rounds} | "
                      f"{ratio:.3f} |", flush=True)


if __name__ == "__main__":
    main()
