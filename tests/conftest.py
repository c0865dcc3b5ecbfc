import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn.cli import cli
from charrnn.config import ModelConfig
from charrnn.model import Model

# The step strategies the tests' runs measure go to a file of this session's own (and to the
# subprocesses it starts), not into the checkout's numba cache folder.
os.environ.setdefault("CHARRNN_STRATEGY_CACHE",
                      str(Path(tempfile.mkdtemp(prefix="charrnn-strategies-")) / "strategies.json"))

CELLS = ["rnn", "gru", "lstm"]


def random_model(cell, layers=2, V=5, H=4, seed=0, dtype=np.float64, **kw):
    """A small model with weights spread wider than the init, so gates are not all near 0.5."""
    m = Model(ModelConfig(vocab_size=V, cell=cell, hidden=H, layers=layers, **kw), dtype=dtype,
              seed=seed)
    m.params += np.random.default_rng(seed + 1).normal(0, 0.4, m.params.shape)
    return m


def random_batch(V=5, T=4, B=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))


def random_state(m, B, seed=0):
    rng = np.random.default_rng(seed + 7)
    h, c = m.zero_state(B)
    return h + rng.normal(0, 0.5, h.shape), c + rng.normal(0, 0.5, c.shape)


@pytest.fixture
def hello_file(tmp_path):
    p = tmp_path / "hello.txt"
    p.write_text("hello\n" * 300)
    return p


@pytest.fixture
def tiny_corpus(tmp_path):
    """A few KB of real text (the head of the bundled corpus)."""
    from charrnn.train import DEFAULT_CORPUS
    p = tmp_path / "tiny.txt"
    p.write_text(DEFAULT_CORPUS.read_text()[:6000])
    return p


# A small, fast model for command-line tests.
FAST_CLI = ["--hidden", "16", "--layers", "1", "--batch-size", "4", "--seq-len", "10", "--quiet"]


def cli_run(*args, ok=True):
    """`charrnn ARGS` in-process; asserts exit status 0 unless ok=False."""
    r = CliRunner().invoke(cli, [str(a) for a in args])
    if ok:
        assert r.exit_code == 0, (r.output, r.stderr)
    return r


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """(run directory, its corpus): a tiny LSTM trained 20 steps on the head of the bundled
    corpus, once per session, for the tests that only read a run (sample, score, show, serve)."""
    from charrnn.train import DEFAULT_CORPUS
    tmp = tmp_path_factory.mktemp("tiny_run")
    text = tmp / "tiny.txt"
    text.write_text(DEFAULT_CORPUS.read_text()[:6000])
    cli_run("train", text, *FAST_CLI, "--max-steps", 20, "--eval-every", 10,
            "--checkpoint-dir", tmp / "run")
    return tmp / "run", text


@pytest.fixture
def trained(tiny_corpus, tmp_path):
    """A run directory: 30 steps of a tiny LSTM on the tiny corpus."""
    cli_run("train", tiny_corpus, *FAST_CLI, "--max-steps", 30, "--eval-every", 10,
            "--checkpoint-dir", tmp_path / "run")
    return tmp_path / "run"
