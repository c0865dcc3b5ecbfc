"""Data-parallel training over MPI ranks: `mpiexec -n 2 charrnn train --distributed`.

Every test launches real MPI jobs (tiny models, one thread per rank) and compares them with
single-process runs of the same global batch through the library API.
"""
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from charrnn import TrainConfig
from charrnn import checkpoint as ckpt
from charrnn import distributed as mpi
from charrnn.cli import cli


def _mpiexec():
    here = Path(sys.executable).parent / "mpiexec"  # the mpich wheel's, in this environment
    return str(here) if here.exists() else shutil.which("mpiexec")


MPIEXEC = _mpiexec()
needs_mpi = pytest.mark.skipif(
    importlib.util.find_spec("mpi4py") is None or MPIEXEC is None,
    reason="needs mpi4py and mpiexec: pip install -e '.[mpi]'")

MODEL = ["--hidden", "16", "--layers", "1", "--threads", "1"]
# The default lr: with Adam, a larger one turns float32 rounding in near-zero gradients (rare
# characters' input weights) into whole steps of difference between the two layouts.
OPTS = {"seq_len": 10, "batch_size": 8, "lr": 2e-3, "eval_every": 20, "threads": 1}


def launch(n, corpus, run_dir, *args, timeout=60, env=None):
    """mpiexec -n n charrnn train corpus --distributed ...; returns the CompletedProcess."""
    cmd = [MPIEXEC, "-n", str(n), sys.executable, "-m", "charrnn", "train", str(corpus),
           "--distributed", "--checkpoint-dir", str(run_dir), "--quiet", *args]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def cli_args(**kw):
    """Train options as command-line arguments."""
    out = []
    for k, v in kw.items():
        if k != "threads":
            out += [f"--{k.replace('_', '-')}", str(v)]
    return out


def one_process(corpus, run_dir, resume=None, cell="lstm", dropout=0.0, **kw):
    return charrnn.train(corpus, TrainConfig(**dict(OPTS, **kw)), cell=cell, hidden=16, layers=1,
                         dropout=dropout, checkpoint_dir=run_dir, resume=resume, progress=False)


def saved(run_dir, name="last.npz"):
    meta, arrays = ckpt.load(Path(run_dir) / name)
    return meta, arrays


def assert_close(a, b, rtol=1e-4):
    scale = np.abs(b).max()
    assert np.abs(a - b).max() <= rtol * scale, np.abs(a - b).max() / scale


@needs_mpi
@pytest.mark.parametrize("cell,dropout", [("lstm", 0.0), ("gru", 0.3)])
def test_two_ranks_equal_one_process(tiny_corpus, tmp_path, cell, dropout):
    one = one_process(tiny_corpus, tmp_path / "one", cell=cell, dropout=dropout, max_steps=40)
    p = launch(2, tiny_corpus, tmp_path / "two", "--model", cell, "--dropout", str(dropout),
               *MODEL, *cli_args(**OPTS, max_steps=40))
    assert p.returncode == 0, p.stderr
    assert p.stdout == "" and p.stderr == ""
    meta, arrays = saved(tmp_path / "two")
    assert meta["progress"]["step"] == 40
    assert meta["progress"]["chars_seen"] == 40 * 8 * 10
    assert_close(arrays["params"], one.model.params)
    assert arrays["state_h"].shape == (1, 8, 16)  # the full batch, gathered
    assert abs(meta["progress"]["last_val_loss"] - one.last_val_loss) < 1e-4
    log = (tmp_path / "two" / "metrics.csv").read_text().splitlines()
    assert len(log) == 41 and log[-1].startswith("40,")


@needs_mpi
def test_one_rank_is_one_process(tiny_corpus, tmp_path):
    one = one_process(tiny_corpus, tmp_path / "one", max_steps=20)
    p = launch(1, tiny_corpus, tmp_path / "mpi", *MODEL, *cli_args(**OPTS, max_steps=20))
    assert p.returncode == 0, p.stderr
    # The same computation, bit for bit (kernels compiled in this process and loaded from
    # numba's cache in the launched one compute the same, see test_threads.py).
    np.testing.assert_array_equal(saved(tmp_path / "mpi")[1]["params"], one.model.params)


