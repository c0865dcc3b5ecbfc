"""Training through the library API: learning, checkpoints, exact resume."""
import dataclasses

import numpy as np
import pytest

import charrnn
from charrnn import TrainConfig
from charrnn.errors import CharrnnError

SMALL = {"hidden": 16, "layers": 1}


def cfg(**kw):
    base = {"seq_len": 10, "batch_size": 4, "max_steps": 20, "eval_every": 10, "lr": 0.01}
    base.update(kw)
    return TrainConfig(**base)


def test_overfits_hello_and_samples_it(hello_file, tmp_path):
    r = charrnn.train(hello_file, cfg(max_steps=300), cell="rnn", **SMALL,
                      checkpoint_dir=tmp_path / "run", progress=False)
    assert r.best_val_loss < 0.05
    model = charrnn.load(tmp_path / "run")
    assert model.sample(4, temperature=0, prime="h") == "hello"
    assert model.sample(10, temperature=0, prime="h") == "hello\nhello"


def test_save_load_gives_identical_outputs(tiny_corpus, tmp_path):
    r = charrnn.train(tiny_corpus, cfg(), cell="gru", **SMALL, checkpoint_dir=tmp_path,
                      progress=False)
    loaded = charrnn.load(tmp_path / "last.npz")
    np.testing.assert_array_equal(loaded.params, r.model.params)
    x = np.random.default_rng(0).integers(0, len(loaded.vocab), (7, 3))
    a, (ha, _) = loaded.forward(x, x, loaded.zero_state(3))
    b, (hb, _) = r.model.forward(x, x, r.model.zero_state(3))
    assert a == b
    np.testing.assert_array_equal(ha, hb)
    assert loaded.sample(50, seed=3) == r.model.sample(50, seed=3)


@pytest.mark.parametrize("cell,opt,dropout", [("lstm", "adam", 0.0), ("gru", "sgd", 0.2),
                                              ("rnn", "rmsprop", 0.0), ("lstm", "adamw", 0.3)])
def test_resume_is_bit_identical(tiny_corpus, tmp_path, cell, opt, dropout):
    c = cfg(max_steps=24, optimizer=opt, eval_every=5, weight_decay=0.01)
    straight = charrnn.train(tiny_corpus, c, cell=cell, dropout=dropout, **SMALL,
                             checkpoint_dir=tmp_path / "a", progress=False)
    charrnn.train(tiny_corpus, dataclasses.replace(c, max_steps=10), cell=cell, dropout=dropout,
                  **SMALL, checkpoint_dir=tmp_path / "b", progress=False)
    resumed = charrnn.train(tiny_corpus, c, checkpoint_dir=tmp_path / "b", resume=True,
                            progress=False)
    assert resumed.step == 24
    np.testing.assert_array_equal(resumed.model.params, straight.model.params)
    steps = [int(line.split(",")[0]) for line in
             (tmp_path / "b" / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, 25))


