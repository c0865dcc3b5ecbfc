"""The model: one-hot -> L recurrent layers (with dropout) -> linear -> softmax.

The parameters are one flat buffer with named views (layout in cells.py). Forward and backward
split the batch's rows into shards, one per worker thread, and run each shard's whole stack in
compiled code (stack.py) side by side (threads.py); the shards' gradients are then summed in a
fixed order, so a given thread count always gives bit-identical results.
"""
from __future__ import annotations

import os

import numpy as np

from . import stack, wave
from . import threads as workers
from .cells import CELLS, init_params, num_params, param_offsets, views
from .config import ModelConfig
from .config import SampleConfig as S
from .data import IGNORE
from .errors import CharrnnError
from .sample import sample as sample_text


class Model:
    """A character-level recurrent language model.

    Parameters
    ----------
    cfg : ModelConfig
    params : ndarray, optional
        Flat parameter buffer (copied); default: PyTorch's initialisation with seed `seed`.
    dtype : numpy dtype
        float32 for training; float64 for gradient checks.
    seed : int
    vocab : Vocab, optional
        Attached so that sampling and evaluation can work with text.
    threads : int, optional
        Worker threads for forward and backward (default: every core this process may use).
        Results for a given count are bit-identical run to run; different counts agree to
        float32 summation order.
    """

    def __init__(self, cfg: ModelConfig, params=None, dtype=np.float32, seed: int = 0, vocab=None,
                 threads: int | None = None):
        self.cfg = cfg
        self.vocab = vocab
        self.dtype = np.dtype(dtype)
        self.threads = threads
        self.strategy = "shards"  # or "panels", "whole" or "wave": see strategy.py
        n = num_params(cfg)
        _check_memory(cfg, n, self.dtype.itemsize)
        if params is None:
            params = init_params(cfg, np.random.default_rng(seed))
        self.params = np.ascontiguousarray(params, dtype=self.dtype).copy()  # (P,)
        if self.params.shape != (n,):
            raise ValueError(f"expected {n} parameters for {cfg}, got {self.params.shape}")
        self.grads = np.zeros_like(self.params)  # (P,)
        self.p = views(self.params, cfg)
        self.g = views(self.grads, cfg)
        self.offs = param_offsets(cfg)           # (4L + 2,) what the compiled code reads
        self.dropout_masks = None                # (L, T, B, H) of the last training forward
        self._ws = []                            # per shard: its flat workspace
        self._shard_grads = []                   # per shard after the first: its gradients
        self._wave_scratch = None                # wave: each layer's per-step scratch
        self._last = None                        # what backward needs of the last forward
        # set by charrnn.load: the checkpoint it came from (checkpoint.Record, its raw metadata
        # sections, the file), None for a model built in Python
        self.record, self.meta, self.path = None, None, None

    # -- state ---------------------------------------------------------------------------------

    def zero_state(self, batch: int):
        """Initial (h, c), each (L, B, H) of zeros; c is unused except by the LSTM."""
        shape = (self.cfg.layers, batch, self.cfg.hidden)
        return np.zeros(shape, self.dtype), np.zeros(shape, self.dtype)

    def zero_grad(self):
        """Reset the gradients (backward writes them whole, zeroing each shard's buffer first)."""
        self.grads[:] = 0.0

    # -- forward / backward --------------------------------------------------------------------

    def forward(self, x, y=None, state=None, train: bool = False, rng=None,
                predictions: int | None = None):
        """Mean cross-entropy of targets y given inputs x, or the logits when y is None.

        Parameters
        ----------
        x : int array (T, B)
            Input ids.
        y : int array (T, B), optional
            Target ids; data.IGNORE (-1) marks padding, which is not predicted (the loss is the
            mean over the other targets).
        state : tuple (h, c) of (L, B, H) arrays, optional
            Initial state (default zeros); not modified.
        train : bool
            Apply dropout (needs rng).
        rng : numpy.random.Generator, optional
        predictions : int, optional
            The loss's divisor (default: the targets of y). A process of a distributed job
            passes the whole batch's count, so that its loss and gradients are its share of the
            global mean and the shares add up.

        Returns
        -------
        loss : float (nats per character), or logits (T, B, V) when y is None
        state : tuple (h, c), the final state, new arrays.
        """
        cfg = self.cfg
        x = self._ids(x, "x")
        T, B = x.shape
        yy = self._ids(y, "y", x.shape, IGNORE) if y is not None else np.zeros((0, B), np.int32)
        h0, c0 = state if state is not None else self.zero_state(B)
        h0 = np.ascontiguousarray(h0, self.dtype)  # (L, B, H)
        c0 = np.ascontiguousarray(c0, self.dtype)  # (L, B, H)
        hT, cT = np.zeros_like(h0), c0.copy()
        drop = self._masks(T, B, rng) if train and cfg.dropout > 0 else None
        self.dropout_masks = drop
        drop = drop if drop is not None else np.zeros((0, 0, 0, 0), self.dtype)
        shards = self._shards(B)
        code, relu = CELLS[cfg.cell].code, cfg.activation == "relu"
        L, H, V = cfg.layers, cfg.hidden, cfg.vocab_size
        size = stack.workspace_size(code, L, T, max(b1 - b0 for b0, b1 in shards), H, V)
        ws = self._workspaces(len(shards), size, f"for a batch of {B} rows x {T} steps")
        panels = self.strategy == "panels"

        def task(i, b0, b1):
            return lambda: stack.stack_forward(ws[i], hT, cT, x, yy, h0, c0, drop, self.params,
                                               self.offs, code, relu, L, H, V, b0, b1, panels)
        if self._wave(B):
            sums = [wave.forward(workers.run, ws[0], self._scratch(B), hT, cT, x, yy, h0, c0,
                                 drop, self.params, self.offs, code, relu, H, V)]
        else:
            sums = workers.run([task(i, b0, b1) for i, (b0, b1) in enumerate(shards)],
                               self._blas_threads())
        count = predictions or self.predictions(yy)
        self._last = (x, yy, drop, shards, ws, count)
        if y is None:
            return self._gather_logits(T, B), (hT, cT)
        return float(sum(sums)) / count, (hT, cT)

    @staticmethod
    def predictions(y) -> int:
        """Targets that count in the loss: all but padding (at least 1, so a mean is defined)."""
        return max(1, y.size - int(np.count_nonzero(y == IGNORE)))

    def backward(self, x=None, want_state_grad: bool = False, reducer=None):
        """Gradients of the last forward's mean loss, written into self.grads.

        Each shard's gradients go to its own buffer (the first shard's is self.grads); they are
        then added in shard order. Returns (dh0, dc0), each (L, B, H), when want_state_grad.
        x is accepted for compatibility and must be the last forward's input if given.

        reducer (a distributed job's, see distributed.Overlap): the backward runs in phases,
        the decoder's then each layer's from the top; as each layer's phase ends,
        reducer.start(lo, hi) is given the slice of self.grads it made final (grad_segments()),
        and meanwhile a thread of its own calls reducer.progress() every reducer.every seconds,
        so an Allreduce of the finished slices moves while the layers below are computed. Same
        bits either way.
        """
        if self._last is None or self._last[1].shape[0] == 0:
            raise ValueError("backward needs a forward with targets first")
        xs, yy, drop, shards, ws, count = self._last
        if x is not None and np.shape(x) != xs.shape:
            raise ValueError(f"backward for x of shape {np.shape(x)} after a forward of "
                             f"{xs.shape}")
        cfg = self.cfg
        L, H, V, B = cfg.layers, cfg.hidden, cfg.vocab_size, xs.shape[1]
        code, relu = CELLS[cfg.cell].code, cfg.activation == "relu"
        dh0 = np.zeros((L, B, H), self.dtype)
        dc0 = np.zeros((L, B, H), self.dtype)
        grads = [self.grads] + self._grad_buffers(len(shards) - 1)
        scale = self.dtype.type(1.0 / count)
        common = (self.params, self.offs, code)

        panels = self.strategy == "panels"

        def whole(i, b0, b1):
            return lambda: stack.stack_backward(grads[i], dh0, dc0, ws[i], xs, yy, drop, *common,
                                                relu, L, H, V, b0, b1, scale, panels)

        def top(i, b0, b1):
            return lambda: stack.stack_backward_top(grads[i], ws[i], xs, yy, *common, L, H, V,
                                                    b0, b1, scale)

        def layer(k):
            return lambda i, b0, b1: lambda: stack.stack_backward_layer(
                k, grads[i], dh0, dc0, ws[i], xs, drop, *common, relu, L, H, V, b0, b1, panels)

        if self._wave(B):  # both threads on every layer: the slices come out at the end
            wave.backward(workers.run, self.grads, self._grad_buffers(1)[0], dh0, dc0, ws[0],
                          self._scratch(B), xs, yy, drop, *common, relu, H, V, scale)
            for lo, hi in self.grad_segments() if reducer is not None else ():
                reducer.start(lo, hi)  # in the order the other ranks' phases send them
        elif reducer is None or len(self.grad_segments()) == 1:  # one slice: nothing to overlap
            self._phase(whole, shards, grads, (0, self.grads.size), reducer)  # every slice
        else:
            slices = [None] + self.grad_segments()  # the decoder's goes with the top layer's
            with workers.polling(reducer.progress, reducer.every):
                for phase, ready in zip([top] + [layer(k) for k in range(L - 1, -1, -1)],
                                        slices):
                    self._phase(phase, shards, grads, ready, reducer)
        return (dh0, dc0) if want_state_grad else None

    def _phase(self, task, shards, grads, ready, reducer):
        """Run task(i, b0, b1) for every shard side by side; then the shards' gradients of the
        slice it made final, ready = (lo, hi) or None, are added in shard order (the same sums
        as over the whole buffer) and the slice goes to the reducer."""
        workers.run([task(i, b0, b1) for i, (b0, b1) in enumerate(shards)], self._blas_threads())
        if ready is not None:
            lo, hi = ready
            for g in grads[1:]:
                self.grads[lo:hi] += g[lo:hi]
            if reducer is not None:
                reducer.start(lo, hi)

    def grad_segments(self) -> list[tuple[int, int]]:
        """[lo, hi) slices of the flat gradient in the order backward finishes them: layer
        L-1's with the decoder's, then layer L-2's, ..., layer 0's (cells.param_layout keeps
        each contiguous). The decoder's (a few percent of the bytes) is not sent alone: one more
        collective costs its latencies and would hide little."""
        offs, L = [int(o) for o in self.offs] + [self.params.size], self.cfg.layers
        return [(offs[4 * (L - 1)], offs[-1])] + [(offs[4 * k], offs[4 * k + 4])
                                                  for k in range(L - 2, -1, -1)]

    def loss_and_grad(self, x, y, state, rng=None, predictions: int | None = None,
                      reducer=None):
        """forward(train=True) then backward (with its reducer); returns (loss, final
        state)."""
        if np.shape(x)[1:] == (0,):  # no rows (a rank's share of a small last batch): adds 0
            if self.cfg.dropout > 0:
                self._masks(np.shape(x)[0], 0, rng)  # the random stream moves on as elsewhere
            self.zero_grad()
            for lo, hi in self.grad_segments() if reducer is not None else ():
                reducer.start(lo, hi)  # the other ranks' collectives, matched in order
            return 0.0, state
        loss, state = self.forward(x, y, state, train=True, rng=rng, predictions=predictions)
        self.backward(reducer=reducer)
        return loss, state

    def logits(self, x, state=None):
        """Decoder outputs (T, B, V) for input ids x (T, B) from state (default zeros)."""
        return self.forward(x, None, state)[0]

    def hidden_states(self):
        """Every layer's output at every step of the last forward, (L, T, B, H), before
        dropout."""
        xs, _, _, shards, ws, _ = self._last
        T, B = xs.shape
        cfg = self.cfg
        out = np.zeros((cfg.layers, T, B, cfg.hidden), self.dtype)
        for (b0, b1), w in zip(shards, ws):
            h = stack.carve_h(w, CELLS[cfg.cell].code, cfg.layers, T, b1 - b0, cfg.hidden,
                              cfg.vocab_size)
            out[:, :, b0:b1] = h[:, 1:]
        return out

    def activations(self):
        """What a unit shows at every step of the last forward, (L, T, B, H): tanh of the cell
        state for an LSTM (the quantity of the 2015 pictures), the hidden state otherwise."""
        if self.cfg.cell != "lstm":
            return self.hidden_states()
        xs, _, _, shards, ws, _ = self._last
        T, B = xs.shape
        cfg = self.cfg
        out = np.zeros((cfg.layers, T, B, cfg.hidden), self.dtype)
        for (b0, b1), w in zip(shards, ws):
            out[:, :, b0:b1] = stack.carve_tc(w, CELLS[cfg.cell].code, cfg.layers, T, b1 - b0,
                                              cfg.hidden, cfg.vocab_size)
        return out

    def sample(self, length: int = S.length, temperature: float = S.temperature, prime=None,
               seed=None, top_k: int = S.top_k, top_p: float = S.top_p) -> str:
        """Generated text, prime included; see charrnn.sample.sample_chunks."""
        return sample_text(self, length, temperature, prime, seed, top_k, top_p)

    # -- the step strategy (strategy.py) ---------------------------------------------------------

    def _wave(self, rows: int) -> bool:
        """wave runs here: a 2-layer model, at least two threads and two rows (else shards)."""
        return (self.strategy == "wave" and self.cfg.layers == 2 and rows >= 2
                and (self.threads or workers.usable_cores()) >= 2)

    def _shards(self, rows: int) -> list[tuple[int, int]]:
        """shards and panels: one block of rows per thread; whole and wave: every row in one
        block."""
        if self.strategy == "whole" or self._wave(rows):
            return [(0, rows)]
        return workers.shard_bounds(rows, self.threads)

    def _scratch(self, rows: int) -> list[np.ndarray]:
        """wave: each layer's per-step scratch for `rows` rows, kept between steps."""
        G, H = CELLS[self.cfg.cell].G, self.cfg.hidden
        size = wave.scratch_size(rows, H, G)
        if self._wave_scratch is None or self._wave_scratch[0].size != size:
            self._wave_scratch = [np.zeros(size, self.dtype) for _ in range(2)]
        return self._wave_scratch

    def _blas_threads(self) -> int:
        """whole: BLAS gets every thread for the one block's products; shards: one each."""
        return (self.threads or workers.usable_cores()) if self.strategy == "whole" else 1

    # -- buffers ---------------------------------------------------------------------------------

    def _ids(self, a, name, shape=None, lowest=0):
        a = np.ascontiguousarray(a, dtype=np.int32)
        if a.ndim != 2 or (shape is not None and a.shape != shape):
            raise ValueError(f"{name} must be (T, B) ids{'' if shape is None else f' {shape}'}, "
                             f"got shape {a.shape}")
        if a.size and (a.min() < lowest or a.max() >= self.cfg.vocab_size):
            raise ValueError(f"{name} has ids outside [{lowest}, {self.cfg.vocab_size})")
        return a

    def _masks(self, T, B, rng):
        """Inverted-dropout masks (L, T, B, H): 0 or 1/(1-p)."""
        keep = 1.0 - self.cfg.dropout
        shape = (self.cfg.layers, T, B, self.cfg.hidden)
        return (rng.random(shape, dtype=self.dtype) < keep).astype(self.dtype) \
            / self.dtype.type(keep)

    def _workspaces(self, n: int, size: int, what: str) -> list[np.ndarray]:
        """n flat workspaces of at least `size` floats, kept and grown as needed (refused, before
        allocating, when they cannot fit in memory)."""
        grow = sum(1 for i in range(n) if i >= len(self._ws) or self._ws[i].size < size)
        if grow:
            _check_memory(self.cfg, self.params.size, 0, grow * size * self.dtype.itemsize, what)
        while len(self._ws) < n:
            self._ws.append(np.zeros(0, self.dtype))
        for i in range(n):
            if self._ws[i].size < size:
                self._ws[i] = np.zeros(size, self.dtype)
        return self._ws[:n]

    def _grad_buffers(self, n: int) -> list[np.ndarray]:
        while len(self._shard_grads) < n:
            self._shard_grads.append(np.zeros_like(self.params))
        return self._shard_grads[:n]

    def _gather_logits(self, T, B):
        _, _, _, shards, ws, _ = self._last
        V = self.cfg.vocab_size
        out = np.zeros((T, B, V), self.dtype)
        for (b0, b1), w in zip(shards, ws):
            out[:, b0:b1] = stack.carve_probs(w, CELLS[self.cfg.cell].code, self.cfg.layers, T,
                                              b1 - b0, self.cfg.hidden, V).reshape(T, b1 - b0, V)
        return out


