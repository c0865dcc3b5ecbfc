"""The whole model for one shard of the batch, compiled: stack_forward / stack_backward.

A shard is the batch columns [b0, b1) of a (T, B) window. One call runs every layer's time loop,
the decoder and the loss (forward), or all of their gradients (backward), with no Python between
time steps, and releases the GIL (nogil), so shards run side by side on their own cores. The
matrix products go to BLAS through numba's np.dot (SciPy's BLAS, kept at one thread per shard by
threads.py); the pointwise work is kernels.py's step pairs.

Sizes as in kernels.py, with S = b1 - b0 the shard's rows and N = T * S its positions.
Everything a shard keeps between forward and backward lives in one flat float buffer `ws`
(see workspace_size), cut into named views by _carve; weights are read from the flat parameter
buffer at the offsets of cells.param_offsets.
"""
import math

import numpy as np
from numba import njit

from . import fastmath as F
from . import kernels as K

KW = dict(F.KW, nogil=True)
# From this width on, stack_forward multiplies by a transposed copy of W_h (see there). At
# H = 128 the product gained only 3-5% (bench/results/recurrent_product.md), and LSTM 2x128
# steps with the copy measured 4-14% slower, within an A/A run's spread (0.84-1.05), so the
# narrow models keep the product as before.
WT_MIN_HIDDEN = 256
# OpenBLAS (from 0.3.17, in its SkylakeX kernels among others) runs a product of M * N * K up to
# SMALL_MNK with small-matrix kernels that skip packing the operands. A thin per-step product is
# far above that and OpenBLAS packs W_h again on every call; cut into column panels each call
# falls under it: (16, 256) x (256, 1024) on one Zen 4 core ran at 46-73 GFLOP/s in one call and
# 102-114 in 32- or 64-column panels (bench/recurrent_product.py --panels,
# bench/results/panels-2026-12-07-zen4.md). The panels strategy takes that form; where a BLAS
# has no such kernels it measures slower and the strategy probe does not choose it.
SMALL_MNK = 100 ** 3
PANEL_WIDTHS = (64, 32, 16, 8)  # widest first: fewer calls (64 measured best where it fits)
# Where no panel of PANEL_WHOLE_MIN columns fits in one call (the backward's dgh (S, 4H) @ W_h^T
# at H = 512: K = 2048), each panel's product is cut along K into chunks summed in a fixed order:
# one Zen 5 thread ran (25, 2048) x (2048, 512) at 157 GFLOP/s in 16-column panels and 232 in
# 64-column panels of 512-row chunks. Where a 32-column panel fits whole, cutting a 64-column
# one measured no better (231 against 220 GFLOP/s at 25 rows, H = 256; 204 against 225 at 16)
# and adds a pass, so it is not cut (bench/recurrent_product.py --panels,
# bench/results/panels-ksplit-2026-12-07-zen5.md). A chunk keeps at least PANEL_MIN_CHUNK rows.
PANEL_WHOLE_MIN = 32
PANEL_MIN_CHUNK = 32


@njit(**KW)
def _gates(cell):
    return K.GATES[cell]  # from cells.CELLS


@njit(**KW)
def _block_sizes(cell, L, T, S, H, V):
    """The workspace layout, described once: the floats of each block of _carve, in its order.
    Caches a cell does not use are empty blocks."""
    G = _gates(cell)
    gate, hid1, hid = L * T * S * G * H, L * (T + 1) * S * H, L * T * S * H
    rnn, gru, lstm = cell == K.CELL_RNN, cell == K.CELL_GRU, cell == K.CELL_LSTM
    return (gate, hid1, hid,                          # xp (also dgx), h, xin
            0 if rnn else gate,                       # act
            gate if gru else 0, hid if gru else 0,    # dgh, hn
            hid1 if lstm else 0, hid if lstm else 0,  # c, tc
            T * S * V, T * S * H, S * G * H, 4 * S * H,  # probs, dx, hp, rec
            S * G * H + S * PANEL_WIDTHS[0],          # pa
            L * G * H * H)                            # wt


@njit(**KW)
def workspace_size(cell, L, T, S, H, V):
    """Floats of the buffer _carve cuts: caches for T steps of S rows, L layers of H units."""
    n = 0
    for size in _block_sizes(cell, L, T, S, H, V):
        n += size
    return n


