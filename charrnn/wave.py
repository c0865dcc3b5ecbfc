"""The wave strategy: a 2-layer model on 2 threads, one layer each, the whole batch per thread.

Under shards each thread runs both layers on half the rows, so every recurrent product is a thin
(B/2 x H) @ (H x GH); on a 2-core AMD Zen 4 OpenBLAS runs that at 67 GFLOP/s on one thread for
B/2 = 25, H = 256, and at 87 for the whole batch's 50 rows (bench/results/wave.md). Here thread A
runs layer 0 and thread B layer 1, each on all B rows, in a wave over chunks of time steps:
layer 1 works on chunk j while layer 0 is on chunk j + 1 (backward: the other way round).

Layer 1's input projection (forward) and the gradient it sends down (backward) are as large as
its recurrence, so each chunk's is split by time steps between the two threads, which balances
them: per chunk, A does layer 0's steps and half the projection, B the other half and layer 1's
steps. The weight gradients stay single products over all T steps, split the same way at the
end. The threads wait on each other per chunk through events; which thread computes what is
fixed, so the results are bit-identical run to run (and agree with shards to float32 summation
order). The workspace is one (T, B) block, laid out as stack.py's, with each layer's per-step
scratch (hp, rec) of its own so that the two layers never share one.

On that Zen 4 it trained LSTM 2x128-2x512 at 0.79-0.96x of shards (each thread was as busy as
a whole shards step, and the wave's ends wait), so auto keeps shards there; it is measured on
every machine (strategy.candidates) for CPUs whose BLAS is slow on thin products.
"""
from __future__ import annotations

import threading

import numpy as np
from numba import njit

from . import kernels as K
from .stack import (
    KW,
    WT_MIN_HIDDEN,
    _carve,
    _carve_wt,
    _column_sums,
    _dropout,
    _gates,
    _layer_weights,
    _mat,
    _project,
    _softmax_xent,
    _transpose_tiled,
    dlogits,
    state_grads,
    steps_backward,
    steps_forward,
)

CHUNKS = 10  # chunks of a window: more wait less at the ends of the wave, but meet more often


