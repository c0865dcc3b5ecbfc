"""What a new user's probing found (issue "Never lose a run, never a traceback (3)"): each case
behaves as a serious tool should: one line, exit status 2, nothing destroyed."""
import subprocess
import time
import sys

import numpy as np
import pytest

import charrnn
from charrnn.errors import CharrnnError
from conftest import FAST_CLI, cli_run

CHARRNN = [sys.executable, "-m", "charrnn"]


@pytest.fixture(scope="module")
def run(tiny_run):
    """The shared tiny run directory (conftest.tiny_run); these tests only read it."""
    return tiny_run[0]


def one_line_error(r, *fragments):
    assert r.exit_code == 2, (r.output, r.stderr)
    err = r.stderr.strip()
    assert "\n" not in err and err.startswith("error: ") and "Traceback" not in err, err
    for f in fragments:
        assert f in err, err


@pytest.mark.parametrize("target", ["last.npz", "best.npz"])
def test_output_over_a_checkpoint_is_refused(run, target):
    before = (run / target).read_bytes()
    one_line_error(cli_run("export", run / "last.npz", run / target, ok=False),
                   "writing there would destroy it")
    one_line_error(cli_run("sample", run / "last.npz", "--length", 5, "-o", run / "best.npz",
                           ok=False), "is a charrnn checkpoint", "--force")
    one_line_error(cli_run("sample", run, "--length", 5, "-o", run / target, ok=False),
                   "writing there would destroy it")
    assert (run / target).read_bytes() == before
    with pytest.raises(CharrnnError, match="destroy"):
        charrnn.export(charrnn.load(run / target), run / target)


def test_force_replaces_another_checkpoint_but_never_the_input(run, tmp_path):
    other = tmp_path / "copy.npz"
    other.write_bytes((run / "best.npz").read_bytes())
    cli_run("export", run / "last.npz", other, "--force")
    assert "rnn.weight_hh_l0" in np.load(other).files  # now an export
    one_line_error(cli_run("export", run / "last.npz", run / "last.npz", "--force", ok=False),
                   "is the checkpoint being read")


def test_a_missing_output_folder_is_an_error_not_created(run, tmp_path):
    where = tmp_path / "no" / "such"
    one_line_error(cli_run("export", run, where / "m.npz", ok=False), "does not exist")
    one_line_error(cli_run("sample", run, "--length", 5, "-o", where / "s.txt", ok=False),
                   "does not exist")
    with pytest.raises(CharrnnError, match="does not exist"):
        charrnn.export(charrnn.load(run), where / "m.npz")
    assert not (tmp_path / "no").exists()


def test_seeds_are_checked_everywhere(run):
    one_line_error(cli_run("sample", run, "--seed", -1, ok=False), "--seed must be an integer >= 0")
    m = charrnn.load(run)
    for bad in (1.5, -3, True, "7"):
        with pytest.raises(CharrnnError, match="seed must be an integer >= 0"):
            m.sample(10, seed=bad)
        with pytest.raises(CharrnnError, match="seed must be an integer >= 0"):
            charrnn.sample_many(m, 2, 10, seed=bad)
    one_line_error(cli_run("demo", "hello", "--seed", -2, ok=False), "--seed must be")


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["train", "--help"]])
def test_help_and_version_to_a_full_device_are_one_line(args):
    with open("/dev/full", "w") as full:
        r = subprocess.run(CHARRNN + args, stdout=full, stderr=subprocess.PIPE, text=True,
                           check=False)
    assert r.returncode == 2 and r.stderr.strip() == \
        "error: cannot write to standard output: No space left on device"


def test_plot_of_a_diverged_log_skips_the_non_finite_rows(run, tmp_path):
    lines = (run / "metrics.csv").read_text().splitlines()
    bad = tmp_path / "run"
    bad.mkdir()
    (bad / "last.npz").write_bytes((run / "last.npz").read_bytes())
    cols = lines[-1].split(",")
    nan_row = ",".join([str(int(cols[0]) + 1), cols[1], "nan", "inf", *cols[4:]])
    (bad / "metrics.csv").write_text("\n".join(lines + [nan_row]) + "\n")
    r = cli_run("plot", bad)
    assert "skipped 1 unreadable or non-finite rows" in r.stderr and "characters seen" in r.output


