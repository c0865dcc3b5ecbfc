"""The step strategy (strategy.py): shards, panels, whole or wave, chosen by measurement and
cached."""
import json

import numpy as np
import pytest
from conftest import random_batch

import charrnn
from charrnn import TrainConfig
from charrnn import strategy as S
from charrnn.config import ModelConfig
from charrnn.model import Model


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    (tmp_path / "cache").mkdir()
    monkeypatch.setenv(S.CACHE_ENV, str(tmp_path / "cache" / S.CACHE_NAME))
    return tmp_path / "cache"


CFG = ModelConfig(vocab_size=20, cell="lstm", hidden=16, layers=2)


def test_the_faster_strategy_is_chosen_and_cached(cache_dir):
    calls = []

    def speed(cfg, batch, seq_len, threads, strategy):
        calls.append(strategy)
        return {"shards": 1000.0, "panels": 1100.0, "whole": 1500.0, "wave": 1200.0}[strategy]

    first = S.choose(CFG, 8, 10, threads=2, speed=speed)
    assert first.strategy == "whole" and first.measured
    assert calls == ["shards", "panels", "whole", "wave"] * S.ROUNDS  # alternating
    assert ("1,500 chars/s here against 1,000 for shards and 1,100 for panels and 1,200 for wave"
            in first.reason)
    again = S.choose(CFG, 8, 10, threads=2, speed=lambda *a: pytest.fail("measured twice"))
    assert again.strategy == "whole" and not again.measured  # read from the cache file
    assert (cache_dir / S.CACHE_NAME).is_file()
    # another shape is another measurement
    other = S.choose(CFG, 16, 10, threads=2,
                     speed=lambda *a: {"shards": 2.0, "panels": 1.0, "whole": 1.0, "wave": 3.0}[a[4]])
    assert other.strategy == "wave" and other.measured
    # wave runs one layer a thread: a 3-layer model is not measured with it
    deep = ModelConfig(vocab_size=20, cell="lstm", hidden=16, layers=3)
    calls.clear()
    assert S.choose(deep, 8, 10, threads=2, speed=speed).strategy == "whole"
    assert calls == ["shards", "panels", "whole"] * S.ROUNDS
    # a cache entry from before panels was a candidate is measured again
    path = cache_dir / S.CACHE_NAME
    old = {"strategy": "whole", "chars_per_second": {"shards": 1, "whole": 2, "wave": 1}}
    path.write_text(json.dumps({S.key(CFG, 8, 10, 2): old}))
    assert S.choose(CFG, 8, 10, threads=2, speed=speed).measured


def test_whole_needs_a_clear_win(cache_dir):
    c = S.choose(CFG, 8, 10, threads=2,
                 speed=lambda *a: {"shards": 100.0, "panels": 104.0, "whole": 103.0,
                                   "wave": 104.0}[a[4]])
    assert c.strategy == "shards"  # within MARGIN: the long-tested path


def test_one_thread_chooses_between_shards_and_panels_and_one_row_has_nothing_to_choose(
        cache_dir):
    calls = []

    def speed(cfg, batch, seq_len, threads, strategy):
        calls.append((threads, strategy))
        return {"shards": 1000.0, "panels": 1300.0}[strategy]
    c = S.choose(CFG, 8, 10, threads=1, speed=speed)
    assert c.strategy == "panels" and c.measured  # whole is shards on one thread; no wave
    assert calls == [(1, "shards"), (1, "panels")] * S.ROUNDS
    slow = S.choose(CFG, 16, 10, threads=1,
                    speed=lambda *a: {"shards": 1000.0, "panels": 1040.0}[a[4]])
    assert slow.strategy == "shards"  # within MARGIN
    c = S.choose(CFG, 1, 10, threads=2, speed=lambda *a: pytest.fail("measured"))
    assert c.strategy == "shards" and not c.measured


@pytest.mark.parametrize("damage", ["{not json", "[1, 2]", "ENTRY 7", 'ENTRY {"strategy": "whole"}',
                                    'ENTRY {"strategy": "whole", "chars_per_second": {"whole": 1}}'])
def test_a_damaged_cache_is_measured_again(cache_dir, damage):
    if damage.startswith("ENTRY "):
        damage = '{"%s": %s}' % (S.key(CFG, 8, 10, 2), damage[6:])
    (cache_dir / S.CACHE_NAME).write_text(damage)
    c = S.choose(CFG, 8, 10, threads=2,
                 speed=lambda *a: {"shards": 1.0, "panels": 1.2, "whole": 2.0, "wave": 1.5}[a[4]])
    assert c.strategy == "whole" and c.measured


