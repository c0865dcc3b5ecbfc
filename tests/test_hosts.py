"""Distributed training across hosts, on one machine: Linux network namespaces as the hosts.

Each "host" is a network namespace with its own address on a virtual bridge (made here, as root,
and removed after), its own hostname (a UTS namespace) and, where a test asks, its own disk: a
tmpfs mounted over rank 0's folder inside that host's mount namespace, so that nothing rank 0 has
on disk (corpus, run directory, checkpoints) is there. MPICH's launcher starts one proxy per host
through a script that enters the host's namespaces (`mpiexec -launcher ssh -launcher-exec`, so no
ssh daemon is needed), and UCX is told to use TCP on the host's interface, so every byte between
the ranks crosses the virtual links (tested: cutting a link ends the job).

Skipped, with the reason, where namespaces cannot be made (not root, no `ip`); CI runs as root.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from netns import Hosts, why_not

import charrnn
from charrnn import TrainConfig
from charrnn import checkpoint as ckpt


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    why = why_not()
    if why:
        pytest.skip(why)
    h = Hosts(3, tmp_path_factory.mktemp("hosts"))
    try:
        h.make()
    except subprocess.CalledProcessError as e:
        h.remove()
        pytest.skip(f"cannot make network namespaces here: {e.stderr.strip()}")
    yield h
    h.remove()


TRAIN = [sys.executable, "-m", "charrnn", "train", "--distributed", "--quiet"]
MODEL = ["--hidden", "16", "--layers", "1", "--threads", "1"]
OPTS = {"seq_len": 10, "batch_size": 12, "lr": 2e-3, "eval_every": 20}


def cli(**kw):
    return [a for k, v in kw.items() for a in (f"--{k.replace('_', '-')}", str(v))]


def one_process(corpus, run_dir, **kw):
    return charrnn.train(corpus, TrainConfig(**dict(OPTS, threads=1, **kw)), hidden=16, layers=1,
                         checkpoint_dir=run_dir, progress=False)


def run(hosts, ranks, args, private, timeout=120, env=None, argv=TRAIN):
    """Launch from a folder every host sees; `private`: folders hosts 2.. do not see."""
    hosts.private = {name: [str(p) for p in private] for name in hosts.names[1:]}
    hosts.write_launcher()
    proc = subprocess.Popen(hosts.mpiexec(ranks, argv + list(args), env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd="/", start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:  # a hung job: end mpiexec and everything it started
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def params(run_dir):
    return ckpt.load(Path(run_dir) / "last.npz")[1]["params"]


def close(a, b, tol=1e-5):
    assert np.abs(a - b).max() <= tol * np.abs(b).max(), np.abs(a - b).max()


@pytest.fixture
def host0(tmp_path, tiny_corpus):
    """Rank 0's own folder: the corpus and the run directory, unseen by the other hosts."""
    own = tmp_path / "host0"
    own.mkdir()
    shutil.copy(tiny_corpus, own / "corpus.txt")
    return own


def test_two_hosts_without_a_shared_disk_equal_one_process(hosts, host0, tmp_path):
    one = one_process(host0 / "corpus.txt", tmp_path / "one", max_steps=40)
    p = run(hosts, 2, [str(host0 / "corpus.txt"), "--checkpoint-dir", str(host0 / "run"),
                       *MODEL, *cli(**OPTS, max_steps=40)], private=[host0])
    assert p.returncode == 0, p.stderr
    close(params(host0 / "run"), one.model.params)
    # rank 1 never saw rank 0's folder (a tmpfs hid it): the corpus came over MPI
    assert set(os.listdir(host0)) == {"corpus.txt", ".charrnn-cache", "run"}


def test_across_hosts_the_allreduce_overlaps_with_the_same_bits(hosts, host0, tmp_path):
    """CHARRNN_ALLREDUCE=auto overlaps when the ranks span hosts (blocking on one host, see
    test_distributed.py); 2 layers, so the slices go one by one; the bits equal blocking's."""
    probe = [sys.executable, "-c", ("from charrnn.distributed import connect; "
             "g = connect(); v = g.comm.gather(g.overlap); g.root and print(v)")]
    p = run(hosts, 2, [], private=[], argv=probe)
    assert p.stdout == "[True, True]\n", p.stderr
    args = [str(host0 / "corpus.txt"), "--hidden", "16", "--layers", "2", "--threads", "1",
            *cli(**OPTS, max_steps=15)]
    for mode in ("auto", "blocking"):
        p = run(hosts, 2, [*args, "--checkpoint-dir", str(host0 / mode)], private=[host0],
                env={"CHARRNN_ALLREDUCE": mode})
        assert p.returncode == 0, p.stderr
    np.testing.assert_array_equal(params(host0 / "auto"), params(host0 / "blocking"))


