"""Compiled generation: the batch-1 loop and the K-stream loop, each step by the cells' own step
math (kernels.py), weights read straight from the flat buffer (sample.py drives them).
"""
import math

import numpy as np
from numba import njit

from .fastmath import KW
from .kernels import CELL_GRU, CELL_LSTM, FOLD_BH, GATES, _gru_row, _lstm_row, _rnn_row
from .stack import WT_MIN_HIDDEN, _transpose16, _transpose_tiled

# ----------------------------------------------------------------------------------------------
# Generation at batch 1: the whole loop compiled, weights read straight from the flat buffer.

@njit(**KW, inline="always")
def _matvec_add(out, v, W):
    """out (GH,) += v (D,) @ W (D, GH); W row-major, so the inner loop is contiguous. Four rows
    per pass: a quarter of the loads and stores of `out` (1.15-1.5x faster, measured; at
    H = 512 it then runs at memory bandwidth)."""
    D, GH = W.shape
    i = 0
    while i + 4 <= D:
        a0, a1, a2, a3 = v[i], v[i + 1], v[i + 2], v[i + 3]
        w0, w1, w2, w3 = W[i], W[i + 1], W[i + 2], W[i + 3]
        for j in range(GH):
            out[j] += a0 * w0[j] + a1 * w1[j] + a2 * w2[j] + a3 * w3[j]
        i += 4
    while i < D:
        a, w = v[i], W[i]
        for j in range(GH):
            out[j] += a * w[j]
        i += 1


@njit(**KW)
def _view(params, off, rows, cols):
    return params[off: off + rows * cols].reshape((rows, cols))


@njit(**KW)
def step_forward(hs, cs, pre, hp, sc, params, offs, x, cell, relu, H, V):
    """Advance the state of every layer by one input id x.

    hs, cs (L, H) in/out: hidden and cell state; pre, hp (G*H,): scratch; params: the flat
    buffer; offs (L*4 + 2,): offsets of W_x, W_h, b_x, b_h per layer, then decoder W and b.
    Each gate block is its own simple loop so that it vectorizes (as in the training kernels).
    """
    L = hs.shape[0]
    G = pre.size // H
    for k in range(L):
        D = V if k == 0 else H
        Wx = _view(params, offs[4 * k], D, G * H)
        Wh = _view(params, offs[4 * k + 1], H, G * H)
        bx = params[offs[4 * k + 2]: offs[4 * k + 2] + G * H]
        bh = params[offs[4 * k + 3]: offs[4 * k + 3] + G * H]
        h, c = hs[k], cs[k]
        fold = FOLD_BH[cell]
        if k == 0:
            for j in range(G * H):
                pre[j] = bx[j] + Wx[x, j]
        else:
            pre[:] = bx
            _matvec_add(pre, hs[k - 1], Wx)
        if fold:
            for j in range(G * H):
                pre[j] += bh[j]
        hp[:] = 0.0
        _matvec_add(hp, h, Wh)
        _cell_update(h, c, pre, hp, sc, bh, cell, relu, H)


@njit(**KW, inline="always")
def _cell_update(h, c, pre, hp, sc, bh, cell, relu, H):
    """One stream's new h, c (H,) from its input-side pre-activations pre (G*H,) (overwritten;
    b_ih included, and b_hh where the cell folds it) and hidden-side ones hp (G*H,) = h @ W_h,
    by the same row functions as training. sc (5H,): the GRU's gates, W_hn h + b_hn and h_prev
    in a buffer of their own (outputs that alias inputs through different views keep LLVM from
    vectorizing: 32-stream GRU sampling ran 19% slower that way)."""
    if cell == CELL_LSTM:
        _lstm_row(h, c, h, pre, pre, hp, c, H)
    elif cell == CELL_GRU:
        a, hn, h_prev = sc[:3 * H], sc[3 * H:4 * H], sc[4 * H:5 * H]
        h_prev[:] = h
        _gru_row(h, a, hn, pre, hp, bh, h_prev, H)
    else:
        _rnn_row(h, pre, hp, relu, H)


