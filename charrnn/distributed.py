"""Data-parallel training over MPI ranks: `mpiexec -n R charrnn train CORPUS --distributed`.

The job of this module is to make R processes compute exactly what one process computes with
the same global batch B. Every rank holds the whole model and takes B/R of the batch's rows
(rank r: rows [r*B/R, (r+1)*B/R) of every window, read from the memory-mapped corpus; in records
mode its share of each batch of whole records, RowRecordBatches). Each step its loss and gradient
are its rows' summed loss over the whole batch's count of predictions, so one Allreduce of the
flat gradient buffer adds them up to the global mean: every rank applies the identical clip and
optimizer step and the parameters stay bit-identical; a checksum of the parameters is compared
every CHECK_EVERY steps and before every checkpoint. Validation splits its rows likewise and adds
up losses and counts.

No shared disk is assumed: rank 0 reads the checkpoint to resume from and sends it (on_root), and
a host without the corpus gets rank 0's encoded ids (corpus). Rank 0 alone writes the run
directory (checkpoints, metrics.csv) and shows progress; the carried hidden state is gathered to
it as the full (L, B, H), so a checkpoint is the single-process one and resumes on any R that
divides B. Dropout masks are drawn for the whole batch from the shared
random stream and each rank keeps its rows, so the stream, too, is independent of R.

Errors. Until the run starts (setup), a rank that fails tells the others at the next exchange
(an allgather every setup collective goes through), and every rank exits 2 with one line from
rank 0. During the run every CharrnnError is raised on all ranks at once by construction (it
comes from agreed values, or from rank 0's file writes, whose outcome is broadcast); anything else
is one rank's failure: it prints `rank r: error: ...` and leaves with os._exit, upon which
mpiexec ends the others. A rank that dies is noticed by mpiexec the same way; a rank that hangs
is caught by a watchdog thread that ends this rank after CHARRNN_MPI_TIMEOUT seconds (default
600) spent waiting for the others in one collective.
"""
from __future__ import annotations

import functools
import importlib.util
import math
import os
import socket
import sys
import threading
import time
import traceback
import zlib
from dataclasses import dataclass

import numpy as np

from .data import Batches
from .errors import CharrnnError
from .evaluate import EvalResult, eval_rows, evaluate_ids, evaluate_records, perplexity
from .records import batch as record_batch
from .threads import usable_cores

CHECK_EVERY = 100  # steps between parameter checksums (a crc32 of 13 MB takes ~4 ms)
SEND_CHUNK = 1 << 28  # corpus ids per Bcast to a host without the corpus
TIMEOUT_ENV, DEFAULT_TIMEOUT = "CHARRNN_MPI_TIMEOUT", 600.0
# How the gradient is summed: "overlap" (each layer's slice while the backward goes on, Overlap),
# "blocking" (one Allreduce of the whole buffer after it; the same bits for 2 ranks), or "auto":
# overlap when the ranks span hosts, blocking on one host, where the Allreduce goes through
# shared memory in ~1% of a step and overlap's polling only takes cycles from the compute
# (bench/results/distributed.md: 2 ranks, LSTM 2x256, one host 0.99x, 1 Gb/s link 1.06x).
ALLREDUCE_ENV, ALLREDUCE_MODES = "CHARRNN_ALLREDUCE", ("auto", "overlap", "blocking")
INSTALL = "pip install -e '.[mpi]'"  # mpi4py, and MPICH's wheel, which brings mpiexec
LAUNCH = "mpiexec -n R charrnn train CORPUS --distributed ..."

_group = None  # this process's Group once connect() has run


class RankError(CharrnnError):
    """An error that every rank raised at the same point: only the rank with report=True (rank 0)
    prints it; the others exit 2 silently."""

    def __init__(self, message: str, report: bool):
        super().__init__(message)
        self.report = report


# -- launch ----------------------------------------------------------------------------------------

def launched_rank_and_size():
    """(rank, size) that mpiexec gave this process in its environment, or (0, None) when it was
    not started by a launcher. Read before MPI starts, so errors can be reported by rank 0 only."""
    for rank, size in (("PMI_RANK", "PMI_SIZE"), ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
                       ("PMIX_RANK", "PMIX_SIZE")):
        if size in os.environ:
            return int(os.environ.get(rank, "0")), int(os.environ[size])
    return 0, None


