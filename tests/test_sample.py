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