@needs_mpi
def test_resume_across_layouts(tiny_corpus, tmp_path):
    straight = one_process(tiny_corpus, tmp_path / "straight", max_steps=40)
    # 2 ranks for 20 steps, then one process to 40
    p = launch(2, tiny_corpus, tmp_path / "a", *MODEL, *cli_args(**OPTS, max_steps=20))
    assert p.returncode == 0, p.stderr
    a = one_process(tiny_corpus, tmp_path / "a", resume=True, max_steps=40)
    assert a.step == 40
    assert_close(a.model.params, straight.model.params)
    # one process for 20 steps, then 2 ranks to 40, then 2 ranks on to 50 twice over: on the
    # same layout, resume is bit-exact
    one_process(tiny_corpus, tmp_path / "b", max_steps=20)
    p = launch(2, tiny_corpus, tmp_path / "b", "--resume", *cli_args(max_steps=40))
    assert p.returncode == 0, p.stderr
    meta, arrays = saved(tmp_path / "b")
    assert meta["progress"]["step"] == 40
    assert_close(arrays["params"], straight.model.params)
    shutil.copytree(tmp_path / "b", tmp_path / "c")
    for run, stops in (("b", (50,)), ("c", (45, 50))):
        for stop in stops:
            p = launch(2, tiny_corpus, tmp_path / run, "--resume", *cli_args(max_steps=stop))
            assert p.returncode == 0, p.stderr
    np.testing.assert_array_equal(saved(tmp_path / "b")[1]["params"],
                                  saved(tmp_path / "c")[1]["params"])


def _rank_pid(marker, rank, timeout=30.0):
    """The pid of the rank started with CHARRNN_TEST_RUN=marker."""
    want = {f"CHARRNN_TEST_RUN={marker}".encode(), f"PMI_RANK={rank}".encode()}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for d in Path("/proc").iterdir():
            try:
                env = set((d / "environ").read_bytes().split(b"\0"))
            except (OSError, ValueError):
                continue
            if want <= env and b"python" in (d / "cmdline").read_bytes():
                return int(d.name)
        time.sleep(0.2)
    raise AssertionError("rank process not found")


def _start_long_run(corpus, run_dir, marker, env=None):
    cmd = [MPIEXEC, "-n", "2", sys.executable, "-m", "charrnn", "train", str(corpus),
           "--distributed", "--checkpoint-dir", str(run_dir), "--quiet", *MODEL,
           *cli_args(**dict(OPTS, max_steps=10**6, checkpoint_every=5, eval_every=10**6))]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, CHARRNN_TEST_RUN=marker, **(env or {})))
    deadline = time.monotonic() + 30
    while not (run_dir / "last.npz").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    return proc


def _ends_within(proc, seconds):
    t0 = time.monotonic()
    try:
        _, err = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"the job did not end within {seconds} s") from None
    return proc.returncode, err, time.monotonic() - t0


@needs_mpi
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("how", ["kill", "hang"])
def test_a_lost_rank_ends_the_job(tiny_corpus, tmp_path, how):
    marker = uuid.uuid4().hex
    proc = _start_long_run(tiny_corpus, tmp_path / "run", marker,
                           env={mpi.TIMEOUT_ENV: "3"} if how == "hang" else None)
    pid = _rank_pid(marker, 1)
    # SIGKILL: mpiexec sees the rank die. SIGSTOP: the rank hangs; rank 0's watchdog ends it.
    os.kill(pid, signal.SIGKILL if how == "kill" else signal.SIGSTOP)
    rc, err, _ = _ends_within(proc, 20)
    assert rc != 0
    if how == "hang":
        assert "rank 0 on " in err and "error: no answer from the other ranks (rank 1 on " in err \
            and ") for 3 s" in err
    meta, arrays = saved(tmp_path / "run")  # whole, loadable
    assert meta["progress"]["step"] % 5 == 0
    assert charrnn.load(tmp_path / "run" / "last.npz").params.shape == arrays["params"].shape


@needs_mpi
def test_sigterm_saves_and_every_rank_exits(tiny_corpus, tmp_path):
    proc = _start_long_run(tiny_corpus, tmp_path / "run", uuid.uuid4().hex)
    proc.send_signal(signal.SIGTERM)
    rc, err, _ = _ends_within(proc, 20)
    assert rc == 128 + signal.SIGTERM, err  # saved, then the conventional status
    meta, _ = saved(tmp_path / "run")
    assert meta["progress"]["step"] >= 5
    log = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert int(log[-1].split(",")[0]) == meta["progress"]["step"]


