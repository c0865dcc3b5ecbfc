"""Where the time of one training step goes: by phase, and the rates of the pieces inside.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/profile_step.py \
        [--model lstm --layers 2 --hidden 128 --threads 2 --batch 50 --seq 50 --strategy S]

The step's phases (forward, backward, gradient clipping, optimizer) are timed as the trainer runs
them (in shards, or --strategy panels: shards with the per-step products in column panels;
vocab 65). The compiled stack has no Python between time steps, so a
profiler cannot see inside it; instead each kind of work it does is timed on its own, at the
shard's shape, on one thread, and multiplied by how often one step does it. Comparing the sum
with the measured step shows what is left (overlap, memory traffic, the softmax).
"""
import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from numba import njit  # noqa: E402
from recurrent_product import panels_of  # noqa: E402
from throughput import flops_per_char  # noqa: E402  (bench/ is this script's folder)

from charrnn import kernels as K  # noqa: E402
from charrnn import threads as workers  # noqa: E402
from charrnn.cells import CELLS  # noqa: E402
from charrnn.config import ModelConfig  # noqa: E402
from charrnn.model import Model  # noqa: E402
from charrnn.optim import Optimizer, clip_gradients  # noqa: E402
from charrnn.stack import WT_MIN_HIDDEN, _panel_dot, _transpose16, panel_shape  # noqa: E402

V = 65


def per_call_ms(f, seconds=0.5):
    """Median-free simple rate: calls for at least `seconds`, mean ms per call."""
    f()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        f()
        n += 1
    return (time.perf_counter() - t0) / n * 1e3


@njit(nogil=True)
def _loop_dot(a, w, out, transposed):
    """T products a[t] @ w (or w @ a[t].T when transposed), as the stack's time loop does."""
    for t in range(a.shape[0]):
        if transposed:
            np.dot(w, a[t].T, out[t])
        else:
            np.dot(a[t], w, out[t])


@njit(nogil=True)
def _loop_dot_t(a, wt, outT, out):
    """T products a[t] @ w the way stack.steps_forward does them from WT_MIN_HIDDEN on: as the
    transpose wt @ a[t].T (wt the transposed copy of w), then transposed back in 16-row blocks."""
    for t in range(a.shape[0]):
        np.dot(wt, a[t].T, outT)
        _transpose16(out[t], outT)


@njit(nogil=True)
def _loop_panels(a, panels, nc, scratch, pa, out):
    """T products a[t] @ w as the panels strategy does them (stack._panel_dot)."""
    for t in range(a.shape[0]):
        _panel_dot(out[t], a[t], panels, nc, scratch, pa)


@njit(nogil=True)
def _big(a, w, out):
    np.dot(a, w, out)


def phases(m, B, T):
    """ms per step of forward, backward, clipping and Adam as the trainer calls them."""
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    st = m.zero_state(B)
    opt = Optimizer("adam", m.params.size)
    fwd = per_call_ms(lambda: m.forward(x, y, st, train=True))
    both = per_call_ms(lambda: (m.forward(x, y, st, train=True), m.backward()))
    clip = per_call_ms(lambda: clip_gradients(m.grads, 5.0))
    adam = per_call_ms(lambda: opt.step(m.params, m.grads, 2e-3))
    return {"forward (whole stack, all shards)": fwd, "backward (whole stack, all shards)":
            both - fwd, "gradient clipping": clip, "Adam update": adam}


