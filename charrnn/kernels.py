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
import math

import numpy as np
from numba import njit, types
from numba.extending import overload

from .cells import CELLS

CELL_RNN, CELL_GRU, CELL_LSTM = (CELLS[c].code for c in ("rnn", "gru", "lstm"))
_BY_CODE = sorted(CELLS.values(), key=lambda c: c.code)
GATES = np.array([c.G for c in _BY_CODE])  # G, indexed by cell code
FOLD_BH = np.array([c.fold_bh for c in _BY_CODE])  # b_hh joins the input side (cells.Cell)

# Fast-math flags for the pointwise kernels: contraction to FMA and reciprocal tricks are fine,
# but not "no NaNs / no infinities", so a diverging run still shows up as NaN. Not "reassoc":
# with it a kernel compiled in this process and the same kernel loaded from numba's cache gave
# gradients that differed in the last bit (LSTM backward), which broke bit-exact resume in a new
# process; the loops vectorize without it (measured: no slower), reductions are written out.
FM = {"contract", "arcp", "nsz", "afn"}
KW = {"cache": True, "error_model": "numpy", "fastmath": FM, "nogil": True}  # no division checks


def tanh(x):
    """tanh; in compiled float32 code Cephes' tanhf (relative error < 1e-7, about libm's) in a
    form that vectorizes, where libm's tanh is a scalar call ~40x slower. Training and evaluation
    use it: with Eigen's faster rational form (error up to 4e-7, several ulps near +-1, where
    1 - tanh^2 is the gradient) float32 gradients were 8x further from float64 than PyTorch's
    (bench/grad_precision.py: 2.9e-6 against 3.5e-7; with this one 7.5e-7 against 5.3e-7).
    float64 code keeps math.tanh exactly."""
    return math.tanh(x)


def tanh_fast(x):
    """tanh for generation, where no gradient is taken: in float32 Eigen's rational form
    (|error| < 4e-7), a third cheaper than tanh; float64 code keeps math.tanh."""
    return math.tanh(x)


def sigmoid(x):
    """Logistic function; float32 code computes it as 0.5 + 0.5 * tanh(x / 2)."""
    return 1.0 / (1.0 + math.exp(-x))


def sigmoid_fast(x):
    """sigmoid from tanh_fast (generation)."""
    return 1.0 / (1.0 + math.exp(-x))


@njit(cache=True, error_model="numpy", inline="always")
def _tanh_fast_f32(x):
    # Eigen's float32 tanh: odd 13/6 rational polynomial on [-7.9053, 7.9053], where float32
    # tanh is already +-1.
    c = np.float32(7.90531110763549805)
    x = min(max(x, -c), c)
    x2 = x * x
    p = np.float32(-2.76076847742355e-16)
    p = p * x2 + np.float32(2.00018790482477e-13)
    p = p * x2 + np.float32(-8.60467152213735e-11)
    p = p * x2 + np.float32(5.12229709037114e-08)
    p = p * x2 + np.float32(1.48572235717979e-05)
    p = p * x2 + np.float32(6.37261928875436e-04)
    p = p * x2 + np.float32(4.89352455891786e-03)
    q = np.float32(1.19825839466702e-06)
    q = q * x2 + np.float32(1.18534705686654e-04)
    q = q * x2 + np.float32(2.26843463243900e-03)
    q = q * x2 + np.float32(4.89352518554385e-03)
    return x * p / q


@njit(cache=True, error_model="numpy", inline="always")
def _sigmoid_f32(x):
    half = np.float32(0.5)
    return half + half * _tanh_f32(half * x)


@njit(cache=True, error_model="numpy", inline="always")
def _sigmoid_fast_f32(x):
    half = np.float32(0.5)
    return half + half * _tanh_fast_f32(half * x)


# 2^n for n in [-126, 127] (normal float32 range), indexed by n + 126: the exponent part of exp.
_POW2_F32 = np.ldexp(np.float32(1.0), np.arange(-126, 128)).astype(np.float32)


def exp(x):
    """exp; in compiled float32 code Cephes' expf (range reduction to [-ln2/2, ln2/2], degree-6
    polynomial, 2^n from a table: relative error < 1e-7 on [-87.3, 88]) that vectorizes, where
    libm's expf is a scalar call; inputs are clamped to that range (so exp(-200) gives 1.2e-38,
    not 0). float64 code keeps math.exp exactly."""
    return math.exp(x)


