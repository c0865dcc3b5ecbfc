"""The per-step recurrent product in each operand layout OpenBLAS can be handed, on this CPU.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/recurrent_product.py [--reps 15]

Every time step of training multiplies the shard's hidden state h (S, H) by W_h (H, G*H), and the
backward multiplies the gate gradient dg (S, G*H) by W_h's transpose. The same product can reach
BLAS with W_h as stored (row-major (H, G*H)), or as the transpose of a row-major (G*H, H) copy
(PyTorch's own layout for weight_hh), and its result can be asked for transposed (and, in
the forward, transposed back in 16-row blocks, as stack.py does). For LSTM sizes
(G = 4) and the shards' row counts (25: batch 50 on 2 threads; 50: one block), each pair of
layouts runs alternately, `--reps` times, each run ~0.1 GFLOP in one compiled loop; it prints
GFLOP/s medians and the median of the per-rep ratios (with their range), one BLAS thread and
two. stack.py takes from it which layout the forward and backward use.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/recurrent_product.py --panels \
        [--rows 16,25,50] [--widths 8,16,32,64,128]

instead compares each product as shards computes it (forward: stored, or transposed from
WT_MIN_HIDDEN on; backward: W_h @ dg^T transposed back) with the panels strategy's form: the
product cut into column panels of a copy of W_h (stack._panel_dot, copied back into place),
at each width of --widths that divides its columns in one call a panel ("over" where a panel's
M * N * K exceeds stack.SMALL_MNK), and in the shape stack.panel_shape takes (the widest panel,
its product cut along K into chunks where it would be over), on one BLAS thread as a shard runs.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (numba's np.dot calls SciPy's BLAS: loaded first)
from numba import njit
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from throughput import machine

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from charrnn.stack import (
    SMALL_MNK,
    WT_MIN_HIDDEN,
    _pack_panels,
    _pack_panels_t,
    _panel_dot,
    _transpose16,
    panel_shape,
)


@njit(nogil=True)
def fwd_stored(h, Wh, WhT, out, n):   # h (S, H) @ W_h (H, GH): as stored
    for _ in range(n):
        np.dot(h, Wh, out)


@njit(nogil=True)
def fwd_copy(h, Wh, WhT, out, n):     # h @ (W_h^T)^T: W_h^T a row-major (GH, H) copy
    for _ in range(n):
        np.dot(h, WhT.T, out)


@njit(nogil=True)
def fwd_transposed(h, Wh, WhT, out, n):  # (W_h^T h^T)^T: computed transposed, then back in
    outT = np.empty((out.shape[1], out.shape[0]), out.dtype)  # 16-row blocks (stack.py)
    for _ in range(n):
        np.dot(WhT, h.T, outT)
        _transpose16(out, outT)


@njit(nogil=True)
def bwd_stored(dg, Wh, WhT, outT, n):  # (dg @ W_h^T)^T = W_h @ dg^T, (H, S): what stack.py does
    for _ in range(n):
        np.dot(Wh, dg.T, outT)


@njit(nogil=True)
def bwd_plain(dg, Wh, WhT, out, n):   # dg @ W_h^T, (S, H)
    for _ in range(n):
        np.dot(dg, Wh.T, out)


@njit(nogil=True)
def bwd_copy(dg, Wh, WhT, out, n):    # dg @ W_h^T from the (GH, H) copy, (S, H)
    for _ in range(n):
        np.dot(dg, WhT, out)


PAIRS = [  # (what, baseline, contender, input is dg, output transposed: baseline, contender)
    # fwd_copy is what stack.py used from WT_MIN_HIDDEN on until fwd_transposed beat it
    ("forward h @ W_h", fwd_stored, fwd_copy, False, (False, False)),
    ("forward h @ W_h", fwd_copy, fwd_transposed, False, (False, False)),
    ("backward dg @ W_h^T", bwd_stored, bwd_plain, True, (True, False)),
    ("backward dg @ W_h^T", bwd_stored, bwd_copy, True, (True, False)),
]


def compare(base, other, a, Wh, WhT, outs, reps):
    """GFLOP/s medians of base and other, alternating, and the median/min/max of their ratios."""
    flops = 2 * a.shape[0] * Wh.shape[0] * Wh.shape[1]
    n = max(3, int(1e8 / flops))
    base(a, Wh, WhT, outs[0], 2)
    other(a, Wh, WhT, outs[1], 2)
    r1, r2, ratio = [], [], []
    for _ in range(reps):
        t = time.perf_counter()
        base(a, Wh, WhT, outs[0], n)
        d1 = time.perf_counter() - t
        t = time.perf_counter()
        other(a, Wh, WhT, outs[1], n)
        d2 = time.perf_counter() - t
        r1.append(flops * n / d1 / 1e9)
        r2.append(flops * n / d2 / 1e9)
        ratio.append(d1 / d2)
    return statistics.median(r1), statistics.median(r2), ratio


@njit(nogil=True)
def bwd_shards(dg, Wh, WhT, out, n):  # dg @ W_h^T as stack.steps_backward: transposed, then back
    outT = np.empty((out.shape[1], out.shape[0]), out.dtype)
    for _ in range(n):
        np.dot(Wh, dg.T, outT)
        _transpose16(out, outT)


def panels_of(W, w, rows, transposed=False):
    """W's column panels of width w, (N // w, K, w), as stack.py packs them (of W^T with
    `transposed`), scratch (N // w, rows, w) for stack._panel_dot's products and pa, its room
    for chunks of the left operand."""
    K, N = W.shape[::-1] if transposed else W.shape
    panels = np.zeros((N // w, K, w), W.dtype)
    (_pack_panels_t if transposed else _pack_panels)(panels, W)
    return panels, np.zeros((N // w, rows, w), W.dtype), np.zeros(rows * (K + w), W.dtype)


@njit(nogil=True)
def in_panels(a, panels, nc, scratch, pa, out, n):  # stack._panel_dot, n times
    for _ in range(n):
        _panel_dot(out, a, panels, nc, scratch, pa)


def rate(f, flops, reps):
    """GFLOP/s of f(n) per rep (n calls of ~0.1 GFLOP in all), one list entry a rep."""
    n = max(3, int(1e8 / flops))
    f(2)
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        f(n)
        out.append(flops * n / (time.perf_counter() - t) / 1e9)
    return out


def panels_table(args):
    """Each product as shards computes it against the panels form at each width, alternating."""
    widths = [int(v) for v in args.widths.split(",")]
    print("| product | H | rows | shards' form GFLOP/s | " +
          " | ".join(f"{w} columns" for w in widths) + " | panel_shape: columns x chunks of K |")
    print("|---|---|---|---|" + "---|" * len(widths) + "---|")
    rng = np.random.default_rng(0)
    with threadpool_limits(1):
        for H in (int(v) for v in args.hidden.split(",")):
            GH = 4 * H
            Wh = rng.standard_normal((H, GH), dtype=np.float32)
            WhT = np.ascontiguousarray(Wh.T)
            for S in (int(v) for v in args.rows.split(",")):
                h = rng.standard_normal((S, H), dtype=np.float32)
                dg = rng.standard_normal((S, GH), dtype=np.float32)
                for what, a, K, N, base in (
                        ("forward h @ W_h", h, H, GH,
                         fwd_transposed if H >= WT_MIN_HIDDEN else fwd_stored),
                        ("backward dg @ W_h^T", dg, GH, H, bwd_shards)):
                    flops, out = 2 * S * K * N, np.zeros((S, N), np.float32)
                    fs = {"base": lambda n, a=a, base=base, out=out, w=Wh, wt=WhT:
                          base(a, w, wt, out, n)}
                    for w in widths:
                        if N % w:
                            continue
                        panels, scratch, pa = panels_of(Wh, w, S, transposed=N != GH)
                        fs[w] = (lambda n, a=a, p=panels, sc=scratch, pa=pa, out=out:
                                 in_panels(a, p, 1, sc, pa, out, n))
                    cw, nc = panel_shape(S, K, N)
                    if cw:
                        panels, scratch, pa = panels_of(Wh, cw, S, transposed=N != GH)
                        fs["chosen"] = (lambda n, a=a, p=panels, sc=scratch, pa=pa, out=out,
                                        nc=nc: in_panels(a, p, nc, sc, pa, out, n))
                    runs = {k: [] for k in fs}
                    for _ in range(args.reps):  # alternating, a rep each
                        for k, f in fs.items():
                            runs[k] += rate(f, flops, 1)
                    cells = []
                    for w in widths:
                        if w not in runs:
                            cells.append("")
                            continue
                        mark = " over" if S * K * w > SMALL_MNK else ""
                        cells.append(f"{statistics.median(runs[w]):.0f}{mark}")
                    cells.append(f"{cw} x {nc}: {statistics.median(runs['chosen']):.0f}"
                                 if cw else "none")
                    print(f"| {what} | {H} | {S} | {statistics.median(runs['base']):.0f} | " +
                          " | ".join(cells) + " |", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hidden", default="128,256,512")
    ap.add_argument("--rows", default="25,50")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--panels", action="store_true", help="shards' form against panels")
    ap.add_argument("--widths", default="8,16,32,64,128")
    args = ap.parse_args()
    if args.panels:
        print(f"# the recurrent product in column panels, {time.strftime('%Y-%m-%d')}  ")
        print("  \n".join(machine()) + "  ")
        print("command: python bench/recurrent_product.py " + " ".join(sys.argv[1:]) + "\n")
        print("GFLOP/s, one BLAS thread, medians of --reps alternating repetitions; a width's "
              "column: one call a panel (over: its M * N * K above stack.SMALL_MNK); the last: "
              "stack.panel_shape's width and chunks of K, as the panels strategy runs it\n")
        return panels_table(args)
    print(f"# the recurrent product's operand layouts, {time.strftime('%Y-%m-%d')}  ")
    print("  \n".join(machine()) + "  ")
    print("command: python bench/recurrent_product.py " + " ".join(sys.argv[1:]) + "\n")
    print("| product | H | rows | BLAS threads | baseline | GFLOP/s | contender | GFLOP/s | "
          "baseline time / contender time |")
    print("|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for H in (int(v) for v in args.hidden.split(",")):
        Wh = rng.standard_normal((H, 4 * H), dtype=np.float32)
        WhT = np.ascontiguousarray(Wh.T)
        for S in (int(v) for v in args.rows.split(",")):
            h = rng.standard_normal((S, H), dtype=np.float32)
            dg = rng.standard_normal((S, 4 * H), dtype=np.float32)
            for what, base, other, uses_dg, transposed in PAIRS:
                a = dg if uses_dg else h
                width = H if uses_dg else 4 * H
                outs = [np.zeros((width, S) if t else (S, width), np.float32)
                        for t in transposed]
                for threads in (1, 2):
                    with threadpool_limits(threads):
                        g1, g2, ratio = compare(base, other, a, Wh, WhT, outs, args.reps)
                    print(f"| {what} | {H} | {S} | {threads} | {base.__name__} | {g1:.1f} | "
                          f"{other.__name__} | "
                          f"{g2:.1f} | {statistics.median(ratio):.2f} "
                          f"[{min(ratio):.2f}-{max(ratio):.2f}] |", flush=True)


if __name__ == "__main__":
    main()