@needs_mpi
def test_batch_must_divide_among_ranks(tiny_corpus, tmp_path):
    p = launch(2, tiny_corpus, tmp_path / "run", *MODEL, "--batch-size", "5", "--max-steps", "1")
    assert p.returncode == 2
    line = "error: --batch-size 5 does not divide evenly among 2 ranks; use a multiple of 2"
    assert p.stderr.splitlines() == [line]


@needs_mpi
def test_setup_error_is_reported_once(tmp_path):
    p = launch(2, tmp_path / "missing.txt", tmp_path / "run", "--max-steps", "1")
    assert p.returncode == 2
    line = f"error: {tmp_path / 'missing.txt'}: no such file; check the path"
    assert p.stderr.splitlines() == [line]


@needs_mpi
def test_several_processes_without_distributed_are_refused(tiny_corpus, tmp_path):
    cmd = [MPIEXEC, "-n", "2", sys.executable, "-m", "charrnn", "train", str(tiny_corpus),
           "--checkpoint-dir", str(tmp_path / "run")]
    p = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert len(p.stderr.splitlines()) == 1 and "add --distributed" in p.stderr


def test_distributed_outside_mpiexec(tiny_corpus, tmp_path, monkeypatch):
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE"):
        monkeypatch.delenv(var, raising=False)
    args = ["train", str(tiny_corpus), "--distributed", "--checkpoint-dir", str(tmp_path)]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2
    if importlib.util.find_spec("mpi4py") is not None:
        line = ("error: --distributed runs as the ranks of an MPI job: mpiexec -n R charrnn train "
                "CORPUS --distributed ... (mpiexec comes with pip install -e '.[mpi]')")
        assert r.output.strip().splitlines() == [line]
    monkeypatch.setattr(mpi.importlib.util, "find_spec", lambda name: None)
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2
    line = ("error: --distributed needs mpi4py and an MPI: pip install -e '.[mpi]' installs both "
            "(MPICH, with mpiexec)")
    assert r.output.strip().splitlines() == [line]
    assert not (tmp_path / "metrics.csv").exists()


def launch_each(corpora, run_dir, *args):
    """mpiexec with one rank per corpus path (MPMD), so that ranks can see different files."""
    cmd = [MPIEXEC]
    for i, corpus in enumerate(corpora):
        cmd += [":"] * (i > 0) + ["-n", "1", sys.executable, "-m", "charrnn", "train",
                                   str(corpus), "--distributed", "--checkpoint-dir",
                                   str(run_dir), "--quiet", *args]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60)