def pieces(cell, L, H, S, T, strategy="shards"):
    """ms of each kind of work one shard of S rows does in one step of T, on one thread."""
    G = CELLS[cell].G
    r = np.random.default_rng(1)
    f = lambda *s: r.standard_normal(s).astype(np.float32)  # noqa: E731
    W, hs, gs = f(H, G * H), f(T, S, H), f(T, S, G * H)
    out_g, out_h, out_ht = f(T, S, G * H), f(T, S, H), f(T, H, S)
    N = T * S
    a, g, o = f(N, H), f(N, G * H), f(N, G * H)
    Wt, outT = np.ascontiguousarray(W.T), f(G * H, S)
    res = {}
    (pw_f, nc_f), (pw_b, nc_b) = (panel_shape(S, H, G * H), panel_shape(S, G * H, H)) \
        if strategy == "panels" else ((0, 1), (0, 1))
    with workers._blas().limit(limits=1, user_api="blas"):
        if pw_f:
            pf, sc, pa = panels_of(W, pw_f, S)
            ms = per_call_ms(lambda: _loop_panels(hs, pf, nc_f, sc, pa, out_g))
            res[f"recurrent products, forward (h @ W_h in {pw_f}-column panels, {nc_f} chunk(s) "
                "of K)"] = (L, ms, 2 * N * H * G * H)
        elif H >= WT_MIN_HIDDEN:
            res["recurrent products, forward (W_h^T h^T per step, transposed back)"] = \
                (L, per_call_ms(lambda: _loop_dot_t(hs, Wt, outT, out_g)), 2 * N * H * G * H)
        else:
            res["recurrent products, forward (h @ W_h per step)"] = \
                (L, per_call_ms(lambda: _loop_dot(hs, W, out_g, False)), 2 * N * H * G * H)
        if pw_b:
            pb, sb, pa_b = panels_of(W, pw_b, S, transposed=True)
            ms = per_call_ms(lambda: _loop_panels(gs, pb, nc_b, sb, pa_b, out_h))
            res[f"recurrent products, backward (dgh @ W_h^T in {pw_b}-column panels, {nc_b} "
                "chunk(s) of K)"] = (L, ms, 2 * N * H * G * H)
        else:
            res["recurrent products, backward (W_h @ dgh^T per step)"] = \
                (L, per_call_ms(lambda: _loop_dot(gs, W, out_ht, True)), 2 * N * H * G * H)
        big = per_call_ms(lambda: _big(a, W, o))
        # per layer: W_h gradient; per layer above the first: input projection, W_x gradient
        # and the gradient to the layer below; the decoder's three products are ~V/(G*H) of one
        res["large products (input projections, weight gradients, dx)"] = \
            (L + 3 * (L - 1), big, 2 * N * H * G * H)
        c = CELLS[cell].code
        if c == K.CELL_LSTM:
            fw = lambda: K.lstm_step_forward(out_h[0], out_h[1], out_h[2], out_g[0], gs[0],  # noqa
                                             gs[1], out_h[3])
            bw = lambda: K.lstm_step_backward(out_g[0], out_h[0], gs[0], out_h[1], out_h[2],  # noqa
                                              out_h[3], out_h[4])
        elif c == K.CELL_GRU:
            fw = lambda: K.gru_step_forward(out_h[0], out_g[0], out_h[1], gs[0], gs[1],  # noqa
                                            gs[2, 0], out_h[2])
            bw = lambda: K.gru_step_backward(out_g[0], out_g[1], out_h[0], gs[0], out_h[1],  # noqa
                                             out_h[2], out_h[3], out_h[4])
        else:
            fw = lambda: K.rnn_step_forward(out_h[0], gs[0], gs[1], False)  # noqa
            bw = lambda: K.rnn_step_backward(out_h[0], out_h[1], out_h[2], out_h[3], False)  # noqa
        res["cell pointwise kernels, forward"] = (L * T, per_call_ms(fw), 0)
        res["cell pointwise kernels, backward"] = (L * T, per_call_ms(bw), 0)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="lstm")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--seq", type=int, default=50)
    ap.add_argument("--strategy", choices=("shards", "panels"), default="shards")
    a = ap.parse_args()
    B, T = a.batch, a.seq
    threads = a.threads or workers.usable_cores()
    m = Model(ModelConfig(V, a.model, a.hidden, a.layers), threads=threads)
    m.strategy = a.strategy
    shards = workers.shard_bounds(B, threads)
    S = max(b1 - b0 for b0, b1 in shards)
    ph = phases(m, B, T)
    total = sum(ph.values())
    print(f"{a.model} {a.layers}x{a.hidden}, batch {B}, seq {T}, {threads} thread(s), {a.strategy}, "
          f"{len(shards)} shard(s) of up to {S} rows: {total:.1f} ms per step, "
          f"{B * T / total * 1e3:,.0f} chars/s\n")
    print("| phase | ms per step | share |\n|---|---|---|")
    for k, v in ph.items():
        print(f"| {k} | {v:.2f} | {100 * v / total:.0f}% |")
    print(f"\nInside one shard ({S} rows, one thread), each kind of work timed alone:\n")
    print("| work | calls per step | ms per call | ms per step | GFLOP/s |\n|---|---|---|---|---|")
    shard_total, work = 0.0, pieces(a.model, a.layers, a.hidden, S, T, a.strategy)
    for k, (calls, ms, flops) in work.items():
        per = calls * ms
        shard_total += per
        rate = f"{flops / ms / 1e6:.0f}" if flops else ""
        print(f"| {k} | {calls} | {ms:.3f} | {per:.2f} | {rate} |")
    print(f"\nSum of the timed pieces for one shard: {shard_total:.1f} ms, against "
          f"{ph['forward (whole stack, all shards)'] + ph['backward (whole stack, all shards)']:.1f}"
          " ms measured for forward + backward with all shards side by side.")
    # The ceiling: every product of the step at the large products' one-thread rate, on every
    # thread, and nothing else costing time. No implementation of the same arithmetic gets past it.
    _, big_ms, big_flops = work["large products (input projections, weight gradients, dx)"]
    big_rate = big_flops / big_ms / 1e6  # GFLOP/s, one thread
    step = flops_per_char(a.model, a.layers, a.hidden) * B * T / 1e9  # GFLOP per step
    print(f"\nThe whole step: {step:.2f} GFLOP in {total:.1f} ms, {step / total * 1e3:.0f} GFLOP/s; "
          f"{len(shards)} thread(s) at the large products' {big_rate:.0f} GFLOP/s would take "
          f"{step / (len(shards) * big_rate) * 1e3:.1f} ms: the step runs at "
          f"{100 * step / total * 1e3 / (len(shards) * big_rate):.0f}% of that.")


if __name__ == "__main__":
    main()
