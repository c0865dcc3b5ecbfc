"""Never lose work: kills at random moments, failed writes, the corpus cache, bad checkpoints."""
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from charrnn import checkpoint as ckpt
from charrnn import corpus as corpus_mod
from charrnn.cli import cli
from charrnn.errors import CharrnnError

FAST = ["--hidden", "16", "--layers", "1", "--batch-size", "4", "--seq-len", "10"]


def train_cmd(corpus, run_dir, steps):
    return [sys.executable, "-m", "charrnn", "train", str(corpus), *FAST, "--max-steps", str(steps),
            "--eval-every", "5", "--checkpoint-every", "1", "--quiet",
            "--checkpoint-dir", str(run_dir)]


def wait_for(path, timeout=120.0):
    """Until the child has written its first checkpoint (imports and kernel loading done)."""
    t0 = time.monotonic()
    while not path.exists():
        assert time.monotonic() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.05)


def test_sigkill_at_random_moments_then_resume(tiny_corpus, tmp_path):
    run_dir = tmp_path / "run"
    rng = np.random.default_rng(0)
    # Warm the kernel cache so the kills land during training, not compilation.
    subprocess.run(train_cmd(tiny_corpus, tmp_path / "warm", 2), check=True)
    # The first kill lands during training; the later ones anywhere from start-up to training.
    for delay in rng.uniform(0.0, 2.5, 3):
        resume = (run_dir / "last.npz").exists()
        cmd = train_cmd(tiny_corpus, run_dir, 100000) + (["--resume"] if resume else [])
        p = subprocess.Popen(cmd)
        wait_for(run_dir / "last.npz")
        time.sleep(delay)
        p.send_signal(signal.SIGKILL)
        p.wait()
        meta, _ = ckpt.load(run_dir / "last.npz")  # always loadable
    step = meta["progress"]["step"]
    r = subprocess.run(train_cmd(tiny_corpus, run_dir, step + 3) + ["--resume"],
                       check=False)
    assert r.returncode == 0
    assert charrnn.load(run_dir / "last.npz").meta["progress"]["step"] == step + 3
    rows = (run_dir / "metrics.csv").read_text().splitlines()[1:]
    steps = [int(line.split(",")[0]) for line in rows]
    assert steps == list(range(1, step + 4))  # no duplicated or missing steps


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_save_and_exit_cleanly(tiny_corpus, tmp_path, sig):
    run_dir = tmp_path / "run"
    cmd = [a for a in train_cmd(tiny_corpus, run_dir, 100000) if a != "--quiet"]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    wait_for(run_dir / "last.npz")
    time.sleep(0.3)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 128 + sig  # 130 for SIGINT, 143 for SIGTERM: `train && ...` stops
    assert "interrupted: saved" in err and "--resume" in err
    assert ckpt.load(run_dir / "last.npz")[0]["progress"]["step"] > 0


def test_second_ctrl_c_still_saves(tiny_corpus, tmp_path):
    """Ctrl-C twice in quick succession: the save still happens (the second one can only skip
    the final validation), and the exit status says SIGINT."""
    run_dir = tmp_path / "run"
    cmd = [a for a in train_cmd(tiny_corpus, run_dir, 100000) if a != "--quiet"]
    cmd += ["--checkpoint-every", "0", "--eval-every", "1000000"]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    wait_for(run_dir / "metrics.csv")
    time.sleep(1.0)
    for _ in range(2):
        p.send_signal(signal.SIGINT)
        time.sleep(0.02)
    _, err = p.communicate(timeout=60)
    # 130, or killed by the second SIGINT after the save (a shell shows 130 for both)
    assert p.returncode in (130, -signal.SIGINT), err
    assert "interrupted: saved" in err and "Traceback" not in err
    assert ckpt.load(run_dir / "last.npz")[0]["progress"]["step"] > 0


def test_failed_write_keeps_previous_checkpoint(tiny_corpus, tmp_path, monkeypatch):
    r = charrnn.train(tiny_corpus, charrnn.TrainConfig(batch_size=4, seq_len=10, max_steps=3),
                      hidden=8, layers=1, checkpoint_dir=tmp_path, progress=False)
    before = (tmp_path / "last.npz").read_bytes()

    def disk_full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(CharrnnError, match="No space left on device.*previous checkpoint is kept"):
        ckpt.save(tmp_path / "last.npz", {"model": {}}, {"params": r.model.params})
    monkeypatch.undo()
    assert (tmp_path / "last.npz").read_bytes() == before
    assert not list(tmp_path.glob(".tmp-*"))  # the temporary file is cleaned up


def test_unwritable_checkpoint_dir_is_a_clear_error(tiny_corpus, tmp_path):
    if os.geteuid() == 0:
        target = "/proc/charrnn-cannot-write-here"  # not writable even for root
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = str(ro / "run")
    r = CliRunner().invoke(cli, ["train", str(tiny_corpus), *FAST, "--max-steps", "2",
                                 "--checkpoint-dir", target])
    assert r.exit_code == 2 and "error:" in r.stderr and "Traceback" not in r.stderr