@njit(**KW)
def decode_logits(logits, hs, params, offs, H, V):
    """logits (V,) = top layer's h @ W_dec + b_dec."""
    L = hs.shape[0]
    W = _view(params, offs[4 * L], H, V)
    b = params[offs[4 * L + 1]: offs[4 * L + 1] + V]
    for v in range(V):
        logits[v] = b[v]
    _matvec_add(logits, hs[L - 1], W)


@njit(**KW)
def pick(logits, probs, order, u, temperature, top_k, top_p):
    """Choose the next id from logits (V,): argmax when temperature == 0, otherwise sample with
    the uniform u from softmax(logits / temperature) restricted to the top_k most likely ids
    (0: all) and then to the smallest set whose probability reaches top_p (1.0: all)."""
    V = logits.size
    if temperature == 0.0:
        return np.argmax(logits)
    m = logits.max()
    for v in range(V):
        probs[v] = math.exp((logits[v] - m) / temperature)
    if top_k > 0 or top_p < 1.0:
        order[:] = np.argsort(-probs)
        keep = V if top_k <= 0 else min(top_k, V)
        if top_p < 1.0:
            total = 0.0
            for v in range(keep):
                total += probs[order[v]]
            acc = 0.0
            for v in range(keep):
                acc += probs[order[v]]
                if acc >= top_p * total:
                    keep = v + 1
                    break
        for v in range(keep, V):
            probs[order[v]] = 0.0
    total = probs.sum()
    target = u * total
    acc = 0.0
    last = 0
    for v in range(V):
        if probs[v] > 0.0:
            last = v
            acc += probs[v]
            if acc > target:
                return v
    return last


@njit(**KW)
def generate(out, hs, cs, params, offs, x, uniforms, cell, relu, H, V,
             temperature, top_k, top_p):
    """Generate out.size ids, feeding each back in. x: the pending input id (the last prime
    character, or the previous chunk's last output); hs, cs (L, H) carry over between calls;
    uniforms (out.size,) in [0, 1)."""
    G = GATES[cell]
    pre = np.empty(G * H, params.dtype)
    hp = np.empty(G * H, params.dtype)
    sc = np.empty(5 * H, params.dtype)  # _cell_update's GRU scratch
    logits = np.empty(V, params.dtype)
    probs = np.empty(V, np.float64)
    order = np.empty(V, np.int64)
    for n in range(out.size):
        step_forward(hs, cs, pre, hp, sc, params, offs, x, cell, relu, H, V)
        decode_logits(logits, hs, params, offs, H, V)
        x = pick(logits, probs, order, uniforms[n], temperature, top_k, top_p)
        out[n] = x


@njit(**KW)
def advance(hs, cs, params, offs, ids, cell, relu, H, V):
    """Feed ids (n,) through the model, updating hs, cs (L, H); no output (priming)."""
    G = GATES[cell]
    pre = np.empty(G * H, params.dtype)
    hp = np.empty(G * H, params.dtype)
    sc = np.empty(5 * H, params.dtype)  # _cell_update's GRU scratch
    for n in range(ids.size):
        step_forward(hs, cs, pre, hp, sc, params, offs, ids[n], cell, relu, H, V)


# ----------------------------------------------------------------------------------------------
# Generation of K streams at once: per step one (K, H) x (H, G*H) product per weight instead of K
# matrix-vector products, so the weights are read once for all K streams.