@njit(cache=True, error_model="numpy", inline="always")
def _exp_f32(x):
    x = min(max(x, np.float32(-87.3)), np.float32(88.0))
    n = math.floor(x * np.float32(1.44269504088896341) + np.float32(0.5))
    r = x - n * np.float32(0.693359375) - n * np.float32(-2.12194440e-4)
    p = np.float32(1.9875691500e-4)
    p = p * r + np.float32(1.3981999507e-3)
    p = p * r + np.float32(8.3334519073e-3)
    p = p * r + np.float32(4.1665795894e-2)
    p = p * r + np.float32(1.6666665459e-1)
    p = p * r + np.float32(5.0000001201e-1)
    p = p * r * r + r + np.float32(1.0)
    return p * _POW2_F32[np.int32(n) + 126]


@njit(cache=True, error_model="numpy", inline="always")
def _tanh_f32(x):
    # Cephes' tanhf: an odd polynomial below 0.625, 1 - 2 / (exp(2|x|) + 1) above (each within
    # about an ulp; measured max relative error 8e-8), both computed and one selected, so the
    # loop stays branch-free and vectorizes.
    a = min(abs(x), np.float32(10.0))  # rounds to +-1 from about 9.01; clamped, exp cannot overflow
    z = x * x
    p = np.float32(-5.70498872745e-3)
    p = p * z + np.float32(2.06390887954e-2)
    p = p * z + np.float32(-5.37397155531e-2)
    p = p * z + np.float32(1.33314422036e-1)
    p = p * z + np.float32(-3.33332819422e-1)
    small = p * z * x + x
    big = np.float32(1.0) - np.float32(2.0) / (_exp_f32(a + a) + np.float32(1.0))
    big = big if x >= np.float32(0.0) else -big
    return small if a < np.float32(0.625) else big


def _is_f32(x):
    return isinstance(x, types.Float) and x.bitwidth == 32


@overload(tanh, inline="always")
def _tanh_impl(x):
    return (lambda x: _tanh_f32(x)) if _is_f32(x) else (lambda x: math.tanh(x))


@overload(tanh_fast, inline="always")
def _tanh_fast_impl(x):
    return (lambda x: _tanh_fast_f32(x)) if _is_f32(x) else (lambda x: math.tanh(x))


@overload(exp, inline="always")
def _exp_impl(x):
    return (lambda x: _exp_f32(x)) if _is_f32(x) else (lambda x: math.exp(x))


@overload(sigmoid, inline="always")
def _sigmoid_impl(x):
    return (lambda x: _sigmoid_f32(x)) if _is_f32(x) else (lambda x: 1.0 / (1.0 + math.exp(-x)))


@overload(sigmoid_fast, inline="always")
def _sigmoid_fast_impl(x):
    return (lambda x: _sigmoid_fast_f32(x)) if _is_f32(x) else \
        (lambda x: 1.0 / (1.0 + math.exp(-x)))


@njit(cache=True, error_model="numpy", inline="always")
def _th(x, fast):
    """tanh, or tanh_fast where fast (a constant at every call site, folded away)."""
    return tanh_fast(x) if fast else tanh(x)


@njit(cache=True, error_model="numpy", inline="always")
def _sg(x, fast):
    return sigmoid_fast(x) if fast else sigmoid(x)


# ----------------------------------------------------------------------------------------------
# Cell steps. One call advances all B rows by one time step. Constants take the arrays' dtype
# (one = h.dtype.type(1)) so that float32 code stays float32 and vectorizes.
#
# Every inner loop indexes views of one gate block with the bare loop variable (g[j], not
# a[2 * H + j]): numba cannot prove a computed index non-negative, and the wraparound select it
# adds for negative indices keeps LLVM from vectorizing cleanly (measured: LSTM forward step at
# B=25, H=128 takes 15.2 us with computed indices, 5.8 us with block views).

@njit(**KW, inline="always")
def _lstm_gates(a, x, p, H, fast):
    """a (4H,) = activated gates i, f, g, o of the pre-activations x + p (a may alias x). One
    simple loop per gate block: LLVM vectorizes these, where a single fused loop touching
    ten arrays stays scalar (measured 43 vs 137 us at B=50, H=128)."""
    a_if, x_if, p_if = a[:2 * H], x[:2 * H], p[:2 * H]
    for k in range(2 * H):
        a_if[k] = _sg(x_if[k] + p_if[k], fast)
    a_g, x_g, p_g = a[2 * H:3 * H], x[2 * H:3 * H], p[2 * H:3 * H]
    for k in range(H):
        a_g[k] = _th(x_g[k] + p_g[k], fast)
    a_o, x_o, p_o = a[3 * H:], x[3 * H:], p[3 * H:]
    for k in range(H):
        a_o[k] = _sg(x_o[k] + p_o[k], fast)


