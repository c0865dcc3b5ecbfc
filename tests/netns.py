"""Hosts on one machine for MPI tests and benchmarks: Linux network namespaces on a bridge.

Each "host" is a network namespace with its own address on a virtual bridge (made here, as root,
and removed after), its own hostname (a UTS namespace) and, where asked, its own disk: a tmpfs
mounted over given folders inside that host's mount namespace. MPICH's launcher starts one proxy
per host through a script that enters the host's namespaces (`mpiexec -launcher ssh
-launcher-exec`, so no ssh daemon is needed). Used by tests/test_hosts.py and
bench/distributed.py.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

MPIEXEC = str(Path(sys.executable).parent / "mpiexec")
if not os.path.exists(MPIEXEC):
    MPIEXEC = shutil.which("mpiexec")
NET = "10.213.{}.{}"  # 10.213.<subnet>.1 the bridge, .2, .3, ... the hosts


def why_not() -> str | None:
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

    def mpiexec(self, ranks: int, argv, env=None) -> list[str]:
        """mpiexec running argv on the first `ranks` hosts, one rank each, MPI over their links
        (UCX's TCP on eth0: without it, UCX finds the shared memory the namespaces share)."""
        genv = [a for k, v in dict({"UCX_TLS": "tcp", "UCX_NET_DEVICES": "eth0"},
                                   **(env or {})).items() for a in ("-genv", k, v)]
        return [MPIEXEC, "-launcher", "ssh", "-launcher-exec", str(self.launcher),
                "-iface", self.bridge, "-hosts", ",".join(f"{a}:1" for a in self.addrs[:ranks]),
                "-n", str(ranks), *genv, *argv]

    def shape(self, spec: list[str] | None):
        """Every host's outgoing link shaped by the tc qdisc spec (["tbf", "rate", "1gbit",
        ...], ["netem", "delay", "1ms"]), or back to plain when None."""
        for name in self.names:
            if spec is None:
                self.sh("ip", "netns", "exec", name, "tc", "qdisc", "del", "dev", "eth0", "root",
                        check=False)
            else:
                self.sh("ip", "netns", "exec", name, "tc", "qdisc", "replace", "dev", "eth0",
                        "root", *spec)