def test_the_api_takes_a_path_wherever_it_takes_a_model(run, tmp_path):
    text = charrnn.sample(run, 20, seed=1)
    assert text == charrnn.load(run).sample(20, seed=1)
    assert len(charrnn.sample_many(str(run), 2, 5, seed=1)) == 2
    assert charrnn.evaluate(run, "First Citizen").chars == 12
    charrnn.export(run, tmp_path / "m.npz")
    assert (tmp_path / "m.npz").is_file()
    for call in (lambda: charrnn.sample(5, 10), lambda: charrnn.evaluate(None, "x"),
                 lambda: charrnn.export(3.0, tmp_path / "x.npz")):
        with pytest.raises(CharrnnError, match="expected a charrnn Model or a checkpoint path"):
            call()
    with pytest.raises(CharrnnError, match="the export path must be a path"):
        charrnn.export(run, 5)


def test_a_finite_but_absurd_loss_is_divergence(tiny_corpus, tmp_path):
    r = cli_run("train", tiny_corpus, *FAST_CLI, "--optimizer", "sgd", "--lr", 100,
                "--max-steps", 50, "--eval-every", 10, "--checkpoint-dir", tmp_path / "r", ok=False)
    one_line_error(r, "training diverged at step", "a uniform guess scores", "lower --lr")


def test_compiling_is_not_counted_in_the_time_limit(tiny_corpus, tmp_path, monkeypatch):
    from charrnn import jit
    real = jit.warm_up

    def slow_warm_up(*a, **k):  # a cold numba cache: the compile takes longer than the budget
        real(*a, **k)
        time.sleep(1.5)
        return 1.5
    monkeypatch.setattr(jit, "warm_up", slow_warm_up)
    r = charrnn.train(tiny_corpus, charrnn.TrainConfig(batch_size=4, seq_len=8, time_limit=1.0),
                      hidden=8, layers=1, checkpoint_dir=tmp_path / "r", progress=False)
    assert r.stopped == "time limit" and r.step > 10