def when_distributed(train):
    """Decorate train(..., distributed=False): with distributed=True it runs as one rank of an MPI
    job (connect(), then train, with the error handling described in the module docstring);
    without it, a launch by mpiexec of several processes is refused (each would train alone and
    all would write the same run directory)."""
    @functools.wraps(train)
    def wrapper(*args, distributed: bool = False, **kwargs):
        if not distributed:
            rank, size = launched_rank_and_size()
            if size is not None and size > 1:
                raise RankError(f"started by mpiexec as {size} processes without --distributed: "
                                "each would train its own model into the same run directory; "
                                f"add --distributed ({LAUNCH})", report=rank == 0)
            return train(*args, **kwargs)
        group = connect()
        group.phase = "setup"  # each train() call starts with its own setup
        try:
            return train(*args, distributed=True, **kwargs)
        except BaseException as e:  # noqa: BLE001  (every failure must end every rank)
            raise group.failed(e) from None
    return wrapper


def connect() -> Group:
    """Join the MPI job this process was launched in (once per process)."""
    global _group
    if _group is not None:
        return _group
    rank, size = launched_rank_and_size()
    if importlib.util.find_spec("mpi4py") is None:
        raise RankError(f"--distributed needs mpi4py and an MPI: {INSTALL} installs both "
                        "(MPICH, with mpiexec)", report=rank == 0)
    if size is None:  # checked before importing mpi4py.MPI, which would start MPI here
        raise CharrnnError(f"--distributed runs as the ranks of an MPI job: {LAUNCH} "
                           f"(mpiexec comes with {INSTALL})")
    try:
        _group = Group()
    except CharrnnError as e:  # a bad setting in the environment, the same on every rank
        raise RankError(str(e), report=rank == 0) from None
    return _group


def current() -> Group:
    """The Group of this process (after connect())."""
    return _group


# -- the group -------------------------------------------------------------------------------------

