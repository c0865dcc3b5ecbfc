"""Throughput benchmark: charrnn against PyTorch on this CPU, in one run.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/throughput.py \
        --torch-python /path/to/venv/bin/python [--configs lstm-2x128] [--threads 2]

Run it with the two OPENBLAS variables unset (as above): some development machines set them for
old OpenBLAS builds, and on an AVX-512 CPU they force numpy's and SciPy's BLAS onto the AVX2
kernel; users' machines do not set them. The header says which BLAS kernel ran.

For each configuration (batch 50, seq 50, vocab 65, Adam, clipping at norm 5) it measures, each in a
fresh subprocess: training chars/s (after warm-up, median of timed windows of about a second),
sampling chars/s at batch 1 and with 32 streams at once, peak resident memory, and the same for
PyTorch (same thread count) when a Python with torch is available (this one, or --torch-python). charrnn and PyTorch alternate for --rounds
rounds, so that load from elsewhere on a shared machine hits both alike; each ratio is taken
within a round. It prints a Markdown table with the ratios and the fraction of the machine's
float32 GEMM peak (measured in the same workers) that training reaches.
Then: start-up time of `charrnn sample` to its first character (warm kernel cache), and the peak
memory of `charrnn train` on tinyshakespeare with LSTM 2x128.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

V, B, T = 65, 50, 50  # the default batch and window
CONFIGS = {  # name: (cell, layers, hidden, batch, window)
    "lstm-2x128": ("lstm", 2, 128, B, T), "lstm-2x256": ("lstm", 2, 256, B, T),
    "lstm-2x512": ("lstm", 2, 512, B, T), "lstm-3x512": ("lstm", 3, 512, B, T),
    "gru-2x256": ("gru", 2, 256, B, T), "rnn-1x128": ("rnn", 1, 128, B, T),
    # small steps, where the fixed cost of a step shows (issue "Speed 3")
    "lstm-2x256-b50t8": ("lstm", 2, 256, 50, 8), "lstm-1x32-b8t8": ("lstm", 1, 32, 8, 8),
    # the rows a --time-limit run takes where they train as fast (budget.batch_for)
    "lstm-2x256-b32t50": ("lstm", 2, 256, 32, T),
    # and the model a --time-limit run of a minute trains (budget.default_hidden)
    "lstm-2x192-b32t50": ("lstm", 2, 192, 32, T),
}
DEFAULT_CONFIGS = list(CONFIGS)
STREAMS = 32  # K for the many-streams sampling column
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def flops_per_char(cell, layers, hidden, *_):
    """Training FLOPs per character: 3 x forward, layer 0's one-hot product being a gather."""
    from charrnn.cells import CELLS
    G, H = CELLS[cell].G, hidden
    fwd = sum(2 * G * H * ((0 if k == 0 else H) + H) for k in range(layers)) + 2 * H * V
    return 3 * fwd


def timed_windows(step, chars_per_call, windows, min_seconds=1.0):
    """Median chars/s over `windows` windows of at least min_seconds each."""
    rates = []
    for _ in range(windows):
        n, t0 = 0, time.perf_counter()
        while True:
            step()
            n += 1
            dt = time.perf_counter() - t0
            if dt >= min_seconds:
                break
        rates.append(n * chars_per_call / dt)
    return statistics.median(rates), rates


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- workers (run in subprocesses) ----------------------------------------------------------------

def charrnn_training_step(cell, layers, hidden, threads=None, B=B, T=T):
    """A charrnn model and a function doing one full training step on a fixed random batch:
    forward, backward, clipping at norm 5, Adam (what `charrnn train` does per step)."""
    import numpy as np

    from charrnn.config import ModelConfig
    from charrnn.data import Vocab
    from charrnn.model import Model
    from charrnn.optim import Optimizer, clip_gradients
    from charrnn.strategy import choose

    rng = np.random.default_rng(0)
    m = Model(ModelConfig(V, cell, hidden, layers), vocab=Vocab([chr(32 + i) for i in range(V)]),
              threads=threads)
    m.strategy = choose(m.cfg, B, T, threads).strategy  # what `charrnn train` would use here
    opt = Optimizer("adam", m.params.size)
    x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    state = [m.zero_state(B)]

    def step():
        _, state[0] = m.loss_and_grad(x, y, state[0])
        clip_gradients(m.grads, 5.0)
        opt.step(m.params, m.grads, 2e-3)

    return m, step


