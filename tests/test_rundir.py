"""One run per directory: refusing to overwrite, the lock, resuming into a new directory,
stopping options given on resume."""
import subprocess
import sys
import time

from click.testing import CliRunner

import charrnn
from charrnn.cli import cli

FAST = ["--hidden", "8", "--layers", "1", "--batch-size", "2", "--seq-len", "8", "--quiet",
        "--eval-every", "2"]


def train(corpus, run_dir, *extra):
    return CliRunner().invoke(cli, ["train", str(corpus), *FAST, "--checkpoint-dir", str(run_dir),
                                    *extra])


def test_train_refuses_a_directory_holding_a_run(tiny_corpus, tmp_path):
    run = tmp_path / "run"
    assert train(tiny_corpus, run, "--max-steps", "4").exit_code == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    r = train(tiny_corpus, run, "--max-steps", "2")
    assert r.exit_code == 2
    line = r.output.strip()
    assert "\n" not in line and "step 4" in line and "best validation loss" in line
    assert "--resume" in line and "--overwrite" in line
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert after == before  # nothing touched


def test_overwrite_replaces_the_run_and_its_numbered_checkpoints(tiny_corpus, tmp_path):
    run = tmp_path / "run"
    assert train(tiny_corpus, run, "--max-steps", "6", "--checkpoint-every", "3",
                 "--keep", "5").exit_code == 0
    assert (run / "ckpt-00000006.npz").exists()
    r = train(tiny_corpus, run, "--max-steps", "2", "--checkpoint-every", "1", "--keep", "5",
              "--overwrite")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in run.glob("ckpt-*")) == ["ckpt-00000001.npz",
                                                          "ckpt-00000002.npz"]
    assert charrnn.load(run / "last.npz").meta["progress"]["step"] == 2
    rows = (run / "metrics.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [1, 2]


def test_api_refuses_too(tiny_corpus, tmp_path):
    from charrnn import CharrnnError
    cfg = charrnn.TrainConfig(max_steps=2, batch_size=2, seq_len=8)
    charrnn.train(tiny_corpus, cfg, hidden=8, layers=1, checkpoint_dir=tmp_path, progress=False)
    try:
        charrnn.train(tiny_corpus, cfg, hidden=8, layers=1, checkpoint_dir=tmp_path,
                      progress=False)
    except CharrnnError as e:
        assert "overwrite" in str(e)
    else:
        raise AssertionError("a second train() into the same directory was not refused")
    charrnn.train(tiny_corpus, cfg, hidden=8, layers=1, checkpoint_dir=tmp_path, progress=False,
                  overwrite=True)


def test_a_second_trainer_on_the_same_directory_is_refused(tiny_corpus, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "charrnn", "train", str(tiny_corpus), *FAST,
           "--checkpoint-dir", str(run), "--max-steps", "1000000", "--checkpoint-every", "1"]
    first = subprocess.Popen(cmd)
    try:
        t0 = time.monotonic()
        while not (run / "last.npz").exists():
            assert time.monotonic() - t0 < 120 and first.poll() is None
            time.sleep(0.05)
        second = subprocess.run(cmd[:-4] + ["--max-steps", "3", "--resume"],
                                capture_output=True, text=True, check=False)
        assert second.returncode == 2
        err = second.stderr.strip()
        assert "\n" not in err and "in use by another charrnn train" in err
        assert f"pid {first.pid}" in err
        # readers keep working while it trains
        info = subprocess.run([sys.executable, "-m", "charrnn", "info", str(run)],
                              capture_output=True, text=True, check=False)
        assert info.returncode == 0, info.stderr
        assert first.poll() is None  # the first trainer was not disturbed
    finally:
        first.kill()
        first.wait()
    # killed: the kernel released the lock, so the run resumes at once
    r = subprocess.run(cmd[:-4] + ["--max-steps", str(10 ** 6 + 1), "--time-limit", "1",
                                   "--resume"], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr


def test_resume_into_a_new_directory(tiny_corpus, tmp_path):
    assert train(tiny_corpus, tmp_path / "a", "--max-steps", "3").exit_code == 0
    r = train(tiny_corpus, tmp_path / "new" / "b", "--max-steps", "5", "--resume",
              str(tmp_path / "a" / "last.npz"))
    assert r.exit_code == 0, r.output
    assert charrnn.load(tmp_path / "new" / "b").meta["progress"]["step"] == 5
    rows = (tmp_path / "new" / "b" / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and [int(x.split(",")[0]) for x in rows[1:]] == [4, 5]
    assert charrnn.load(tmp_path / "a").meta["progress"]["step"] == 3  # the source untouched


def test_stopping_options_on_resume_replace_the_saved_ones(tiny_corpus, tmp_path):
    run = tmp_path / "run"
    assert train(tiny_corpus, run, "--time-limit", "0.5").exit_code == 0
    # last.npz, not the run directory: best.npz may hold an earlier step on a slow machine
    step = charrnn.load(run / "last.npz").meta["progress"]["step"]
    r = train(tiny_corpus, run, "--resume", "--max-steps", str(step + 3))
    assert r.exit_code == 0, r.output
    meta = charrnn.load(run / "last.npz").meta
    assert meta["progress"]["step"] == step + 3  # not stopped again by the old time limit
    assert meta["train"]["time_limit"] is None


def test_keep_and_overwrite_touch_only_charrnns_numbered_checkpoints(tiny_corpus, tmp_path):
    run = tmp_path / "run"
    assert train(tiny_corpus, run, "--max-steps", "2").exit_code == 0
    for name in ("ckpt-3.npz", "ckpt-best.npz", "ckpt-7.npz"):  # the user's own files
        (run / name).write_bytes(b"mine")
    r = train(tiny_corpus, run, "--resume", "--max-steps", "8", "--checkpoint-every", "1",
              "--keep", "2")
    assert r.exit_code == 0, r.output
    names = sorted(p.name for p in run.glob("ckpt-*"))
    assert names == ["ckpt-00000007.npz", "ckpt-00000008.npz", "ckpt-3.npz", "ckpt-7.npz",
                     "ckpt-best.npz"]  # the two newest by step, and every file of the user's
    r = train(tiny_corpus, run, "--max-steps", "1", "--overwrite")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in run.glob("ckpt-*")) == ["ckpt-3.npz", "ckpt-7.npz",
                                                          "ckpt-best.npz"]
    assert (run / "ckpt-7.npz").read_bytes() == b"mine"


def test_a_users_metrics_csv_or_numbered_checkpoint_counts_as_a_run(tiny_corpus, tmp_path):
    for name in ("metrics.csv", "ckpt-00000004.npz"):
        run = tmp_path / name
        run.mkdir()
        (run / name).write_text("my own notes\n")
        r = train(tiny_corpus, run, "--max-steps", "1")
        assert r.exit_code == 2
        assert r.stderr.strip() == (f"error: {run} already holds {name}, a file a run writes; "
                                    "continue it with --resume, choose another --checkpoint-dir, "
                                    "or pass --overwrite to replace it")
        assert (run / name).read_text() == "my own notes\n"