@njit(**KW)
def _carve(ws, cell, L, T, S, H, V):
    """Named views of ws for one (T, S) window, cut at _block_sizes. Unused caches are empty;
    dgh aliases xp except for the GRU (backward never reads xp, so its memory holds the
    input-side gradient)."""
    G = _gates(cell)
    sz = _block_sizes(cell, L, T, S, H, V)
    o = [0] * (len(sz) + 1)  # block starts
    for i in range(len(sz)):
        o[i + 1] = o[i] + sz[i]
    xp = ws[o[0]: o[1]].reshape((L, T, S, G * H))           # input projections; in backward dgx
    h = ws[o[1]: o[2]].reshape((L, T + 1, S, H))            # h[k, 0] initial, h[k, 1:] outputs
    xin = ws[o[2]: o[3]].reshape((L, T, S, H))              # layer k's output after dropout
    act = ws[o[3]: o[4]].reshape((L, T, S, sz[3] // max(L * T * S, 1)))  # activated gates
    dgh = ws[o[4]: o[5]].reshape((L, T, S, G * H)) if cell == K.CELL_GRU else xp  # hidden side
    hn = ws[o[5]: o[6]].reshape((L, T, S, sz[5] // max(L * T * S, 1)))   # W_hn h + b_hn (GRU)
    c = ws[o[6]: o[7]].reshape((L, T + 1, S, sz[6] // max(L * (T + 1) * S, 1)))  # cell state
    tc = ws[o[7]: o[8]].reshape((L, T, S, sz[7] // max(L * T * S, 1)))  # tanh(c) (LSTM)
    probs = ws[o[8]: o[9]].reshape((T * S, V))              # logits, then softmax, then dlogits
    dx = ws[o[9]: o[10]].reshape((T, S, H))                 # gradient flowing down the stack
    hp = ws[o[10]: o[11]].reshape((S, G * H))               # h_prev @ W_h of the current step
    rec = ws[o[11]: o[12]].reshape((4, S, H))  # dh_rec, dc, GRU carry, transposed; fwd: hpT
    return xp, h, xin, act, dgh, hn, c, tc, probs, dx, hp, rec


@njit(**KW)
def _carve_wt(ws, cell, L, T, S, H, V):
    """The last block of ws: (L, GH, H), room for each layer's copy of W_h: transposed
    (stack_forward from WT_MIN_HIDDEN on), or in panels (the panels strategy: W_h's column
    panels in the forward, W_h^T's in the backward)."""
    n, GH = workspace_size(cell, L, T, S, H, V), _gates(cell) * H
    size = _block_sizes(cell, L, T, S, H, V)[-1]
    return ws[n - size: n].reshape((size // (GH * H), GH, H))


@njit(**KW)
def _carve_pa(ws, cell, L, T, S, H, V):
    """The block before wt: room for _panel_dot's chunks of its left operand and one partial
    product (used only where a panel's product is cut along K)."""
    sz = _block_sizes(cell, L, T, S, H, V)
    end = workspace_size(cell, L, T, S, H, V) - sz[-1]
    return ws[end - sz[-2]: end]


@njit(**KW)
def carve_h(ws, cell, L, T, S, H, V):
    """The hidden states h (L, T + 1, S, H) that the last stack_forward left in ws."""
    return _carve(ws, cell, L, T, S, H, V)[1]


@njit(**KW)
def carve_tc(ws, cell, L, T, S, H, V):
    """tanh of the LSTM cell states, (L, T, S, H), that the last stack_forward left in ws."""
    return _carve(ws, cell, L, T, S, H, V)[7]


@njit(**KW)
def carve_probs(ws, cell, L, T, S, H, V):
    """The logits (N, V) that a stack_forward without targets left in ws."""
    return _carve(ws, cell, L, T, S, H, V)[8]


@njit(**KW)
def _mat(params, off, rows, cols):
    return params[off: off + rows * cols].reshape((rows, cols))


@njit(**KW)
def _layer_weights(params, offs, k, D, H, GH):
    """W_x (D, GH), W_h (H, GH), b_x (GH,), b_h (GH,) of layer k."""
    return (_mat(params, offs[4 * k], D, GH), _mat(params, offs[4 * k + 1], H, GH),
            params[offs[4 * k + 2]: offs[4 * k + 2] + GH],
            params[offs[4 * k + 3]: offs[4 * k + 3] + GH])


@njit(**KW)
def _project(xpk, xin_below, x, b0, Wx, bx, bh, fold_bh, k):
    """xpk (T, S, GH) = layer k's input @ W_x + b_x (+ b_h where it folds). Layer 0's input is
    one-hot, so its product is the row gather W_x[x]."""
    T, S, GH = xpk.shape
    if k > 0:
        np.dot(xin_below.reshape((T * S, xin_below.shape[2])), Wx, xpk.reshape((T * S, GH)))
    for t in range(T):
        for s in range(S):
            row, out = x[t, b0 + s], xpk[t, s]
            if k == 0:
                for j in range(GH):
                    out[j] = Wx[row, j] + bx[j]
            else:
                for j in range(GH):
                    out[j] += bx[j]
            if fold_bh:
                for j in range(GH):
                    out[j] += bh[j]


@njit(**KW)
def stack_forward(ws, hT, cT, x, y, h0, c0, drop, params, offs, cell, relu, L, H, V, b0, b1,
                  panels=False):
    """Forward of shard [b0, b1): fills ws's caches and writes the final state of its rows.

    ws: flat workspace (workspace_size floats); hT, cT (L, B, H) out: final states (only this
    shard's rows are written); x, y (T, B) int32 ids (y unused when it has no rows: then
    ws's probs keep the logits); h0, c0 (L, B, H); drop (L, T, B, H) dropout masks scaled by
    1/(1-p), or an empty array for none; params, offs: flat weights and their offsets.
    panels: the per-step products h_prev @ W_h in column panels (panel_shape), where one fits.
    Returns the summed (not mean) cross-entropy of the shard's N positions, 0 without targets.
    """
    T, S, G = x.shape[0], b1 - b0, _gates(cell)
    GH = G * H
    xp, h, xin, act, _dgh, hn, c, tc, probs, _dx, hp, rec = _carve(ws, cell, L, T, S, H, V)
    # From WT_MIN_HIDDEN on, h_prev @ W_h is computed as its transpose, hpT (GH, S) =
    # W_h^T h_prev^T, from a transposed copy of W_h made once per forward, then transposed
    # back in 16-row blocks: on one thread, product and transpose together ran 1.07-1.18x
    # faster than h_prev @ (W_h^T)^T from the same copy (S = 25-50, H = 256-512, AMD EPYC
    # Zen 5; the product alone 1.2-1.3x on an Intel Xeon; bench/results/recurrent_product.md).
    # hpT lives in rec, which only backward uses (and sets before it reads).
    # With panels, wt holds W_h's column panels and hpT's memory the products' panels.
    wt, hpT = _carve_wt(ws, cell, L, T, S, H, V), rec.reshape(4 * S * H)[:GH * S].reshape((GH, S))
    pw, nc = panel_shape(S, H, GH) if panels else (0, 1)
    transposed = H >= WT_MIN_HIDDEN and pw == 0
    pa = _carve_pa(ws, cell, L, T, S, H, V)
    for k in range(L):
        Wx, Wh, bx, bh = _layer_weights(params, offs, k, V if k == 0 else H, H, GH)
        if pw:
            _pack_panels(wt[k].reshape((GH // pw, H, pw)), Wh)
        elif transposed:
            _transpose_tiled(wt[k], Wh)
        _project(xp[k], xin[k - 1] if k > 0 else xin[0], x, b0, Wx, bx, bh,
                 K.FOLD_BH[cell], k)
        h[k, 0] = h0[k, b0:b1]
        if cell == K.CELL_LSTM:
            c[k, 0] = c0[k, b0:b1]
        steps_forward(h[k], c[k], tc[k], act[k], hn[k], xp[k], hp, hpT, wt, k, Wh, bh, cell,
                      relu, transposed, 0, T, pw, nc, pa)
        _dropout(xin[k], h[k], drop, k, b0)
        hT[k, b0:b1] = h[k, T]
        if cell == K.CELL_LSTM:
            cT[k, b0:b1] = c[k, T]
    Wd = _mat(params, offs[4 * L], H, V)
    bd = params[offs[4 * L + 1]: offs[4 * L + 1] + V]
    np.dot(xin[L - 1].reshape((T * S, H)), Wd, probs)
    for n in range(T * S):
        for v in range(V):
            probs[n, v] += bd[v]
    if y.shape[0] == 0:
        return 0.0
    return _softmax_xent(probs, y, b0, S)


@njit(**KW)
def _dropout(xin_k, h_k, drop, k, b0):
    """xin_k (T, S, H) = h_k[1:] times layer k's mask, or a copy of it without dropout."""
    T, S, H = xin_k.shape
    for t in range(T):
        for s in range(S):
            if drop.shape[0] == 0:
                xin_k[t, s] = h_k[t + 1, s]
            else:
                m = drop[k, t, b0 + s]
                for j in range(H):
                    xin_k[t, s, j] = h_k[t + 1, s, j] * m[j]


@njit(**KW)
def _softmax_xent(probs, y, b0, S):
    """Softmax of logits rows (in place) and the summed cross-entropy of targets y[t, b0 + s]
    (row n = t * S + s), accumulated in float64. A negative target (padding) adds nothing."""
    N, V = probs.shape
    total = 0.0
    for n in range(N):
        p = probs[n]
        target = y[n // S, b0 + n % S]
        logit = p[max(target, 0)]
        m = p[0]
        for v in range(1, V):
            m = max(m, p[v])
        for v in range(V):  # no reduction in this loop, so it vectorizes
            p[v] = F.exp(p[v] - m)
        s = _sum(p)
        if target >= 0:
            total += math.log(s) + m - logit
        inv = 1.0 / s
        for v in range(V):
            p[v] *= inv
    return total


@njit(**KW)
def stack_backward(grads, dh0, dc0, ws, x, y, drop, params, offs, cell, relu, L, H, V, b0, b1,
                   scale, panels=False):
    """Backward of shard [b0, b1) after its stack_forward with targets: gradients of
    scale * (summed loss) written into grads (P,), which is zeroed here first (the one place).

    dh0, dc0 (L, B, H) out: gradients of the initial state (this shard's rows). The same as
    stack_backward_top then stack_backward_layer for k = L-1 .. 0 (the phases an overlapped
    Allreduce waits between), in one call. panels: as the forward's (stack_forward).
    """
    stack_backward_top(grads, ws, x, y, params, offs, cell, L, H, V, b0, b1, scale)
    for k in range(L - 1, -1, -1):
        stack_backward_layer(k, grads, dh0, dc0, ws, x, drop, params, offs, cell, relu, L, H, V,
                             b0, b1, panels)


@njit(**KW)
def stack_backward_top(grads, ws, x, y, params, offs, cell, L, H, V, b0, b1, scale):
    """The first phase of stack_backward: grads zeroed, the decoder's gradients written (its
    slice of grads is then final for this shard) and the top layer's output gradient (in ws)."""
    T, S = x.shape[0], b1 - b0
    N = T * S
    views = _carve(ws, cell, L, T, S, H, V)
    xin, probs, dx = views[2], views[8], views[9]
    grads[:] = 0.0
    Wd = _mat(params, offs[4 * L], H, V)
    dlogits(probs, y, b0, S, scale)
    top = xin[L - 1].reshape((N, H))
    np.dot(top.T, probs, _mat(grads, offs[4 * L], H, V))
    _column_sums(grads[offs[4 * L + 1]: offs[4 * L + 1] + V], probs)
    np.dot(probs, Wd.T, dx.reshape((N, H)))


@njit(**KW)
def stack_backward_layer(k, grads, dh0, dc0, ws, x, drop, params, offs, cell, relu, L, H, V, b0,
                         b1, panels=False):
    """Layer k's phase of stack_backward (after layer k+1's, or the top's for k = L-1): its
    weight gradients (its slice of grads is then final for this shard), its rows of dh0 and dc0,
    and the output gradient of layer k-1 (in ws)."""
    T, S, G = x.shape[0], b1 - b0, _gates(cell)
    GH = G * H
    xp, h, xin, act, dgh, hn, c, tc, _probs, dx, _hp, rec = _carve(ws, cell, L, T, S, H, V)
    dgx = xp
    D = V if k == 0 else H
    Wx, Wh, _bx, _bh = _layer_weights(params, offs, k, D, H, GH)
    gWx, gWh, gbx, gbh = _layer_weights(grads, offs, k, D, H, GH)
    if drop.shape[0] != 0:
        for t in range(T):
            for s in range(S):
                dx[t, s] *= drop[k, t, b0 + s]
    rec[:3] = 0.0  # the carries: dh_rec, dc, the GRU's
    # With panels, the forward's copy of W_h is done with: its room takes W_h^T's panels.
    pw, nc = panel_shape(S, GH, H) if panels else (0, 1)
    wtk = rec
    if pw:
        wtk = _carve_wt(ws, cell, L, T, S, H, V)[k].reshape((H // pw, GH, pw))
        _pack_panels_t(wtk, Wh)
    steps_backward(dgx[k], dgh[k], act[k], tc[k], c[k], hn[k], h[k], dx, rec, Wh, cell, relu,
                   0, T, wtk, pw, nc, _carve_pa(ws, cell, L, T, S, H, V))
    state_grads(dh0, dc0, rec, k, b0, cell)
    _weight_grads(gWx, gWh, gbx, gbh, dx, dgx[k], dgh[k], h[k], xin[k - 1] if k > 0 else
                  xin[0], x, b0, Wx, cell != K.CELL_GRU, k)


@njit(**KW)
def steps_forward(h, c, tc, act, hn, xp, hp, hpT, wt, k, Wh, bh, cell, relu, transposed, t0,
                  t1, pw, nc, pa):
    """Layer k's time steps [t0, t1) forward, its caches h, c (T + 1, S, H), tc, act, hn, xp
    (T, S, .) filled from xp's input projections; hp (S, GH) scratch; with `transposed`,
    h_prev @ W_h is computed as hpT (GH, S) = wt[k] @ h_prev^T from wt (L, GH, H), the layers'
    transposed copies of W_h (see stack_forward); with a panel width pw, from wt[k] holding W_h
    in column panels (GH // pw, H, pw), the panels' products (each in nc chunks of H, pa the
    room for those: _panel_dot) going through hpT's memory. Without panels pw = 0, nc = 1."""
    S, H, GH = h.shape[1], h.shape[2], hp.shape[1]
    nb = GH // pw if pw else 0
    panels = wt[k].reshape((GH * H,))[:nb * H * pw].reshape((nb, H, pw))
    scratch = hpT.reshape((GH * S,))[:nb * S * pw].reshape((nb, S, pw))
    for t in range(t0, t1):
        if pw:
            _panel_dot(hp, h[t], panels, nc, scratch, pa)
        elif transposed:
            np.dot(wt[k], h[t].T, hpT)
            _transpose16(hp, hpT)
        else:
            np.dot(h[t], Wh, hp)
        if cell == K.CELL_LSTM:
            K.lstm_step_forward(h[t + 1], c[t + 1], tc[t], act[t], xp[t], hp, c[t])
        elif cell == K.CELL_GRU:
            K.gru_step_forward(h[t + 1], act[t], hn[t], xp[t], hp, bh, h[t])
        else:
            K.rnn_step_forward(h[t + 1], xp[t], hp, relu)


@njit(**KW)
def steps_backward(dgx, dgh, act, tc, c, hn, h, dx, rec, Wh, cell, relu, t0, t1, wtk, pw, nc,
                   pa):
    """One layer's time steps t1 - 1 down to t0 backward: its pre-activation gradients dgx, dgh
    (T, S, GH) from its output gradient dx (T, S, H) and the carries in rec (4, S, H): dh_rec,
    dc, the GRU's carry, and room for dh_rec transposed (or, with a panel width pw, for the
    panels of dh_rec = dgh @ W_h^T, whose column panels wtk (H // pw, GH, pw) holds, each
    product in nc chunks of GH with pa their room: _panel_dot)."""
    S, H = dx.shape[1], dx.shape[2]
    dh_rec, dc, carry = rec[0], rec[1], rec[2]
    dh_rec_t = rec[3].reshape((H, S))
    nb, w = (H // pw, pw) if pw else (0, 1)
    scratch = rec[3].reshape((S * H,))[:nb * S * w].reshape((nb, S, w))
    for t in range(t1 - 1, t0 - 1, -1):
        if cell == K.CELL_LSTM:
            K.lstm_step_backward(dgx[t], dc, act[t], tc[t], c[t], dx[t], dh_rec)
        elif cell == K.CELL_GRU:
            K.gru_step_backward(dgx[t], dgh[t], carry, act[t], hn[t], h[t], dx[t], dh_rec)
        else:
            K.rnn_step_backward(dgx[t], h[t + 1], dx[t], dh_rec, relu)
        if pw:
            _panel_dot(dh_rec, dgh[t], wtk, nc, scratch, pa)
            continue
        # dh_rec = dgh[t] @ W_h^T, computed as its transpose W_h @ dgh[t]^T: OpenBLAS runs
        # that shape 1.2-1.7x faster for thin S (measured 64 vs 37 GFLOP/s, S=25, H=512).
        np.dot(Wh, dgh[t].T, dh_rec_t)
        _transpose16(dh_rec, dh_rec_t)


@njit(**KW)
def state_grads(dh0, dc0, rec, k, b0, cell):
    """Rows [b0, b0 + S) of layer k's initial-state gradients dh0, dc0 (L, B, H), from the
    carries in rec that steps_backward left after step 0."""
    S, H = rec.shape[1], rec.shape[2]
    for s in range(S):
        for j in range(H):
            dh0[k, b0 + s, j] = rec[0, s, j] + rec[2, s, j]
            if cell == K.CELL_LSTM:
                dc0[k, b0 + s, j] = rec[1, s, j]


@njit(**KW)
def dlogits(probs, y, b0, S, scale):
    """probs (N, V) in place: scale * (softmax - onehot(y[n // S, b0 + n % S])), 0 for a row
    whose target is padding (negative)."""
    for n in range(probs.shape[0]):
        p = probs[n]
        target = y[n // S, b0 + n % S]
        for v in range(probs.shape[1]):
            p[v] = p[v] * scale if target >= 0 else 0.0
        if target >= 0:
            p[target] -= scale


@njit(**KW)
def _weight_grads(gWx, gWh, gbx, gbh, dx, dgx, dgh, h_k, xin_below, x, b0, Wx, same_bias, k):
    """Layer k's weight and bias gradients from its pre-activation gradients dgx, dgh (T, S, GH),
    one product over all N positions each; dx (T, S, H) out: the gradient to the layer below."""
    T, S, GH = dgx.shape
    H = h_k.shape[2]
    N = T * S
    g2 = dgh.reshape((N, GH))
    np.dot(h_k[:T].reshape((N, H)).T, g2, gWh)
    _column_sums(gbh, g2)
    if same_bias:
        gbx[:] = gbh
    else:
        _column_sums(gbx, dgx.reshape((N, GH)))
    x2 = dgx.reshape((N, GH))
    if k == 0:
        for t in range(T):  # the one-hot product's gradient: a scatter-add onto rows x
            for s in range(S):
                row, d = gWx[x[t, b0 + s]], x2[t * S + s]
                for j in range(GH):
                    row[j] += d[j]
        return
    np.dot(xin_below.reshape((N, H)).T, x2, gWx)
    np.dot(x2, Wx.T, dx.reshape((N, H)))


@njit(**KW)
def panel_shape(S, K, N):
    """(w, nc) for an (S, K) x (K, N) product in panels of w columns, each panel's product cut
    along K into nc chunks (nc dividing K; when cut, each of at least PANEL_MIN_CHUNK rows), every
    call within SMALL_MNK: a panel of PANEL_WHOLE_MIN columns or more in one call where one
    fits (the widest), else the widest panel in the fewest chunks; (0, 1) where no width
    divides N or fits (the product then goes to BLAS whole)."""
    for w in PANEL_WIDTHS:
        if w >= PANEL_WHOLE_MIN and N % w == 0 and S * K * w <= SMALL_MNK:
            return w, 1
    for w in PANEL_WIDTHS:
        if N % w != 0:
            continue
        for nc in range(1, K + 1):
            if nc > 1 and K // nc < PANEL_MIN_CHUNK:
                break
            if K % nc == 0 and S * (K // nc) * w <= SMALL_MNK:
                return w, nc
    return 0, 1


@njit(**KW)
def _pack_panels(out, W):
    """out (N // w, K, w) = W (K, N) cut into column panels of width w, each contiguous."""
    w = out.shape[2]
    for b in range(out.shape[0]):
        for k in range(W.shape[0]):
            src, dst = W[k, b * w: (b + 1) * w], out[b, k]
            for j in range(w):
                dst[j] = src[j]


@njit(**KW)
def _pack_panels_t(out, W):
    """out (R // w, C, w) = W (R, C)'s transpose cut into column panels of width w:
    out[b, c, j] = W[b * w + j, c]."""
    w = out.shape[2]
    for b in range(out.shape[0]):
        blk = W[b * w: (b + 1) * w]
        for c in range(W.shape[1]):
            dst = out[b, c]
            for j in range(w):
                dst[j] = blk[j, c]


@njit(**KW)
def _panel_dot(out, a, panels, nc, scratch, pa):
    """out (S, N) = a (S, K) @ W, with W given as its column panels (N // w, K, w): into scratch
    (N // w, S, w), then copied into place. Each panel's product is one BLAS call, or with
    nc > 1 one for each of K's nc chunks, added in chunk order; pa (at least S * K + S * w
    floats) then holds a's chunks made contiguous (nc, S, K // nc) and one partial product."""
    S, Kall = a.shape
    nb, w = panels.shape[0], panels.shape[2]
    if nc == 1:
        for b in range(nb):
            np.dot(a, panels[b], scratch[b])
    else:
        kc = Kall // nc
        chunks = pa[:S * Kall].reshape((nc, S, kc))
        part = pa[S * Kall: S * Kall + S * w].reshape((S, w))
        for c in range(nc):
            for s in range(S):
                chunks[c, s] = a[s, c * kc: (c + 1) * kc]
        for b in range(nb):
            np.dot(chunks[0], panels[b, :kc], scratch[b])
            for c in range(1, nc):
                np.dot(chunks[c], panels[b, c * kc: (c + 1) * kc], part)
                acc = scratch[b]
                for s in range(S):
                    for j in range(w):
                        acc[s, j] += part[s, j]
    for s in range(S):
        row = out[s]
        for b in range(nb):
            src = scratch[b, s]
            for j in range(w):
                row[b * w + j] = src[j]


@njit(**KW)
def _sum(a):
    """The sum of a (n,) in float64, as four interleaved partial sums added in a fixed order
    (the fast-math flags do not allow reassociation, see kernels.FM)."""
    s0 = s1 = s2 = s3 = 0.0
    n = a.size - a.size % 4
    for i in range(0, n, 4):
        s0 += a[i]
        s1 += a[i + 1]
        s2 += a[i + 2]
        s3 += a[i + 3]
    for i in range(n, a.size):
        s0 += a[i]
    return (s0 + s1) + (s2 + s3)


@njit(**KW)
def _transpose16(out, a):
    """out (C, R) = a (R, C) transposed, 16 rows of a at a time: each pass writes whole
    64-byte lines of out, where a row-by-row copy writes one float of each line, and a wide
    tile's column writes, 4 KB apart when C is a power of two, evict each other."""
    R, C = a.shape
    for r0 in range(0, R - R % 16, 16):
        blk = a[r0: r0 + 16]
        for j in range(C):
            o = out[j, r0: r0 + 16]
            for i in range(16):
                o[i] = blk[i, j]
    for r in range(R - R % 16, R):
        for j in range(C):
            out[j, r] = a[r, j]


@njit(**KW)
def _transpose_tiled(out, a):
    """out (C, R) = a (R, C) transposed, in 32 x 32 tiles (a row-by-row copy writes a new cache
    line at every element)."""
    R, C = a.shape
    for r0 in range(0, R, 32):
        for c0 in range(0, C, 32):
            for r in range(r0, min(r0 + 32, R)):
                row = a[r]
                for j in range(c0, min(c0 + 32, C)):
                    out[j, r] = row[j]


@njit(**KW)
def _column_sums(out, a):
    """out (C,) = the sum of a's rows (R, C)."""
    out[:] = 0.0
    for r in range(a.shape[0]):
        row = a[r]
        for j in range(a.shape[1]):
            out[j] += row[j]