@njit(**KW)
def transposed_weights(params, offs, cell, L, H, V):
    """wt (2L, GH, H): W_x^T (layers above the first; row 0 unused) and W_h^T of every layer,
    for step_forward_batch's products from WT_MIN_HIDDEN on; (0, GH, H) below it."""
    GH = GATES[cell] * H
    wt = np.zeros((2 * L if H >= WT_MIN_HIDDEN else 0, GH, H), params.dtype)
    for k in range(wt.shape[0] // 2):
        if k > 0:
            _transpose_tiled(wt[2 * k], _view(params, offs[4 * k], H, GH))
        _transpose_tiled(wt[2 * k + 1], _view(params, offs[4 * k + 1], H, GH))
    return wt


@njit(**KW, inline="always")
def _product(out, outT, a, W, WT, transposed):
    """out (K, GH) = a (K, H) @ W (H, GH); transposed: as (WT a^T)^T, WT (GH, H) = W^T, then
    transposed back (stack_forward's form of the thin product, faster there from H = 256)."""
    if transposed:
        np.dot(WT, a.T, outT)
        _transpose16(out, outT)
    else:
        np.dot(a, W, out)


@njit(**KW)
def step_forward_batch(hs, cs, pre, hp, sc, wt, pT, params, offs, x, cell, relu, H, V):
    """Advance K streams by one input id each. hs, cs (L, K, H) in/out; pre, hp (K, G*H):
    scratch; wt: transposed_weights; pT (G*H, K): scratch; x (K,) ids."""
    L, K = hs.shape[0], hs.shape[1]
    GH = pre.shape[1]
    transposed = wt.shape[0] != 0
    for k in range(L):
        Wx = _view(params, offs[4 * k], V if k == 0 else H, GH)
        Wh = _view(params, offs[4 * k + 1], H, GH)
        bx = params[offs[4 * k + 2]: offs[4 * k + 2] + GH]
        bh = params[offs[4 * k + 3]: offs[4 * k + 3] + GH]
        if k > 0:
            _product(pre, pT, hs[k - 1], Wx, wt[2 * k] if transposed else pre, transposed)
        _product(hp, pT, hs[k], Wh, wt[2 * k + 1] if transposed else hp, transposed)
        fold = FOLD_BH[cell]
        for s in range(K):
            p = pre[s]
            if k == 0:  # the one-hot product is a row gather
                for j in range(GH):
                    p[j] = Wx[x[s], j] + bx[j]
            else:
                for j in range(GH):
                    p[j] += bx[j]
            if fold:
                for j in range(GH):
                    p[j] += bh[j]
            _cell_update(hs[k, s], cs[k, s], p, hp[s], sc[s], bh, cell, relu, H)


@njit(**KW)
def generate_batch(out, hs, cs, params, offs, wt, x, uniforms, cell, relu, H, V,
                   temperature, top_k, top_p):
    """Generate out.shape[1] ids for each of K streams (out (K, n)), feeding each back in.
    x (K,) in/out: the pending input ids; hs, cs (L, K, H) carry over between calls;
    wt: transposed_weights (made once per set of samples: the copy costs a pass over the
    weights); uniforms (K, n) in [0, 1), stream s drawing from its own row."""
    K, n = out.shape
    L = hs.shape[0]
    GH = GATES[cell] * H
    pre = np.empty((K, GH), params.dtype)
    hp = np.empty((K, GH), params.dtype)
    sc = np.empty((K, 5 * H), params.dtype)  # _cell_update's GRU scratch
    pT = np.empty((GH, K), params.dtype)
    logits = np.empty((K, V), params.dtype)
    probs = np.empty(V, np.float64)
    order = np.empty(V, np.int64)
    Wd = _view(params, offs[4 * L], H, V)
    bd = params[offs[4 * L + 1]: offs[4 * L + 1] + V]
    for i in range(n):
        step_forward_batch(hs, cs, pre, hp, sc, wt, pT, params, offs, x, cell, relu, H, V)
        np.dot(hs[L - 1], Wd, logits)
        for s in range(K):
            row = logits[s]
            for v in range(V):
                row[v] += bd[v]
            x[s] = pick(row, probs, order, uniforms[s, i], temperature, top_k, top_p)
            out[s, i] = x[s]


@njit(**KW)
def advance_batch(hs, cs, params, offs, wt, ids, cell, relu, H, V):
    """Feed ids (n, K) through K streams, updating hs, cs (L, K, H); no output (priming);
    wt: transposed_weights."""
    K = hs.shape[1]
    GH = GATES[cell] * H
    pre = np.empty((K, GH), params.dtype)
    hp = np.empty((K, GH), params.dtype)
    sc = np.empty((K, 5 * H), params.dtype)  # _cell_update's GRU scratch
    pT = np.empty((GH, K), params.dtype)
    for i in range(ids.shape[0]):
        step_forward_batch(hs, cs, pre, hp, sc, wt, pT, params, offs, ids[i], cell, relu, H, V)