# Copies of the parameter buffer a training run holds: parameters, gradients, two optimizer
# moments and a second shard's gradients.
TRAINING_COPIES = 5


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux: MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_training_memory(cfg: ModelConfig, batch_size: int, seq_len: int, threads=None) -> None:
    """Refuse, before anything is allocated, a model and batch whose training buffers (the
    parameter copies and every shard's caches) cannot fit in this machine's memory."""
    code = CELLS[cfg.cell].code
    shards = workers.shard_bounds(batch_size, threads)
    rows = max(b1 - b0 for b0, b1 in shards)
    caches = len(shards) * stack.workspace_size(code, cfg.layers, seq_len, rows, cfg.hidden,
                                                cfg.vocab_size)
    n = num_params(cfg)
    _check_memory(cfg, n, 4, 4 * (TRAINING_COPIES * n + caches),
                  f"to train on batches of {batch_size} rows x {seq_len} steps")


def _check_memory(cfg: ModelConfig, n: int, itemsize: int, need: int | None = None,
                  what: str = "to train") -> None:
    """Refuse, before allocating, buffers that cannot fit in memory: by default the training
    copies of the n parameters; or `need` bytes (the caches of a batch)."""
    need = TRAINING_COPIES * n * itemsize if need is None else need
    have = available_memory()
    if have is not None and need > have:
        raise CharrnnError(
            f"a {cfg.cell} {cfg.layers}x{cfg.hidden} has {n:,} parameters and needs about "
            f"{need / 2 ** 30:,.1f} GiB {what}; this machine has {have / 2 ** 30:,.1f} GiB "
            "available: choose a smaller --hidden or --layers (or a smaller batch)")
