"""The optimizer's passes over the flat buffer: today's kernels against the float64 ones they
replaced (kept here, compiled the same way, as the reference), in one process.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/optimizer_pass.py [--size 873000]

The default size is LSTM 2x256's parameter count at the bundled corpus's vocabulary.
"""
import argparse
import math
import os
import sys

import numpy as np
from numba import njit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from charrnn import updates as U
from charrnn.optim import Optimizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from profile_step import per_call_ms


@njit(error_model="numpy")
def sum_squares_one_chain(a):  # before 2026-12-01
    total = 0.0
    for k in range(a.size):
        total += float(a[k]) * a[k]
    return total


@njit(error_model="numpy")
def adam_float64_math(params, m, v, grads, lr, beta1, beta2, eps, step):  # before 2026-12-01
    bc1 = 1.0 - beta1 ** step
    bc2 = 1.0 - beta2 ** step
    for k in range(params.size):
        g = grads[k]
        m[k] = beta1 * m[k] + (1.0 - beta1) * g
        v[k] = beta2 * v[k] + (1.0 - beta2) * g * g
        params[k] -= lr * (m[k] / bc1) / (math.sqrt(v[k] / bc2) + eps)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=873_000)
    n = ap.parse_args().size
    rng = np.random.default_rng(0)
    p, g = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    m, v = np.zeros(n, np.float32), np.zeros(n, np.float32)
    opt = Optimizer("adam", n)
    rows = [("Adam, float32 math (now)", lambda: opt.step(p, g, 1e-3)),
            ("Adam, float64 math (before)",
             lambda: adam_float64_math(p, m, v, g, 1e-3, 0.9, 0.999, 1e-8, 1)),
            ("sum of squares, 8 lanes (now)", lambda: U.sum_squares(g)),
            ("sum of squares, one chain (before)", lambda: sum_squares_one_chain(g))]
    print(f"{n:,} float32 parameters, one thread; ms per pass, best of 3 runs of 0.5 s\n")
    print("| pass | ms |\n|---|---|")
    for name, f in rows:
        print(f"| {name} | {min(per_call_ms(f) for _ in range(3)):.3f} |")


if __name__ == "__main__":
    main()
