"""Distributed training benchmark: what MPI ranks cost and buy here, and a projection to clusters.

    python bench/distributed.py [--configs lstm-2x128,...] [--out bench/results/distributed.md]

Needs the [mpi] extra (mpi4py, mpiexec). For each model of bench/throughput.py's table (batch 50,
seq 50, vocabulary 65, Adam with clipping; the full training step) it measures on this machine:

- training chars/s in one process with 2 threads, and in 2 MPI ranks with 1 thread each
  (`mpiexec -n 2`, 25 rows per rank, one Allreduce of the gradient per step: the code path of
  `charrnn train --distributed`, charrnn.distributed.Group.add_gradients);
- the time of one Allreduce of the flat gradient buffer between the 2 ranks (shared memory);
- the time of one training step of one process with 2 threads at batch b = 1, 2, 4, ..., 128:
  the per-host compute time t(b) of the projection.

Then it projects data-parallel training on K hosts like this one, joined by 10 or 25 Gb/s
Ethernet, with a global batch G (each host G/K rows): step time t(G/K) + ring Allreduce
2(K-1)/K x gradient bytes / bandwidth + 2(K-1) x LATENCY; efficiency = t(G) / (K x step time),
the speed-up over one host with the same global batch, per host, with t(b) = a + c b fitted to
the measured step times. Those numbers are arithmetic on the measurements; the link rates are
nominal and the latency is an assumption (LATENCY). The raw measurements go to a .json beside
the report; `--from-json` redoes the report from them without measuring.
"""
from __future__ import annotations

import argparse
import json
import math
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
HOSTS = (2, 4, 8, 16, 32, 64)  # the columns of the projection
LINKS = {"10 Gb/s": 10e9, "25 Gb/s": 25e9}
LATENCY = 50e-6  # s per message over TCP on Ethernet (assumed, typical), 2(K-1) messages a ring
LINK_SETTINGS = ("local", "tcp", "tcp+tbf rate 1gbit burst 128kb latency 200ms",
                 "tcp+tbf rate 250mbit burst 64kb latency 400ms", "tcp+netem delay 1ms",
                 "tcp+netem delay 10ms")


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
        share = None if group is None else T * rows * group.size  # the global batch's count
        reducer = None if group is None else group.reducer(m.grads)
        loss, state[0] = m.loss_and_grad(x, y, state[0], predictions=share, reducer=reducer)
        if group is not None:
            group.add_gradients(m.grads, loss, reducer)
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
        cell, layers, hidden = CONFIGS[name][:3]
        _, step = training_step(cell, layers, hidden, B, 2)
        r = {"chars_per_s": B * T / seconds_per_step(step), "t": {}}
        r["lead"], r["slices"] = {}, None
        for rows in ROWS:
            m, step = training_step(cell, layers, hidden, rows, 2)
            r["t"][rows] = seconds_per_step(step, reps=3, target=0.3)
            r["lead"][rows], r["slices"] = handover_leads(m, rows)
        out[name] = r
    return out


class _Clock:
    """A reducer that notes when each slice is handed over (Model.backward)."""

    every = 1.0

    def __init__(self):
        self.times, self.slices = [], []

    def start(self, lo, hi):
        self.times.append(time.perf_counter())
        self.slices.append(hi - lo)

    def progress(self):
        pass


def handover_leads(m, rows, reps=5):
    """How long before the backward's end each gradient slice is ready (Model.backward with a
    reducer; median of reps), and the slices' sizes: what an overlapped Allreduce can hide."""
    import numpy as np
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, V, (T, rows)), rng.integers(0, V, (T, rows))
    leads = []
    for _ in range(reps + 1):
        m.forward(x, y, m.zero_state(rows), train=True)
        clock = _Clock()
        m.backward(reducer=clock)
        leads.append([clock.times[-1] - t for t in clock.times])
    return [statistics.median(col) for col in zip(*leads[1:])], clock.slices


def worker_ranks(names):
    """Under mpiexec -n 2, 1 thread per rank: chars/s at global batch B, the Allreduce time."""
    import numpy as np

    from charrnn.distributed import connect
    group = connect()
    comm = group.comm
    out = {}
    for name in names:
        cell, layers, hidden = CONFIGS[name][:3]
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


