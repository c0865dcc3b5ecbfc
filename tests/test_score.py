"""charrnn score: per-line and per-character likelihood, agreeing with eval."""
import json

import numpy as np
import pytest

import charrnn
from charrnn.errors import CharrnnError
from conftest import FAST_CLI, cli_run


def piped(*args, input):
    """`charrnn ARGS < input`, in-process."""
    from click.testing import CliRunner

    from charrnn.cli import cli
    r = CliRunner().invoke(cli, [str(a) for a in args], input=input)
    assert r.exit_code == 0, (r.output, r.stderr)
    return r

NAMES = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn"]
LINES = ["First Citizen:", "You are all resolved rather to die", "", "zzzz qqq"]


@pytest.fixture(scope="module")
def runs(tiny_run, tmp_path_factory):
    """A text model and a records model, trained briefly (read only by these tests)."""
    tmp = tmp_path_factory.mktemp("score")
    names = tmp / "names.txt"
    names.write_text("\n".join(NAMES * 20) + "\n")
    cli_run("train", names, *FAST_CLI, "--records", "--max-steps", 20,
            "--checkpoint-dir", tmp / "names")
    return tiny_run[0], tmp / "names"


def test_text_lines_score_what_eval_counts_for_them(runs):
    m = charrnn.load(runs[0])
    r = charrnn.score(m, LINES)
    for i, line in enumerate(LINES):
        e = charrnn.evaluate(m, "\n" + line + "\n", batch_size=1)
        assert r.chars[i] == e.chars == len(line) + 1  # the characters and the line's newline
        assert r.nats[i] == pytest.approx(e.nats_per_char * e.chars, rel=1e-5)
        assert r.bits_per_char[i] == pytest.approx(e.bits_per_char, rel=1e-5)


def test_records_score_includes_the_end_symbol_as_eval_does(runs):
    m = charrnn.load(runs[1])
    r = charrnn.score(runs[1], ["emma", "mia"])  # a path works as the model, too
    for i, name in enumerate(["emma", "mia"]):
        e = charrnn.evaluate(m, name)
        assert r.chars[i] == e.chars == len(name) + 1
        assert r.nats[i] == pytest.approx(e.nats_per_char * e.chars, rel=1e-5)
    c = charrnn.score_chars(m, "emma")
    assert c.targets == ["e", "m", "m", "a", ""] and c.nats.sum() == pytest.approx(r.nats[0],
                                                                                  rel=1e-5)


def test_per_character_scores_and_guesses(runs):
    m = charrnn.load(runs[0])
    c = charrnn.score_chars(m, "First")
    assert c.targets == list("First") + ["\n"]
    assert c.nats.sum() == pytest.approx(charrnn.score(m, ["First"]).nats[0], rel=1e-6)
    assert c.top_p.shape == (6, 5) and np.all(np.diff(c.top_p, axis=1) <= 0)
    # the guesses are the model's: the most likely character has the highest probability
    for t, (ch, n) in enumerate(zip(c.targets, c.nats)):
        if ch in c.top[t]:
            assert np.exp(-n) == pytest.approx(c.top_p[t][c.top[t].index(ch)], rel=1e-6)
        else:
            assert np.exp(-n) <= c.top_p[t][-1] + 1e-12


def test_cli_rows_sort_json_and_stdin(runs, tmp_path):
    f = tmp_path / "lines.txt"
    f.write_text("\r\n".join(LINES) + "\r\n")  # CRLF is no character
    rows = cli_run("score", runs[0], f).stdout.splitlines()
    assert [r.split("\t")[2] for r in rows] == LINES
    r = charrnn.score(runs[0], LINES)
    assert [float(x.split("\t")[0]) for x in rows] == pytest.approx(r.nats, abs=1e-3)
    ranked = cli_run("score", runs[0], f, "--sort").stdout.splitlines()
    assert [x.split("\t")[2] for x in ranked] == [LINES[i] for i in r.order()]
    bpc = [float(x.split("\t")[1]) for x in ranked]
    assert bpc == sorted(bpc)
    got = [json.loads(x) for x in piped("score", runs[0], "--json",
                                        input="\n".join(LINES)).stdout.splitlines()]
    assert [g["line"] for g in got] == LINES and [g["chars"] for g in got] == list(r.chars)
    chars = json.loads(piped("score", runs[0], "-", "--chars", "--json", input="Fi\n").stdout)
    assert [p["char"] for p in chars["positions"]] == ["F", "i", "\n"]
    assert len(chars["positions"][0]["top"]) == 5


def test_records_cli_skips_empty_lines(runs):
    out = piped("score", runs[1], input="emma\n\nava\n").stdout.splitlines()
    assert [x.split("\t")[2] for x in out] == ["emma", "ava"]


def test_unknown_characters_are_one_line_or_skipped(runs, tmp_path):
    f = tmp_path / "odd.txt"
    f.write_text("First €uro\n")
    r = cli_run("score", runs[0], f, ok=False)
    assert r.exit_code == 2 and r.stderr.strip() == (
        f"error: {f}: 1 character(s) not in the model's vocabulary: '€' "
        "(use --skip-unknown to ignore them)")
    row = cli_run("score", runs[0], f, "--skip-unknown").stdout.split("\t")
    assert row[2].strip() == "First €uro" and float(row[0]) > 0
    with pytest.raises(CharrnnError, match="lines must be a list of str"):
        charrnn.score(runs[0], "not a list")


def test_beam_search_returns_records_by_probability_and_width_1_is_greedy(runs):
    m = charrnn.load(runs[1])
    found = charrnn.beam(m, 5, 30)
    logps = [lp for _, lp in found]
    assert len(found) == 5 and logps == sorted(logps, reverse=True)
    r = charrnn.score(m, [t for t, _ in found])  # each record's probability, its end included
    assert list(-r.nats) == pytest.approx(logps, rel=1e-5)
    assert len({t for t, _ in found}) == 5
    text = charrnn.load(runs[0])
    greedy = charrnn.sample(text, 40, temperature=0, prime="First")
    assert charrnn.beam(text, 1, 40, prime="First")[0][0] == greedy
    wide = charrnn.beam(text, 4, 40, prime="First")
    # at least as likely, up to float32 rounding of 40 log-probabilities (the same text scored
    # in a batch of 4 rows and of 1 can differ in the last bits: 2e-7 nats seen)
    assert wide[0][1] >= charrnn.beam(text, 1, 40, prime="First")[0][1] - 1e-5


def test_beam_from_the_cli(runs):
    r = cli_run("sample", runs[1], "--beam", 3, "--length", 30)
    lines = r.stdout.splitlines()
    assert len(lines) == 3 and lines == [t for t, _ in charrnn.beam(runs[1], 3, 30)]
    assert len(r.stderr.strip().splitlines()) == 3 and "nats" in r.stderr
    bad = cli_run("sample", runs[1], "--beam", 0, ok=False)
    assert bad.exit_code == 2 and "--beam must be an integer >= 1" in bad.stderr


def test_a_binary_file_is_refused_as_the_corpus_reader_refuses_it(runs, tmp_path):
    f = tmp_path / "bin.txt"
    f.write_bytes(b"First\x00Citizen\n")
    r = cli_run("score", runs[0], f, ok=False)
    assert r.exit_code == 2 and "looks like a binary file (NUL byte at offset 5)" in r.stderr
