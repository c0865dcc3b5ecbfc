"""Each optimizer against its textbook formula (written here independently), plus clipping and
learning-rate schedules."""
import math

import numpy as np
import pytest

from charrnn.config import TrainConfig
from charrnn.optim import Optimizer, clip_gradients, learning_rate


def run(opt, p, grads, lr):
    for g in grads:
        opt.step(p, g.copy(), lr)
    return p


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=7), [rng.normal(size=7) for _ in range(5)]


@pytest.mark.parametrize("wd,decoupled", [(0.0, False), (0.1, False), (0.1, True)])
def test_adam_and_adamw(data, wd, decoupled):
    p0, grads = data
    got = run(Optimizer("adamw" if decoupled else "adam", 7, weight_decay=wd, dtype=np.float64),
              p0.copy(), grads, 0.01)
    p, m, v = p0.copy(), np.zeros(7), np.zeros(7)
    for t, g in enumerate(grads, 1):
        if decoupled:
            p = p - 0.01 * wd * p
        else:
            g = g + wd * p
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        p = p - 0.01 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    np.testing.assert_allclose(got, p, rtol=1e-12)


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_sgd(data, momentum, nesterov):
    p0, grads = data
    got = run(Optimizer("sgd", 7, momentum, nesterov, 0.01, np.float64), p0.copy(), grads, 0.1)
    p, buf = p0.copy(), None
    for g in grads:
        g = g + 0.01 * p
        if momentum:
            buf = g if buf is None else momentum * buf + g
            g = g + momentum * buf if nesterov else buf
        p = p - 0.1 * g
    np.testing.assert_allclose(got, p, rtol=1e-12)


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_rmsprop(data, momentum):
    p0, grads = data
    got = run(Optimizer("rmsprop", 7, momentum, dtype=np.float64), p0.copy(), grads, 0.01)
    p, sq, buf = p0.copy(), np.zeros(7), np.zeros(7)
    for g in grads:
        sq = 0.99 * sq + 0.01 * g * g
        step = g / (np.sqrt(sq) + 1e-8)
        if momentum:
            buf = momentum * buf + step
            step = buf
        p = p - 0.01 * step
    np.testing.assert_allclose(got, p, rtol=1e-12)


def test_clip_by_norm_and_value():
    g = np.array([3.0, 4.0])
    assert clip_gradients(g, 1.0) == pytest.approx(5.0)
    np.testing.assert_allclose(g, [0.6, 0.8], rtol=1e-6)
    g = np.array([3.0, -0.5])
    clip_gradients(g, 1.0, "value")
    np.testing.assert_array_equal(g, [1.0, -0.5])
    g = np.array([3.0, 4.0])
    clip_gradients(g, 0.0)
    np.testing.assert_array_equal(g, [3.0, 4.0])


def test_schedules():
    tc = TrainConfig(lr=1.0, lr_schedule="step", lr_decay=0.5, lr_decay_after=2)
    assert [learning_rate(tc, 0, e, None) for e in (0.5, 1.9, 2.0, 3.1)] == [1, 1, 0.5, 0.25]
    tc = TrainConfig(lr=1.0, lr_schedule="cosine")
    assert learning_rate(tc, 0, 0, 100) == 1.0
    assert learning_rate(tc, 50, 0, 100) == pytest.approx(0.5)
    assert learning_rate(tc, 100, 0, 100) == pytest.approx(0.0, abs=1e-12)
    tc = TrainConfig(lr=1.0, warmup_steps=4)
    assert [learning_rate(tc, s, 0, None) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert math.isclose(learning_rate(TrainConfig(lr=0.3), 7, 3, 10), 0.3)


@pytest.mark.parametrize("kind,wd", [("adam", 0.0), ("adam", 0.1), ("adamw", 0.1)])
def test_float32_adam_follows_float64(kind, wd):
    """The update runs in the parameters' precision (float32 as PyTorch's does): 20 steps of it
    stay within float32 rounding of the same steps in float64."""
    rng = np.random.default_rng(0)
    p64 = rng.normal(size=1001)
    p32 = p64.astype(np.float32)
    o64, o32 = Optimizer(kind, p64.size, weight_decay=wd, dtype=np.float64), \
        Optimizer(kind, p32.size, weight_decay=wd)
    for _ in range(20):
        g = rng.normal(size=1001)
        o64.step(p64, g, 1e-2)
        o32.step(p32, g.astype(np.float32), 1e-2)
    assert p32.dtype == np.float32
    np.testing.assert_allclose(p32, p64, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n", [0, 1, 7, 8, 13, 1000])
def test_sum_squares_in_lanes_is_the_sum(n):
    from charrnn import updates as U
    a = np.random.default_rng(n).normal(size=n).astype(np.float32)
    assert U.sum_squares(a) == pytest.approx(float(np.sum(a.astype(np.float64) ** 2)), rel=1e-12,
                                             abs=1e-12)
