"""Compiled kernels: pure functions of arrays and numbers, in forward/backward pairs.

Sizes, named once: T = time steps, B = batch rows, H = hidden size, G = gate blocks per cell
(RNN 1, GRU 3, LSTM 4), D = a layer's input size, V = vocabulary size, N = T*B positions.

Conventions (PyTorch's nn.RNN / nn.GRU / nn.LSTM, so weights map one to one):
  RNN : h' = act(W_ih x + b_ih + W_hh h + b_hh)
  LSTM: gates in order i, f, g, o;  i,f,o = sigmoid, g = tanh;  c' = f*c + i*g;  h' = o*tanh(c')
  GRU : gates in order r, z, n;  r = sigmoid(W_ir x + b_ir + W_hr h + b_hr),  z likewise,
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn));  h' = (1 - z) * n + z * h
We store weights transposed, W_x (D, G*H) and W_h (H, G*H), so that a batch times a weight is a
plain row-major GEMM and the one-hot input product is a row gather of W_x.

Arguments come in the order outputs, caches, inputs, weights, sizes. Backward kernels write the
gradient of the pre-activations; stack.py turns those into weight gradients with one large GEMM
per weight, outside the time loop. Kernels never allocate in the time loop, print, or
draw random numbers: randomness comes in as arrays of uniforms from the caller.
"""
import numpy as np
from numba import njit

from .cells import CELLS
from .fastmath import KW, sigmoid, tanh

CELL_RNN, CELL_GRU, CELL_LSTM = (CELLS[c].code for c in ("rnn", "gru", "lstm"))
_BY_CODE = sorted(CELLS.values(), key=lambda c: c.code)
GATES = np.array([c.G for c in _BY_CODE])  # G, indexed by cell code
FOLD_BH = np.array([c.fold_bh for c in _BY_CODE])  # b_hh joins the input side (cells.Cell)


# ----------------------------------------------------------------------------------------------
# Cell steps. One call advances all B rows by one time step. Constants take the arrays' dtype
# (one = h.dtype.type(1)) so that float32 code stays float32 and vectorizes.
#
# Every inner loop indexes views of one gate block with the bare loop variable (g[j], not
# a[2 * H + j]): numba cannot prove a computed index non-negative, and the wraparound select it
# adds for negative indices keeps LLVM from vectorizing cleanly (measured: LSTM forward step at
# B=25, H=128 takes 15.2 us with computed indices, 5.8 us with block views).

@njit(**KW, inline="always")
def _lstm_gates(a, x, p, H):
    """a (4H,) = activated gates i, f, g, o of the pre-activations x + p (a may alias x). One
    simple loop per gate block: LLVM vectorizes these, where a single fused loop touching
    ten arrays stays scalar (measured 43 vs 137 us at B=50, H=128)."""
    a_if, x_if, p_if = a[:2 * H], x[:2 * H], p[:2 * H]
    for k in range(2 * H):
        a_if[k] = sigmoid(x_if[k] + p_if[k])
    a_g, x_g, p_g = a[2 * H:3 * H], x[2 * H:3 * H], p[2 * H:3 * H]
    for k in range(H):
        a_g[k] = tanh(x_g[k] + p_g[k])
    a_o, x_o, p_o = a[3 * H:], x[3 * H:], p[3 * H:]
    for k in range(H):
        a_o[k] = sigmoid(x_o[k] + p_o[k])


@njit(**KW, inline="always")
def _lstm_row(h, c, t, a, x, p, c_prev, H):
    """One row of the LSTM step, the cell's math written once (training and generation):
    a (4H,) = activated gates of x + p; c = f*c_prev + i*g; t = tanh(c); h = o*t. Outputs may
    alias inputs element for element (generation passes t = h, c = c_prev, a = x)."""
    _lstm_gates(a, x, p, H)
    i, f, g, o = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]
    for j in range(H):
        cn = f[j] * c_prev[j] + i[j] * g[j]
        tj = tanh(cn)
        c[j] = cn
        t[j] = tj
        h[j] = o[j] * tj


@njit(**KW)
def lstm_step_forward(h, c, tc, act, xp, hp, c_prev):
    """h, c (B, H) out; tc (B, H) out: tanh(c), kept for backward; act (B, 4H) out: activated
    gates i, f, g, o; xp (B, 4H): input projection with both biases; hp (B, 4H): h_prev @ W_h;
    c_prev (B, H)."""
    B, H = h.shape
    for b in range(B):
        _lstm_row(h[b], c[b], tc[b], act[b], xp[b], hp[b], c_prev[b], H)


@njit(**KW)
def lstm_step_backward(dpre, dc, act, tc, c_prev, dh_out, dh_rec):
    """dpre (B, 4H) out: gradient of the gate pre-activations; dc (B, H) in: dL/dc_t, out:
    dL/dc_{t-1}; act (B, 4H), tc = tanh(c_t) (B, H), c_prev (B, H): forward caches; dh_out
    (B, H): gradient from above; dh_rec (B, H): gradient through the next step's W_h product."""
    B, H = tc.shape
    one = tc.dtype.type(1.0)
    for b in range(B):
        a, d = act[b], dpre[b]
        i, f, g, o = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]
        di, df, dg, do = d[:H], d[H:2 * H], d[2 * H:3 * H], d[3 * H:]
        dcb, tb, cp, dho, dhr = dc[b], tc[b], c_prev[b], dh_out[b], dh_rec[b]
        for j in range(H):
            dh = dho[j] + dhr[j]
            t = tb[j]
            dcc = dcb[j] + dh * o[j] * (one - t * t)
            di[j] = dcc * g[j] * i[j] * (one - i[j])
            df[j] = dcc * cp[j] * f[j] * (one - f[j])
            dg[j] = dcc * i[j] * (one - g[j] * g[j])
            do[j] = dh * t * o[j] * (one - o[j])
            dcb[j] = dcc * f[j]


