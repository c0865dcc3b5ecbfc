"""Where the text comes from: several files, a directory, standard input, the packaged corpus."""
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

import charrnn
from charrnn import sources
from charrnn.cli import cli
from charrnn.config import TrainConfig
from charrnn.errors import CharrnnError
from charrnn.train import DEFAULT_CORPUS

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--hidden", "8", "--layers", "1", "--batch-size", "2", "--seq-len", "8", "--quiet",
        "--max-steps", "2"]


def _tree(tmp_path):
    d = tmp_path / "texts"
    (d / "b").mkdir(parents=True)
    (d / "a.txt").write_text("alpha one\nalpha two")  # no final newline: one is added
    (d / "b" / "c.md").write_text("\ufeffgamma\n")        # its byte-order mark is dropped
    (d / "b" / "z.bin").write_bytes(b"\x00\x01\x02")    # not text: skipped, named
    (d / "bad.txt").write_bytes(b"ok \xff\xfe")          # invalid UTF-8: skipped, named
    (d / ".hidden").write_text("secret\n")               # hidden: left out
    (d / "empty.txt").write_text("")
    return d


def test_a_directory_is_its_text_files_in_sorted_order(tmp_path):
    d = _tree(tmp_path)
    notes = []
    path = sources.gather([d], notice=notes.append)
    assert path.read_text() == "alpha one\nalpha two\ngamma\n"
    assert len(notes) == 1 and notes[0].startswith("skipped 2 file(s) that are not text:")
    assert "z.bin" in notes[0] and "bad.txt" in notes[0]
    assert sources.gather([d], notice=notes.append) == path  # reused while nothing changes
    assert sources.run_name([d]) == "texts"


def test_several_files_are_joined_with_a_newline(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("one")
    b.write_text("two\n")
    assert sources.gather([a, b]).read_text() == "one\ntwo\n"
    assert sources.gather([b, a]).read_text() == "two\none\n"
    assert sources.gather(a) == a  # one file is read as it is
    bad = tmp_path / "bin.dat"
    bad.write_bytes(b"\x00abc")
    with pytest.raises(CharrnnError, match="bin.dat: not a UTF-8 text file"):
        sources.gather([a, bad])
    with pytest.raises(CharrnnError, match="nope.txt: no such file"):
        sources.gather([a, tmp_path / "nope.txt"])


def test_train_on_a_directory_and_resume_notices_a_changed_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    d = tmp_path / "texts"
    d.mkdir()
    for i in range(3):
        (d / f"{i}.txt").write_text(f"file number {i} says hello world\n" * 40)
    r = CliRunner().invoke(cli, ["train", str(d), *FAST])
    assert r.exit_code == 0, r.output
    run = tmp_path / "checkpoints" / "texts"
    assert charrnn.load(run).meta["corpus"]["chars"] == 3 * 40 * 31
    (d / "1.txt").write_text("file number 1 changed its mind\n" * 40)
    r = CliRunner().invoke(cli, ["train", str(d), "--resume", "--max-steps", "4"])
    assert r.exit_code == 2 and "cannot resume:" in r.stderr and "texts" in r.stderr


def test_train_from_standard_input(tmp_path):
    text = "piped text, read once into the cache\n" * 50
    r = CliRunner().invoke(cli, ["train", "-", *FAST, "--checkpoint-dir", str(tmp_path / "r")],
                           input=text)
    assert r.exit_code == 0, r.output
    m = charrnn.load(tmp_path / "r")
    assert m.meta["corpus"]["chars"] == len(text) and set(m.vocab.chars) == set(text)
    r = CliRunner().invoke(cli, ["train", "-", *FAST, "--checkpoint-dir", str(tmp_path / "r"),
                                 "--resume", "--max-steps", "3"], input=text)
    assert r.exit_code == 0, r.output  # the same text again: the same corpus
    r = CliRunner().invoke(cli, ["train", "-", *FAST, "--checkpoint-dir", str(tmp_path / "e")],
                           input="")
    assert r.exit_code == 2 and "standard input (-) is empty" in r.stderr


def test_records_from_several_files(tmp_path):
    a, b = tmp_path / "girls.txt", tmp_path / "boys.txt"
    a.write_text("anna\nbella\ncora")
    b.write_text("dan\neli\n")
    charrnn.train([a, b], TrainConfig(batch_size=2, max_steps=2, records=True), hidden=8,
                  layers=1, checkpoint_dir=tmp_path / "r", progress=False)
    assert charrnn.info(tmp_path / "r")["num_records"] == 5  # each line of each file


def test_bad_corpus_argument_types(tmp_path):
    with pytest.raises(CharrnnError, match="corpus must be a path"):
        charrnn.train(3, checkpoint_dir=tmp_path / "r")
    with pytest.raises(CharrnnError, match="each corpus must be a path"):
        charrnn.train(["a.txt", 3], checkpoint_dir=tmp_path / "r")


def test_the_bundled_corpus_is_package_data():
    assert DEFAULT_CORPUS.is_file() and DEFAULT_CORPUS.parent.parent.name == "charrnn"
    assert DEFAULT_CORPUS.read_bytes() == (ROOT / "data" / "tinyshakespeare.txt").read_bytes()


def test_a_built_wheel_carries_the_corpus(tmp_path):
    pytest.importorskip("setuptools")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                        "-q", "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True,
                       check=False)
    if r.returncode != 0 and "No module named" in r.stderr:
        pytest.skip(f"cannot build a wheel here: {r.stderr.strip()[-200:]}")
    assert r.returncode == 0, r.stderr
    (wheel,) = tmp_path.glob("charrnn-*.whl")
    with zipfile.ZipFile(wheel) as z:
        data = z.read("charrnn/corpora/tinyshakespeare.txt")
    assert data == (ROOT / "data" / "tinyshakespeare.txt").read_bytes()
