"""Float32 math that vectorizes: tanh, sigmoid and exp for the compiled kernels.

Each function is a plain Python function (exact math, used as-is by float64 code and with
NUMBA_DISABLE_JIT=1) overloaded for numba: in float32 code it compiles to a polynomial form that
LLVM vectorizes, where libm's tanhf and expf are scalar calls ~40x slower. KW is the
options every pointwise kernel compiles with.
"""
import math

import numpy as np
from numba import njit, types
from numba.extending import overload

# Fast-math flags for the pointwise kernels: contraction to FMA and reciprocal tricks are fine,
# but not "no NaNs / no infinities", so a diverging run still shows up as NaN. Not "reassoc":
# with it a kernel compiled in this process and the same kernel loaded from numba's cache gave
# gradients that differed in the last bit (LSTM backward), which broke bit-exact resume in a new
# process; the loops vectorize without it (measured: no slower), reductions are written out.
FM = {"contract", "arcp", "nsz", "afn"}
KW = {"cache": True, "error_model": "numpy", "fastmath": FM, "nogil": True}  # no division checks


def tanh(x):
    """tanh; in compiled float32 code Eigen's rational approximation (|error| < 4e-7) that
    vectorizes, where libm's tanh is a scalar call ~40x slower. float64 code keeps math.tanh
    exactly. (Cephes' tanhf, within 1e-7, made float32 gradients as close to float64 as
    PyTorch's but trained 8-12% slower and learned no better: README, "How it works".)"""
    return math.tanh(x)


def sigmoid(x):
    """Logistic function; float32 code computes it as 0.5 + 0.5 * tanh(x / 2)."""
    return 1.0 / (1.0 + math.exp(-x))


@njit(cache=True, error_model="numpy", inline="always")
def _tanh_f32(x):
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


def _is_f32(x):
    return isinstance(x, types.Float) and x.bitwidth == 32


@overload(tanh, inline="always")
def _tanh_impl(x):
    return (lambda x: _tanh_f32(x)) if _is_f32(x) else (lambda x: math.tanh(x))


@overload(exp, inline="always")
def _exp_impl(x):
    return (lambda x: _exp_f32(x)) if _is_f32(x) else (lambda x: math.exp(x))


@overload(sigmoid, inline="always")
def _sigmoid_impl(x):
    return (lambda x: _sigmoid_f32(x)) if _is_f32(x) else (lambda x: 1.0 / (1.0 + math.exp(-x)))
