"""Every cell, 1 to 3 layers: forward against the naive reference, gradients against finite
differences (float64), and one long sequence against the same sequence in chunks."""
import numpy as np
import pytest
import reference as ref
from conftest import CELLS, random_batch, random_model, random_state

from charrnn import fastmath as FM
from charrnn import generate as G
from charrnn import stack
from charrnn.cells import init_params, views
from charrnn.config import ModelConfig
from charrnn.export import state_dict
from charrnn.model import Model

CASES = [(cell, L) for cell in CELLS for L in (1, 2, 3)] + [("rnn-relu", 2)]


def make(case, L, **kw):
    cell = case.split("-")[0]
    activation = "relu" if case.endswith("relu") else "tanh"
    return random_model(cell, layers=L, activation=activation, **kw)


@pytest.mark.parametrize("case,L", CASES)
def test_forward_matches_naive_reference(case, L):
    m = make(case, L)
    x, y = random_batch()
    h0, c0 = random_state(m, 3)
    loss, (h, c) = m.forward(x, y, (h0, c0))
    logits, rh, rc = ref.forward(state_dict(m, np.float64), m.cfg.cell, L, x, h0, c0,
                                 relu=m.cfg.activation == "relu")
    assert loss == pytest.approx(ref.loss(logits, y), rel=1e-12)
    np.testing.assert_allclose(h, rh, rtol=1e-12, atol=1e-13)
    if m.cfg.cell == "lstm":
        np.testing.assert_allclose(c, rc, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("cell", CELLS)
def test_wide_forward_matches_naive_reference(cell):
    # From stack.WT_MIN_HIDDEN on, the recurrent product runs transposed, on a transposed
    # copy of W_h, and is transposed back each step (B = 3: shards of 1 and 2 rows, or 3).
    m = random_model(cell, layers=2, H=stack.WT_MIN_HIDDEN)
    x, y = random_batch(T=3, B=3)
    h0, c0 = random_state(m, 3)
    loss, (h, c) = m.forward(x, y, (h0, c0))
    logits, rh, rc = ref.forward(state_dict(m, np.float64), cell, 2, x, h0, c0)
    assert loss == pytest.approx(ref.loss(logits, y), rel=1e-12)
    np.testing.assert_allclose(h, rh, rtol=1e-12, atol=1e-13)
    if cell == "lstm":
        np.testing.assert_allclose(c, rc, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("shape", [(1024, 25), (37, 5), (16, 1), (7, 3)])
def test_blocked_transpose_is_a_transpose(shape):
    # stack_forward transposes each step's hpT (GH, S) back in 16-row blocks, and a remainder.
    a = np.random.default_rng(0).standard_normal(shape)
    out = np.full(shape[::-1], np.nan)
    stack._transpose16(out, a)
    np.testing.assert_array_equal(out, a.T)


def numeric_grad(f, arr, eps=1e-6):
    g = np.zeros_like(arr)
    for i in np.ndindex(arr.shape):
        old = arr[i]
        arr[i] = old + eps
        lp = f()
        arr[i] = old - eps
        lm = f()
        arr[i] = old
        g[i] = (lp - lm) / (2 * eps)
    return g


@pytest.mark.parametrize("case,L", CASES)
def test_gradients_match_finite_differences(case, L):
    m = make(case, L, H=3)
    x, y = random_batch(T=3, B=2, seed=L)
    h0, c0 = random_state(m, 2, seed=L)
    m.forward(x, y, (h0, c0), train=True)
    dh0, dc0 = m.backward(x, want_state_grad=True)
    f = lambda: m.forward(x, y, (h0, c0))[0]
    np.testing.assert_allclose(m.grads, numeric_grad(f, m.params), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(dh0, numeric_grad(f, h0), rtol=1e-5, atol=1e-9)
    if m.cfg.cell == "lstm":
        np.testing.assert_allclose(dc0, numeric_grad(f, c0), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("case,L", CASES)
def test_long_sequence_equals_chunks_with_carried_state(case, L):
    m = make(case, L)
    x, y = random_batch(T=12, B=3)
    state = random_state(m, 3)
    whole, (h, _) = m.forward(x, y, state)
    total, s = 0.0, state
    for a, b in [(0, 5), (5, 6), (6, 12)]:
        loss, s = m.forward(x[a:b], y[a:b], s)
        total += loss * (b - a)
    assert total / 12 == pytest.approx(whole, rel=1e-12)
    np.testing.assert_allclose(s[0], h, rtol=1e-12)


def test_untrained_loss_is_about_log_vocab():
    V = 65
    m = Model(ModelConfig(vocab_size=V, cell="lstm", hidden=32, layers=2), seed=3)
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, V, (20, 8)), rng.integers(0, V, (20, 8))
    loss, _ = m.forward(x, y, m.zero_state(8))
    assert abs(loss - np.log(V)) < 0.1


def test_initialisation_is_pytorchs():
    """Every weight and bias uniform in +-1/sqrt(H), as torch.nn.LSTM and nn.Linear draw them:
    no gate and no bias is special (a forget-gate bias of 1 slowed learning, see cells.py)."""
    cfg = ModelConfig(vocab_size=40, cell="lstm", hidden=64, layers=2)
    p = views(init_params(cfg, np.random.default_rng(0)), cfg)
    bound = 1 / np.sqrt(64)
    for name, v in p.items():
        assert np.abs(v).max() <= bound, name
        assert abs(v.std() - bound / np.sqrt(3)) < 0.1 * bound, name  # uniform, not constant
    for k in range(2):
        forget = p[f"l{k}.bx"][64:128] + p[f"l{k}.bh"][64:128]
        assert abs(forget.mean()) < 0.05


@pytest.mark.parametrize("cell", CELLS)
def test_compiled_sampler_step_matches_batched_forward(cell):
    """The batch-1 generation kernel computes the same logits as the training forward pass."""
    m = random_model(cell, layers=2, V=6, H=5, dtype=np.float32)
    ids = np.array([1, 4, 2, 5, 0], np.int64)
    hs, cs = np.zeros((2, 5), np.float32), np.zeros((2, 5), np.float32)
    from charrnn.cells import CELLS, param_offsets
    offs = param_offsets(m.cfg)
    G.advance(hs, cs, m.params, offs, ids, CELLS[cell].code, False, 5, 6)
    logits = np.zeros(6, np.float32)
    G.decode_logits(logits, hs, m.params, offs, 5, 6)
    m.forward(ids[:, None], np.zeros((5, 1), np.int64), m.zero_state(1))
    hidden = m.hidden_states()  # (L, T, 1, H)
    np.testing.assert_allclose(hs, hidden[:, -1, 0], rtol=1e-5, atol=1e-6)
    top = hidden[-1, -1, 0]
    np.testing.assert_allclose(logits, top @ m.p["dec.w"] + m.p["dec.b"], rtol=1e-5, atol=1e-6)


def test_float32_exp_and_tanh_match_libm():
    """The vectorizable float32 exp, tanh and sigmoid against float64 numpy."""
    from numba import njit

    @njit
    def apply(x, e, t, s):
        for i in range(x.size):
            e[i] = FM.exp(x[i])
            t[i] = FM.tanh(x[i])
            s[i] = FM.sigmoid(x[i])

    x = np.linspace(-87, 88, 200_001).astype(np.float32)
    e, t, s = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    apply(x, e, t, s)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(e, np.exp(x64), rtol=2e-7)
    np.testing.assert_allclose(t, np.tanh(x64), rtol=0, atol=4e-7)  # documented: |error| < 4e-7
    np.testing.assert_allclose(s, 1 / (1 + np.exp(-x64)), rtol=0, atol=4e-7)


def test_float32_tanh_is_within_its_stated_4e_7():
    """The vectorizing float32 tanh (Eigen's rational form) keeps the error its docstring states,
    and saturates at exactly +-1."""
    from numba import njit

    @njit
    def run(x, out):
        for i in range(x.size):
            out[i] = FM._tanh_f32(x[i])
    x = np.concatenate([np.linspace(-12, 12, 200001), np.geomspace(1e-6, 1, 2001)])
    x = x.astype(np.float32)
    out = np.empty_like(x)
    run(x, out)
    exact = np.tanh(x.astype(np.float64))
    assert np.max(np.abs(out - exact) / np.maximum(np.abs(exact), 1e-30)) < 4e-7
    assert np.all(np.abs(out) <= 1) and out[x > 8].min() == 1.0