def chunks(T: int) -> list[tuple[int, int]]:
    """[t0, t1) time ranges of about T / CHUNKS steps each (at least one step)."""
    n = max(1, min(CHUNKS, T))
    edges = [T * i // n for i in range(n + 1)]
    return list(zip(edges[:-1], edges[1:]))


def scratch_size(B: int, H: int, G: int) -> int:
    """Floats of one layer's per-step scratch: hp (B, GH) then rec (4, B, H), as in stack._carve."""
    return B * G * H + 4 * B * H


@njit(**KW)
def _split(sc, S, GH, H):
    return sc[:S * GH].reshape((S, GH)), sc[S * GH: S * GH + 4 * S * H].reshape((4, S, H))


@njit(**KW)
def project(ws, x, params, offs, cell, L, H, V, k, t0, t1):
    """xp[k] of steps [t0, t1), all rows: layer k's input @ W_x + biases (stack._project)."""
    T, S, G = x.shape[0], x.shape[1], _gates(cell)
    GH = G * H
    xp, _h, xin = _carve(ws, cell, L, T, S, H, V)[:3]
    Wx, _Wh, bx, bh = _layer_weights(params, offs, k, V if k == 0 else H, H, GH)
    n = t1 - t0
    below = xin[k - 1] if k > 0 else xin[0]
    out = xp[k].reshape((T * S, GH))[t0 * S: t1 * S].reshape((n, S, GH))
    inp = below.reshape((T * S, H))[t0 * S: t1 * S].reshape((n, S, H))
    _project(out, inp, x[t0:t1], 0, Wx, bx, bh, K.FOLD_BH[cell], k)


@njit(**KW)
def layer_forward(ws, sc, hT, cT, x, h0, c0, drop, params, offs, cell, relu, L, H, V, k, t0, t1):
    """Layer k's steps [t0, t1) for every row, from its projected inputs xp[k]: as stack_forward's
    time loop, then dropout into xin[k] for those steps. The first chunk (t0 = 0) takes the
    initial state (and makes W_h's transposed copy), the last (t1 = T) writes the final one."""
    T, S, G = x.shape[0], x.shape[1], _gates(cell)
    GH = G * H
    xp, h, xin, act, _dgh, hn, c, tc = _carve(ws, cell, L, T, S, H, V)[:8]
    hp, rec = _split(sc, S, GH, H)
    wt, transposed = _carve_wt(ws, cell, L, T, S, H, V), H >= WT_MIN_HIDDEN
    hpT = rec.reshape(4 * S * H)[:GH * S].reshape((GH, S))
    _Wx, Wh, _bx, bh = _layer_weights(params, offs, k, V if k == 0 else H, H, GH)
    if t0 == 0:
        if transposed:
            _transpose_tiled(wt[k], Wh)
        h[k, 0] = h0[k]
        if cell == K.CELL_LSTM:
            c[k, 0] = c0[k]
    steps_forward(h[k], c[k], tc[k], act[k], hn[k], xp[k], hp, hpT, wt, k, Wh, bh, cell, relu,
                  transposed, t0, t1, 0, 1, ws[:0])
    n = t1 - t0
    hk = h[k].reshape(((T + 1) * S, H))[t0 * S: (t1 + 1) * S].reshape((n + 1, S, H))
    xk = xin[k].reshape((T * S, H))[t0 * S: t1 * S].reshape((n, S, H))
    _dropout(xk, hk, drop[:, t0:t1], k, 0)
    if t1 == T:
        hT[k] = h[k, T]
        if cell == K.CELL_LSTM:
            cT[k] = c[k, T]


@njit(**KW)
def decode(ws, x, y, params, offs, cell, L, H, V, t0, t1):
    """The decoder's logits of steps [t0, t1) and, with targets y, their softmax and summed
    cross-entropy (returned; 0 without targets)."""
    T, S = x.shape[0], x.shape[1]
    views = _carve(ws, cell, L, T, S, H, V)
    xin, probs = views[2], views[8]
    Wd = _mat(params, offs[4 * L], H, V)
    bd = params[offs[4 * L + 1]: offs[4 * L + 1] + V]
    p = probs[t0 * S: t1 * S]
    np.dot(xin[L - 1].reshape((T * S, H))[t0 * S: t1 * S], Wd, p)
    for n in range(p.shape[0]):
        for v in range(V):
            p[n, v] += bd[v]
    if y.shape[0] == 0:
        return 0.0
    return _softmax_xent(p, y[t0:t1], 0, S)


@njit(**KW)
def top(gWd, gbd, ws, y, params, offs, cell, L, H, V, t0, t1, scale):
    """The decoder's backward for steps [t0, t1): dlogits in place, its weight and bias
    gradients from those rows written into gWd (H, V), gbd (V,), and the top layer's output
    gradient dx of those steps."""
    T, S = y.shape[0], y.shape[1]
    views = _carve(ws, cell, L, T, S, H, V)
    xin, probs, dx = views[2], views[8], views[9]
    Wd = _mat(params, offs[4 * L], H, V)
    p = probs[t0 * S: t1 * S]
    dlogits(p, y[t0:t1], 0, S, scale)
    np.dot(xin[L - 1].reshape((T * S, H))[t0 * S: t1 * S].T, p, gWd)
    _column_sums(gbd, p)
    np.dot(p, Wd.T, dx.reshape((T * S, H))[t0 * S: t1 * S])


@njit(**KW)
def layer_backward(ws, sc, dh0, dc0, x, drop, params, offs, cell, relu, L, H, V, k, t0, t1):
    """Layer k's backward over steps [t0, t1), from its output gradient dx of those steps (times
    its dropout mask first): stack_backward_layer's time loop. The carries between chunks live
    in the layer's scratch; the first chunk (t1 = T) zeroes them, the last (t0 = 0) writes dh0
    and dc0."""
    T, S, G = x.shape[0], x.shape[1], _gates(cell)
    GH = G * H
    xp, h, _xin, act, dgh, hn, c, tc, _probs, dx = _carve(ws, cell, L, T, S, H, V)[:10]
    dgx = xp
    _hp, rec = _split(sc, S, GH, H)
    _Wx, Wh, _bx, _bh = _layer_weights(params, offs, k, V if k == 0 else H, H, GH)
    if drop.shape[0] != 0:
        for t in range(t0, t1):
            for s in range(S):
                dx[t, s] *= drop[k, t, s]
    if t1 == T:
        rec[:3] = 0.0  # the carries: dh_rec, dc, the GRU's
    steps_backward(dgx[k], dgh[k], act[k], tc[k], c[k], hn[k], h[k], dx, rec, Wh, cell, relu,
                   t0, t1, rec, 0, 1, ws[:0])
    if t0 == 0:
        state_grads(dh0, dc0, rec, k, 0, cell)


@njit(**KW)
def input_grad(ws, x, params, offs, cell, L, H, V, k, t0, t1):
    """dx of steps [t0, t1) = layer k's input-side gradient dgx @ W_x^T: the output gradient of
    layer k - 1 (k > 0)."""
    T, S, G = x.shape[0], x.shape[1], _gates(cell)
    GH = G * H
    views = _carve(ws, cell, L, T, S, H, V)
    dgx, dx = views[0], views[9]
    Wx = _layer_weights(params, offs, k, H, H, GH)[0]
    np.dot(dgx[k].reshape((T * S, GH))[t0 * S: t1 * S], Wx.T,
           dx.reshape((T * S, H))[t0 * S: t1 * S])


@njit(**KW)
def hidden_grads(grads, ws, x, offs, cell, L, H, V, k):
    """Layer k's W_h and bias gradients over all T steps (one product), and for k = 0 its
    one-hot input weights' (a scatter-add onto the rows of x)."""
    T, S, G = x.shape[0], x.shape[1], _gates(cell)
    GH, N = G * H, x.shape[0] * x.shape[1]
    xp, h, _xin, _act, dgh = _carve(ws, cell, L, T, S, H, V)[:5]
    gWx, gWh, gbx, gbh = _layer_weights(grads, offs, k, V if k == 0 else H, H, GH)
    g2 = dgh[k].reshape((N, GH))
    np.dot(h[k, :T].reshape((N, H)).T, g2, gWh)
    _column_sums(gbh, g2)
    x2 = xp[k].reshape((N, GH))
    if cell != K.CELL_GRU:
        gbx[:] = gbh
    else:
        _column_sums(gbx, x2)
    if k == 0:
        gWx[:] = 0.0
        for t in range(T):
            for s in range(S):
                row, d = gWx[x[t, s]], x2[t * S + s]
                for j in range(GH):
                    row[j] += d[j]


@njit(**KW)
def input_weight_grad(gWx, ws, x, cell, L, H, V, k, t0, t1):
    """gWx (H, GH) = the part of layer k's W_x gradient from steps [t0, t1) (k > 0)."""
    T, S, G = x.shape[0], x.shape[1], _gates(cell)
    GH = G * H
    views = _carve(ws, cell, L, T, S, H, V)
    dgx, xin = views[0], views[2]
    np.dot(xin[k - 1].reshape((T * S, H))[t0 * S: t1 * S].T,
           dgx[k].reshape((T * S, GH))[t0 * S: t1 * S], gWx)


class _Events:
    """One event per chunk; on the way out (an error included) a chain sets all of its own, so
    that the other thread never waits forever (it computes on, and the error is raised)."""

    def __init__(self, n):
        self.e = [threading.Event() for _ in range(n)]

    def set(self, i):
        self.e[i].set()

    def wait(self, i):
        self.e[i].wait()

    def release(self):
        for e in self.e:
            e.set()


def forward(run, ws, sc, hT, cT, x, y, h0, c0, drop, params, offs, code, relu, H, V):
    """One training (or scoring) forward of a 2-layer model in a wave; returns the summed loss.
    run(tasks) runs two functions side by side (threads.run with one BLAS thread)."""
    T = x.shape[0]
    parts = chunks(T)
    mid = [(a + b) // 2 for a, b in parts]  # each chunk's projection: [t0, m) A, [m, t1) B
    ready, done = _Events(len(parts)), _Events(len(parts))
    common = (params, offs, code)
    sums = [0.0, 0.0]

    def chain_a():  # layer 0, and the first half of each chunk's projection for layer 1
        try:
            for j, (t0, t1) in enumerate(parts):
                project(ws, x, *common, 2, H, V, 0, t0, t1)
                layer_forward(ws, sc[0], hT, cT, x, h0, c0, drop, *common, relu, 2, H, V, 0,
                              t0, t1)
                project(ws, x, *common, 2, H, V, 1, t0, mid[j])
                ready.set(j)
            for j, (t0, t1) in enumerate(parts[:-1]):  # the decoder, behind layer 1
                done.wait(j)
                sums[0] += decode(ws, x, y, *common, 2, H, V, t0, t1)
        finally:
            ready.release()

    def chain_b():  # the rest of each chunk's projection, and layer 1
        try:
            for j, (t0, t1) in enumerate(parts):
                ready.wait(j)
                project(ws, x, *common, 2, H, V, 1, mid[j], t1)
                layer_forward(ws, sc[1], hT, cT, x, h0, c0, drop, *common, relu, 2, H, V, 1,
                              t0, t1)
                done.set(j)
            sums[1] = decode(ws, x, y, *common, 2, H, V, *parts[-1])
        finally:
            done.release()

    run([chain_a, chain_b])
    return sums[0] + sums[1]


def backward(run, grads, part, dh0, dc0, ws, sc, x, y, drop, params, offs, code, relu, H, V,
             scale):
    """The gradients of a forward's summed loss times scale, written into grads (P,) whole;
    part: a spare (P,) buffer for B's halves of the decoder's and W_x's (layer 1) gradients,
    added to A's in a fixed order at the end."""
    T = x.shape[0]
    parts = chunks(T)
    mid = [(a + b) // 2 for a, b in parts]
    half = T // 2
    top_done, sent = _Events(1), _Events(len(parts))
    common = (params, offs, code)
    L, G = 2, int(K.GATES[code])
    GH = G * H
    dec_w, dec_b, wx1 = int(offs[4 * L]), int(offs[4 * L + 1]), int(offs[4])

    def dec(buf):
        return buf[dec_w: dec_w + H * V].reshape(H, V), buf[dec_b: dec_b + V]

    def wx(buf):
        return buf[wx1: wx1 + H * GH].reshape(H, GH)

    def chain_a():  # the decoder's first half, each chunk's second half of dx, layer 0
        try:
            top(*dec(grads), ws, y, *common, L, H, V, 0, half, scale)
            top_done.set(0)
            for j in range(len(parts) - 1, -1, -1):
                t0, t1 = parts[j]
                sent.wait(j)
                input_grad(ws, x, *common, L, H, V, 1, mid[j], t1)
                layer_backward(ws, sc[0], dh0, dc0, x, drop, *common, relu, L, H, V, 0, t0, t1)
            hidden_grads(grads, ws, x, offs, code, L, H, V, 0)
            input_weight_grad(wx(grads), ws, x, code, L, H, V, 1, 0, half)
        finally:
            top_done.release()

    def chain_b():  # the decoder's second half, layer 1, each chunk's first half of dx
        try:
            top(*dec(part), ws, y, *common, L, H, V, half, T, scale)
            for j in range(len(parts) - 1, -1, -1):
                t0, t1 = parts[j]
                if t0 < half:
                    top_done.wait(0)
                layer_backward(ws, sc[1], dh0, dc0, x, drop, *common, relu, L, H, V, 1, t0, t1)
                input_grad(ws, x, *common, L, H, V, 1, t0, mid[j])
                sent.set(j)
            hidden_grads(grads, ws, x, offs, code, L, H, V, 1)
            input_weight_grad(wx(part), ws, x, code, L, H, V, 1, half, T)
        finally:
            sent.release()

    run([chain_a, chain_b])
    for a, b in zip(dec(grads) + (wx(grads),), dec(part) + (wx(part),)):
        a += b