def test_corpus_cache_is_reused_and_invalidated(tmp_path):
    p = tmp_path / "c.txt"
    p.write_text("abcabc\u00e9" * 100)
    a = corpus_mod.load_corpus(p)
    files = sorted((tmp_path / ".charrnn-cache").iterdir())
    assert len(files) == 2 and a.ids.dtype == np.uint8
    assert a.vocab.decode(a.ids) == p.read_text()
    mtime = files[0].stat().st_mtime_ns
    b = corpus_mod.load_corpus(p)
    assert sorted((tmp_path / ".charrnn-cache").iterdir()) == files
    assert files[0].stat().st_mtime_ns == mtime and b.hash == a.hash
    p.write_text("xyz" * 100)
    c = corpus_mod.load_corpus(p)
    assert c.vocab.chars == ["x", "y", "z"] and c.hash != a.hash


@pytest.mark.parametrize("damage", ["truncate ids", "empty ids", "garble json", "half json",
                                    "wrong count", "no ids", "ids past the vocabulary"])
def test_damaged_corpus_cache_is_rebuilt(tmp_path, damage):
    p = tmp_path / "c.txt"
    p.write_text("hello world\n" * 300)
    corpus_mod.load_corpus(p)
    (ids,) = (tmp_path / ".charrnn-cache").glob("*.ids")
    (meta,) = (tmp_path / ".charrnn-cache").glob("*.json")
    if damage == "truncate ids":
        ids.write_bytes(ids.read_bytes()[:100])
    elif damage == "empty ids":
        ids.write_bytes(b"")
    elif damage == "garble json":
        meta.write_bytes(b"\x00\xff not json")
    elif damage == "half json":
        meta.write_text(meta.read_text()[:20])
    elif damage == "wrong count":
        meta.write_text(meta.read_text().replace('"chars": 3600', '"chars": 9000'))
    elif damage == "no ids":
        ids.unlink()
    else:
        ids.write_bytes(b"\xff" * 3600)
    c = corpus_mod.load_corpus(p)  # never "mmap length is greater than file size"
    assert c.vocab.decode(c.ids) == p.read_text()
    assert ids.stat().st_size == 3600


def _load_in_child(path, barrier, out):
    barrier.wait()
    try:
        c = corpus_mod.load_corpus(path)
        out.put(c.vocab.decode(c.ids) == Path(path).read_text())
    except Exception as e:  # noqa: BLE001 -- any failure is reported to the parent
        out.put(repr(e))


def test_first_runs_racing_on_one_corpus_both_succeed(tmp_path, monkeypatch):
    import multiprocessing as mp
    p = tmp_path / "c.txt"
    p.write_text("the quick brown fox\n" * 20000)
    ctx = mp.get_context("fork")
    barrier, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_load_in_child, args=(str(p), barrier, out)) for _ in range(4)]
    for q in procs:
        q.start()
    results = [out.get(timeout=60) for _ in procs]
    for q in procs:
        q.join(60)
    assert results == [True] * 4
    left = sorted(f.name for f in (tmp_path / ".charrnn-cache").iterdir())
    assert len(left) == 2 and not any(n.startswith(".tmp-") for n in left)


def test_streaming_encoder_across_chunk_boundaries(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_mod, "CHUNK", 7)  # multi-byte characters straddle chunks
    text = "h\u00e9llo w\u00f6rld \u2603 \U0001F600 " * 20
    p = tmp_path / "u.txt"
    p.write_text(text)
    c = corpus_mod.load_corpus(p)
    assert c.vocab.decode(c.ids) == text
    bad = tmp_path / "bad.txt"
    bad.write_bytes("\u00e9\u00e9\u00e9\u00e9".encode() + b"\xff" + b"abc")
    with pytest.raises(CharrnnError, match="byte offset 8;"):
        corpus_mod.load_corpus(bad)


def test_vocabulary_too_large(tmp_path):
    p = tmp_path / "wide.txt"
    p.write_text("".join(chr(c) for c in range(0x4E00, 0x4E00 + 21000)) * 2 +
                 "".join(chr(c) for c in range(0x20000, 0x20000 + 46000)))
    r = CliRunner().invoke(cli, ["train", str(p), "--checkpoint-dir", str(tmp_path / "r")])
    assert r.exit_code == 2 and "67,000 distinct characters" in r.stderr
    assert "--encoding bytes" in r.stderr and not (tmp_path / "r").exists()


def test_eval_file_streams_and_matches_in_memory(tiny_corpus, tmp_path):
    charrnn.train(tiny_corpus, charrnn.TrainConfig(batch_size=4, seq_len=10, max_steps=3),
                  hidden=8, layers=1, checkpoint_dir=tmp_path / "r", progress=False)
    from charrnn.evaluate import evaluate_file
    m = charrnn.load(tmp_path / "r")
    a = evaluate_file(m, tiny_corpus, batch_size=7)
    b = charrnn.evaluate(m, tiny_corpus.read_text(), batch_size=7)
    assert a.chars == b.chars and a.nats_per_char == pytest.approx(b.nats_per_char, rel=1e-6)


