"""The command line through click's CliRunner: the happy path and every kind of bad input."""
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import FAST_CLI as FAST
from conftest import cli_run as run

from charrnn.cli import cli


def test_train_sample_eval(trained, tiny_corpus):
    assert {p.name for p in trained.iterdir()} == {".lock", "best.npz", "last.npz", "metrics.csv"}
    header = (trained / "metrics.csv").read_text().splitlines()[0]
    assert header == "step,epoch,train_loss,val_loss,lr,chars_per_sec,seconds"
    r = run("sample", trained, "--length", 40, "--prime", "First", "--seed", 1)
    assert r.stdout.startswith("First") and r.stdout.endswith("\n") and len(r.stdout) == 46  # one newline added
    assert run("sample", trained, "--length", 40, "--seed", 1).stdout == \
        run("sample", trained, "--length", 40, "--seed", 1).stdout
    r = run("eval", trained / "best.npz", tiny_corpus, "--json")
    d = json.loads(r.stdout)
    assert set(d) == {"nats_per_char", "bits_per_char", "perplexity", "chars"}
    assert d["bits_per_char"] == pytest.approx(d["nats_per_char"] / np.log(2))
    assert d["perplexity"] == pytest.approx(np.exp(d["nats_per_char"]))
    assert "perplexity" in run("eval", trained, tiny_corpus).stdout


def test_hello_example(hello_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run("train", hello_file, "--model", "rnn", "--hidden", "16", "--layers", 1, "--batch-size", 4,
        "--seq-len", 10, "--max-steps", 300, "--lr", 0.01, "--quiet")
    r = CliRunner().invoke(cli, ["sample", "--prime", "h", "--temp", "0", "--length", "4"])
    assert r.exit_code == 0
    assert r.stdout == "hello\n"  # the text, then one newline for the shell prompt
    assert "using checkpoints/hello/best.npz" in r.stderr


def test_export_names_and_shapes(trained, tmp_path):
    run("export", trained, tmp_path / "w.npz")
    z = np.load(tmp_path / "w.npz", allow_pickle=False)
    V = len(json.loads(z["vocab"].tobytes()))
    assert z["rnn.weight_ih_l0"].shape == (4 * 16, V)
    assert z["rnn.weight_hh_l0"].shape == (4 * 16, 16)
    assert z["decoder.weight"].shape == (V, 16)


def test_python_dash_m(trained):
    r = subprocess.run([sys.executable, "-m", "charrnn", "sample", str(trained), "--length", "5",
                        "--prime", "A", "--seed", "0"], capture_output=True, text=True, check=False)
    assert r.returncode == 0 and r.stdout.endswith("\n") and len(r.stdout) in (6, 7)


def bad(*args, match):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    assert match in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    return r


def test_bad_corpus_inputs(tmp_path):
    out = tmp_path / "out"
    bad("train", tmp_path / "missing.txt", "--checkpoint-dir", out, match="no such file")
    # a directory is a corpus (every text file under it); this one has none
    bad("train", tmp_path, "--checkpoint-dir", out, match="no text files in this directory")
    (tmp_path / "empty.txt").write_text("")
    bad("train", tmp_path / "empty.txt", "--checkpoint-dir", out, match="empty")
    (tmp_path / "short.txt").write_text("abc" * 20)
    bad("train", tmp_path / "short.txt", "--checkpoint-dir", out, match="needs at least 2501")
    (tmp_path / "bad.txt").write_bytes(b"hello \xc3\x28 world" * 100)
    bad("train", tmp_path / "bad.txt", "--checkpoint-dir", out,
        match="invalid UTF-8 at byte offset 6")
    (tmp_path / "bin.dat").write_bytes(bytes(range(256)) * 50)
    bad("train", tmp_path / "bin.dat", "--checkpoint-dir", out, match="binary")
    assert not out.exists()  # nothing half-written


@pytest.mark.parametrize("opt,val,match", [
    ("--lr", "0", "--lr must be > 0"), ("--lr", "-1", "--lr must be > 0"),
    ("--hidden", "0", "--hidden must be >= 1"), ("--dropout", "1", "--dropout must be in [0, 1)"),
    ("--val-fraction", "0", "--val-fraction must be in (0, 0.5]"),
    ("--val-fraction", "0.6", "--val-fraction must be in (0, 0.5]"),
    ("--layers", "0", "--layers must be >= 1"), ("--seq-len", "0", "--seq-len must be >= 1")])
def test_bad_train_numbers(tiny_corpus, tmp_path, opt, val, match):
    bad("train", tiny_corpus, opt, val, "--checkpoint-dir", tmp_path / "o", match=match)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args,match", [
    (["--temp", "-1"], "--temp must be > 0, or 0 for greedy"),
    (["--length", "-5"], "--length must be >= 0"),
    (["--top-p", "0"], "--top-p must be in (0, 1]"),
    (["--prime", "\u2603F"], "not in the model's vocabulary: '\u2603'")])
def test_bad_sample_options(trained, args, match):
    bad("sample", trained, *args, match=match)


def test_eval_unknown_characters(trained, tmp_path):
    p = tmp_path / "odd.txt"
    p.write_text("First Citizen \u00e9\u00e9 \u2603")
    bad("eval", trained, p, match="not in the model's vocabulary: '\u00e9', '\u2603'")
    assert "chars" in run("eval", trained, p, "--skip-unknown").stdout


def test_bad_checkpoints(tmp_path):
    bad("sample", tmp_path / "nope.npz", match="no such checkpoint")
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    bad("sample", tmp_path / "junk.npz", match="truncated or corrupt")
    np.savez(tmp_path / "foreign.npz", a=np.zeros(3))
    bad("sample", tmp_path / "foreign.npz", match="not a charrnn checkpoint")


