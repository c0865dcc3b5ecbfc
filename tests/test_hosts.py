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

import charrnn
from charrnn import TrainConfig
from charrnn import checkpoint as ckpt

MPIEXEC = str(Path(sys.executable).parent / "mpiexec")
if not os.path.exists(MPIEXEC):
    MPIEXEC = shutil.which("mpiexec")
NET = "10.213.{}.{}"  # 10.213.<subnet>.1 the bridge, .2, .3, ... the hosts


def _why_not() -> str | None:
    if importlib.util.find_spec("mpi4py") is None or MPIEXEC is None:
        return "needs mpi4py and mpiexec: pip install -e '.[mpi]'"
    if os.geteuid() != 0:
        return "needs root to make network namespaces (CI runs as root)"
    for tool in ("ip", "unshare", "mount"):
        if shutil.which(tool) is None:
            return f"needs the {tool} command (iproute2, util-linux)"
    return None


class Hosts:
    """Namespaces h1..hn on a bridge, and a launcher script that runs a command on one."""

    def __init__(self, n: int, tmp: Path):
        tag = uuid.uuid4()
        self.tag = "cr" + tag.hex[:6]
        self.subnet = 100 + tag.int % 150  # 10.213.100-249.0/24
        self.bridge = f"{self.tag}br"
        self.names = [f"{self.tag}h{i + 1}" for i in range(n)]
        self.addrs = [NET.format(self.subnet, i + 2) for i in range(n)]
        self.private: dict[str, list[str]] = {}  # host name -> folders it does not see
        self.launcher = tmp / "launcher.sh"
        self.made = []

    def sh(self, *cmd, check=True):
        return subprocess.run(cmd, check=check, capture_output=True, text=True)

    def make(self):
        self.sh("ip", "link", "add", self.bridge, "type", "bridge")
        self.made.append(("link", self.bridge))
        self.sh("ip", "addr", "add", NET.format(self.subnet, 1) + "/24", "dev", self.bridge)
        self.sh("ip", "link", "set", self.bridge, "up")
        for i, (name, addr) in enumerate(zip(self.names, self.addrs)):
            self.sh("ip", "netns", "add", name)
            self.made.append(("netns", name))
            veth = f"{self.tag}v{i + 1}"
            self.sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns",
                    name)
            self.made.append(("link", veth))
            self.sh("ip", "link", "set", veth, "master", self.bridge, "up")
            self.sh("ip", "-n", name, "addr", "add", addr + "/24", "dev", "eth0")
            self.sh("ip", "-n", name, "link", "set", "eth0", "up")
            self.sh("ip", "-n", name, "link", "set", "lo", "up")
        self.write_launcher()

    def write_launcher(self):
        """host command... (ssh's calling convention): run the command in that host's
        namespaces, with its own hostname and its private folders hidden under a tmpfs."""
        cases = []
        for name, addr in zip(self.names, self.addrs):
            hide = "".join(f"mount -t tmpfs tmpfs {d}; " for d in self.private.get(name, []))
            cases.append(f'  {addr}) ns={name}; hide="{hide}";;')
        self.launcher.write_text(
            "#!/bin/sh\n"
            'while [ $# -gt 0 ]; do case "$1" in -*) shift;; *) break;; esac; done\n'
            'host=$1; shift\ncase $host in\n' + "\n".join(cases) +
            '\n  *) echo "no host $host" >&2; exit 1;;\nesac\n'
            'exec ip netns exec $ns unshare --uts sh -c "hostname $ns; $hide $*"\n')
        self.launcher.chmod(0o755)

    def veth(self, host: int) -> str:
        return f"{self.tag}v{host + 1}"

    def remove(self):
        for kind, name in reversed(self.made):
            if kind == "netns":
                self.sh("ip", "netns", "del", name, check=False)
            else:
                self.sh("ip", "link", "del", name, check=False)

    def command(self, ranks: int, args, hosts=None) -> list[str]:
        """mpiexec over the first `ranks` hosts, one rank each, running charrnn train."""
        hosts = hosts or ranks
        assert ranks == hosts
        return [MPIEXEC, "-launcher", "ssh", "-launcher-exec", str(self.launcher),
                "-iface", self.bridge, "-hosts", ",".join(f"{a}:1" for a in self.addrs[:hosts]),
                "-n", str(ranks), "-genv", "UCX_TLS", "tcp", "-genv", "UCX_NET_DEVICES", "eth0",
                sys.executable, "-m", "charrnn", "train", "--distributed", "--quiet", *args]


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    why = _why_not()
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


MODEL = ["--hidden", "16", "--layers", "1", "--threads", "1"]
OPTS = {"seq_len": 10, "batch_size": 12, "lr": 2e-3, "eval_every": 20}


def cli(**kw):
    return [a for k, v in kw.items() for a in (f"--{k.replace('_', '-')}", str(v))]


def one_process(corpus, run_dir, **kw):
    return charrnn.train(corpus, TrainConfig(**dict(OPTS, threads=1, **kw)), hidden=16, layers=1,
                         checkpoint_dir=run_dir, progress=False)


def run(hosts, ranks, args, private, timeout=120):
    """Launch from a folder every host sees; `private`: folders hosts 2.. do not see."""
    hosts.private = {name: [str(p) for p in private] for name in hosts.names[1:]}
    hosts.write_launcher()
    proc = subprocess.Popen(hosts.command(ranks, args), stdout=subprocess.PIPE,
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
    cmd = hosts.command(2, [str(host0 / "corpus.txt"), "--checkpoint-dir", str(host0 / "run"),
                            *MODEL, *cli(**dict(OPTS, max_steps=10 ** 7, eval_every=50))])
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
