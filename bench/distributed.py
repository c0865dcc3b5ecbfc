"""Distributed training benchmark: what MPI ranks cost and buy here, and a projection to clusters.

    python bench/distributed.py [--configs lstm-2x128,...] [--out bench/results/distributed.md]

Needs the [mpi] extra (mpi4py, mpiexec). For each model of bench/throughput.py's table (batch 50,
seq 50, vocabulary 65, Adam with clipping; the full training step) it measures on this machine:

- training chars/s in one process with 2 threads, and in 2 MPI ranks with 1 thread each
  (`mpiexec -n 2`, 25 rows per rank, one Allreduce of the gradient per step: the code path of
  `charrnn train --distributed`, charrnn.distributed.Group.average_gradients);
- the time of one Allreduce of the flat gradient buffer between the 2 ranks (shared memory);
- the time of one training step of one process with 2 threads at batch b = 1, 2, 4, ..., 128:
  the per-host compute time t(b) of the projection.

Then it projects data-parallel training on K hosts like this one, joined by 10 or 25 Gb/s
Ethernet, with a global batch G (each host G/K rows): step time t(G/K) + ring Allreduce
2(K-1)/K x gradient bytes / bandwidth + 2(K-1) x LATENCY; efficiency = t(G) / (K x step time),
the speed-up over one host with the same global batch, per host. Those numbers are arithmetic
on the measured t(b); the link rates are nominal and the latency is an assumption (LATENCY).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from throughput import CONFIGS, B, T, V, machine

ROWS = (1, 2, 4, 8, 16, 32, 64, 128)  # per-host batch sizes timed for the projection
GLOBAL = (64, 128, 256, 512, 1024)     # global batch sizes of the projection
HOSTS = (2, 4, 8, 16, 32, 64)
LINKS = {"10 Gb/s": 10e9, "25 Gb/s": 25e9}
LATENCY = 50e-6  # s per message over TCP on Ethernet (assumed, typical), 2(K-1) messages a ring


def training_step(cell, layers, hidden, rows, threads, group=None):
    """A model and one full training step (forward, backward, [Allreduce,] clip, Adam) on a fixed
    random batch of `rows` rows; the model's gradient buffer is returned for Allreduce timing."""
    import numpy as np

    from charrnn.config import ModelConfig
    from charrnn.model import Model
    from charrnn.optim import Optimizer, clip_gradients

    rng = np.random.default_rng(0)
    m = Model(ModelConfig(V, cell, hidden, layers), threads=threads)
    opt = Optimizer("adam", m.params.size)
    x, y = rng.integers(0, V, (T, rows)), rng.integers(0, V, (T, rows))
    state = [m.zero_state(rows)]

    def step():
        loss, state[0] = m.loss_and_grad(x, y, state[0])
        if group is not None:
            group.average_gradients(m.grads, loss)
        clip_gradients(m.grads, 5.0)
        opt.step(m.params, m.grads, 2e-3)

    return m, step


def seconds_per_step(step, reps=3, target=0.7, sync=None):
    """Median seconds per step over `reps` windows of about `target` seconds. Under MPI every rank
    must run the same number of steps: rank 0's count is shared through sync."""
    step()
    t0 = time.perf_counter()
    step()
    n = max(2, int(target / max(time.perf_counter() - t0, 1e-6)))
    n = sync(n) if sync else n
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(n):
            step()
        times.append((time.perf_counter() - t0) / n)
    return statistics.median(times)


def worker_single(names):
    """One process, 2 threads: chars/s at batch B, and seconds per step at each of ROWS."""
    out = {}
    for name in names:
        cell, layers, hidden = CONFIGS[name]
        _, step = training_step(cell, layers, hidden, B, 2)
        r = {"chars_per_s": B * T / seconds_per_step(step), "t": {}}
        for rows in ROWS:
            _, step = training_step(cell, layers, hidden, rows, 2)
            r["t"][rows] = seconds_per_step(step, reps=3, target=0.3)
        out[name] = r
    return out