@needs_mpi
def test_one_rank_failing_in_setup_is_reported_by_rank_0(tiny_corpus, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    p = launch_each([tiny_corpus, empty], tmp_path / "run", *MODEL, "--max-steps", "1")
    assert p.returncode == 2
    assert p.stderr.splitlines() == [f"error: rank 1: {empty}: no text files in this directory"]


@needs_mpi
def test_a_rank_without_the_corpus_gets_rank_0s(tiny_corpus, tmp_path):
    """No shared disk: a host where the corpus is not gets it from rank 0 (tests/test_hosts.py
    hides the whole folder from a host; here one rank simply names a file that is not there)."""
    one = one_process(tiny_corpus, tmp_path / "one", max_steps=20)
    p = launch_each([tiny_corpus, tmp_path / "not-here.txt"], tmp_path / "run", *MODEL,
                    *cli_args(**OPTS, max_steps=20))
    assert p.returncode == 0, p.stderr
    assert_close(saved(tmp_path / "run")[1]["params"], one.model.params)


@needs_mpi
def test_ranks_with_different_corpora_are_refused(tiny_corpus, tmp_path):
    other = tmp_path / "other.txt"
    other.write_text(tiny_corpus.read_text()[::-1])
    p = launch_each([tiny_corpus, other], tmp_path / "run", *MODEL, "--max-steps", "1")
    assert p.returncode == 2
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: the corpus differs between ranks (a host that has its own copy at the corpus's "
        "path must hold the same file; a host without one gets rank 0's): rank 0: ")


@needs_mpi
def test_records_two_ranks_equal_one_process(tmp_path):
    """Records mode: each rank takes its share of each batch of whole records (7 a batch: 3 and
    4), dropout's draws line up, and validation deals the batches out."""
    names = tmp_path / "names.txt"
    names.write_text("\n".join(["ann", "bo", "carolyn", "dee", "eve", "fitzgerald", "gil", "hy",
                                "isadora", "jo", "kai", "lu"] * 4) + "\n")
    opts = dict(OPTS, batch_size=7, max_steps=25)
    one = charrnn.train(names, TrainConfig(records=True, **opts), hidden=16, layers=1,
                        dropout=0.2, checkpoint_dir=tmp_path / "one", progress=False)
    p = launch(2, names, tmp_path / "two", "--records", "--dropout", "0.2", *MODEL,
               *cli_args(**opts))
    assert p.returncode == 0, p.stderr
    meta, arrays = saved(tmp_path / "two")
    assert_close(arrays["params"], one.model.params, 1e-5)
    assert abs(meta["progress"]["last_val_loss"] - one.last_val_loss) < 1e-5
    straight = ckpt.load(tmp_path / "one" / "last.npz")[0]
    assert meta["progress"]["chars_seen"] == straight["progress"]["chars_seen"]


# -- the overlapped Allreduce: the backward in phases, each layer sent as it is done --------------

class _Recorder:
    """A reducer that checks each slice is final when handed over."""

    every = 1e-3

    def __init__(self, model, final):
        self.model, self.final, self.slices, self.polls = model, final, [], 0

    def start(self, lo, hi):
        np.testing.assert_array_equal(self.model.grads[lo:hi], self.final[lo:hi])
        self.slices.append((lo, hi))

    def progress(self):
        self.polls += 1


@pytest.mark.parametrize("cell,strategy", [("lstm", "shards"), ("gru", "whole"),
                                           ("rnn", "shards"), ("lstm", "panels")])
def test_phased_backward_hands_over_final_slices_in_order(cell, strategy):
    """Model.backward with a reducer: the same bits as one call, every slice final when handed
    over, the slices each layer's from the top (the decoder's with the top layer's), covering
    the buffer."""
    from charrnn.config import ModelConfig
    from charrnn.model import Model
    m = Model(ModelConfig(20, cell, 24, 3, dropout=0.3), seed=1)
    m.threads, m.strategy = 2, strategy
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 20, (9, 6)), rng.integers(0, 20, (9, 6))
    m.loss_and_grad(x, y, m.zero_state(6), rng=np.random.default_rng(3))
    final = m.grads.copy()
    r = _Recorder(m, final)
    m.grads[:] = np.nan  # nothing of the last backward may be left to pass as this one's
    m.loss_and_grad(x, y, m.zero_state(6), rng=np.random.default_rng(3), reducer=r)
    np.testing.assert_array_equal(m.grads, final)
    o = [int(v) for v in charrnn.cells.param_offsets(m.cfg)]
    assert r.slices == [(o[8], m.params.size), (o[4], o[8]), (0, o[4])]


def test_a_wave_backward_hands_over_every_slice_in_order():
    """wave (one layer a thread) finishes every slice at once: it hands them over in the order
    the other ranks' phased backwards do, each final, with the same bits as without a reducer."""
    from charrnn.config import ModelConfig
    from charrnn.model import Model
    m = Model(ModelConfig(20, "lstm", 24, 2, dropout=0.3), seed=1)
    m.threads, m.strategy = 2, "wave"
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 20, (9, 6)), rng.integers(0, 20, (9, 6))
    m.loss_and_grad(x, y, m.zero_state(6), rng=np.random.default_rng(3))
    final = m.grads.copy()
    r = _Recorder(m, final)
    m.grads[:] = np.nan
    m.loss_and_grad(x, y, m.zero_state(6), rng=np.random.default_rng(3), reducer=r)
    np.testing.assert_array_equal(m.grads, final)
    assert r.slices == m.grad_segments()


def test_a_rank_without_rows_hands_over_every_slice():
    """A zero-row share still starts every slice's Allreduce, in order (the others wait on it)."""
    from charrnn.config import ModelConfig
    from charrnn.model import Model
    m = Model(ModelConfig(20, "lstm", 8, 2), seed=1)
    m.grads[:] = 1.0
    r = _Recorder(m, np.zeros_like(m.grads))
    empty = np.zeros((5, 0), np.int32)
    assert m.loss_and_grad(empty, empty, m.zero_state(0), reducer=r)[0] == 0.0
    assert r.slices == m.grad_segments() and len(r.slices) == 2


def test_polling_polls_while_the_block_runs():
    """threads.polling: poll() runs on another thread while the block waits, and not after."""
    import threading

    from charrnn import threads as workers
    gate, polls = threading.Event(), []

    def poll():
        polls.append(threading.get_ident())
        if len(polls) == 5:
            gate.set()

    with workers.polling(poll, every=1e-3):
        assert gate.wait(5)
    n = len(polls)
    time.sleep(0.01)
    assert n >= 5 and len(polls) == n and threading.get_ident() not in polls