def test_truncated_checkpoint(trained, tmp_path):
    data = (trained / "last.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    bad("sample", tmp_path / "cut.npz", match="truncated or corrupt")


def test_debug_shows_traceback(tmp_path):
    r = CliRunner().invoke(cli, ["--debug", "train", str(tmp_path / "missing.txt")])
    assert r.exit_code != 0 and r.exception is not None and "no such file" in str(r.exception)


def test_resume_from_cli(tiny_corpus, tmp_path):
    d = tmp_path / "r"
    run("train", tiny_corpus, *FAST, "--max-steps", 6, "--eval-every", 3, "--checkpoint-dir", d)
    run("train", tiny_corpus, "--max-steps", 9, "--checkpoint-dir", d, "--resume", "--quiet")
    rows = (d / "metrics.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(1, 10))
    bad("train", tiny_corpus, "--seq-len", 20, "--checkpoint-dir", d, "--resume",
        match="cannot resume with different options: --seq-len 10 -> 20")
    bad("train", tiny_corpus, "--model", "gru", "--hidden", 16, "--checkpoint-dir", d, "--resume",
        match="cannot resume with a different model: --model lstm -> gru")
    run("train", tiny_corpus, "--hidden", 16, "--max-steps", 10, "--checkpoint-dir", d,
        "--resume", "--quiet")  # the same model option, given again, is fine


def test_progress_lines_when_not_a_terminal(tiny_corpus, tmp_path):
    r = CliRunner().invoke(cli, ["train", str(tiny_corpus), *FAST[:-1], "--max-steps", "3",
                                 "--checkpoint-dir", str(tmp_path / "r")])
    assert r.exit_code == 0
    assert "step 1: epoch" in r.stderr and "chars/s" in r.stderr and "\r" not in r.stderr
    assert "finished at step 3" in r.stderr


def test_version():
    r = run("--version")
    assert r.stdout.startswith("charrnn, version ")


def test_first_compile_is_announced(monkeypatch, tmp_path):
    from charrnn import jit
    messages = []
    monkeypatch.setattr(jit.os.path, "exists", lambda p: p.endswith(".nbi"))  # all cached
    jit.notice(jit.train_kernels("gru"), messages.append)
    assert messages == []
    monkeypatch.setattr(jit.os.path, "exists", lambda p: False)  # as on a fresh install
    jit.notice(jit.train_kernels("gru"), messages.append)
    assert "compiling its kernels for the first run" in messages[0]


@pytest.mark.parametrize("cmd", [["train"], ["sample"], ["eval"], ["export"], ["info"], ["plot"],
                                 ["demo", "hello"], []])
def test_every_help_has_an_example(cmd):
    r = run(*cmd, "--help")
    assert "Example:" in r.stdout and "charrnn " in r.stdout.split("Example:")[1]


def test_cold_cache_notice_comes_after_validation(trained, tiny_corpus, tmp_path, monkeypatch):
    from charrnn import jit
    monkeypatch.setattr(jit, "needs_compiling", lambda names: True)  # as on a fresh install
    bad("sample", trained, "--prime", "\u2603F", match="not in the model's vocabulary")
    bad("train", tmp_path / "missing.txt", match="no such file")
    p = tmp_path / "odd.txt"
    p.write_text("First \u2603")
    bad("eval", trained, p, match="not in the model's vocabulary")
    r = CliRunner().invoke(cli, ["sample", str(trained), "--length", "10", "--prime", "F"])
    # the prime, 10 characters, and a newline unless the last one generated was a newline
    assert r.exit_code == 0 and "compiling its kernels" in r.stderr
    assert r.stdout.startswith("F") and r.stdout.endswith("\n") and len(r.stdout) in (11, 12)
    r = CliRunner().invoke(cli, ["train", str(tiny_corpus), *FAST, "--max-steps", "2",
                                 "--checkpoint-dir", str(tmp_path / "x")])
    assert r.exit_code == 0 and "compiling its kernels" in r.stderr


def test_many_samples_are_the_single_samples_of_their_seeds(trained):
    many = run("sample", trained, "--num-samples", "3", "--seed", "1", "--length", "40",
               "--prime", "F", "--threads", "2").stdout
    singles = [run("sample", trained, "--seed", str(s), "--length", "40", "--prime", "F").stdout
               for s in (1, 2, 3)]
    for k, text in enumerate(singles):
        assert f"--- temperature 0.8, sample {k + 1} ---\n{text}" in many
    assert run("sample", trained, "--num-samples", "3", "--seed", "1", "--length", "40",
               "--prime", "F", "--threads", "1").stdout == many


def test_threads_option_of_eval(trained, tiny_corpus):
    one = json.loads(run("eval", trained, tiny_corpus, "--json", "--threads", "1").stdout)
    two = json.loads(run("eval", trained, tiny_corpus, "--json", "--threads", "2").stdout)
    assert one["chars"] == two["chars"] and abs(one["nats_per_char"] - two["nats_per_char"]) < 1e-5
    bad("eval", trained, tiny_corpus, "--threads", "0", match="--threads must be >= 1")
    bad("sample", trained, "--threads", "0", match="--threads must be >= 1")


def test_sample_ends_with_one_newline_but_files_hold_exactly_the_text(trained, tmp_path):
    r = run("sample", trained, "--length", 30, "--seed", 3, "--prime", "F")
    assert r.stdout.endswith("\n")
    run("sample", trained, "--length", 30, "--seed", 3, "--prime", "F", "-o", tmp_path / "s.txt")
    text = (tmp_path / "s.txt").read_text()
    assert len(text) == 31 and r.stdout in (text, text + "\n")