def worker_ranks(names):
    """Under mpiexec -n 2, 1 thread per rank: chars/s at global batch B, the Allreduce time."""
    import numpy as np

    from charrnn.distributed import connect
    group = connect()
    comm = group.comm
    out = {}
    for name in names:
        cell, layers, hidden = CONFIGS[name]
        m, step = training_step(cell, layers, hidden, B // group.size, 1, group)
        per_step = seconds_per_step(step, sync=lambda n: comm.bcast(n, root=0))
        grads = np.ones_like(m.grads)
        reduce_times = []
        for _ in range(5):
            comm.Barrier()
            t0 = time.perf_counter()
            for _ in range(10):
                comm.Allreduce(group.MPI.IN_PLACE, grads, op=group.MPI.SUM)
            reduce_times.append((time.perf_counter() - t0) / 10)
        out[name] = {"chars_per_s": B * T / per_step, "allreduce_s": statistics.median(
            reduce_times), "params": int(m.params.size), "ranks": group.size}
    return out if group.root else None


def mpiexec() -> str:
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else "mpiexec"


def ring_seconds(params: int, hosts: int, bits_per_s: float) -> float:
    """Ring Allreduce of a float32 buffer: 2(K-1)/K of its bytes over each link, 2(K-1) steps."""
    return 2 * (hosts - 1) / hosts * 4 * params * 8 / bits_per_s + 2 * (hosts - 1) * LATENCY


def t_at(t: dict, rows: float) -> float:
    """Seconds per step at `rows` rows, interpolated linearly between the measured sizes (and
    extrapolated by the last slope beyond 128)."""
    xs = sorted(t)
    if rows <= xs[0]:
        return t[xs[0]]
    for a, b in zip(xs, xs[1:]):
        if rows <= b:
            return t[a] + (t[b] - t[a]) * (rows - a) / (b - a)
    a, b = xs[-2], xs[-1]
    return t[b] + (t[b] - t[a]) * (rows - b) / (b - a)


def efficiency(t: dict, params: int, G: int, K: int, link: float) -> float:
    return t_at(t, G) / (K * (t_at(t, G / K) + ring_seconds(params, K, link)))


def report(single, ranks, load: float) -> list[str]:
    lines = ["# Distributed training on this machine, and projected to clusters\n",
             (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
             f"`python bench/distributed.py`\n"), *[f"- {x}" for x in machine()],
             (f"- load average (1 min) just before the run: {load:.2f} (other work on this "
             "2-core machine shows up in every number)"), "",
             "## Measured here: 1 process x 2 threads against 2 MPI ranks x 1 thread\n",
             (f"Batch {B} (2 ranks: {B // 2} rows each), seq {T}, vocabulary {V}, Adam, clipping. "
             "Allreduce: one MPI_Allreduce (sum) of the float32 gradient buffer between the two "
             "ranks on this host (shared memory), median of 5 x 10.\n"),
             ("| model | parameters | gradient MB | 1 process x 2 threads chars/s | "
             "2 ranks x 1 thread chars/s | ratio | Allreduce ms (2 ranks, local) | "
             "share of the 2-rank step |"), "|---|---|---|---|---|---|---|---|"]
    for name, s in single.items():
        r = ranks[name]
        step = B * T / r["chars_per_s"]
        lines.append(f"| {name} | {r['params']:,} | {4 * r['params'] / 1e6:.1f} | "
                     f"{s['chars_per_s']:,.0f} | {r['chars_per_s']:,.0f} | "
                     f"{r['chars_per_s'] / s['chars_per_s']:.2f} | "
                     f"{r['allreduce_s'] * 1e3:.2f} | {r['allreduce_s'] / step:.0%} |")
    lines += ["", "## Measured here: one host's step time t(b), ms (1 process x 2 threads)\n",
              "| model | " + " | ".join(f"b={b}" for b in ROWS) + " |",
              "|---|" + "---|" * len(ROWS)]
    for name, s in single.items():
        lines.append(f"| {name} | " + " | ".join(f"{s['t'][b] * 1e3:.1f}" for b in ROWS) + " |")
    lines += ["", "## Arithmetic: projected efficiency on K hosts like this one\n",
              ("Efficiency = t(G) / (K x (t(G/K) + ring Allreduce)), with t measured above "
              "(interpolated between batch sizes), the ring Allreduce "
              "2(K-1)/K x 4P bytes / link rate + 2(K-1) x "
              f"{LATENCY * 1e6:.0f} us, nominal link rates, no overlap of communication with "
              "compute. A dash: fewer than one row per host. Best K: the K of HOSTS (and 1) "
              "with the highest projected throughput.\n")]
    for link_name, link in LINKS.items():
        lines += [f"### {link_name}\n",
                  "| model | G | Allreduce ms at K=8 / 16 / 64 | " + " | ".join(
                      f"K={k}" for k in HOSTS) + " | best K (speed-up) |",
                  "|---|---|---|" + "---|" * len(HOSTS) + "---|"]
        for name, s in single.items():
            P = ranks[name]["params"]
            ring = " / ".join(f"{ring_seconds(P, k, link) * 1e3:.1f}" for k in (8, 16, 64))
            for G in GLOBAL:
                effs = [efficiency(s["t"], P, G, k, link) if G >= k else None for k in HOSTS]
                speed = {1: 1.0, **{k: e * k for k, e in zip(HOSTS, effs) if e is not None}}
                best = max(speed, key=speed.get)
                cells = " | ".join("-" if e is None else f"{e:.0%}" for e in effs)
                lines.append(f"| {name} | {G} | {ring} | {cells} | {best} "
                             f"({speed[best]:.1f}x) |")
        lines.append("")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--out", default=str(HERE / "results" / "distributed.md"))
    ap.add_argument("--worker", choices=["single", "ranks"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    names = a.configs.split(",")
    if a.worker:
        result = (worker_single if a.worker == "single" else worker_ranks)(names)
        if result is not None:
            print(json.dumps(result))
        return
    load = os.getloadavg()[0]
    me = [sys.executable, os.path.abspath(__file__), "--configs", a.configs]
    ranks = subprocess.run([mpiexec(), "-n", "2", *me, "--worker", "ranks"], check=True,
                           capture_output=True, text=True).stdout
    single = subprocess.run([*me, "--worker", "single"], check=True, capture_output=True,
                            text=True).stdout
    single = {k: dict(v, t={int(b): s for b, s in v["t"].items()})
              for k, v in json.loads(single).items()}
    text = "\n".join(report(single, json.loads(ranks), load)) + "\n"
    Path(a.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