def test_resume_from_rank_0s_checkpoint_onto_three_hosts(hosts, host0, tmp_path):
    straight = one_process(host0 / "corpus.txt", tmp_path / "straight", max_steps=40)
    p = run(hosts, 2, [str(host0 / "corpus.txt"), "--checkpoint-dir", str(host0 / "run"),
                       *MODEL, *cli(**OPTS, max_steps=20)], private=[host0])
    assert p.returncode == 0, p.stderr
    # hosts 2 and 3 have neither the checkpoint nor the corpus: rank 0 sends both
    p = run(hosts, 3, ["--resume", "--checkpoint-dir", str(host0 / "run"), "--threads", "1",
                       *cli(max_steps=40)], private=[host0])
    assert p.returncode == 0, p.stderr
    assert ckpt.read(host0 / "run" / "last.npz").progress.step == 40
    close(params(host0 / "run"), straight.model.params, 1e-4)


def test_records_on_two_hosts_equal_one_process(hosts, tmp_path):
    own = tmp_path / "host0"
    own.mkdir()
    names = ["anna", "bob", "christopher", "dee", "eve", "frank", "gertrude", "hal", "ida",
             "jo", "kim", "leopold", "mo", "nan", "otto", "pia", "quentin", "ru", "sam", "ty"]
    (own / "names.txt").write_text("\n".join(names * 3) + "\n")
    opts = dict(OPTS, batch_size=7, max_steps=30)  # 7 records a batch: 3 and 4 per rank
    one = charrnn.train(own / "names.txt", TrainConfig(records=True, threads=1, **opts),
                        hidden=16, layers=1, dropout=0.2, checkpoint_dir=tmp_path / "one",
                        progress=False)
    p = run(hosts, 2, [str(own / "names.txt"), "--records", "--dropout", "0.2",
                       "--checkpoint-dir", str(own / "run"), *MODEL, *cli(**opts)],
            private=[own])
    assert p.returncode == 0, p.stderr
    close(params(own / "run"), one.model.params)
    meta = ckpt.load(own / "run" / "last.npz")[0]
    assert abs(meta["progress"]["last_val_loss"] - one.last_val_loss) < 1e-5


def _ranks_on(host: str) -> list[int]:
    """The pids of charrnn processes in that host's network namespace."""
    pids = subprocess.run(["ip", "netns", "pids", host], capture_output=True, text=True,
                          check=False).stdout.split()
    ranks = []
    for p in pids:
        try:
            if b"\0-m\0charrnn\0train\0" in Path(f"/proc/{p}/cmdline").read_bytes():
                ranks.append(int(p))
        except OSError:
            pass
    assert ranks, f"no charrnn process on {host}"
    return ranks


def _wait_for(path: Path, seconds: float):
    end = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < end:
        time.sleep(0.2)
    assert path.exists(), f"{path} never appeared"


@pytest.mark.parametrize("fault", ["killed rank", "cut link"])
def test_a_lost_host_ends_the_job_with_the_checkpoint_whole(hosts, host0, fault):
    hosts.private = {name: [str(host0)] for name in hosts.names[1:]}
    hosts.write_launcher()
    cmd = hosts.mpiexec(2, [*TRAIN, str(host0 / "corpus.txt"), "--checkpoint-dir",
                            str(host0 / "run"), *MODEL,
                            *cli(**dict(OPTS, max_steps=10 ** 7, eval_every=50))])
    env = dict(os.environ, CHARRNN_MPI_TIMEOUT="8")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd="/", env=env, start_new_session=True)
    try:
        _wait_for(host0 / "run" / "last.npz", 60)
        time.sleep(1.0)
        rank0, rank1 = (_ranks_on(hosts.names[i]) for i in (0, 1))
        if fault == "killed rank":
            os.kill(rank1[0], signal.SIGKILL)
        else:
            hosts.sh("ip", "link", "set", hosts.veth(1), "down")
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=60)
        while any(os.path.exists(f"/proc/{p}") for p in rank0) and time.monotonic() - t0 < 60:
            time.sleep(0.2)  # the job has ended when rank 0's process has, too
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        hosts.sh("ip", "link", "set", hosts.veth(1), "up", check=False)
    assert proc.returncode != 0
    assert took < 30, took  # the watchdog's 8 s, and mpiexec's clean-up
    if fault == "cut link":
        lines = [line for line in err.splitlines() if "no answer" in line]
        assert lines and hosts.names[1] in lines[0], (proc.returncode, took, err)
    assert "Traceback" not in err
    saved = ckpt.read(host0 / "run" / "last.npz")  # whole, and it resumes
    assert saved.progress.step >= 50
    more = TrainConfig(**dict(OPTS, threads=1, eval_every=50, max_steps=saved.progress.step + 5))
    r = charrnn.train(host0 / "corpus.txt", more, checkpoint_dir=host0 / "run", resume=True,
                      progress=False)
    assert r.step == saved.progress.step + 5
