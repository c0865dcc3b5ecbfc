"""Compiled optimizer updates over the flat parameter buffer (optim.py drives them).

PyTorch's formulas, step counted from 1; moments in the parameters' layout, so each update is one
loop. A few flops per parameter, memory-bound; compiled without fast-math.
"""
import math

import numpy as np
from numba import njit

LANES = 8  # independent partial sums in sum_squares


@njit(cache=True, error_model="numpy")
def sum_squares(a):
    """The sum of a's squares, accumulated in float64 in LANES partial sums (element k goes to
    lane k % LANES, the last a.size % LANES to lane 0) added in a fixed order: the same bits every time, and no chain of dependent
    additions (one chain took 3 ms for the 0.9 M gradients of LSTM 2x256, longer than Adam)."""
    acc = np.zeros(LANES)
    n = a.size - a.size % LANES
    for k in range(0, n, LANES):
        for j in range(LANES):
            x = np.float64(a[k + j])
            acc[j] += x * x
    for k in range(n, a.size):
        x = np.float64(a[k])
        acc[0] += x * x
    total = 0.0
    for j in range(LANES):
        total += acc[j]
    return total


@njit(cache=True, error_model="numpy")
def adam_update(params, m, v, grads, step_size, one_minus_beta1, beta2, one_minus_beta2, eps,
                bc2_sqrt, decay, decoupled):
    """Adam (decoupled=False: L2 added to the gradient, as torch.optim.Adam) or AdamW, in the
    parameters' precision (every scalar comes cast to that dtype from optim.py, so float32 runs
    in float32, as PyTorch's does, and vectorizes), with torch.optim.Adam's formulas in its order:
    m = m + (1 - b1)(g - m); v = v b2 + ((1 - b2) g) g; p = p - (step_size m) / (sqrt(v) /
    sqrt(bc2) + eps). Not bit for bit: PyTorch's vectorized lerp fuses a multiply-add, which
    numba (no fast-math) does not. decay: 1 - lr wd for AdamW (p *= decay first), wd for Adam's
    L2 (g += wd p)."""
    for k in range(params.size):
        g = grads[k]
        p = params[k]
        if decoupled:
            p = p * decay
        elif decay != 0:
            g = g + decay * p
        mk = m[k] + one_minus_beta1 * (g - m[k])
        vk = v[k] * beta2 + one_minus_beta2 * g * g
        m[k] = mk
        v[k] = vk
        params[k] = p - (step_size * mk) / (np.sqrt(vk) / bc2_sqrt + eps)


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
