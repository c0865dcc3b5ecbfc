"""Compiled optimizer updates over the flat parameter buffer (optim.py drives them).

PyTorch's formulas, step counted from 1; moments in the parameters' layout, so each update is one
loop. A few flops per parameter, memory-bound; compiled without fast-math.
"""
import math

from numba import njit


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