@pytest.mark.parametrize("other", ["panels", "whole", "wave"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_every_strategy_computes_the_same_step(cell, other):
    cfg = ModelConfig(vocab_size=20, cell=cell, hidden=16, layers=2)
    x, y = random_batch(20, 12, 6, seed=3)
    results = {}
    for strategy in ("shards", other, other):
        m = Model(cfg, seed=1, threads=2)
        m.strategy = strategy
        loss, (h, _) = m.loss_and_grad(x, y, m.zero_state(6))
        results.setdefault(strategy, []).append((loss, m.grads.copy(), h))
    (ls, gs, hs), = results["shards"]
    (lw, gw, hw), (lw2, gw2, hw2) = results[other]
    assert abs(ls - lw) < 1e-5
    np.testing.assert_allclose(gw, gs, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(hw, hs, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(gw, gw2)  # deterministic
    assert lw == lw2


@pytest.mark.parametrize("other,threads", [("wave", 2), ("panels", 2), ("panels", 1)])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_wave_and_panels_match_shards_in_float64(cell, other, threads):
    """Every output of a training step (loss, gradients, final state, the initial state's
    gradients, logits) with dropout and padding, against shards (whose kernels test_kernels
    checks against finite differences): wave chunked over steps that do not divide evenly
    (wave.py), and at H = 256 (the transposed recurrent product); panels at H = 16 and 256 (the
    products in panels forward and backward) and 12 (backward: no panel width divides 12, the
    product goes whole), and at H = 256 with 64 rows, where the backward's panels (LSTM, GRU)
    are cut along K, on two threads and on one (one shard)."""
    cases = [(16, 5), (256, 5)] + ([] if other == "wave" else [(12, 5), (256, 64)])
    from charrnn.stack import panel_shape
    assert panel_shape(32, 4 * 256, 256)[1] > 1 < panel_shape(64, 3 * 256, 256)[1]  # cut along K
    for hidden, B in cases:
        cfg = ModelConfig(vocab_size=11, cell=cell, hidden=hidden, layers=2, dropout=0.3)
        x, y = random_batch(11, 13 if B < 64 else 3, B, seed=4)
        y[1, 2] = -1
        rng = np.random.default_rng(2)
        state = tuple(rng.standard_normal((2, B, hidden)) for _ in range(2))
        out = {}
        for strategy in ("shards", other):
            m = Model(cfg, dtype=np.float64, seed=3, threads=threads)
            m.strategy = strategy
            loss, (h, c) = m.forward(x, y, state, train=True, rng=np.random.default_rng(5))
            dh0, dc0 = m.backward(want_state_grad=True)
            out[strategy] = (loss, h, c, m.grads.copy(), dh0, dc0, m.logits(x, state))
        for a, b in zip(out["shards"], out[other]):
            np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)


def test_wave_needs_two_layers(tiny_corpus, tmp_path):
    with pytest.raises(charrnn.CharrnnError, match="--strategy wave runs a 2-layer model"):
        charrnn.train(tiny_corpus, TrainConfig(max_steps=2, strategy="wave", batch_size=4,
                                               seq_len=8), hidden=8, layers=3,
                      checkpoint_dir=tmp_path / "a", progress=False)
    assert not (tmp_path / "a").exists()


def test_the_chosen_strategy_is_saved_and_resumed(tiny_corpus, tmp_path, monkeypatch, cache_dir):
    monkeypatch.setattr(S, "measure",
                        lambda cfg, b, t, n, s: {"shards": 1.0, "panels": 1.0, "whole": 9.0}[s])
    opts = dict(batch_size=4, seq_len=8, eval_every=5, threads=2)
    r = charrnn.train(tiny_corpus, TrainConfig(max_steps=6, **opts), hidden=8, layers=1,
                      checkpoint_dir=tmp_path / "a", progress=False)
    assert charrnn.info(tmp_path / "a")["train_options"]["strategy"] == "whole"
    # the measured choice stays with the run, whatever this machine would measure now
    monkeypatch.setattr(S, "measure",
                        lambda cfg, b, t, n, s: {"shards": 9.0, "panels": 1.0, "whole": 1.0}[s])
    r2 = charrnn.train(tiny_corpus, None, checkpoint_dir=tmp_path / "a", resume=True,
                       progress=False)
    assert r2.model.strategy == "whole" == charrnn.info(tmp_path / "a")["train_options"]["strategy"]
    # a config with the default (auto) on resume keeps the run's own, too
    r3 = charrnn.train(tiny_corpus, TrainConfig(max_steps=8, **opts), checkpoint_dir=tmp_path / "a",
                       resume=True, progress=False)
    assert r3.model.strategy == "whole"
    assert r.step == 6
    # and resume is exact: 3 + 3 steps equal 6 straight
    charrnn.train(tiny_corpus, TrainConfig(max_steps=3, strategy="whole", **opts), hidden=8,
                  layers=1, checkpoint_dir=tmp_path / "b", progress=False)
    b = charrnn.train(tiny_corpus, TrainConfig(max_steps=6, strategy="whole", **opts),
                      checkpoint_dir=tmp_path / "b", resume=True, progress=False)
    c = charrnn.train(tiny_corpus, TrainConfig(max_steps=6, strategy="whole", **opts), hidden=8,
                      layers=1, checkpoint_dir=tmp_path / "c", progress=False)
    np.testing.assert_array_equal(b.model.params, c.model.params)


@pytest.mark.parametrize("strategy", ["wave", "panels"])
def test_a_wave_or_panels_run_resumes_bit_exact(tiny_corpus, tmp_path, strategy):
    opts = {"batch_size": 4, "seq_len": 8, "eval_every": 5, "threads": 2, "strategy": strategy}
    charrnn.train(tiny_corpus, TrainConfig(max_steps=3, **opts), hidden=8, layers=2,
                  dropout=0.2, checkpoint_dir=tmp_path / "b", progress=False)
    b = charrnn.train(tiny_corpus, TrainConfig(max_steps=6, **opts), checkpoint_dir=tmp_path / "b",
                      resume=True, progress=False)
    c = charrnn.train(tiny_corpus, TrainConfig(max_steps=6, **opts), hidden=8, layers=2,
                      dropout=0.2, checkpoint_dir=tmp_path / "c", progress=False)
    assert b.model.strategy == strategy == charrnn.info(tmp_path / "b")["train_options"]["strategy"]
    np.testing.assert_array_equal(b.model.params, c.model.params)


def test_panel_shape_keeps_each_product_small():
    """The widest panel of 32 columns or more whose product keeps M * N * K within SMALL_MNK
    (OpenBLAS's small-matrix kernels) in one call, else the widest cut along K into the fewest
    chunks that do; none where no width divides or even the narrowest, cut into the smallest
    chunks, is over."""
    from charrnn.stack import PANEL_MIN_CHUNK, SMALL_MNK, panel_shape
    assert panel_shape(16, 256, 1024) == (64, 1)  # forward, LSTM 2x256 at 32 rows on 2 threads
    assert panel_shape(16, 1024, 256) == (32, 1)  # its backward: 16 * 1024 * 64 is over 100^3
    assert panel_shape(25, 2048, 512) == (64, 4)  # backward, LSTM 2x512 at 50 rows: no 32 fits
    assert panel_shape(25, 512, 2048) == (64, 1)
    assert panel_shape(50, 1024, 256) == (64, 4)  # LSTM 2x256's backward at 50 rows
    assert panel_shape(16, 64, 16) == (16, 1)  # narrower than 32 only where nothing wider divides
    assert panel_shape(4, 12, 12) == (0, 1)  # no width divides 12
    assert panel_shape(10_000, 4096, 1024) == (0, 1)  # over even in 8 columns, 32-row chunks
    assert panel_shape(1000, 4096, 1024) == (16, 128)
    for S_, K_, N_ in [(16, 256, 1024), (25, 2048, 512), (3, 16, 64), (64, 1000, 256)]:
        w, nc = panel_shape(S_, K_, N_)
        assert N_ % w == 0 and K_ % nc == 0 and (nc == 1 or K_ // nc >= PANEL_MIN_CHUNK)
        assert S_ * (K_ // nc) * w <= SMALL_MNK
        assert nc == 1 or S_ * (K_ // (nc - 1)) * w > SMALL_MNK or K_ % (nc - 1)


@pytest.mark.parametrize("nc", [1, 2, 3])
def test_a_product_in_panels_is_the_product(nc):
    """_panel_dot in one call a panel and in chunks of K (summed in order into the panel)."""
    from charrnn.stack import _pack_panels, _pack_panels_t, _panel_dot
    rng = np.random.default_rng(0)
    a, W = rng.standard_normal((5, 24)), rng.standard_normal((24, 32))
    pa = np.full(5 * 32 + 5 * 32, np.nan)  # room for chunks; NaN shows a read before a write
    for w in (8, 16, 32):
        panels, out = np.zeros((32 // w, 24, w)), np.zeros((5, 32))
        _pack_panels(panels, W)
        _panel_dot(out, a, panels, nc, np.zeros((32 // w, 5, w)), pa)
        np.testing.assert_allclose(out, a @ W, rtol=1e-12, atol=1e-12)
    # W^T's panels: b (5, 32) @ W^T (32, 24), 24 columns in panels of 8
    b, panels_t, out_t = rng.standard_normal((5, 32)), np.zeros((3, 32, 8)), np.zeros((5, 24))
    _pack_panels_t(panels_t, W)
    _panel_dot(out_t, b, panels_t, 2 if nc == 3 else nc, np.zeros((3, 5, 8)), pa)
    np.testing.assert_allclose(out_t, b @ W.T, rtol=1e-12, atol=1e-12)


def test_cpus_named_alike_are_told_apart(monkeypatch):
    """The strategy cache's CPU key carries family and model: a virtual machine named a Zen 4
    and a Zen 5 both "AMD EPYC", and a choice measured on one must not be taken on the other."""
    import io

    from charrnn import strategy
    names = []
    for family, model in (("25", "17"), ("26", "2")):
        text = (f"processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: {family}\n"
                f"model\t\t: {model}\nmodel name\t: AMD EPYC\n\nprocessor\t: 1\n"
                "cpu family\t: 99\n")
        monkeypatch.setattr(strategy, "open", lambda *_a, t=text, **_k: io.StringIO(t),
                            raising=False)
        names.append(strategy.cpu_name())
    assert names == ["AMD EPYC (family 25, model 17)", "AMD EPYC (family 26, model 2)"]
