"""Worker threads: shards of the batch side by side, deterministic per thread count, and K sample
streams advanced together."""
import numpy as np
import pytest
from conftest import CELLS, random_model

from charrnn import generate as G
from charrnn.cells import CELLS as CELL_INFO
from charrnn.cells import param_offsets
from charrnn.data import Vocab
from charrnn.evaluate import evaluate_ids
from charrnn.optim import Optimizer, clip_gradients
from charrnn.sample import sample, sample_many
from charrnn.stack import WT_MIN_HIDDEN
from charrnn.threads import shard_bounds


def train_steps(cell, threads, steps=20, dropout=0.0):
    """`steps` Adam steps of a float32 model on fixed random windows; (losses, params)."""
    m = random_model(cell, layers=2, V=11, H=16, dtype=np.float32, dropout=dropout)
    m.threads = threads
    opt = Optimizer("adam", m.params.size)
    rng, data = np.random.default_rng(1), np.random.default_rng(2)
    state, losses = m.zero_state(6), []
    for _ in range(steps):
        x, y = data.integers(0, 11, (7, 6)), data.integers(0, 11, (7, 6))
        loss, state = m.loss_and_grad(x, y, state, rng=rng)
        clip_gradients(m.grads, 5.0)
        opt.step(m.params, m.grads, 2e-3)
        losses.append(loss)
    return np.array(losses), m.params.copy()


def test_shards_cover_the_rows_once():
    assert shard_bounds(50, 2) == [(0, 25), (25, 50)]
    assert shard_bounds(7, 3) == [(0, 2), (2, 4), (4, 7)]
    assert shard_bounds(1, 4) == [(0, 1)]


@pytest.mark.parametrize("cell", CELLS)
def test_same_thread_count_is_bit_identical(cell):
    a, pa = train_steps(cell, 2, steps=5, dropout=0.2)
    b, pb = train_steps(cell, 2, steps=5, dropout=0.2)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(pa, pb)


@pytest.mark.parametrize("cell", CELLS)
def test_one_and_three_threads_agree_to_float32_rounding(cell):
    a, pa = train_steps(cell, 1)
    b, pb = train_steps(cell, 3)
    np.testing.assert_allclose(a, b, rtol=1e-5)
    np.testing.assert_allclose(pa, pb, rtol=1e-5, atol=1e-6)
    assert not np.array_equal(pa, pb) or cell == "rnn"  # shards really summed differently


@pytest.mark.parametrize("cell", CELLS)
def test_gradients_do_not_depend_on_the_split(cell):
    """float64: one shard and three shards give the same gradients to 1e-12."""
    m = random_model(cell, layers=2, V=5, H=4)
    x, y = np.random.default_rng(0).integers(0, 5, (2, 5, 7))
    grads = []
    for threads in (1, 3):
        m.threads = threads
        m.loss_and_grad(x, y, m.zero_state(7))
        grads.append(m.grads.copy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-12, atol=1e-14)


def test_evaluation_does_not_depend_on_the_thread_count():
    m = random_model("lstm", layers=2, V=9, H=8, dtype=np.float32)
    ids = np.random.default_rng(3).integers(0, 9, 5000)
    results = []
    for threads in (1, 2):
        m.threads = threads
        results.append(evaluate_ids(m, ids, batch_size=13, seq_len=40).nats_per_char)
    assert results[0] == pytest.approx(results[1], rel=1e-6)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("H", [5, WT_MIN_HIDDEN])  # from WT_MIN_HIDDEN on: transposed products
def test_batched_step_equals_single_streams(cell, H):
    """K streams advanced together: state and next-character probabilities as one at a time."""
    m = random_model(cell, layers=2, V=6, H=H, dtype=np.float32)
    code, offs = CELL_INFO[cell].code, param_offsets(m.cfg)
    # (n, K); fewer steps when wide: a random tanh RNN of 256 units is chaotic, and 9 steps
    # grow the batched products' other summation order to 5e-4
    ids = np.random.default_rng(4).integers(0, 6, (9 if H < WT_MIN_HIDDEN else 3, 4))
    hs, cs = np.zeros((2, 4, H), np.float32), np.zeros((2, 4, H), np.float32)
    wt = G.transposed_weights(m.params, offs, code, 2, H, 6)
    assert wt.shape[0] == (4 if H >= WT_MIN_HIDDEN else 0)
    G.advance_batch(hs, cs, m.params, offs, wt, ids, code, False, H, 6)
    for s in range(4):
        h1, c1 = np.zeros((2, H), np.float32), np.zeros((2, H), np.float32)
        G.advance(h1, c1, m.params, offs, ids[:, s].copy(), code, False, H, 6)
        np.testing.assert_allclose(hs[:, s], h1, rtol=1e-5, atol=5e-5 if H >= WT_MIN_HIDDEN
                                   else 1e-6)
        one = np.zeros(6, np.float32)
        G.decode_logits(one, h1, m.params, offs, H, 6)
        batched = hs[-1, s] @ m.p["dec.w"] + m.p["dec.b"]
        p1, pb = np.exp(one - one.max()), np.exp(batched - batched.max())
        wide = H >= WT_MIN_HIDDEN  # sums of 256 float32 terms in two orders
        np.testing.assert_allclose(pb / pb.sum(), p1 / p1.sum(), rtol=1e-4 if wide else 1e-5,
                                   atol=1e-6 if wide else 1e-7)


@pytest.mark.parametrize("cell", CELLS)
def test_many_samples_equal_single_samples_with_their_seeds(cell):
    m = random_model(cell, layers=2, V=6, H=5, dtype=np.float32)
    m.vocab = Vocab("abcdef")
    many = sample_many(m, 5, 150, 1.0, prime="ab", seed=3, threads=2)
    assert many == [sample(m, 150, 1.0, prime="ab", seed=3 + k) for k in range(5)]
    assert sample_many(m, 5, 150, 1.0, prime="ab", seed=3, threads=1) == many
    assert len(set(many)) > 1 and all(len(s) == 152 and s.startswith("ab") for s in many)


TRAIN_AND_SAVE = """
import sys, numpy as np
from charrnn.config import ModelConfig
from charrnn.model import Model
from charrnn.optim import Optimizer, clip_gradients
m = Model(ModelConfig(20, "lstm", 16, 2), threads=2)
opt, rng, state = Optimizer("adam", m.params.size), np.random.default_rng(0), m.zero_state(8)
for _ in range(10):
    x, y = rng.integers(0, 20, (10, 8)), rng.integers(0, 20, (10, 8))
    loss, state = m.loss_and_grad(x, y, state)
    clip_gradients(m.grads, 5.0)
    opt.step(m.params, m.grads, 2e-3)
np.save(sys.argv[1], m.params)
"""


def test_freshly_compiled_and_cached_kernels_train_identically(tmp_path):
    """Resume in a new process is bit-exact only if kernels loaded from numba's cache compute
    exactly what the process that compiled them computed (fast-math reassociation broke this)."""
    import os
    import subprocess
    import sys
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))  # starts empty: compiles
    for run in ("cold", "warm"):
        subprocess.run([sys.executable, "-c", TRAIN_AND_SAVE, str(tmp_path / f"{run}.npy")],
                       env=env, check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "cold.npy"), np.load(tmp_path / "warm.npy"))