class Group:
    """This rank's view of the job: who it is, its rows, and every collective the trainer uses
    (the methods of group.Solo, the one-process group, over MPI)."""

    distributed = True

    def __init__(self):
        from mpi4py import MPI
        self.MPI, self.comm = MPI, MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.root = self.rank == 0
        # Ranks on this host share its cores: the default thread count divides them.
        host = self.comm.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_rank, self.local_size = host.Get_rank(), host.Get_size()
        self.phase = "setup"  # -> "running" (ready()) or "failed" (an agreed error)
        self.first = self.rows = 0
        try:
            self.timeout = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))
        except ValueError:
            raise CharrnnError(f"{TIMEOUT_ENV} must be a number of seconds, got "
                               f"{os.environ[TIMEOUT_ENV]!r}") from None
        self.overlap = self._agreed_overlap()  # Group.reducer
        self._waiting_since, self._watchdog_started = None, False
        self.hosts = [socket.gethostname()] * self.size  # each rank's, from ready() on

    def _agreed_overlap(self) -> bool:
        """CHARRNN_ALLREDUCE as every rank read it, checked and agreed (ranks that summed the
        gradient differently would wait on each other's collectives): overlap where every rank
        can (Overlap calls MPI from two threads, one at a time) and it is asked for, or auto and
        the ranks span hosts."""
        MPI = self.MPI
        modes = self.comm.allgather(os.environ.get(ALLREDUCE_ENV, ALLREDUCE_MODES[0]))
        bad = [m for m in modes if m not in ALLREDUCE_MODES]
        if bad:
            raise CharrnnError(f"{ALLREDUCE_ENV} must be one of {', '.join(ALLREDUCE_MODES)}, "
                               f"got {bad[0]!r}")
        if len(set(modes)) > 1:
            raise CharrnnError(f"{ALLREDUCE_ENV} differs between the ranks ({_by_rank(modes)}); "
                               "give every rank the same (mpiexec -genv "
                               f"{ALLREDUCE_ENV} VALUE)")
        spans_hosts = self.comm.allreduce(int(self.local_size < self.size), op=MPI.MAX) > 0
        able = MPI.Query_thread() >= MPI.THREAD_SERIALIZED
        wanted = modes[0] == "overlap" or modes[0] == "auto" and spans_hosts
        return bool(self.comm.allreduce(int(wanted and able), op=MPI.MIN))

    # -- setup: every collective is an exchange, so a rank's failure reaches all ----------------

    def exchange(self, value=None, error: str | None = None) -> list:
        """Allgather (error, value) from every rank; the values, or an agreed RankError on every
        rank when any rank sent an error."""
        got = self.comm.allgather((error, value))
        errors = [(r, e) for r, (e, _) in enumerate(got) if e is not None]
        if errors:
            self.phase = "failed"
            first = errors[0][1] if errors[0][0] == 0 else f"rank {errors[0][0]}: {errors[0][1]}"
            others = [f"rank {r}: {e}" for r, e in errors[1:] if e != errors[0][1]]
            raise RankError(first + (f" (also {'; '.join(others)})" if others else ""),
                            report=self.root)
        return [v for _, v in got]

    def in_turns(self, load, *args):
        """load(*args) on rank 0, then on the first rank of every other host, then on the rest:
        the first caller on a host (or a shared filesystem) writes the corpus cache, the others
        find it, and no two processes write it at once."""
        turn = 0 if self.root else (1 if self.local_rank == 0 else 2)
        result = None
        for t in range(3):
            error = None
            if t == turn:
                try:
                    result = load(*args)
                except CharrnnError as e:
                    error = str(e)
            self.exchange(error=error)
        return result

    def on_root(self, fn, *args):
        """fn(*args) on rank 0 alone (reading the checkpoint to resume), its result sent to
        every rank: the other hosts need no copy of the file."""
        result, error = None, None
        if self.root:
            try:
                result = fn(*args)
            except Exception as e:  # noqa: BLE001  (every rank must hear of it, or all wait)
                error = str(e) if isinstance(e, CharrnnError) else f"{type(e).__name__}: {e}"
        self.exchange(error=error)
        with self._waiting():
            return self.comm.bcast(result, root=0)

    def corpus(self, items: list[str], encoding: str):
        """The encoded corpus on every rank. A host that has the files (at the same paths)
        reads its own copy (one process at a time, for the cache; ready() then checks that every
        copy hashes alike); a host that lacks them gets rank 0's ids over MPI, held in memory."""
        from .corpus import Corpus, load_corpus
        from .sources import gather
        has = all(os.path.exists(item) for item in items)
        haves = self.exchange(has)
        lack = not has and not self.root
        data = self.in_turns(lambda: load_corpus(gather(items, encoding), encoding)) \
            if not lack else self.in_turns(lambda: None)
        if all(haves[1:]):  # every host has its own copy
            return data
        head = self.exchange((data.vocab, data.path, data.hash, data.ids.dtype.str,
                              len(data.ids)) if self.root else None)[0]
        vocab, path, digest, dtype, n = head
        ids, error = None, None
        try:  # every rank hears whether each receiver found the memory
            if lack:
                ids = np.empty(n, dtype)
            elif self.root:
                ids = np.ascontiguousarray(data.ids)  # the memory-mapped cache, read once
        except MemoryError:
            error = (f"{n:,} characters of corpus from rank 0 do not fit in this host's memory; "
                     "put a copy of the corpus on it at the same path")
        self.exchange(error=error)
        senders = self.comm.Split(0 if (self.root or lack) else 1, self.rank)
        try:
            if self.root or lack:
                with self._waiting():
                    for a in range(0, n, SEND_CHUNK):  # MPI counts are ints: send in pieces
                        senders.Bcast(ids[a: a + SEND_CHUNK], root=0)
        finally:
            senders.Free()
        return data if not lack else Corpus(ids, vocab, path, digest)

    def batches(self, ids, batch_size: int, seq_len: int) -> RowBatches:
        """This rank's rows of the global batch; B must divide evenly."""
        if batch_size % self.size:
            raise CharrnnError(f"--batch-size {batch_size} does not divide evenly among "
                               f"{self.size} ranks; use a multiple of {self.size}")
        self.rows = batch_size // self.size
        self.first = self.rank * self.rows
        return RowBatches(ids, batch_size, seq_len, self.first, self.rows)

    def default_threads(self) -> int:
        """Worker threads per rank when --threads is not given: this host's cores, shared."""
        return max(1, usable_cores() // self.local_size)

    def ready(self, params, corpus_id: dict):
        """The end of setup: every rank has the same corpus and the same parameters."""
        got = self.exchange((corpus_id["hash"], _checksum(params), socket.gethostname()))
        self.hosts = [h for _, _, h in got]
        if len({h for h, _, _ in got}) > 1:
            self.exchange(error="the corpus differs between ranks (a host that has its own "
                                "copy at the corpus's path must hold the same file; a host "
                                "without one gets rank 0's): "
                                + _by_rank([h[:12] for h, _, _ in got]))
        if len({c for _, c, _ in got}) > 1:
            self.exchange(error="the ranks start from different parameters: "
                          + _by_rank([c for _, c, _ in got]))
        self.phase = "running"
        if not self._watchdog_started:
            self._watchdog_started = True
            threading.Thread(target=self._watchdog, name="charrnn-mpi-watchdog",
                             daemon=True).start()

    # -- the run ---------------------------------------------------------------------------------

    def my_rows(self, state):
        """This rank's rows of a full (h, c) pair, each (L, B, H) -> (L, B/R, H)."""
        return tuple(np.ascontiguousarray(s[:, self.first: self.first + self.rows])
                     for s in state)

    def record_batches(self, batches) -> RowRecordBatches:
        """This rank's share of every batch of whole records (see RowRecordBatches)."""
        return RowRecordBatches(batches, self.rank, self.size)

    def rows_of_rng(self, rng, batches):
        """A stand-in for rng in the model's dropout: draws the whole batch's masks and keeps
        this rank's rows (batches.span()), so the random stream advances as in one process."""
        return _RowsOfRng(rng, batches)

    def reducer(self, grads: np.ndarray):
        """What Model.backward hands each finished slice of grads to (Overlap): the
        Allreduce of a layer's gradients runs while the layers below are computed. None when
        self.overlap is off: add_gradients then reduces the whole buffer after the backward."""
        return Overlap(self, grads) if self.overlap else None

    def add_gradients(self, grads: np.ndarray, loss: float, reducer=None) -> float:
        """Sum every rank's share of the gradient in place (its rows' summed loss over the
        whole batch's count: Model.loss_and_grad with predictions=): the mean over the global
        batch; with a reducer, by waiting for its slices' Allreduces. Returns the global mean
        loss (reduced alongside)."""
        MPI = self.MPI
        mean = np.array([loss], np.float64)
        with self._waiting():
            pending = self.comm.Iallreduce(MPI.IN_PLACE, mean, op=MPI.SUM)
            if reducer is None:
                self.comm.Allreduce(MPI.IN_PLACE, grads, op=MPI.SUM)
            else:
                reducer.wait()
            pending.Wait()
        return float(mean[0])

    def after_step(self, params, step: int):
        """Every CHECK_EVERY steps: stop with a clear error if the ranks' parameters differ."""
        if step % CHECK_EVERY == 0:
            self.check_same(params, f"at step {step}")

    def check_same(self, params, when: str):
        """Compare a checksum of the parameters across ranks (collective)."""
        with self._waiting():
            sums = self.comm.allgather(_checksum(params))
        if len(set(sums)) > 1:
            raise CharrnnError(f"the ranks' parameters have drifted apart {when} (checksums "
                               f"{_by_rank(sums)}); stopping. The last checkpoint is whole; "
                               "resume from it")

    def any(self, *flags: bool) -> tuple:
        """Each flag, true on every rank when it is true on any (e.g. Ctrl-C seen, time up)."""
        with self._waiting():
            got = self.comm.allreduce(sum(int(f) << i for i, f in enumerate(flags)),
                                      op=self.MPI.BOR)
        return tuple(bool(got >> i & 1) for i in range(len(flags)))

    def evaluate(self, model, ids, batch_size: int, seq_len: int):
        """evaluate_ids over the global batch's rows, split across ranks, reduced."""
        rows = eval_rows(len(ids), batch_size)
        r0, r1 = rows * self.rank // self.size, rows * (self.rank + 1) // self.size
        part = np.zeros(2)  # (sum of losses, characters)
        if r1 > r0:
            res = evaluate_ids(model, ids, batch_size, seq_len, rows=(r0, r1))
            part[:] = res.nats_per_char * res.chars, res.chars
        with self._waiting():
            self.comm.Allreduce(self.MPI.IN_PLACE, part, op=self.MPI.SUM)
        return self._reduced(part)

    def evaluate_records(self, model, recs, batch_size: int):
        """evaluate_records with its batches dealt out to the ranks in turn, reduced."""
        res = evaluate_records(model, recs, batch_size, part=(self.rank, self.size))
        part = np.array([res.nats_per_char * res.chars, res.chars], np.float64)
        with self._waiting():
            self.comm.Allreduce(self.MPI.IN_PLACE, part, op=self.MPI.SUM)
        return self._reduced(part)

    @staticmethod
    def _reduced(part) -> EvalResult:
        nats = part[0] / part[1]
        return EvalResult(nats, nats / math.log(2), perplexity(nats), int(part[1]))

    def save(self, write, path, meta: dict, arrays: dict):
        """write(path, meta, arrays) on rank 0 with the full carried state gathered to it; every
        rank returns, or raises the same error, when the file is whole."""
        self.check_same(arrays["params"], "before a checkpoint")
        full = dict(arrays, state_h=self._gather(arrays["state_h"]),
                    state_c=self._gather(arrays["state_c"]))
        error = None
        if self.root:
            try:
                write(path, meta, full)
            except CharrnnError as e:
                error = str(e)
        with self._waiting():
            error = self.comm.bcast(error, root=0)
        if error is not None:
            raise CharrnnError(error)

    def open_on_root(self, path, *args, **kwargs):
        """open() on rank 0; elsewhere a file that forgets what is written to it."""
        return open(path, *args, **kwargs) if self.root else _NullLog()

    def _gather(self, local: np.ndarray) -> np.ndarray | None:
        """(L, rows, H) from every rank -> (L, B, H) on rank 0 (None elsewhere); a rank's rows
        may differ (a records batch's last group)."""
        with self._waiting():
            parts = self.comm.gather(np.ascontiguousarray(local), root=0)
        return np.concatenate(parts, axis=1) if self.root else None

    # -- faults ----------------------------------------------------------------------------------

    def failed(self, e: BaseException) -> BaseException:
        """What a rank's failure becomes (see the module docstring); may not return."""
        if isinstance(e, RankError) or self.phase == "failed":
            return e
        if self.phase == "setup" and isinstance(e, Exception):
            try:
                self.exchange(error=str(e) if isinstance(e, CharrnnError)
                              else f"{type(e).__name__}: {e}")
            except RankError as agreed:  # a bug (not a CharrnnError) keeps its traceback
                return agreed if isinstance(e, CharrnnError) else e
        if self.phase == "running" and isinstance(e, CharrnnError):
            return e if self.root else RankError(str(e), report=False)
        self._leave(e)

    def _leave(self, e: BaseException):
        """This rank alone failed: say so and exit at once; mpiexec then ends the other ranks
        (a normal exit would wait for them in MPI_Finalize)."""
        if isinstance(e, KeyboardInterrupt):
            code = 130
        else:
            code = 1
            prefix = "" if self.root else f"rank {self.rank}: "
            if isinstance(e, CharrnnError):
                print(f"{prefix}error: {e}", file=sys.stderr)
            else:
                print(f"{prefix}error: {type(e).__name__}: {e}", file=sys.stderr)
                traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    class _Waiting:
        def __init__(self, group):
            self.group = group

        def __enter__(self):
            self.group._waiting_since = time.monotonic()

        def __exit__(self, *exc):
            self.group._waiting_since = None

    def _waiting(self):
        """Marks a collective wait for the watchdog."""
        return Group._Waiting(self)

    def _watchdog(self):
        """Ends this rank when one collective has waited `timeout` seconds: a peer is gone or
        stuck, and MPI alone would wait forever (mpiexec then ends the others)."""
        while True:
            time.sleep(1.0)
            since = self._waiting_since
            if since is not None and time.monotonic() - since > self.timeout:
                others = ", ".join(f"rank {r} on {h}" for r, h in enumerate(self.hosts)
                                   if r != self.rank)
                print(f"rank {self.rank} on {self.hosts[self.rank]}: error: no answer from the "
                      f"other ranks ({others}) for {self.timeout:.0f} s: a rank or host is gone, "
                      "stuck or cut off; ending the job", file=sys.stderr, flush=True)
                # MPI_Abort makes mpiexec end every rank and return, even with a host cut off;
                # should it hang too, leave anyway. The pause first lets the launcher pass the
                # line on (mpiexec, told to abort, can exit before a rank's last output arrives).
                threading.Timer(4.0, os._exit, (3,)).start()
                time.sleep(0.5)
                self.comm.Abort(3)


class Overlap:
    """The gradient's Allreduce in slices, each started as the backward makes it final (the
    reducer of Model.backward): non-blocking MPI_Iallreduce, moved on by progress() while the
    compiled backward runs (from a thread of its own, threads.polling: MPI_THREAD_SERIALIZED),
    waited for in Group.add_gradients. Every rank starts the same slices in the same order.
    Summing a slice is what summing the whole buffer does to its elements, so the bits are
    those of one Allreduce for 2 ranks."""

    # seconds between progress() calls: at 0.5 ms the polling cost 4-16% of a step where there
    # was little to hide, at 2 ms 1-4%, hiding as much (bench/distributed.py, LSTM 2x256)
    every = 2e-3

    def __init__(self, group: Group, grads: np.ndarray):
        self.MPI, self.comm, self.grads, self.requests = group.MPI, group.comm, grads, []
        self.lock = threading.Lock()  # start and progress come from two threads: one at a time

    def start(self, lo: int, hi: int):
        with self.lock:
            self.requests.append(self.comm.Iallreduce(self.MPI.IN_PLACE, self.grads[lo:hi],
                                                      op=self.MPI.SUM))

    def progress(self):
        with self.lock:
            self.MPI.Request.Testall(self.requests)

    def wait(self):
        self.MPI.Request.Waitall(self.requests)
        self.requests = []


# -- small parts -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RowBatches(Batches):
    """Batches restricted to rows [first, first + rows) of the global batch_size: the same
    windows as Batches(data, batch_size, seq_len), of which this rank reads only its columns."""

    first: int = 0
    rows: int = 0

    def span(self) -> tuple[int, int, int]:
        """This rank's rows [first, stop) of the batch's `total`."""
        return self.first, self.first + self.rows, self.batch_size

    def window(self, w: int):
        """Inputs and targets of window w for this rank's rows, each int32 (T, rows)."""
        T, R = self.seq_len, self.row_len
        starts = (self.first + np.arange(self.rows)) * R + w * T  # (rows,)
        idx = starts[None, :] + np.arange(T)[:, None]  # (T, rows)
        x = np.ascontiguousarray(self.data[idx], dtype=np.int32)
        y = np.ascontiguousarray(self.data[idx + 1], dtype=np.int32)
        return x, y


class RowRecordBatches:
    """This rank's share of each batch of whole records: of group w's n records (in
    records.RecordBatches' order), those in [n r / R, n (r + 1) / R), padded to the whole
    group's length so that dropout's draws line up with one process's. A group smaller than R
    leaves some ranks without rows for that step (they add a zero gradient)."""

    def __init__(self, batches, rank: int, size: int):
        self.all, self.rank, self.size = batches, rank, size
        self.windows, self.seq_len, self.batch_size = batches.windows, batches.seq_len, \
            batches.batch_size
        self._span = (0, 0, 0)

    def window(self, w: int, epoch: int = 0):
        members = self.all.members(w, epoch)
        n = len(members)
        first, stop = n * self.rank // self.size, n * (self.rank + 1) // self.size
        self._span = (first, stop, n)
        steps = int(self.all.recs.lengths[members].max()) + 1
        return record_batch(self.all.recs, members[first:stop], self.all.end, steps)

    def predictions(self, w: int, epoch: int = 0) -> int:
        return self.all.predictions(w, epoch)

    def span(self) -> tuple[int, int, int]:
        """This rank's rows [first, stop) of the last window's `total`."""
        return self._span


class _RowsOfRng:
    """rng.random for dropout masks (L, T, rows, H): draws the whole batch's (L, T, total, H)
    and keeps this rank's rows."""

    def __init__(self, rng, batches):
        self.rng, self.batches = rng, batches

    def random(self, shape, dtype=np.float64):
        L, T, _, H = shape
        first, stop, total = self.batches.span()
        full = self.rng.random((L, T, total, H), dtype=dtype)
        return np.ascontiguousarray(full[:, :, first:stop])


class _NullLog:
    """What ranks other than 0 write the metrics log to."""

    def write(self, text):
        return len(text)

    def tell(self):
        return 0

    def seek(self, *args):
        return 0

    def truncate(self, *args):
        return 0

    def flush(self):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _checksum(params: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(params).view(np.uint8))


def _by_rank(values) -> str:
    return ", ".join(f"rank {r}: {v}" for r, v in enumerate(values))