def worker_overlap(names):
    """Under mpiexec (any layout), 1 thread per rank: seconds per training step with the
    overlapped Allreduce and with the blocking one, in alternating windows (3 of each)."""
    from charrnn.distributed import connect
    group = connect()
    out = {}
    for name in names:
        cell, layers, hidden = CONFIGS[name][:3]
        m, step = training_step(cell, layers, hidden, B // group.size, 1, group)
        def sync(n):
            return group.comm.bcast(n, root=0)
        times = {"overlap": [], "blocking": []}
        for _ in range(3):
            for mode, measured in times.items():
                group.overlap = mode == "overlap"  # set on every rank alike (MPICH: serialized)
                measured.append(seconds_per_step(step, reps=1, sync=sync))
        out[name] = {k: statistics.median(v) for k, v in times.items()}
        out[name].update(rounds=times, params=int(m.params.size), ranks=group.size)
    return out if group.root else None


def measure_overlap(names, links: list[str]) -> dict:
    """worker_overlap on each link: "local" (2 ranks on this host, shared memory), "tcp" (2
    network namespaces as hosts, MPI over TCP on a virtual link), "tcp+<tc qdisc spec>" (that
    link shaped, e.g. tcp+tbf rate 1gbit burst 1mb latency 100ms, or tcp+netem delay 1ms).
    A link that cannot be made here is reported with the reason."""
    me = [sys.executable, os.path.abspath(__file__), "--configs", ",".join(names), "--worker",
          "overlap"]
    results, hosts = {}, None
    try:
        for link in links:
            try:
                if link == "local":
                    cmd = [mpiexec(), "-n", "2", *me]
                else:
                    hosts = hosts or make_hosts()
                    spec = link.split("+", 1)[1].split() if "+" in link else None
                    hosts.shape(spec)
                    cmd = hosts.mpiexec(2, me, env={"PYTHONPATH": str(HERE.parent)})
                r = subprocess.run(cmd, capture_output=True, text=True, cwd="/", timeout=900,
                                   check=False)
                if r.returncode != 0:
                    raise RuntimeError(r.stderr.strip().splitlines()[-1:] or r.returncode)
                results[link] = json.loads(r.stdout)
            except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
                why = getattr(e, "stderr", None) or str(e)
                results[link] = {"unavailable": str(why).strip()}
            print(link, json.dumps(results[link])[:300], file=sys.stderr, flush=True)
    finally:
        if hosts is not None:
            hosts.remove()
    return results


def make_hosts():
    """Two namespace hosts (tests/netns.py); raises RuntimeError where they cannot be made."""
    import tempfile
    sys.path.insert(0, str(HERE.parent / "tests"))
    from netns import Hosts, why_not
    why = why_not()
    if why:
        raise RuntimeError(why)
    hosts = Hosts(2, Path(tempfile.mkdtemp(prefix="charrnn-bench-hosts-")))
    try:
        hosts.make()
    except subprocess.CalledProcessError as e:
        hosts.remove()
        raise RuntimeError(e.stderr.strip()) from None
    return hosts


def overlap_report(results: dict) -> list[str]:
    lines = ["## Measured here: the Allreduce overlapped with the backward, against blocking\n",
             (f"2 ranks x 1 thread, batch {B} ({B // 2} rows a rank), seq {T}; the full training "
              "step (forward, backward, Allreduce, clip, Adam), ms a step, median of 3 windows of "
              "~0.7 s each mode, the modes alternating (CHARRNN_ALLREDUCE=overlap|blocking). "
              "local: both ranks on this host (shared memory); tcp: two network namespaces as "
              "hosts (tests/netns.py), MPI over TCP (UCX_TLS=tcp) across a virtual bridge; "
              "tcp+SPEC: each host's link shaped by `tc qdisc ... SPEC`.\n"),
             "| link | model | gradient MB | blocking ms | overlap ms | blocking/overlap |",
             "|---|---|---|---|---|---|"]
    for link, r in results.items():
        if "unavailable" in r:
            lines.append(f"| {link} | (not measured: {r['unavailable'][:160]}) | | | | |")
            continue
        for name, v in r.items():
            lines.append(f"| {link} | {name} | {4 * v['params'] / 1e6:.1f} | "
                         f"{v['blocking'] * 1e3:.1f} | {v['overlap'] * 1e3:.1f} | "
                         f"{v['blocking'] / v['overlap']:.2f} |")
    return lines + [""]


def mpiexec() -> str:
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else "mpiexec"


def ring_seconds(params: int, hosts: int, bits_per_s: float) -> float:
    """Ring Allreduce of a float32 buffer: 2(K-1)/K of its bytes over each link, 2(K-1) steps."""
    return 2 * (hosts - 1) / hosts * 4 * params * 8 / bits_per_s + 2 * (hosts - 1) * LATENCY


def fit(t: dict) -> tuple[float, float]:
    """Least-squares fit of the measured step times to t(b) = a + c b, in relative error (so that
    the small batches count as much as the large): a is what every step costs whatever its rows
    (the optimizer over every parameter, per-step overheads), c the cost of one row."""
    import numpy as np
    b = np.array(sorted(t), float)
    y = np.array([t[int(x)] for x in b])
    c, a = np.polyfit(b, y, 1, w=1 / y)
    return max(a, 0.0), c


def speedup(a: float, c: float, params: int, G: int, K: int, link: float,
            overlap=None) -> float:
    """Projected speed-up of K hosts over one, same global batch G: t(G) / (t(G/K) + ring),
    or with overlap (slices, lead fits) the ring time left after the backward's end."""
    if K == 1:
        return 1.0
    comm = ring_seconds(params, K, link) if overlap is None else \
        exposed(*overlap, G / K, K, link)
    return (a + c * G) / (a + c * G / K + comm)


def exposed(slices, lead_fits, b: float, K: int, link: float) -> float:
    """Seconds of communication after the backward ends, when each slice's ring Allreduce
    starts as soon as the slice is ready and the previous one is through (one link, in order):
    slice i is ready lead_i(b) = a_i + c_i b before the end."""
    free = -math.inf  # when the link is next free, relative to the backward's end
    for size, (a, c) in zip(slices, lead_fits):
        free = max(free, -(a + c * b)) + ring_seconds(size, K, link)
    return max(free, 0.0)


def lead_fits(entry) -> list[tuple[float, float]]:
    """Per gradient slice, the least-squares line lead(b) = a + c b through its measured leads."""
    import numpy as np
    b = np.array(sorted(entry["lead"], key=int), float)
    cols = zip(*(entry["lead"][k] for k in sorted(entry["lead"], key=int)))
    return [tuple(np.polyfit(b, np.array(col), 1)[::-1]) for col in cols]


def projection(single, ranks) -> list[str]:
    lines = ["## Arithmetic: projected efficiency on K hosts like this one\n",
             ("The per-host step time is the line t(b) = a + c b fitted to the measured t(b) "
              "above; on K hosts a step takes t(G/K) + the ring Allreduce, 2(K-1)/K x 4P bytes / "
              f"link rate + 2(K-1) x {LATENCY * 1e6:.0f} us (nominal link rate, assumed latency). "
              "Blocking: all of it after the backward. Overlapped (CHARRNN_ALLREDUCE=auto across "
              "hosts): each layer's slice of the gradient starts its ring as soon as the "
              "backward has made it (measured: how long before the backward's end each slice "
              "is ready, fitted to a + c b per slice), the link moving one slice at a time, and "
              "only what is left after the backward's end counts. Each cell: blocking / "
              "overlapped efficiency = t(G) / (K x step time), the speed-up over one host with "
              "the same global batch G, per host. '80% up to': the most hosts (powers of 2) "
              "that keep 80% overlapped; 'best': the host count (of 1-256, at least one row "
              "each) with the highest overlapped throughput, and its speed-up.\n"),
             "| model | a ms | c ms/row | slices (layer 0 last), MB |", "|---|---|---|---|"]
    fits = {name: fit(s["t"]) for name, s in single.items()}
    over = {name: (s["slices"], lead_fits(s)) if s.get("lead") else None
            for name, s in single.items()}
    lines += [f"| {n} | {a * 1e3:.1f} | {c * 1e3:.2f} | "
              f"{' / '.join(f'{4 * x / 1e6:.2f}' for x in (over[n] or [[]])[0])} |"
              for n, (a, c) in fits.items()] + [""]
    for link_name, link in LINKS.items():
        lines += [f"### {link_name}\n", "| model | Allreduce ms K=8 / 16 / 64 | G | "
                  + " | ".join(f"K={k}" for k in HOSTS) + " | 80% up to | best |",
                  "|---|---|---|" + "---|" * len(HOSTS) + "---|---|"]
        for name, (a, c) in fits.items():
            P, ov = ranks[name]["params"], over[name]
            ring = " / ".join(f"{ring_seconds(P, k, link) * 1e3:.1f}" for k in (8, 16, 64))
            for G in GLOBAL:
                def up(k, o, a=a, c=c, P=P, G=G, link=link):
                    return speedup(a, c, P, G, k, link, o)
                cells = " | ".join(f"{up(k, None) / k:.0%} / {up(k, ov) / k:.0%}" if k <= G
                                   else "-" for k in HOSTS)
                ok = [k for k in (1, 2, 4, 8, 16, 32, 64, 128, 256)
                      if k <= G and up(k, ov) / k >= 0.8]
                best = max(range(1, min(G, 256) + 1), key=lambda k: up(k, ov))
                lines.append(f"| {name} | {ring} | {G} | {cells} | {max(ok)} | {best} "
                             f"({up(best, ov):.1f}x) |")
        lines.append("")
    return lines


def report(single, ranks, load: float, overlap: dict) -> list[str]:
    lines = ["# Distributed training on this machine, and projected to clusters\n",
             (f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
             f"`python bench/distributed.py`\n"), *[f"- {x}" for x in machine()],
             (f"- load average (1 min) just before the run: {load:.2f} (other work on this "
             "2-core machine shows up in every number)"), ""]
    if overlap:
        lines += overlap_report(overlap)
    if single is None:
        return lines
    lines += [
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
    return lines + [""] + projection(single, ranks)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--configs", default=",".join(n for n in CONFIGS if CONFIGS[n][3:] == (B, T)))
    ap.add_argument("--out", default=str(HERE / "results" / "distributed.md"))
    ap.add_argument("--worker", choices=["single", "ranks", "overlap"], help=argparse.SUPPRESS)
    ap.add_argument("--links", default=";".join(LINK_SETTINGS),
                    help="the overlap part's links, ';'-separated (see measure_overlap); "
                    "'' skips it")
    ap.add_argument("--overlap-only", action="store_true", help="only the overlap part")
    ap.add_argument("--from-json", help="redo the report from saved measurements")
    a = ap.parse_args()
    names = a.configs.split(",")
    if a.from_json:
        d = json.loads(Path(a.from_json).read_text())
        single = d["single"] and {k: dict(v, t={int(b): s for b, s in v["t"].items()})
                                  for k, v in d["single"].items()}
        print("\n".join(report(single, d["ranks"], d["load"], d.get("overlap") or {})))
        return
    if a.worker:
        result = {"single": worker_single, "ranks": worker_ranks,
                  "overlap": worker_overlap}[a.worker](names)
        if result is not None:
            print(json.dumps(result))
        return
    load = os.getloadavg()[0]
    links = [link for link in a.links.split(";") if link.strip()]
    overlap = measure_overlap(names, links) if links else {}
    single = ranks = None
    if not a.overlap_only:
        me = [sys.executable, os.path.abspath(__file__), "--configs", a.configs]
        ranks = json.loads(subprocess.run([mpiexec(), "-n", "2", *me, "--worker", "ranks"],
                                          check=True, capture_output=True, text=True).stdout)
        single = subprocess.run([*me, "--worker", "single"], check=True, capture_output=True,
                                text=True).stdout
        single = {k: dict(v, t={int(b): s for b, s in v["t"].items()})
                  for k, v in json.loads(single).items()}
    Path(a.out).with_suffix(".json").write_text(json.dumps(
        {"single": single, "ranks": ranks, "overlap": overlap, "load": load}, indent=1))
    text = "\n".join(report(single, ranks, load, overlap)) + "\n"
    Path(a.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
