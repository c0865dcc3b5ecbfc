"""Records mode: one example per line, read from the initial state and ended by END."""
import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import CELLS, random_model

import charrnn
from charrnn import records
from charrnn.cli import cli
from charrnn.config import TrainConfig
from charrnn.data import END, IGNORE, Vocab
from charrnn.errors import CharrnnError

NAMES = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "charlotte", "amelia", "harper",
         "evelyn", "abigail", "emily", "ella", "elizabeth", "camila", "luna", "sofia", "avery",
         "mila", "aria", "scarlett", "penelope", "layla", "chloe", "victoria", "madison",
         "eleanor", "grace", "nora", "riley"]


@pytest.fixture
def names_file(tmp_path):
    p = tmp_path / "names.txt"
    p.write_text("\n".join(NAMES * 4) + "\n")
    return p


def _records(lines):
    chars = sorted(set("\n".join(lines)))
    vocab = Vocab(chars)
    return records.from_corpus(vocab.encode("\n".join(lines)), chars, "x")


# -- the loss: padding is never predicted ---------------------------------------------------------

@pytest.mark.parametrize("cell", CELLS)
def test_padded_batch_equals_each_record_alone(cell):
    recs, vocab, _ = _records(["ab", "abcab", "c", "bca"])
    m = random_model(cell, V=len(vocab))
    x, y = records.batch(recs, np.arange(len(recs)), vocab.end)
    assert (y == IGNORE).sum() == x.size - recs.predictions
    loss, _ = m.forward(x, y, train=True)
    m.backward()
    total, grads = loss * recs.predictions, m.grads * recs.predictions
    alone_loss, alone_grads = 0.0, np.zeros_like(m.grads)
    for r in range(len(recs)):
        xr, yr = records.batch(recs, np.array([r]), vocab.end)
        assert (yr != IGNORE).all()  # a record alone needs no padding
        lr, _ = m.forward(xr, yr, train=True)
        m.backward()
        alone_loss += lr * yr.size
        alone_grads += m.grads * yr.size
    assert total == pytest.approx(alone_loss, rel=1e-12)
    np.testing.assert_allclose(grads, alone_grads, rtol=1e-10, atol=1e-12)


def test_masked_loss_gradient_matches_finite_differences():
    recs, vocab, _ = _records(["abc", "a", "bcaab"])
    m = random_model("lstm", V=len(vocab))
    x, y = records.batch(recs, np.arange(len(recs)), vocab.end)
    m.forward(x, y)
    m.backward()
    rng = np.random.default_rng(0)
    for i in rng.choice(m.params.size, 25, replace=False):
        old = m.params[i]
        m.params[i] = old + 1e-6
        up = m.forward(x, y)[0]
        m.params[i] = old - 1e-6
        down = m.forward(x, y)[0]
        m.params[i] = old
        assert m.grads[i] == pytest.approx((up - down) / 2e-6, rel=1e-5, abs=1e-8)


# -- reading records -------------------------------------------------------------------------------

def test_lines_become_records():
    recs, vocab, skipped = _records(["ab", "", "b\r", "", "ca b"])
    assert vocab.chars[0] == END and vocab.end == 0
    assert "\n" not in vocab.chars and "\r" not in vocab.chars
    assert recs.texts(vocab) == ["ab", "b", "ca b"] and skipped == 2
    assert recs.predictions == 7 + 3


def test_a_record_over_the_limit_names_its_line():
    lines = ["ok", "x" * (records.MAX_RECORD + 1)]
    with pytest.raises(CharrnnError, match=r"line 2 has 1,001 characters; a record is at most"):
        _records(lines)


def test_split_is_seeded_and_disjoint():
    recs, vocab, _ = _records([f"r{i:03d}" for i in range(200)])
    tr, va = records.split(recs, 0.1, 10 ** 6, seed=3)
    _, va2 = records.split(recs, 0.1, 10 ** 6, seed=3)
    assert va.texts(vocab) == va2.texts(vocab) and len(va) == 20 and len(tr) == 180
    assert set(tr.texts(vocab)).isdisjoint(va.texts(vocab))
    assert va.texts(vocab) != [f"r{i:03d}" for i in range(180, 200)]  # not the file's tail
    assert records.split(recs, 0.1, 5 * 3, seed=3)[1].predictions <= 15  # capped


def test_batches_cover_every_record_once_per_epoch():
    lines = [f"{'x' * (i % 7 + 1)}{i}" for i in range(45)]
    recs, vocab, _ = _records(lines)
    b = records.RecordBatches(recs, 10, seed=1, end=vocab.end)
    assert b.windows == 5
    seen = []
    for epoch in (0, 1):
        got = []
        for w in range(b.windows):
            x, y = b.window(w, epoch)
            assert (x[0] == vocab.end).all()
            for j in range(x.shape[1]):
                n = int((y[:, j] != IGNORE).sum()) - 1  # characters; then one END
                assert y[n, j] == vocab.end and (y[n + 1:, j] == IGNORE).all()
                assert (x[1:n + 1, j] == y[:n, j]).all()
                got.append(vocab.decode(y[:n, j]))
        assert sorted(got) == sorted(lines)
        seen.append(got)
    assert seen[0] != seen[1]  # another order each epoch


# -- end to end ------------------------------------------------------------------------------------

