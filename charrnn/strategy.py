"""The step strategy: how a training step uses the threads, chosen by measurement on this machine.

Ways to spread one step over T threads:
  shards  each thread takes B/T rows of the batch and runs the whole stack on them with its own
          products (BLAS at one thread each); the shards' gradients are then added (model.py).
  panels  shards, with each time step's thin products h_prev @ W_h and dgh @ W_h^T cut into
          narrow column panels of a copy of W_h, small enough for BLAS's small-matrix kernels,
          which do not pack W_h again on every call (stack.panel_shape; OpenBLAS's SkylakeX
          kernels ran them 1.5-2x faster on a Zen 4 core).
  whole   one block of all B rows; every product goes to BLAS with T threads, and the pointwise
          gate work runs on one.
  wave    a 2-layer model on 2 threads: each thread runs one layer on all B rows, layer 1 a
          chunk of steps behind layer 0 (wave.py): products twice as fat as a shard's.
Which is faster depends on the CPU (how its BLAS does thin (B/T x H) products against fat
(B x H) ones), the model and the batch: measured on this project's 2-core AMD EPYC the two came within 10-40% of each
other either way, depending on the model; on an Intel Xeon the thin per-core products were the slower part. So `--strategy auto`
(the default) measures each of candidates() (wave only for 2 layers), alternating, ROUNDS times
PROBE_SECONDS each, the first time a model shape meets this machine, takes another than shards
only when it wins by MARGIN, and caches the choice in
CACHE_NAME beside numba's kernel cache (or CACHE_ENV's file); later runs read it. In an MPI job
rank 0 measures and the others follow.
The chosen strategy is saved with the run's options, so a resumed run computes the same bits.
All give the same results up to float32 summation order; each is deterministic for its
thread count.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import config
from .fileio import write_bytes
from .threads import usable_cores

STRATEGIES = tuple(s for s in config.STRATEGIES if s != "auto")  # shards, panels, whole, wave
PROBE_SECONDS = 0.25  # per strategy and round, after a warm-up step
ROUNDS = 2  # the two alternate, and each keeps its best round
MARGIN = 1.05  # another must beat shards by this much to be chosen (shards: the long-tested path)
CACHE_NAME = "strategies.json"
CACHE_ENV = "CHARRNN_STRATEGY_CACHE"  # a file to use instead (the tests keep their own)


@dataclass(frozen=True)
class Choice:
    """The strategy for one model and batch shape on this machine, and why."""

    strategy: str
    chars_per_second: dict  # strategy -> measured training characters per second
    measured: bool  # measured now (False: read from the cache, or nothing to choose)
    reason: str


def cpu_name() -> str:
    """This CPU's model name with its family and model numbers (Linux), part of the cache key:
    the choice does not travel. The numbers tell apart CPUs that a virtual machine names alike
    (seen: "AMD EPYC" for a Zen 4, family 25, and a Zen 5, family 26)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if not line.strip():
                    break  # the first processor's fields are enough
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    if "model name" not in fields:
        import platform
        return platform.processor() or platform.machine()
    numbers = ", ".join(f"{label} {fields[key]}" for label, key in
                        (("family", "cpu family"), ("model", "model")) if key in fields)
    return f"{fields['model name']} ({numbers})" if numbers else fields["model name"]