@njit(**KW, inline="always")
def _lstm_row(h, c, t, a, x, p, c_prev, H, fast):
    """One row of the LSTM step, the cell's math written once (training and generation):
    a (4H,) = activated gates of x + p; c = f*c_prev + i*g; t = tanh(c); h = o*t. Outputs may
    alias inputs element for element (generation passes t = h, c = c_prev, a = x)."""
    _lstm_gates(a, x, p, H, fast)
    i, f, g, o = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]
    for j in range(H):
        cn = f[j] * c_prev[j] + i[j] * g[j]
        tj = _th(cn, fast)
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
        _lstm_row(h[b], c[b], tc[b], act[b], xp[b], hp[b], c_prev[b], H, False)


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
def _gru_row(h, a, hn, x, p, bh, h_prev, H, fast):
    """One row of the GRU step, written once: a (3H,) = r, z, n; hn (H,) = W_hn h_prev + b_hn;
    x (3H,): input side with b_ih; p (3H,): h_prev @ W_h; bh (3H,) = b_hh. Outputs may alias
    inputs element for element (generation passes a = x, hn = p's n block, h = h_prev)."""
    one = h.dtype.type(1.0)
    b_rz, b_n = bh[:2 * H], bh[2 * H:]
    a_rz, x_rz, p_rz = a[:2 * H], x[:2 * H], p[:2 * H]
    for k in range(2 * H):  # r and z: separate simple loops vectorize (see LSTM)
        a_rz[k] = _sg(x_rz[k] + p_rz[k] + b_rz[k], fast)
    p_n, x_n = p[2 * H:], x[2 * H:]
    for j in range(H):
        hn[j] = p_n[j] + b_n[j]
    r, z, n = a[:H], a[H:2 * H], a[2 * H:]
    for j in range(H):
        n[j] = _th(x_n[j] + r[j] * hn[j], fast)
    for j in range(H):
        h[j] = (one - z[j]) * n[j] + z[j] * h_prev[j]


@njit(**KW)
def gru_step_forward(h, act, hn, xp, hp, bh, h_prev):
    """h (B, H) out; act (B, 3H) out: r, z, n; hn (B, H) out: W_hn h_prev + b_hn, kept for
    backward; xp (B, 3H): input projection with b_ih; hp (B, 3H): h_prev @ W_h; bh (3H,)."""
    B, H = h.shape
    for b in range(B):
        _gru_row(h[b], act[b], hn[b], xp[b], hp[b], bh, h_prev[b], H, False)


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
def _rnn_row(h, x, p, relu, H, fast):
    """One row of the vanilla RNN step, written once: h = act(x + p)."""
    zero = h.dtype.type(0.0)
    for j in range(H):
        a = x[j] + p[j]
        # relu as an explicit compare-select, which LLVM vectorizes like the tanh path
        h[j] = (a if a > zero else zero) if relu else _th(a, fast)  # noqa: FURB136


@njit(**KW)
def rnn_step_forward(h, xp, hp, relu):
    """h (B, H) out; xp (B, H): input projection with both biases; hp (B, H): h_prev @ W_h."""
    B, H = h.shape
    for b in range(B):
        _rnn_row(h[b], xp[b], hp[b], relu, H, False)


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


# ----------------------------------------------------------------------------------------------
# Optimizer updates over the flat parameter buffer (PyTorch's formulas, step counted from 1).

@njit(cache=True, error_model="numpy")
def sum_squares(a):
    """The sum of a's squares, accumulated in float64."""
    total = 0.0
    for k in range(a.size):
        total += float(a[k]) * a[k]
    return total


@njit(cache=True, error_model="numpy")
def adam_update(params, m, v, grads, lr, beta1, beta2, eps, weight_decay, decoupled, step):
    """Adam (decoupled=False: L2 added to the gradient, as torch.optim.Adam) or AdamW."""
    bc1 = 1.0 - beta1 ** step
    bc2 = 1.0 - beta2 ** step
    for k in range(params.size):
        g = grads[k]
        if decoupled:
            params[k] -= lr * weight_decay * params[k]
        elif weight_decay != 0.0:
            g += weight_decay * params[k]
        m[k] = beta1 * m[k] + (1.0 - beta1) * g
        v[k] = beta2 * v[k] + (1.0 - beta2) * g * g
        params[k] -= lr * (m[k] / bc1) / (math.sqrt(v[k] / bc2) + eps)