def test_divergence_stops_and_keeps_last_good_checkpoint(tiny_corpus, tmp_path, monkeypatch):
    from charrnn.model import Model
    real = Model.loss_and_grad
    calls = {"n": 0}

    def explode_at_step_7(self, *a, **k):
        calls["n"] += 1
        loss, state = real(self, *a, **k)
        return (float("nan") if calls["n"] == 7 else loss), state

    monkeypatch.setattr(Model, "loss_and_grad", explode_at_step_7)
    with pytest.raises(CharrnnError, match="diverged at step 7.*lower --lr"):
        charrnn.train(tiny_corpus, charrnn.TrainConfig(batch_size=4, seq_len=10, max_steps=20,
                      eval_every=5), hidden=8, layers=1, checkpoint_dir=tmp_path, progress=False)
    m = charrnn.load(tmp_path / "last.npz")
    assert m.meta["progress"]["step"] == 5 and np.all(np.isfinite(m.params))


def test_checkpoint_from_newer_format_or_wrong_shapes(tiny_corpus, tmp_path):
    charrnn.train(tiny_corpus, charrnn.TrainConfig(batch_size=4, seq_len=10, max_steps=2),
                  hidden=8, layers=1, checkpoint_dir=tmp_path, progress=False)
    meta, arrays = ckpt.load(tmp_path / "last.npz")
    ckpt.save(tmp_path / "bad.npz", meta, dict(arrays, params=arrays["params"][:-1]))
    with pytest.raises(CharrnnError, match="params has shape"):
        ckpt.load(tmp_path / "bad.npz")
    ckpt.save(tmp_path / "new.npz", meta, arrays)
    import json
    import zipfile
    with zipfile.ZipFile(tmp_path / "new.npz") as z:  # rewrite meta with a future version
        files = {n: z.read(n) for n in z.namelist()}
    m = dict(meta, format_version=99)
    blob = np.frombuffer(json.dumps(m).encode(), np.uint8)
    np.savez(tmp_path / "new.npz", meta=blob, **arrays)
    with pytest.raises(CharrnnError, match="newer than this charrnn understands.*upgrade"):
        ckpt.load(tmp_path / "new.npz")
    assert files  # the original archive was readable


def test_charrnn_debug_env_shows_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("CHARRNN_DEBUG", "1")
    r = CliRunner().invoke(cli, ["train", str(tmp_path / "missing.txt")])
    assert isinstance(r.exception, CharrnnError)


def test_api_arguments_are_checked_with_charrnn_errors(tmp_path, tiny_corpus):
    """Every public entry point answers bad arguments with CharrnnError, a ValueError."""
    assert issubclass(CharrnnError, ValueError)
    result = charrnn.train(tiny_corpus, charrnn.TrainConfig(max_steps=2, batch_size=4, seq_len=8),
                           hidden=8, layers=1, checkpoint_dir=tmp_path / "r", progress=False)
    m = charrnn.load(result.run_dir)
    calls = {
        "corpus must be a path": lambda: charrnn.train(123),
        "config must be a charrnn.TrainConfig": lambda: charrnn.train(tiny_corpus, {"lr": 1}),
        "checkpoint must be a path": lambda: charrnn.load(123),
        "--lr must be float": lambda: charrnn.TrainConfig(lr="0.1"),
        "--epochs must be a finite number": lambda: charrnn.TrainConfig(epochs=1e999),
        "--seed must be >= 0": lambda: charrnn.TrainConfig(seed=-1),
        "--hidden must be int": lambda: charrnn.ModelConfig(5, hidden="8"),
        "length must be an integer": lambda: m.sample(5.5),
        "text must be a str": lambda: charrnn.evaluate(m, None),
        "batch_size must be an integer >= 1": lambda: charrnn.evaluate(m, "First", batch_size=0),
        "the model has no vocabulary": lambda: charrnn.Model(m.cfg).sample(10),
    }
    for message, call in calls.items():
        with pytest.raises(CharrnnError, match=message):
            call()


def test_divergence_says_so_without_claiming_a_checkpoint(tiny_corpus, tmp_path):
    r = CliRunner().invoke(cli, ["train", str(tiny_corpus), "--hidden", "16", "--layers", "1",
                                 "--batch-size", "4", "--seq-len", "10", "--optimizer", "sgd",
                                 "--lr", "1e8", "--grad-clip", "0", "--max-steps", "50",
                                 "--quiet", "--checkpoint-dir", str(tmp_path / "r")])
    assert r.exit_code == 2 and "diverged" in r.stderr and "no checkpoint was written" in r.stderr
    assert "Warning" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_overconfident_model_has_infinite_perplexity():
    from charrnn.evaluate import perplexity
    assert perplexity(800.0) == float("inf") and perplexity(1.0) == pytest.approx(2.718281828)
