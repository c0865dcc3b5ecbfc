"""Generation options: stop strings and best-of (sample.py, score.best_of)."""
import numpy as np
import pytest

import charrnn
from charrnn.errors import CharrnnError
from charrnn.sample import CHUNK, cut_at_stop
from charrnn.score import continuation_nats
from conftest import cli_run


@pytest.fixture(scope="module")
def model(tiny_run):
    return charrnn.load(tiny_run[0])


def test_stop_ends_right_after_the_string_and_can_leave_it_out(model):
    full = charrnn.sample(model, 300, seed=1)
    st = full[10:12]
    i = full.find(st)
    assert charrnn.sample(model, 300, seed=1, stop=st) == full[: i + 2]
    assert charrnn.sample(model, 300, seed=1, stop=st, stop_exclude=True) == full[:i]
    # the earliest of several stops wins
    stops = (full[30:33], full[15])
    first = min(full.find(x) for x in stops)
    got = charrnn.sample(model, 300, seed=1, stop=stops)
    assert got == cut_at_stop(full, stops) and len(got) <= 33 and got.endswith(stops)
    assert got.find(stops[0]) in (-1, first) and got.find(stops[1]) in (-1, first)


def test_a_stop_spanning_two_generated_chunks_is_found(model):
    full = charrnn.sample(model, 3 * CHUNK, seed=2)
    st = full[CHUNK - 2: CHUNK + 2]  # straddles the first chunk boundary
    i = full.find(st)
    assert charrnn.sample(model, 3 * CHUNK, seed=2, stop=st) == full[: i + len(st)]
    chunks = list(charrnn.sample_chunks(model, 3 * CHUNK, seed=2, stop=st))
    assert "".join(chunks) == full[: i + len(st)]


def test_the_prime_does_not_stop_generation(model):
    text = charrnn.sample(model, 50, prime="First Citizen", seed=3, stop="Cit")
    assert text.startswith("First Citizen") and len(text) > len("First Citizen")
    assert "Cit" not in text[len("First Citizen"):-3]


def test_each_of_many_samples_stops_on_its_own(model):
    plain = charrnn.sample_many(model, 4, 200, seed=5)
    st = plain[0][40:42]
    cut = charrnn.sample_many(model, 4, 200, seed=5, stop=st)
    assert cut == [cut_at_stop(t, (st,)) for t in plain]
    assert any(len(c) < len(p) for c, p in zip(cut, plain))


def test_best_of_is_the_most_likely_candidate(model):
    text, nats, i = charrnn.best_of(model, 6, 80, prime="The ", seed=7)
    candidates = charrnn.sample_many(model, 6, 80, prime="The ", seed=7)
    scores = continuation_nats(model, "The ", candidates)
    assert text == candidates[i] and nats == pytest.approx(scores.min())
    assert i == int(np.argmin(scores))
    # the score is the candidate's mean surprisal after the prime
    c = charrnn.score_chars(model, text)
    assert nats == pytest.approx(c.nats[4:-1].mean(), rel=1e-5)  # score_chars adds the newline


def test_cli_stop_and_best_of(model, tmp_path):
    run = model.path.parent
    r = cli_run("sample", run, "--length", 300, "--seed", 1, "--stop", "e", "--stop", "a")
    out = r.stdout.rstrip("\n")
    assert out.endswith(("e", "a")) and out.count("e") + out.count("a") == 1
    r = cli_run("sample", run, "--length", 60, "--seed", 1, "--best-of", 4)
    assert "best of 4: candidate" in r.stderr and "nats/char" in r.stderr
    for bad, message in ((["--stop", ""], "--stop must be a non-empty string"),
                         (["--best-of", 3, "--num-samples", 2], "--best-of picks one sample"),
                         (["--best-of", 0], "--best-of must be an integer >= 1")):
        r = cli_run("sample", run, *bad, ok=False)
        assert r.exit_code == 2 and message in r.stderr, r.stderr
    with pytest.raises(CharrnnError, match="--stop must be a non-empty string"):
        charrnn.sample(model, 10, stop=[""])


def test_interactive_prompt_through_a_terminal(model):
    """`sample --interactive` on a real pseudo-terminal: a prime, /temp, /reset, Ctrl-C during a
    long generation (stops it, not the program), and Ctrl-D (leaves)."""
    import os
    import pty
    import select
    import sys
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: charrnn on the terminal's slave side
        os.execv(sys.executable, [sys.executable, "-m", "charrnn", "sample", str(model.path),
                                  "--interactive", "--seed", "1", "--length", "30"])
    seen = b""

    def until(text: bytes, start: int = 0, timeout=60.0) -> int:
        """Read until text appears after position start; returns where it ends."""
        nonlocal seen
        end = time.monotonic() + timeout
        while text not in seen[start:]:
            assert time.monotonic() < end, seen.decode(errors="replace")[-2000:]
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    seen += os.read(fd, 4096)
                except OSError:
                    break
        return seen.index(text, start) + len(text)

    try:
        at = until(b"> ")
        os.write(fd, b"First\r")
        at = until(b"> ", until(b"First", until(b"First", at)))  # the echo, then the output
        reply = seen[:at].rsplit(b"First", 1)[1]
        assert len(reply.strip(b"\r\n> ")) > 0  # a continuation came back
        os.write(fd, b"/temp 0\r")
        at = until(b"[temp 0]", at)
        os.write(fd, b"/length 200000\r")
        at = until(b"[length 200000]", at)
        os.write(fd, b"You\r")
        at = until(b"You", until(b"You", at))
        time.sleep(0.5)
        os.write(fd, b"\x03")  # Ctrl-C in the middle of 200,000 characters
        at = until(b"[stopped]", at, 30)
        os.write(fd, b"/reset\r")
        at = until(b"[state reset]", at)
        os.write(fd, b"\x04")  # Ctrl-D at the prompt
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert b"Traceback" not in seen
    finally:
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (OSError, ChildProcessError):
            pass
