"""Inverted dropout on every layer's output: training only, seeded, unbiased."""
import numpy as np
from conftest import random_batch, random_model


def test_masks_differ_between_steps_and_preserve_expectation():
    m = random_model("lstm", layers=2, V=5, H=64, dtype=np.float32, dropout=0.3)
    x, y = random_batch(T=20, B=8)
    rng = np.random.default_rng(0)
    m.forward(x, y, m.zero_state(8), train=True, rng=rng)
    first = m.dropout_masks[0].copy()
    m.forward(x, y, m.zero_state(8), train=True, rng=rng)
    assert not np.array_equal(first, m.dropout_masks[0])
    assert set(np.unique(first)) == {0.0, np.float32(1 / 0.7)}
    assert abs(first.mean() - 1.0) < 0.02  # E[mask] = 1: activations keep their expectation
    assert abs((first == 0).mean() - 0.3) < 0.02


def test_eval_is_deterministic_and_dropout_free():
    m = random_model("gru", layers=2, dropout=0.5)
    x, y = random_batch()
    a, _ = m.forward(x, y, m.zero_state(3))
    b, _ = m.forward(x, y, m.zero_state(3))
    assert a == b and m.dropout_masks is None
    m2 = random_model("gru", layers=2, dropout=0.0)
    assert m2.forward(x, y, m2.zero_state(3))[0] == a  # same weights, same eval loss


def test_dropout_gradients_match_finite_differences_for_a_fixed_mask():
    m = random_model("lstm", layers=2, H=3, dropout=0.4)
    x, y = random_batch(T=3, B=2)
    s = m.zero_state(2)
    m.forward(x, y, s, train=True, rng=np.random.default_rng(5))
    m.backward(x)
    g = m.grads.copy()
    num = np.zeros_like(g)
    for i in range(g.size):
        old = m.params[i]
        m.params[i] = old + 1e-6
        lp, _ = m.forward(x, y, s, train=True, rng=np.random.default_rng(5))
        m.params[i] = old - 1e-6
        lm, _ = m.forward(x, y, s, train=True, rng=np.random.default_rng(5))
        m.params[i] = old
        num[i] = (lp - lm) / 2e-6
    np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-9)