def test_an_empty_list_of_corpora_is_an_error(tmp_path):
    with pytest.raises(CharrnnError, match="the list of corpora is empty"):
        charrnn.train([], checkpoint_dir=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_resume_without_corpus_continues_on_the_runs_own_corpus(tiny_corpus, tmp_path):
    cli_run("train", tiny_corpus, *FAST_CLI, "--max-steps", 2, "--checkpoint-dir", tmp_path / "r")
    r = cli_run("train", "--resume", "--max-steps", 4, "--checkpoint-dir", tmp_path / "r",
                "--quiet")
    assert charrnn.load(tmp_path / "r" / "last.npz").meta["progress"]["step"] == 4, r.stderr
    tiny_corpus.unlink()
    one_line_error(cli_run("train", "--resume", "--max-steps", 6, "--checkpoint-dir",
                           tmp_path / "r", ok=False), "the run's own corpus", "not there")


@pytest.mark.parametrize("shape", [["--hidden", 100000], ["--layers", 100000, "--hidden", 8]])
def test_a_model_too_large_for_the_machine_is_refused_before_allocating(tiny_corpus, tmp_path,
                                                                        shape):
    r = cli_run("train", tiny_corpus, *shape, "--quiet", "--checkpoint-dir", tmp_path / "r",
                ok=False)
    one_line_error(r, "parameters and needs about", "GiB available", "smaller --hidden")


def test_non_finite_options_name_the_option(tiny_corpus, tmp_path):
    for option, value in (("--lr", "nan"), ("--time-limit", "inf"), ("--dropout", "nan")):
        r = cli_run("train", tiny_corpus, option, value, "--checkpoint-dir", tmp_path / "r",
                    ok=False)
        one_line_error(r, f"error: {option} must be a finite number, got {value}")


def test_a_full_disk_on_a_fresh_checkpoint_claims_nothing_kept(tmp_path, monkeypatch):
    import errno
    import os
    from charrnn import checkpoint as ckpt

    def disk_full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(CharrnnError) as e:
        ckpt.save(tmp_path / "last.npz", {"model": {}}, {"params": np.zeros(3, np.float32)})
    assert "nothing was written" in str(e.value) and "previous" not in str(e.value)


def test_a_checkpoint_with_bad_options_names_the_file(run, tmp_path):
    import json
    with np.load(run / "last.npz") as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(arrays["meta"].tobytes())
    meta["model"]["hidden"] = -3
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    one_line_error(cli_run("info", bad, ok=False), f"{bad}: damaged checkpoint metadata",
                   "--hidden must be >= 1")


def test_info_prints_options_that_paste_back_into_train(run):
    import shlex
    line = next(ln for ln in cli_run("info", run).output.splitlines() if ln.startswith("options:"))
    args = shlex.split(line.split(":", 1)[1])
    assert "False" not in args and "True" not in args and "None" not in args
    from charrnn.cli import train
    ctx = train.make_context("train", ["x.txt", *args])  # parses: every flag is train's own
    saved = charrnn.load(run / "last.npz").record.train
    assert ctx.params["seq_len"] == saved.seq_len and ctx.params["lr"] == saved.lr


def test_one_character_is_singular(tmp_path):
    p = tmp_path / "one.txt"
    p.write_text("ab")
    r = cli_run("train", p, "--val-fraction", 0.5, "--checkpoint-dir", tmp_path / "r", ok=False)
    one_line_error(r, "the training text has 1 character, but")


def test_eval_caps_rows_too_short_to_mean_anything(run, tiny_corpus):
    r = cli_run("eval", run, tiny_corpus, "--batch-size", 100000)
    assert "note: --batch-size 100000 capped at 59 rows for 5,999 characters" in r.stderr
    capped = float(r.stdout.split()[3])
    assert capped == pytest.approx(float(cli_run("eval", run, tiny_corpus, "--batch-size", 59)
                                         .stdout.split()[3]))
    assert "capped" not in cli_run("eval", run, tiny_corpus, "--batch-size", 50).stderr


def test_a_fifo_as_corpus_says_what_it_is_and_how_to_feed_it(tmp_path):
    import os
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    r = cli_run("train", fifo, "--checkpoint-dir", tmp_path / "r", ok=False)
    one_line_error(r, "not a regular file", f"charrnn train - < {fifo}")


def test_resume_that_took_the_corpus_as_its_value_says_so(run, tiny_corpus, tmp_path):
    r = cli_run("train", "--checkpoint-dir", tmp_path / "r", "--resume", tiny_corpus, ok=False)
    one_line_error(r, f"--resume took {tiny_corpus} as the checkpoint", "put --resume last")


def test_plot_to_an_unknown_suffix_names_it_with_or_without_matplotlib(run, tmp_path,
                                                                       monkeypatch):
    one_line_error(cli_run("plot", run, "-o", tmp_path / "p.txt", ok=False),
                   ".txt is not an image format")
    import builtins
    real = builtins.__import__

    def no_matplotlib(name, *a, **k):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    one_line_error(cli_run("plot", run, "-o", tmp_path / "p.txt", ok=False),
                   ".txt is not an image format; use .png")
    one_line_error(cli_run("plot", run, "-o", tmp_path / "p.png", ok=False),
                   "needs matplotlib: pip install 'charrnn[plot]'")


def test_every_option_of_every_command_has_help():
    import click
    from charrnn.cli import cli

    def commands(group):
        for cmd in group.commands.values():
            if isinstance(cmd, click.Group):
                yield from commands(cmd)
            else:
                yield cmd
    for cmd in commands(cli):
        for p in cmd.params:
            if isinstance(p, click.Option) and not p.hidden:
                assert p.help, f"{cmd.name} {p.opts[0]} has no help text"