@njit(**KW, inline="always")
def _gru_row(h, a, hn, x, p, bh, h_prev, H):
    """One row of the GRU step, written once: a (3H,) = r, z, n; hn (H,) = W_hn h_prev + b_hn;
    x (3H,): input side with b_ih; p (3H,): h_prev @ W_h; bh (3H,) = b_hh. Outputs may alias
    inputs element for element (generation passes a = x, hn = p's n block, h = h_prev)."""
    one = h.dtype.type(1.0)
    b_rz, b_n = bh[:2 * H], bh[2 * H:]
    a_rz, x_rz, p_rz = a[:2 * H], x[:2 * H], p[:2 * H]
    for k in range(2 * H):  # r and z: separate simple loops vectorize (see LSTM)
        a_rz[k] = sigmoid(x_rz[k] + p_rz[k] + b_rz[k])
    p_n, x_n = p[2 * H:], x[2 * H:]
    for j in range(H):
        hn[j] = p_n[j] + b_n[j]
    r, z, n = a[:H], a[H:2 * H], a[2 * H:]
    for j in range(H):
        n[j] = tanh(x_n[j] + r[j] * hn[j])
    for j in range(H):
        h[j] = (one - z[j]) * n[j] + z[j] * h_prev[j]


@njit(**KW)
def gru_step_forward(h, act, hn, xp, hp, bh, h_prev):
    """h (B, H) out; act (B, 3H) out: r, z, n; hn (B, H) out: W_hn h_prev + b_hn, kept for
    backward; xp (B, 3H): input projection with b_ih; hp (B, 3H): h_prev @ W_h; bh (3H,)."""
    B, H = h.shape
    for b in range(B):
        _gru_row(h[b], act[b], hn[b], xp[b], hp[b], bh, h_prev[b], H)


@njit(**KW)
def gru_step_backward(dgx, dgh, dh_carry, act, hn, h_prev, dh_out, dh_rec):
    """dgx (B, 3H) out: gradient of the input-side pre-activations; dgh (B, 3H) out: of the
    hidden-side ones (they differ in the n block, where r multiplies W_hn h + b_hn); dh_carry
    (B, H) in: the direct z*h path from the next step, out: the one to the previous step."""
    B, H = hn.shape
    one = hn.dtype.type(1.0)
    for b in range(B):
        a, gx, gh = act[b], dgx[b], dgh[b]
        r, z, n = a[:H], a[H:2 * H], a[2 * H:]
        xr, xz, xn = gx[:H], gx[H:2 * H], gx[2 * H:]
        hr, hz, hnn = gh[:H], gh[H:2 * H], gh[2 * H:]
        hnb, hpv, dho, dhr, carry = hn[b], h_prev[b], dh_out[b], dh_rec[b], dh_carry[b]
        for j in range(H):
            dh = dho[j] + dhr[j] + carry[j]
            dn = dh * (one - z[j]) * (one - n[j] * n[j])
            dr = dn * hnb[j] * r[j] * (one - r[j])
            dz = dh * (hpv[j] - n[j]) * z[j] * (one - z[j])
            xr[j] = dr
            xz[j] = dz
            xn[j] = dn
            hr[j] = dr
            hz[j] = dz
            hnn[j] = dn * r[j]
            carry[j] = dh * z[j]


@njit(**KW, inline="always")
def _rnn_row(h, x, p, relu, H):
    """One row of the vanilla RNN step, written once: h = act(x + p)."""
    zero = h.dtype.type(0.0)
    for j in range(H):
        a = x[j] + p[j]
        # relu as an explicit compare-select, which LLVM vectorizes like the tanh path
        h[j] = (a if a > zero else zero) if relu else tanh(a)  # noqa: FURB136


@njit(**KW)
def rnn_step_forward(h, xp, hp, relu):
    """h (B, H) out; xp (B, H): input projection with both biases; hp (B, H): h_prev @ W_h."""
    B, H = h.shape
    for b in range(B):
        _rnn_row(h[b], xp[b], hp[b], relu, H)


@njit(**KW)
def rnn_step_backward(dpre, h, dh_out, dh_rec, relu):
    """dpre (B, H) out; h (B, H): this step's output (its derivative needs nothing else)."""
    B, H = h.shape
    zero, one = h.dtype.type(0.0), h.dtype.type(1.0)
    for b in range(B):
        d, hb, dho, dhr = dpre[b], h[b], dh_out[b], dh_rec[b]
        for j in range(H):
            dh = dho[j] + dhr[j]
            hv = hb[j]
            d[j] = (dh if hv > zero else zero) if relu else dh * (one - hv * hv)
