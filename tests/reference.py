"""A naive float64 reference written straight from PyTorch's documented formulas.

It shares nothing with charrnn's kernels: weights in PyTorch layout (G*H, D), the input as an
explicit one-hot matrix product, one gate at a time, one row at a time.
"""
import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def cell_step(cell, W, k, x, h, c, relu=False):
    """One step of layer k for one row: x (D,), h (H,), c (H,) -> (h', c')."""
    Wi, Wh = W[f"rnn.weight_ih_l{k}"], W[f"rnn.weight_hh_l{k}"]
    bi, bh = W[f"rnn.bias_ih_l{k}"], W[f"rnn.bias_hh_l{k}"]
    H = Wh.shape[1]
    blk = lambda M, j: M[j * H:(j + 1) * H]
    if cell == "lstm":
        gi = [blk(Wi, j) @ x + blk(bi, j) + blk(Wh, j) @ h + blk(bh, j) for j in range(4)]
        i, f, g, o = sigmoid(gi[0]), sigmoid(gi[1]), np.tanh(gi[2]), sigmoid(gi[3])
        c2 = f * c + i * g
        return o * np.tanh(c2), c2
    if cell == "gru":
        r = sigmoid(blk(Wi, 0) @ x + blk(bi, 0) + blk(Wh, 0) @ h + blk(bh, 0))
        z = sigmoid(blk(Wi, 1) @ x + blk(bi, 1) + blk(Wh, 1) @ h + blk(bh, 1))
        n = np.tanh(blk(Wi, 2) @ x + blk(bi, 2) + r * (blk(Wh, 2) @ h + blk(bh, 2)))
        return (1 - z) * n + z * h, c
    a = Wi @ x + bi + Wh @ h + bh
    return (np.maximum(a, 0) if relu else np.tanh(a)), c


def forward(W, cell, layers, x, h0, c0, relu=False):
    """Logits (T, B, V), final h and c (L, B, H), for ids x (T, B)."""
    V = W["decoder.weight"].shape[0]
    T, B = x.shape
    h, c = h0.astype(np.float64).copy(), c0.astype(np.float64).copy()
    logits = np.zeros((T, B, V))
    for t in range(T):
        for b in range(B):
            inp = np.eye(V)[x[t, b]]
            for k in range(layers):
                h[k, b], c[k, b] = cell_step(cell, W, k, inp, h[k, b], c[k, b], relu)
                inp = h[k, b]
            logits[t, b] = W["decoder.weight"] @ inp + W["decoder.bias"]
    return logits, h, c


def loss(logits, y):
    """Mean cross-entropy of targets y (T, B)."""
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -np.take_along_axis(logp, y[..., None], -1).mean()