def test_resume_refuses_changed_options_and_corpus(tiny_corpus, hello_file, tmp_path):
    charrnn.train(tiny_corpus, cfg(max_steps=5), **SMALL, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(CharrnnError, match="--seq-len 10 -> 20"):
        charrnn.train(tiny_corpus, cfg(seq_len=20), checkpoint_dir=tmp_path, resume=True,
                      progress=False)
    with pytest.raises(CharrnnError, match="not the corpus|differs from the corpus"):
        charrnn.train(hello_file, cfg(), checkpoint_dir=tmp_path, resume=True, progress=False)


def test_corpus_too_short_says_what_is_needed(tmp_path):
    p = tmp_path / "short.txt"
    p.write_text("abcdefghij" * 3)
    with pytest.raises(CharrnnError, match="needs at least 41.*smaller --batch-size/--seq-len"):
        charrnn.train(p, cfg(), **SMALL, checkpoint_dir=tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()


def test_evaluate_batch_one_equals_whole_sequence(tiny_corpus, tmp_path):
    r = charrnn.train(tiny_corpus, cfg(max_steps=5), cell="lstm", **SMALL,
                      checkpoint_dir=tmp_path, progress=False)
    m = r.model
    text = tiny_corpus.read_text()[:301]
    ids = m.vocab.encode(text)
    whole, _ = m.forward(ids[:-1, None], ids[1:, None], m.zero_state(1))
    res = charrnn.evaluate(m, text, batch_size=1, seq_len=37)
    assert res.chars == 300
    assert res.nats_per_char == pytest.approx(whole, rel=1e-5)
    # Several rows: every character is still counted once.
    assert charrnn.evaluate(m, text, batch_size=7).chars == 300


def test_final_validation_is_logged_on_the_last_row(tiny_corpus, tmp_path):
    r = charrnn.train(tiny_corpus, cfg(max_steps=None, time_limit=1.0, eval_every=10**6),
                      **SMALL, checkpoint_dir=tmp_path, progress=False)
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    last = rows[-1].split(",")
    assert int(last[0]) == r.step == len(rows) - 1
    assert float(last[3]) == pytest.approx(r.last_val_loss, abs=1e-6)
    assert all(row.split(",")[3] == "" for row in rows[1:-1])


def _start_params(corpus, tmp_path, **kw):
    """The parameters a fresh run starts from (before its first step), and its vocabulary."""
    seen = {}
    charrnn.train(corpus, cfg(max_steps=1, **kw), **SMALL, checkpoint_dir=tmp_path,
                  progress=False, on_start=lambda m: seen.update(params=m.params.copy()))
    return seen["params"], charrnn.load(tmp_path).vocab


def test_init_charrnn_scales_the_input_weights_and_starts_the_bias_at_the_log_frequencies(
        tiny_corpus, tmp_path):
    from collections import Counter

    from charrnn.cells import views
    ours, vocab = _start_params(tiny_corpus, tmp_path / "charrnn")
    plain, _ = _start_params(tiny_corpus, tmp_path / "pytorch", init="pytorch")
    model = charrnn.load(tmp_path / "charrnn")
    p, q = views(ours, model.cfg), views(plain, model.cfg)
    assert abs(q["dec.b"]).max() <= 1 / np.sqrt(16)  # pytorch: uniform in +-1/sqrt(H)
    assert abs(q["l0.wx"]).max() <= 1 / np.sqrt(16)
    for name in p:  # the same draws: only these two differ from PyTorch's initialisation
        if name not in ("dec.b", "l0.wx"):
            np.testing.assert_array_equal(p[name], q[name])
    np.testing.assert_allclose(p["l0.wx"], q["l0.wx"] * 2 * np.sqrt(16), rtol=1e-6)  # in +-2
    assert 1.8 < abs(p["l0.wx"]).max() <= 2
    text = tiny_corpus.read_text()
    train = text[: len(text) - int(len(text) * 0.1)]
    counts = Counter(train[1:])  # the training targets
    want = np.log([(counts[c] + 1) / (len(train) - 1 + len(vocab)) for c in vocab.chars])
    np.testing.assert_allclose(p["dec.b"], want, rtol=1e-5)


def test_init_charrnn_in_records_mode_counts_each_records_end(tmp_path):
    from charrnn.cells import views
    names = tmp_path / "names.txt"
    names.write_text("\n".join(["anna", "bob", "eve", "otto", "ada"] * 40) + "\n")
    prior, vocab = _start_params(names, tmp_path / "run", records=True, batch_size=8)
    share = np.exp(views(prior, charrnn.load(tmp_path / "run").cfg)["dec.b"].astype(float))
    assert abs(share.sum() - 1) < 1e-5  # (n + 1) / (N + V): a distribution
    # every 22 targets of the five names hold 5 ends, 4 a's and 1 v (the validation records
    # are a random tenth, and add-one moves the shares a little)
    for ch, want in ((vocab.chars[vocab.end], 5 / 22), ("a", 4 / 22), ("v", 1 / 22)):
        assert abs(share[vocab.index[ch]] - want) < 0.02, (ch, share[vocab.index[ch]])
