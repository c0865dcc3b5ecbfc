"""Running the shards of a batch side by side: worker threads, the split, one BLAS thread each.

The compiled stack (stack.py) releases the GIL, so plain threads run shards in parallel. Each
shard calls BLAS for its own products; BLAS's own thread pools would then fight the workers for
the cores, so while shards run every BLAS library in the process is held at one thread
(threadpoolctl, ~10 us per call) and restored afterwards.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

_pools: dict[tuple[int, str], ThreadPoolExecutor] = {}
_controller = None


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def shard_bounds(rows: int, threads: int | None) -> list[tuple[int, int]]:
    """[b0, b1) row ranges of nearly equal size, one per worker (never more than rows)."""
    n = max(1, min(threads or usable_cores(), rows))
    edges = [rows * i // n for i in range(n + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _blas():
    """A threadpoolctl controller that sees numpy's and SciPy's BLAS (numba's np.dot calls
    SciPy's, so it is imported first)."""
    global _controller
    if _controller is None:
        import scipy.linalg.cython_blas  # noqa: F401  (loads SciPy's BLAS library)
        from threadpoolctl import ThreadpoolController
        _controller = ThreadpoolController()
    return _controller


def run(tasks, blas_threads: int = 1):
    """Call every task (a function of no arguments) once, side by side, and return their results
    in order. The first runs on the calling thread; BLAS is held at blas_threads meanwhile (one
    when tasks share the cores; a single task may give BLAS all of them)."""
    with _blas().limit(limits=blas_threads, user_api="blas"):
        if len(tasks) == 1:
            return [tasks[0]()]
        futures = [_pool(len(tasks) - 1).submit(t) for t in tasks[1:]]
        try:
            first = tasks[0]()
        finally:
            rest = [f.result() for f in futures]
        return [first] + rest


@contextmanager
def polling(poll, every: float):
    """Within the block, poll() is called every `every` seconds on a thread of its own (MPI makes
    progress on a non-blocking collective only inside MPI calls; the block's own threads keep
    their rows, and their caches, as in run())."""
    stop = threading.Event()

    def loop():
        while not stop.wait(every):
            poll()

    poller = _pool(1, "charrnn-poll").submit(loop)
    try:
        yield
    finally:
        stop.set()
        error = poller.exception()  # waits for the poller; the block's own error goes first
    if error is not None:
        raise error


def _pool(n: int, name: str = "charrnn") -> ThreadPoolExecutor:
    """The pool of n threads of that name (made once, kept)."""
    pool = _pools.get((n, name))
    if pool is None:
        pool = _pools[n, name] = ThreadPoolExecutor(n, name)
    return pool