def cache_file() -> Path:
    """Beside numba's cache of charrnn's kernels (NUMBA_CACHE_DIR, or the package's
    __pycache__), else the user's cache folder when that is not writable."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("NUMBA_CACHE_DIR")
    folder = Path(base) if base else Path(__file__).resolve().parent / "__pycache__"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass
    if not os.access(folder, os.W_OK):
        folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "charrnn"
    return folder / CACHE_NAME


def key(cfg, batch: int, seq_len: int, threads: int) -> str:
    return (f"{cpu_name()}|{cfg.cell} {cfg.layers}x{cfg.hidden} V{cfg.vocab_size} dropout "
            f"{cfg.dropout}|batch {batch} x {seq_len}|{threads} threads")


def measure(cfg, batch: int, seq_len: int, threads: int | None, strategy: str) -> float:
    """Training characters per second (forward and backward) of a throwaway model of this shape
    with this strategy, on random ids, for about PROBE_SECONDS after a warm-up step (budget.py's
    --auto probe is this too)."""
    from .model import Model
    model = Model(cfg, threads=threads)
    model.strategy = strategy
    rng = np.random.default_rng(0)
    x = rng.integers(0, cfg.vocab_size, (seq_len, batch)).astype(np.int32)
    y = rng.integers(0, cfg.vocab_size, (seq_len, batch)).astype(np.int32)
    state = model.zero_state(batch)
    model.loss_and_grad(x, y, state, rng=rng)  # warm-up (and compiles on a first run)
    n, t0 = 0, time.perf_counter()
    while n < 2 or time.perf_counter() - t0 < PROBE_SECONDS:
        model.loss_and_grad(x, y, state, rng=rng)
        n += 1
    return n * batch * seq_len / (time.perf_counter() - t0)


def wave_fits(cfg, threads: int | None) -> bool:
    """Whether wave can run this model: 2 layers and at least 2 threads (wave.py: one layer a
    thread; more threads stay idle)."""
    return cfg.layers == 2 and (threads or usable_cores()) >= 2


def candidates(cfg, threads: int | None) -> tuple[str, ...]:
    """The strategies auto measures for this model and thread count: on one thread shards and
    panels (whole is then shards' one shard, and wave needs two threads)."""
    if (threads or usable_cores()) == 1:
        return ("shards", "panels")
    return tuple(s for s in STRATEGIES if s != "wave" or wave_fits(cfg, threads))


def choose(cfg, batch: int, seq_len: int, threads: int | None = None, speed=None) -> Choice:
    """The fastest strategy for this model and batch here: from the cache, or measured (speed:
    a stand-in for measure, for tests) and cached. One row has nothing to share: shards. Another
    strategy is chosen over shards only when it is MARGIN faster."""
    threads = threads or usable_cores()
    if batch < 2:
        return Choice("shards", {}, False, "one row: nothing to share")
    path, k = cache_file(), key(cfg, batch, seq_len, threads)
    cache = _read(path)
    entry = cache.get(k)
    names = candidates(cfg, threads)
    if _valid(entry, names):
        speeds = entry["chars_per_second"]
        return Choice(entry["strategy"], speeds, False, _why(entry["strategy"], speeds)
                      + f" (measured earlier, cached in {path})")
    speed = speed or measure
    speeds = dict.fromkeys(names, 0.0)
    for _ in range(ROUNDS):  # alternating, so that a slow moment of the machine hits each
        for s in names:
            speeds[s] = max(speeds[s], speed(cfg, batch, seq_len, threads, s))
    fastest = max(names, key=lambda s: speeds[s])
    best = fastest if speeds[fastest] > MARGIN * speeds["shards"] else "shards"
    cache[k] = {"strategy": best, "chars_per_second": {s: round(v) for s, v in speeds.items()}}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(path, json.dumps(cache, indent=1, sort_keys=True).encode())
    except Exception:  # noqa: BLE001, S110  (an unwritable cache only costs a re-measure)
        pass
    return Choice(best, speeds, True, _why(best, speeds))


def _why(best: str, speeds: dict) -> str:
    if not speeds:
        return best
    others = " and ".join(f"{speeds[s]:,.0f} for {s}" for s in speeds if s != best)
    return f"{best}: {speeds[best]:,.0f} chars/s here against {others}"


def _valid(entry, names) -> bool:
    """A cache entry as choose() writes it, with a speed for each of names (anything else, an
    entry from before a strategy was added included, is measured again)."""
    return (isinstance(entry, dict) and entry.get("strategy") in names
            and isinstance(entry.get("chars_per_second"), dict)
            and all(isinstance(entry["chars_per_second"].get(s), (int, float)) for s in names))


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}