def worker_charrnn(cell, layers, hidden, B, T, windows, threads):
    import numpy as np

    from charrnn.sample import sample_chunks, sample_many

    m, step = charrnn_training_step(cell, layers, hidden, threads, B, T)
    rng = np.random.default_rng(1)
    for _ in range(3):
        step()
    train, train_all = timed_windows(step, B * T, windows)
    n = 4000
    "".join(sample_chunks(m, 200, 1.0, seed=0))  # warm-up
    sample, _ = timed_windows(lambda: "".join(sample_chunks(m, n, 1.0, seed=0)), n, 3)
    k = max(200, n // STREAMS)
    sample_many(m, STREAMS, 20, 1.0, seed=0, threads=threads)  # warm-up
    many, _ = timed_windows(lambda: sample_many(m, STREAMS, k, 1.0, seed=0, threads=threads),
                            k * STREAMS, 3)
    a = rng.standard_normal((2048, 2048), dtype=np.float32)
    a @ a
    gemm = statistics.median(_time(lambda: a @ a) for _ in range(5))
    return {"train": train, "train_windows": train_all, "sample": sample, "many": many,
            "gemm_gflops": 2 * 2048 ** 3 / gemm / 1e9, "rss": peak_rss_mib(),
            "strategy": m.strategy}


def torch_training_step(cell, layers, hidden, threads, B=B, T=T):
    """The PyTorch model and a function doing one training step on a fixed random batch, as
    charrnn_training_step does: forward, backward, clipping at norm 5, Adam."""
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](V, hidden, layers)
    dec = torch.nn.Linear(hidden, V)
    params = list(rnn.parameters()) + list(dec.parameters())
    opt = torch.optim.Adam(params, lr=2e-3)
    x = torch.randint(0, V, (T, B))
    y = torch.randint(0, V, (T, B))
    eye = torch.eye(V)
    state = [None]

    def detach(s):
        if s is None:
            return None
        return tuple(t.detach() for t in s) if isinstance(s, tuple) else s.detach()

    def step():
        out, s = rnn(eye[x], detach(state[0]))
        loss = F.cross_entropy(dec(out).reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        state[0] = s

    return rnn, dec, eye, step


def worker_torch(cell, layers, hidden, B, T, windows, threads):
    import torch
    rnn, dec, eye, step = torch_training_step(cell, layers, hidden, threads, B, T)
    for _ in range(3):
        step()
    train, train_all = timed_windows(step, B * T, windows)

    @torch.no_grad()
    def sample_n(n):
        s, ch = None, 0
        for _ in range(n):
            out, s = rnn(eye[ch].view(1, 1, V), s)
            p = torch.softmax(dec(out[0, 0]) / 1.0, -1)
            ch = int(torch.multinomial(p, 1))

    sample_n(20)
    n = 300
    sample, _ = timed_windows(lambda: sample_n(n), n, 3)
    return {"train": train, "train_windows": train_all, "sample": sample, "rss": peak_rss_mib(),
            "version": torch.__version__}


def _time(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def run_worker(python, kind, name, windows, threads):
    cmd = [python, os.path.abspath(__file__), "--worker", kind, "--configs", name,
           "--windows", str(windows), "--threads", str(threads)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        print(f"[{kind} {name} failed]\n{r.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


# -- start-up and memory of the real CLI ----------------------------------------------------------

def startup_seconds(tmp, repeats=5):
    """Seconds from process start to the first sampled character, kernel cache warm."""
    run_dir = os.path.join(tmp, "run")
    subprocess.run([sys.executable, "-m", "charrnn", "train", os.path.join(ROOT, "data",
                    "tinyshakespeare.txt"), "--max-steps", "1", "--eval-every", "1",
                    "--val-fraction", "0.01", "--quiet", "--checkpoint-dir", run_dir], check=True,
                   cwd=tmp)
    cmd = [sys.executable, "-m", "charrnn", "sample", run_dir, "--length", "300", "--seed", "1"]
    subprocess.run(cmd, capture_output=True, check=True)  # warm the kernel cache
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        p.stdout.read(1)
        times.append(time.perf_counter() - t0)
        p.communicate()
    return statistics.median(times)


def train_peak_rss(tmp, steps=40):
    """Peak RSS (MiB) of `charrnn train` on tinyshakespeare, LSTM 2x128, measured from outside."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)")
    cmd = [sys.executable, "-c", code, sys.executable, "-m", "charrnn", "train",
           os.path.join(ROOT, "data", "tinyshakespeare.txt"), "--max-steps", str(steps),
           "--eval-every", str(steps), "--quiet", "--hidden", "128",
           "--checkpoint-dir", os.path.join(tmp, "mem")]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=tmp)
    return float(r.stdout.strip().splitlines()[-1])


def measure(name, a, torch_ok):
    """Alternate charrnn and PyTorch workers for a.rounds rounds; lists of their results."""
    c, t = [], []
    for _ in range(a.rounds):
        c.append(run_worker(sys.executable, "charrnn", name, a.windows, a.threads))
        if torch_ok:
            t.append(run_worker(a.torch_python, "torch", name, a.windows, a.threads))
    print(f"  measured {name}", file=sys.stderr)
    if any(r is None for r in c + t):
        return [], []
    return c, t


def machine() -> list[str]:
    """Lines describing the CPU, the BLAS libraries (as threadpoolctl sees them in a charrnn
    process) and the OPENBLAS variables in effect."""
    from charrnn.strategy import cpu_name
    cpu = cpu_name()
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        flags = next(line for line in info.splitlines() if line.startswith("flags")).split()
        cpu += ", " + ("AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2")
    except (OSError, StopIteration):
        pass
    code = ("import json, numpy, scipy.linalg.cython_blas, threadpoolctl; print(json.dumps("
            "[(l['filepath'].split('/')[-1], l.get('architecture'), l['num_threads']) "
            "for l in threadpoolctl.threadpool_info() if l['user_api'] == 'blas']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    blas = "; ".join(f"{lib} ({arch} kernel)" for lib, arch, _ in json.loads(r.stdout))
    env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE") if k in os.environ}
    return [f"CPU: {cpu}; {os.cpu_count()} cores, {os_cores()} usable",
            f"BLAS: {blas}", f"OPENBLAS variables: {env or 'unset'}"]


def os_cores() -> int:
    from charrnn.threads import usable_cores
    return usable_cores()


def has_torch(python):
    r = subprocess.run([python, "-c", "import torch"], capture_output=True, check=False)
    return r.returncode == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--windows", type=int, default=3, help="timed training windows per worker")
    ap.add_argument("--rounds", type=int, default=3,
                    help="charrnn/PyTorch alternations per configuration")
    ap.add_argument("--torch-python", default=sys.executable,
                    help="a Python with torch installed (default: this one)")
    ap.add_argument("--threads", type=int, default=None,
                    help="worker threads for charrnn and PyTorch (default: usable cores)")
    ap.add_argument("--worker", choices=["charrnn", "torch"], help=argparse.SUPPRESS)
    ap.add_argument("--no-cli", action="store_true", help="skip the start-up and memory checks")
    a = ap.parse_args()
    names = a.configs.split(",")
    a.threads = a.threads or os_cores()
    if a.worker:
        fn = worker_charrnn if a.worker == "charrnn" else worker_torch
        print(json.dumps(fn(*CONFIGS[names[0]], a.windows, a.threads)))
        return
    torch_ok = has_torch(a.torch_python)
    print(f"# charrnn throughput, {platform.machine()}, {time.strftime('%Y-%m-%d')}; "
          f"batch {B}, seq {T} (unless the name says b, t), vocab {V}, Adam; "
          f"--threads {a.threads}")
    for line in machine():
        print(line + "  ")
    print("command: python bench/throughput.py " + " ".join(sys.argv[1:]))  # as given
    if not torch_ok:
        print("(PyTorch not found: ratios omitted; pass --torch-python)")
    rows = [(name, *measure(name, a, torch_ok)) for name in names]
    tv = next((t[0]["version"] for _, _, t in rows if t), None)
    if tv:
        print(f"\nPyTorch {tv}, {a.threads} threads. Each configuration: {a.rounds} rounds, "
              "charrnn and "
              "PyTorch "
              "alternating; chars/s are medians over rounds (each round itself a median of timed "
              "windows); x is the median of the per-round ratios, [min-max] their spread.\n")
    print(f"| model | strategy | train chars/s | PyTorch | x | sample chars/s | PyTorch | x | "
          f"{STREAMS} streams chars/s | vs 1 stream | % GEMM peak | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, c, t in rows:
        if not c:
            continue
        def med(runs, key):
            return statistics.median(r[key] for r in runs)

        frac = med(c, "train") * flops_per_char(*CONFIGS[name]) / 1e9 / med(c, "gemm_gflops")
        cols = []
        for key in ("train", "sample"):
            if t:
                ratios = [ci[key] / ti[key] for ci, ti in zip(c, t)]
                cols.append(f"{med(c, key):,.0f} | {med(t, key):,.0f} | "
                            f"{statistics.median(ratios):.2f} "
                            f"[{min(ratios):.2f}-{max(ratios):.2f}]")
            else:
                cols.append(f"{med(c, key):,.0f} | - | -")
        many = f"{med(c, 'many'):,.0f} | {med(c, 'many') / med(c, 'sample'):.1f}x"
        print(f"| {name} | {c[0]['strategy']} | {cols[0]} | {cols[1]} | {many} | {100 * frac:.0f}% of "
              f"{med(c, 'gemm_gflops'):.0f} GFLOP/s | {max(r['rss'] for r in c):.0f} |")
    if not a.no_cli:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"\nstart-up, `charrnn sample` to first character (warm cache, median of 5): "
                  f"{startup_seconds(tmp):.2f} s")
            print("peak RSS, `charrnn train` tinyshakespeare LSTM 2x128: "
                  f"{train_peak_rss(tmp):.0f} MiB")


if __name__ == "__main__":
    main()
