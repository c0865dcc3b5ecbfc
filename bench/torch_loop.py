"""Does bench/budget.py's PyTorch script step slower than bench/throughput.py's PyTorch loop?

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /path/to/torch-venv/bin/python bench/torch_loop.py \
        [--hidden 192 --layers 2 --batch 32 --seq 50 --chunk 60 --rounds 8]

One process, one model, both steps alternating in chunks of --chunk steps, --rounds times, so
that a slow minute of the machine falls on both: budget.torch_step on tinyshakespeare's
windows (one-hot built per step from numpy ids, the rate set every step, dropout's module at
p = 0) and throughput.torch_training_step (a fixed random batch, eye[x]). Prints ms per step,
the median over chunks and each chunk. The budget benchmark's validations are not in it (they
are inside its budget and counted there).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from budget import torch_step
from throughput import machine, torch_training_step

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from charrnn.corpus import load_corpus
from charrnn.data import Batches, split
from charrnn.train import DEFAULT_CORPUS


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", type=int, default=192)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=50)
    ap.add_argument("--chunk", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=8)
    a = ap.parse_args()
    import torch
    threads = len(os.sched_getaffinity(0))
    print("\n".join(machine()))
    # throughput.py's loop: its own model (torch's draws at seed 0), fixed random batch
    *_, loop_step = torch_training_step("lstm", a.layers, a.hidden, threads, a.batch,
                                      a.seq)
    # budget.py's step on the corpus's windows, on a model of its own (the same draws)
    data = load_corpus(DEFAULT_CORPUS)
    batches = Batches(split(data.ids, 0.1)[0], a.batch, a.seq)
    V = len(data.vocab)
    torch.manual_seed(0)
    brnn = torch.nn.LSTM(V, a.hidden, a.layers)
    bdec = torch.nn.Linear(a.hidden, V)
    params = list(brnn.parameters()) + list(bdec.parameters())
    opt = torch.optim.Adam(params, lr=3e-3)
    budget_step = torch_step(brnn, torch.nn.Dropout(0.0), bdec, opt, params, V)
    state, w = [None], [0]

    def budget_one():
        x, y = batches.window(w[0] % batches.windows)
        state[0] = budget_step(x, y, state[0], 3e-3)
        w[0] += 1

    steps = {"bench/budget.py's PyTorch step": budget_one,
             "bench/throughput.py's PyTorch step": loop_step}
    for f in steps.values():  # warm-up
        for _ in range(5):
            f()
    ms = {k: [] for k in steps}
    for _ in range(a.rounds):
        for k, f in steps.items():
            t0 = time.perf_counter()
            for _ in range(a.chunk):
                f()
            ms[k].append((time.perf_counter() - t0) / a.chunk * 1e3)
    print(f"\nPyTorch {torch.__version__}, {threads} threads; LSTM {a.layers}x{a.hidden}, batch "
          f"{a.batch} x {a.seq}; {a.rounds} alternating chunks of {a.chunk} steps\n")
    print("| step | median ms per step | chunks |\n|---|---|---|")
    for k, v in ms.items():
        print(f"| {k} | {statistics.median(v):.1f} | {' '.join(f'{x:.1f}' for x in v)} |")
    ratio = [b / t for b, t in zip(*ms.values())]
    print(f"\nbudget / throughput per chunk pair: median {statistics.median(ratio):.3f} "
          f"({min(ratio):.3f}-{max(ratio):.3f})")


if __name__ == "__main__":
    main()
