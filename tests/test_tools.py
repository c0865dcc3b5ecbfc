"""info, plot, demo, sampling extras and checkpoint cadence, through the CLI and the library."""
import builtins
import json

import numpy as np
import pytest
import reference as ref
from click.testing import CliRunner
from conftest import FAST_CLI as FAST
from conftest import cli_run as run

import charrnn
from charrnn.cli import cli
from charrnn.export import state_dict


def test_info_text_and_json(trained):
    d = json.loads(run("info", trained, "--json").stdout)
    assert d["cell"] == "lstm" and d["layers"] == 1 and d["hidden"] == 16
    assert d["parameters"] == charrnn.load(trained).params.size
    assert d["steps"] == 30 and d["chars_seen"] == 30 * 40 and d["format_version"] == 1
    assert d["best_val_bits_per_char"] == pytest.approx(d["best_val_loss"] / np.log(2))
    out = run("info", trained).stdout
    assert "lstm 1x16" in out and "parameters:" in out and "--seq-len 10" in out


def test_plot_text_png_and_missing_matplotlib(trained, tmp_path, monkeypatch):
    out = run("plot", trained).stdout
    assert "o" in out and "characters seen" in out and "1,200" in out
    pytest.importorskip("matplotlib")
    run("plot", trained, "-o", tmp_path / "loss.png")
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    real_import = builtins.__import__

    def no_matplotlib(name, *a, **k):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    r = CliRunner().invoke(cli, ["plot", str(trained), "-o", str(tmp_path / "x.png")])
    assert r.exit_code == 2 and "pip install 'charrnn[plot]'" in r.stderr
    assert not (tmp_path / "x.png").exists()
    assert "characters seen" in run("plot", trained).stdout  # the text plot needs nothing


def test_plot_errors(tmp_path):
    r = CliRunner().invoke(cli, ["plot", str(tmp_path)])
    assert r.exit_code == 2 and "no metrics.csv" in r.stderr


def test_demo_steps_match_float64_reference():
    from charrnn.demo import hello
    r = hello(steps=300)
    m = r["model"]
    assert r["vocab"] == ["h", "e", "l", "o"]
    x = np.array([[0], [1], [2], [2]])  # h e l l
    h0 = np.zeros((1, 1, 3))
    for when in ("after",):
        logits, _, _ = ref.forward(state_dict(m, np.float64), "rnn", 1, x, h0, h0)
        for t, s in enumerate(r[when]):
            np.testing.assert_allclose(s.scores, logits[t, 0], rtol=1e-10)
            np.testing.assert_array_equal(s.one_hot, np.eye(4)[x[t, 0]])
    assert [s.predicted for s in r["after"]] == list("ello")
    assert r["losses"][-1] < 0.05 < r["losses"][0]
    assert r["samples"][0.0] == "hello"


def test_demo_cli_is_quick_and_shows_steps():
    out = run("demo", "hello").stdout
    assert "before training" in out and "after 300 Adam steps" in out
    assert "temperature 0.0: 'hello'" in out
    out = run("demo", "hello", "--word", "abcab", "--hidden", 5, "--steps", 50).stdout
    assert "['a', 'b', 'c']" in out


def test_sample_temperature_list_num_samples_and_output(trained, tmp_path):
    out = run("sample", trained, "--temp", "0.5,1.0", "--num-samples", 2, "--length", 30,
              "--seed", 4).stdout
    assert out.count("--- temperature") == 4
    assert "--- temperature 1.0, sample 2 ---" in out
    run("sample", trained, "--length", 30, "--seed", 4, "--prime", "First",
        "-o", tmp_path / "s.txt")
    text = (tmp_path / "s.txt").read_text()
    assert text.startswith("First") and len(text) == 35
    stdout = run("sample", trained, "--length", 30, "--seed", 4, "--prime", "First").stdout
    assert stdout in (text, text + "\n")  # the file holds exactly the text; stdout ends a line
    m = charrnn.load(trained)
    greedy = m.sample(30, temperature=0, prime="First")
    assert m.sample(30, temperature=1.0, prime="First", top_k=1, seed=9) == greedy
    assert m.sample(30, temperature=1.0, prime="First", top_p=1e-6, seed=9) == greedy


def test_sample_every_prints_samples(tiny_corpus, tmp_path):
    r = CliRunner().invoke(cli, ["train", str(tiny_corpus), *FAST[:-1], "--max-steps", "6",
                                 "--sample-every", "3", "--sample-length", "25",
                                 "--checkpoint-dir", str(tmp_path / "r")])
    assert r.exit_code == 0
    assert r.stderr.count("--- sample at step") == 2


def test_keep_and_checkpoint_every(tiny_corpus, tmp_path):
    d = tmp_path / "k"
    run("train", tiny_corpus, *FAST, "--max-steps", 12, "--eval-every", 100,
        "--checkpoint-every", 2, "--keep", 3, "--checkpoint-dir", d)
    names = sorted(p.name for p in d.glob("ckpt-*.npz"))
    assert names == ["ckpt-00000008.npz", "ckpt-00000010.npz", "ckpt-00000012.npz"]
    assert charrnn.load(d / "ckpt-00000010.npz").meta["progress"]["step"] == 10