def _cfg(**kw):
    return TrainConfig(batch_size=8, eval_every=5, seed=2, records=True, **kw)


def test_resume_is_exact(names_file, tmp_path):
    small = {"hidden": 16, "layers": 1, "progress": False}
    a = charrnn.train(names_file, _cfg(max_steps=14), checkpoint_dir=tmp_path / "a", **small)
    charrnn.train(names_file, _cfg(max_steps=6), checkpoint_dir=tmp_path / "b", **small)
    b = charrnn.train(names_file, _cfg(max_steps=14), checkpoint_dir=tmp_path / "b",
                      resume=True, **small)
    np.testing.assert_array_equal(a.model.params, b.model.params)
    assert a.best_val_loss == b.best_val_loss


def test_cli_train_sample_eval_info_export(names_file, tmp_path):
    run = tmp_path / "names"
    r = CliRunner().invoke(cli, ["train", str(names_file), "--records", "--hidden", "32",
                                 "--max-steps", "60", "--eval-every", "30", "--quiet",
                                 "--checkpoint-dir", str(run)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["sample", str(run), "--num-samples", "12", "--seed", "1",
                                 "--prime", "e", "--length", "40"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.split("\n")
    assert len(lines) == 13 and lines[-1] == ""  # twelve records, one per line
    assert all(s.startswith("e") and len(s) <= 41 for s in lines[:-1])
    m = charrnn.load(run)
    many = charrnn.sample_many(m, 12, 40, 0.8, "e", 1)
    assert many == lines[:-1]  # the CLI prints what the API returns
    r = CliRunner().invoke(cli, ["sample", str(run), "--num-samples", "30", "--seed", "1",
                                 "--novel"])
    assert r.exit_code == 0, r.output
    new = r.stdout.splitlines()
    assert not set(new) & set(NAMES)
    assert r.stderr.strip().endswith(f"{len(new)} of 30 samples are new (not lines of "
                                     f"{names_file})")
    r = CliRunner().invoke(cli, ["eval", str(run), str(names_file), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["chars"] == sum(len(n) + 1 for n in NAMES * 4)  # characters plus ends
    direct = charrnn.evaluate(m, "\n".join(NAMES * 4))
    assert d["nats_per_char"] == pytest.approx(direct.nats_per_char, rel=1e-6)
    r = CliRunner().invoke(cli, ["info", str(run)])
    assert "records mode:    120 records; the end symbol is id 0" in r.stdout
    assert charrnn.info(run)["records"] is True
    r = CliRunner().invoke(cli, ["export", str(run), str(tmp_path / "w.npz")])
    assert r.exit_code == 0, r.output
    w = np.load(tmp_path / "w.npz")
    assert int(w["end_index"]) == 0 and json.loads(w["vocab"].tobytes())[0] == ""


def test_samples_stop_at_the_end_symbol(names_file, tmp_path):
    charrnn.train(names_file, _cfg(max_steps=40), checkpoint_dir=tmp_path / "r", hidden=32,
                  layers=1, progress=False)
    m = charrnn.load(tmp_path / "r")
    one = charrnn.sample(m, length=200, seed=5)
    assert one == charrnn.sample_many(m, 1, 200, seed=5)[0]
    many = charrnn.sample_many(m, 50, 200, seed=5)
    assert all("\n" not in s for s in many)
    assert sum(len(s) < 200 for s in many) >= 40  # ended by END, not by --length


@pytest.mark.parametrize("text, match", [
    ("\n\n\n", "no records: every line is empty"),
    ("\n  only\n\n", "only one record"),
    ("a\n" + "b" * 2000 + "\n", "line 2 has 2,000 characters"),
])
def test_bad_records_files(tmp_path, text, match):
    p = tmp_path / "bad.txt"
    p.write_text(text)
    r = CliRunner().invoke(cli, ["train", str(p), "--records", "--checkpoint-dir",
                                 str(tmp_path / "r")])
    assert r.exit_code == 2 and match in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_crlf_and_byte_order_mark(tmp_path):
    p = tmp_path / "win.txt"
    p.write_bytes("\ufeff".encode() + b"anna\r\nbob\r\n\r\ncarl\r\n" * 20)
    charrnn.train(p, _cfg(max_steps=2), checkpoint_dir=tmp_path / "r", hidden=8, layers=1,
                  progress=False)
    vocab = charrnn.load(tmp_path / "r").vocab.chars
    assert "\r" not in vocab and "\ufeff" not in vocab and "\n" not in vocab
    text = tmp_path / "t.txt"  # text mode too: a byte-order mark is no character
    text.write_bytes("\ufeff".encode() + b"hello world\n" * 200)
    charrnn.train(text, TrainConfig(batch_size=4, seq_len=8, max_steps=1), hidden=8, layers=1,
                  checkpoint_dir=tmp_path / "t", progress=False)
    assert "\ufeff" not in charrnn.load(tmp_path / "t").vocab.chars


def test_novel_is_for_records_models(tiny_corpus, tmp_path):
    charrnn.train(tiny_corpus, TrainConfig(batch_size=4, seq_len=8, max_steps=1), hidden=8,
                  layers=1, checkpoint_dir=tmp_path / "t", progress=False)
    r = CliRunner().invoke(cli, ["sample", str(tmp_path / "t"), "--novel"])
    assert r.exit_code == 2 and "--novel is for records models" in r.stderr