@njit(cache=True, error_model="numpy")
def sgd_update(params, buf, grads, lr, momentum, nesterov, weight_decay, step):
    """SGD with optional momentum and Nesterov, as torch.optim.SGD (dampening 0)."""
    for k in range(params.size):
        g = grads[k] + weight_decay * params[k]
        if momentum != 0.0:
            buf[k] = g if step == 1 else momentum * buf[k] + g
            g = g + momentum * buf[k] if nesterov else buf[k]
        params[k] -= lr * g


@njit(cache=True, error_model="numpy")
def rmsprop_update(params, sq, buf, grads, lr, alpha, eps, momentum, weight_decay):
    """RMSprop as torch.optim.RMSprop (not centered)."""
    for k in range(params.size):
        g = grads[k] + weight_decay * params[k]
        sq[k] = alpha * sq[k] + (1.0 - alpha) * g * g
        step = g / (math.sqrt(sq[k]) + eps)
        if momentum != 0.0:
            buf[k] = momentum * buf[k] + step
            step = buf[k]
        params[k] -= lr * step


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
        _lstm_row(h, c, h, pre, pre, hp, c, H, True)
    elif cell == CELL_GRU:
        a, hn, h_prev = sc[:3 * H], sc[3 * H:4 * H], sc[4 * H:5 * H]
        h_prev[:] = h
        _gru_row(h, a, hn, pre, hp, bh, h_prev, H, True)
    else:
        _rnn_row(h, pre, hp, relu, H, True)


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
def step_forward_batch(hs, cs, pre, hp, sc, params, offs, x, cell, relu, H, V):
    """Advance K streams by one input id each. hs, cs (L, K, H) in/out; pre, hp (K, G*H):
    scratch; x (K,) ids."""
    L, K = hs.shape[0], hs.shape[1]
    GH = pre.shape[1]
    for k in range(L):
        Wx = _view(params, offs[4 * k], V if k == 0 else H, GH)
        Wh = _view(params, offs[4 * k + 1], H, GH)
        bx = params[offs[4 * k + 2]: offs[4 * k + 2] + GH]
        bh = params[offs[4 * k + 3]: offs[4 * k + 3] + GH]
        if k > 0:
            np.dot(hs[k - 1], Wx, pre)
        np.dot(hs[k], Wh, hp)
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
def generate_batch(out, hs, cs, params, offs, x, uniforms, cell, relu, H, V,
                   temperature, top_k, top_p):
    """Generate out.shape[1] ids for each of K streams (out (K, n)), feeding each back in.
    x (K,) in/out: the pending input ids; hs, cs (L, K, H) carry over between calls;
    uniforms (K, n) in [0, 1), stream s drawing from its own row."""
    K, n = out.shape
    L = hs.shape[0]
    GH = GATES[cell] * H
    pre = np.empty((K, GH), params.dtype)
    hp = np.empty((K, GH), params.dtype)
    sc = np.empty((K, 5 * H), params.dtype)  # _cell_update's GRU scratch
    logits = np.empty((K, V), params.dtype)
    probs = np.empty(V, np.float64)
    order = np.empty(V, np.int64)
    Wd = _view(params, offs[4 * L], H, V)
    bd = params[offs[4 * L + 1]: offs[4 * L + 1] + V]
    for i in range(n):
        step_forward_batch(hs, cs, pre, hp, sc, params, offs, x, cell, relu, H, V)
        np.dot(hs[L - 1], Wd, logits)
        for s in range(K):
            row = logits[s]
            for v in range(V):
                row[v] += bd[v]
            x[s] = pick(row, probs, order, uniforms[s, i], temperature, top_k, top_p)
            out[s, i] = x[s]


@njit(**KW)
def advance_batch(hs, cs, params, offs, ids, cell, relu, H, V):
    """Feed ids (n, K) through K streams, updating hs, cs (L, K, H); no output (priming)."""
    K = hs.shape[1]
    GH = GATES[cell] * H
    pre = np.empty((K, GH), params.dtype)
    hp = np.empty((K, GH), params.dtype)
    sc = np.empty((K, 5 * H), params.dtype)  # _cell_update's GRU scratch
    for i in range(ids.shape[0]):
        step_forward_batch(hs, cs, pre, hp, sc, params, offs, ids[i], cell, relu, H, V)