@needs_mpi
def test_overlapped_and_blocking_allreduce_give_the_same_bits(tiny_corpus, tmp_path):
    """CHARRNN_ALLREDUCE=overlap (auto's choice across hosts) and blocking (auto's on one host):
    2 ranks, 2 layers with dropout, 2 threads a rank (the shards' sums too), identical
    parameters."""
    args = ["--model", "gru", "--hidden", "16", "--layers", "2", "--dropout", "0.2",
            "--threads", "2", *cli_args(**OPTS, max_steps=15)]
    for mode in ("overlap", "blocking"):
        p = launch(2, tiny_corpus, tmp_path / mode, *args, env={"CHARRNN_ALLREDUCE": mode})
        assert p.returncode == 0, p.stderr
    np.testing.assert_array_equal(saved(tmp_path / "overlap")[1]["params"],
                                  saved(tmp_path / "blocking")[1]["params"])
    probe = [MPIEXEC, "-n", "2", sys.executable, "-c", ("from charrnn.distributed import "
             "connect; g = connect(); v = g.comm.gather(g.overlap); g.root and print(v)")]
    for mode, chosen in (("auto", "False"), ("overlap", "True"), ("blocking", "False")):
        out = subprocess.run(probe, capture_output=True, text=True, timeout=60, check=False,
                             env=dict(os.environ, CHARRNN_ALLREDUCE=mode)).stdout
        assert out == f"[{chosen}, {chosen}]\n", (mode, out)
    p = launch(2, tiny_corpus, tmp_path / "bad", *args, env={"CHARRNN_ALLREDUCE": "fast"})
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.strip().splitlines() == [
        "error: CHARRNN_ALLREDUCE must be one of auto, overlap, blocking, got 'fast'"]


@needs_mpi
def test_auto_is_chosen_by_rank_0_for_every_rank(tiny_corpus, tmp_path):
    """--auto under --distributed: rank 0's measurement decides for all. Each rank is given
    scripted speeds (rank 0: every model fast, rank 1: every model slow), so ranks that chose
    for themselves would build different models and the job would stop at ready()."""
    run = tmp_path / "run"
    code = ("import os, sys; import charrnn.budget as b; fast = os.environ['PMI_RANK'] == '0'; "
            "b.measure = lambda *a: 1e9 if fast else 1.0; from charrnn.cli import cli; "
            "cli(sys.argv[1:])")
    cmd = [MPIEXEC, "-n", "2", sys.executable, "-c", code, "train", str(tiny_corpus),
           "--distributed", "--checkpoint-dir", str(run), "--auto", "--time-limit", "3",
           "--threads", "1", "--batch-size", "8", "--seq-len", "10", "--max-steps", "2"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    assert p.returncode == 0, p.stderr
    assert p.stderr.count("--auto: ") == 1, p.stderr
    meta, _ = saved(run)
    from charrnn.budget import CANDIDATES
    largest = max(h for _, _, h in CANDIDATES)
    assert meta["model"]["hidden"] == largest  # rank 0's speeds: the largest reads enough


def test_allreduce_mode_must_agree(tiny_corpus, tmp_path):
    """CHARRNN_ALLREDUCE differing between ranks: one error line, exit status 2."""
    if MPIEXEC is None or importlib.util.find_spec("mpi4py") is None:
        pytest.skip("needs mpi4py and mpiexec")
    cmd = [MPIEXEC, "-n", "1", "-env", "CHARRNN_ALLREDUCE", "overlap", sys.executable, "-m",
           "charrnn", "train", str(tiny_corpus), "--distributed", "--quiet", "--checkpoint-dir",
           str(tmp_path / "r"), ":", "-n", "1", "-env", "CHARRNN_ALLREDUCE", "blocking",
           sys.executable, "-m", "charrnn", "train", str(tiny_corpus), "--distributed",
           "--quiet", "--checkpoint-dir", str(tmp_path / "r")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert p.returncode == 2, p.stderr
    assert p.stderr.strip().splitlines() == [
        "error: CHARRNN_ALLREDUCE differs between the ranks (rank 0: overlap, rank 1: blocking);"
        " give every rank the same (mpiexec -genv CHARRNN_ALLREDUCE VALUE)"]
