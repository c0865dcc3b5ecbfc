"""Every path the user names, every stream: atomic writes, symlinks, devices, FIFOs, permissions,
a full disk, closed or full standard streams, damaged files, one-line usage errors."""
from __future__ import annotations

import json
import os
import resource
import signal
import stat
import subprocess
import sys
import threading

import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from charrnn import checkpoint as ckpt
from charrnn.cli import cli
from charrnn.errors import CharrnnError
from charrnn.fileio import write_bytes

FAST = ["--hidden", "8", "--layers", "1", "--batch-size", "2", "--seq-len", "8", "--quiet"]
CHARRNN = [sys.executable, "-m", "charrnn"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A small trained run directory, shared by the read-only tests here."""
    d = tmp_path_factory.mktemp("outputs")
    corpus = d / "tiny.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 60)
    r = CliRunner().invoke(cli, ["train", str(corpus), *FAST, "--max-steps", "6",
                                 "--eval-every", "3", "--checkpoint-dir", str(d / "run")])
    assert r.exit_code == 0, r.output
    return d / "run"


def one_line_error(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    return lines[0]


# -- fileio.write_file ---------------------------------------------------------------------------

def test_write_file_keeps_permissions_and_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        write_bytes(tmp_path / "new", b"a")
        assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o640
        (tmp_path / "old").write_bytes(b"x")
        (tmp_path / "old").chmod(0o604)
        write_bytes(tmp_path / "old", b"b")
        assert stat.S_IMODE((tmp_path / "old").stat().st_mode) == 0o604
        assert (tmp_path / "old").read_bytes() == b"b"
    finally:
        os.umask(old)


def test_checkpoints_follow_the_umask(run, tmp_path):
    meta, arrays = ckpt.load(run / "last.npz")
    old = os.umask(0o022)
    try:
        ckpt.save(tmp_path / "c.npz", meta, arrays)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "c.npz").stat().st_mode) == 0o644


def test_write_file_writes_through_a_symlink(tmp_path):
    (tmp_path / "real.txt").write_text("old")
    (tmp_path / "link.txt").symlink_to(tmp_path / "real.txt")
    write_bytes(tmp_path / "link.txt", b"new")
    assert (tmp_path / "link.txt").is_symlink()
    assert (tmp_path / "real.txt").read_text() == "new"


def test_write_file_to_a_device_writes_directly():
    with pytest.raises(CharrnnError, match=r"cannot write /dev/full: No space left"):
        write_bytes("/dev/full", b"x" * 100000)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)  # still a device, not a regular file
    write_bytes("/dev/null", b"x")


def test_write_file_to_a_fifo_feeds_its_reader(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    write_bytes(fifo, b"hello")
    reader.join(10)
    assert got == [b"hello"] and stat.S_ISFIFO(fifo.stat().st_mode)


def test_write_file_failure_keeps_the_old_file(tmp_path, monkeypatch):
    (tmp_path / "f").write_bytes(b"old")

    def fail(f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    from charrnn.fileio import write_file
    with pytest.raises(CharrnnError, match="No space left on device; try again"):
        write_file(tmp_path / "f", fail, hint="try again")
    assert (tmp_path / "f").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]  # no temporary left behind


def test_write_file_refuses_a_directory(tmp_path):
    with pytest.raises(CharrnnError, match="is a directory"):
        write_bytes(tmp_path, b"x")


# -- the commands' outputs ------------------------------------------------------------------------

def test_sample_output_through_symlink_and_to_a_device(run, tmp_path):
    (tmp_path / "real.txt").write_text("old")
    (tmp_path / "out.txt").symlink_to(tmp_path / "real.txt")
    r = CliRunner().invoke(cli, ["sample", str(run), "--length", "20", "--seed", "1",
                                 "-o", str(tmp_path / "out.txt")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out.txt").is_symlink() and len((tmp_path / "real.txt").read_text()) == 20
    r = CliRunner().invoke(cli, ["sample", str(run), "--length", "20000", "-o", "/dev/full"])
    assert r.exit_code == 2 and "No space left" in one_line_error(r.output)


def test_export_through_symlink(run, tmp_path):
    (tmp_path / "w.npz").write_bytes(b"")
    (tmp_path / "link.npz").symlink_to(tmp_path / "w.npz")
    r = CliRunner().invoke(cli, ["export", str(run), str(tmp_path / "link.npz")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "link.npz").is_symlink()
    with np.load(tmp_path / "w.npz") as z:
        assert "decoder.weight" in z.files


def test_plot_writes_the_format_its_suffix_names(run, tmp_path):
    pytest.importorskip("matplotlib")
    for suffix, magic in ((".pdf", b"%PDF"), (".png", b"\x89PNG"), (".svg", b"<?xml")):
        out = tmp_path / f"loss{suffix}"
        r = CliRunner().invoke(cli, ["plot", str(run), "-o", str(out)])
        assert r.exit_code == 0, r.output
        assert out.read_bytes().startswith(magic)
    r = CliRunner().invoke(cli, ["plot", str(run), "-o", str(tmp_path / "loss.xyz")])
    assert r.exit_code == 2 and ".xyz is not an image format" in one_line_error(r.output)
    assert not (tmp_path / "loss.xyz").exists()


# -- a full disk, closed or full standard streams ---------------------------------------------------

def test_full_disk_while_logging_keeps_the_last_checkpoint(run, tmp_path):
    """RLIMIT_FSIZE makes every write past 40 KB fail (EFBIG): the checkpoints of this tiny model
    fit, the growing metrics log soon does not."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("abcdefgh " * 400)
    subprocess.run(CHARRNN + ["train", str(corpus), *FAST, "--max-steps", "2",
                              "--checkpoint-dir", str(tmp_path / "warm")], check=True)

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, 40_000))

    d = tmp_path / "run"
    r = subprocess.run(CHARRNN + ["train", str(corpus), *FAST, "--max-steps", "100000",
                                  "--checkpoint-every", "50", "--eval-every", "1000",
                                  "--checkpoint-dir", str(d)],
                       preexec_fn=limit, capture_output=True, text=True, check=False)
    assert r.returncode == 2, r.stderr
    line = one_line_error(r.stderr)
    assert "metrics.csv" in line and "last.npz at step" in line and "--resume" in line
    step = ckpt.load(d / "last.npz")[0]["progress"]["step"]
    assert step > 0 and step % 50 == 0
    # and the run continues from there once there is room
    r = subprocess.run(CHARRNN + ["train", str(corpus), *FAST, "--max-steps", str(step + 5),
                                  "--checkpoint-dir", str(d), "--resume"],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    steps = [int(x.split(",")[0]) for x in (d / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == list(range(1, step + 6))


@pytest.mark.parametrize("stderr", ["closed", "full"])
def test_train_with_stderr_closed_or_full_still_trains(run, tmp_path, stderr):
    corpus = tmp_path / "c.txt"
    corpus.write_text("abcdefgh " * 400)
    cmd = CHARRNN + ["train", str(corpus), "--hidden", "8", "--layers", "1", "--batch-size", "2",
                     "--seq-len", "8", "--max-steps", "30", "--sample-every", "10",
                     "--checkpoint-dir", str(tmp_path / "r")]
    if stderr == "closed":
        r = subprocess.run(["bash", "-c", 'exec "$@" 2>&-', "-", *cmd], check=False)
    else:
        with open("/dev/full", "w") as full:
            r = subprocess.run(cmd, stderr=full, check=False)
    assert r.returncode == 0
    assert ckpt.load(tmp_path / "r" / "last.npz")[0]["progress"]["step"] == 30


@pytest.mark.parametrize("command", [["sample", "--length", "5000"], ["info"], ["eval", "TEXT"]])
def test_output_to_a_full_device_is_one_line(run, command):
    text = str(run.parent / "tiny.txt")
    args = [text if a == "TEXT" else a for a in command]
    cmd = CHARRNN + [args[0], str(run), *args[1:]]
    with open("/dev/full", "w") as full:
        r = subprocess.run(cmd, stdout=full, stderr=subprocess.PIPE, text=True, check=False)
    assert r.returncode == 2
    assert one_line_error(r.stderr) == "error: cannot write to standard output: No space left " \
                                       "on device"
    r = subprocess.run(["bash", "-c", 'exec "$@" >&-', "-", *cmd], capture_output=True,
                       text=True, check=False)
    assert r.returncode == 2 and "standard output: it is closed" in one_line_error(r.stderr)


def test_a_reader_that_goes_away_ends_sample_quietly(run):
    p = subprocess.Popen(CHARRNN + ["sample", str(run), "--length", "2000000"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.read(10)
    p.stdout.close()  # like `| head -c 10`
    err = p.stderr.read().decode()
    assert p.wait(60) == 141 and "Traceback" not in err and "Exception" not in err


# -- damaged files -----------------------------------------------------------------------------

def _save_with(run, tmp_path, change):
    meta, arrays = ckpt.load(run / "last.npz")
    change(meta)
    blob = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    path = tmp_path / "bad.npz"
    np.savez(path, meta=blob, **arrays)
    return path


@pytest.mark.parametrize("change", [
    lambda m: m.pop("progress"), lambda m: m.update(vocab="abc"),
    lambda m: m.update(progress={"step": "12"}), lambda m: m.update(rng=[]),
    lambda m: m.update(optimizer={"kind": "adam"}), lambda m: m.update(model=None),
    lambda m: m["vocab"].__setitem__(0, 5),
], ids=["no-progress", "vocab-str", "step-str", "rng-list", "no-step-count", "model-null",
        "vocab-int"])
def test_almost_a_checkpoint_is_one_line(run, tmp_path, change):
    path = _save_with(run, tmp_path, change)
    for command in (["info", str(path)], ["sample", str(path), "--length", "3"]):
        r = CliRunner().invoke(cli, command)
        assert r.exit_code == 2, r.output
        assert str(path) in one_line_error(r.output)


def test_checkpoint_meta_that_is_not_an_object(run, tmp_path):
    _, arrays = ckpt.load(run / "last.npz")
    np.savez(tmp_path / "list.npz", meta=np.frombuffer(b"[1, 2]", np.uint8), **arrays)
    with pytest.raises(CharrnnError, match="not a charrnn checkpoint"):
        charrnn.load(tmp_path / "list.npz")


def test_unreadable_checkpoint_names_the_cause(run, tmp_path, monkeypatch):
    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(np, "load", denied)
    with pytest.raises(CharrnnError, match=r"cannot read .*last.npz: Permission denied"):
        ckpt.load(run / "last.npz")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a chmod-000 file")
def test_chmod_000_checkpoint(run, tmp_path):
    path = tmp_path / "c.npz"
    path.write_bytes((run / "last.npz").read_bytes())
    path.chmod(0)
    r = CliRunner().invoke(cli, ["info", str(path)])
    assert r.exit_code == 2 and "Permission denied" in one_line_error(r.output)


def _copy_run(run, tmp_path, metrics: bytes | None):
    d = tmp_path / "copy"
    d.mkdir()
    (d / "last.npz").write_bytes((run / "last.npz").read_bytes())
    if metrics is None:
        (d / "metrics.csv").mkdir()
    else:
        (d / "metrics.csv").write_bytes(metrics)
    return d


@pytest.mark.parametrize("metrics", [None, b"\x00\xff\xfe binary \x00\x00", b"a,b,c\n1,2,3\n"],
                         ids=["directory", "binary", "foreign-header"])
def test_plot_of_a_damaged_metrics_log_is_one_line(run, tmp_path, metrics):
    d = _copy_run(run, tmp_path, metrics)
    r = CliRunner().invoke(cli, ["plot", str(d)])
    assert r.exit_code == 2 and "metrics" in one_line_error(r.output)


def test_plot_skips_unreadable_rows_with_a_notice(run, tmp_path):
    good = (run / "metrics.csv").read_bytes()
    d = _copy_run(run, tmp_path, good + b"7,0.1,2.5\nxx,\x00,1,2,3,4,5\n")
    r = CliRunner().invoke(cli, ["plot", str(d)])
    assert r.exit_code == 0, r.output
    assert "skipped 2 unreadable or non-finite rows" in r.output


def test_resume_rebuilds_a_damaged_metrics_log(run, tmp_path):
    d = tmp_path / "r"
    d.mkdir()
    (d / "last.npz").write_bytes((run / "last.npz").read_bytes())
    (d / "metrics.csv").write_bytes(b"\x00\xff garbage\n\x00")
    corpus = run.parent / "tiny.txt"
    r = CliRunner().invoke(cli, ["train", str(corpus), *FAST, "--checkpoint-dir", str(d),
                                 "--resume", "--max-steps", "8"])
    assert r.exit_code == 0, r.output
    rows = (d / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and [int(x.split(",")[0]) for x in rows[1:]] == [7, 8]


# -- prime of a bytes model, usage errors -----------------------------------------------------------

def test_bytes_model_takes_a_utf8_prime(tmp_path):
    corpus = tmp_path / "u.txt"
    corpus.write_text("café naïve résumé " * 200, encoding="utf-8")
    r = CliRunner().invoke(cli, ["train", str(corpus), *FAST, "--encoding", "bytes",
                                 "--max-steps", "2", "--checkpoint-dir", str(tmp_path / "r")])
    assert r.exit_code == 0, r.output
    out = subprocess.run(CHARRNN + ["sample", str(tmp_path / "r"), "--prime", "café",
                                    "--length", "3"], capture_output=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("café".encode())
    model = charrnn.load(tmp_path / "r")
    assert model.vocab.encoding == "bytes"
    assert charrnn.sample(model, 2, prime="é").startswith("é".encode().decode("latin-1"))


@pytest.mark.parametrize("args", [
    ["train", "/no/such/corpus.txt"], ["train", "--checkpoint-dir", "FILE"],
    ["train", "--bogus"], ["sample", "--temp"], ["eval"], ["train", "--model", "cnn"],
])
def test_usage_errors_are_one_line(tmp_path, args):
    (tmp_path / "file").write_text("x")
    args = [str(tmp_path / "file") if a == "FILE" else a for a in args]
    r = subprocess.run(CHARRNN + args, capture_output=True, text=True, check=False)
    assert r.returncode == 2
    line = one_line_error(r.stderr)
    assert "Traceback" not in r.stderr and "Usage:" not in r.stderr
    assert "--help" in line or "no such file" in line
