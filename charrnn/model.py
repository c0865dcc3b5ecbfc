"""The model: one-hot -> L recurrent layers (with dropout) -> linear -> softmax.

The parameters are one flat buffer with named views (layout in cells.py).
"""
from __future__ import annotations

import numpy as np

from . import kernels as K
from .cells import init_params, num_params, views
from .config import ModelConfig
from .layers import LayerCache, layer_backward, layer_forward

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
    """

    def __init__(self, cfg: ModelConfig, params=None, dtype=np.float32, seed: int = 0, vocab=None):
        self.cfg = cfg
        self.vocab = vocab
        self.dtype = np.dtype(dtype)
        n = num_params(cfg)
        if params is None:
            params = init_params(cfg, np.random.default_rng(seed))
        self.params = np.ascontiguousarray(params, dtype=self.dtype).copy()  # (P,)
        if self.params.shape != (n,):
            raise ValueError(f"expected {n} parameters for {cfg}, got {self.params.shape}")
        self.grads = np.zeros_like(self.params)  # (P,)
        self.p = views(self.params, cfg)
        self.g = views(self.grads, cfg)
        self._store = {}

    # -- state ---------------------------------------------------------------------------------

    def zero_state(self, batch: int):
        """Initial (h, c), each (L, B, H) of zeros; c is unused except by the LSTM."""
        shape = (self.cfg.layers, batch, self.cfg.hidden)
        return np.zeros(shape, self.dtype), np.zeros(shape, self.dtype)

    def zero_grad(self):
        """The one place gradients are reset."""
        self.grads[:] = 0.0

    # -- forward / backward --------------------------------------------------------------------

    def _caches(self, T: int, B: int) -> list[LayerCache]:
        """Buffers for a (T, B) window: one set per batch size in use (training, evaluation, its
        batch-1 tail), sized for the longest window seen; shorter windows use leading slices."""
        if B not in self._store or self._store[B][0] < T:
            if B not in self._store and len(self._store) >= 3:
                self._store.pop(next(iter(self._store)))
            c = self.cfg
            layers = [LayerCache(c.cell, T, B, c.vocab_size if k == 0 else c.hidden, c.hidden,
                                 c.gates, self.dtype) for k in range(c.layers)]
            probs = np.zeros((T * B, c.vocab_size), self.dtype)  # (N, V)
            losses = np.zeros(T * B, self.dtype)                 # (N,)
            self._store[B] = (T, layers, probs, losses)
        _, layers, probs, losses = self._store[B]
        self._layers = [lc.window(T) for lc in layers]
        self._probs, self._losses = probs[: T * B], losses[: T * B]
        return self._layers

    def forward(self, x, y, state, train: bool = False, rng=None):
        """Mean cross-entropy (nats per character) of targets y given inputs x.

        Parameters
        ----------
        x, y : int arrays (T, B)
            Input ids and target ids.
        state : tuple (h, c) of (L, B, H) arrays
            Initial state; not modified.
        train : bool
            Apply dropout (needs rng) and keep what backward needs.
        rng : numpy.random.Generator, optional

        Returns
        -------
        loss : float
        state : tuple (h, c), the final state, new arrays.
        """
        cfg = self.cfg
        T, B = x.shape
        lcs = self._caches(T, B)
        relu = cfg.activation == "relu"
        inp = None  # (T, B, D) input of the current layer for k > 0
        for k, lc in enumerate(lcs):
            self._project(lc, k, x, inp)
            lc.h[0] = state[0][k]
            if lc.c is not None:
                lc.c[0] = state[1][k]
            layer_forward(lc, self.p[f"l{k}.wh"], self.p[f"l{k}.bh"], relu)
            inp = lc.out
            lc.drop = None
            if train and cfg.dropout > 0:
                keep = 1.0 - cfg.dropout
                lc.drop = (rng.random(inp.shape) < keep).astype(self.dtype) / self.dtype.type(keep)
                inp = inp * lc.drop
        self._top = inp.reshape(T * B, cfg.hidden)  # (N, H) decoder input
        np.dot(self._top, self.p["dec.w"], out=self._probs)  # logits, (N, V)
        self._probs += self.p["dec.b"]
        self._targets = np.ascontiguousarray(y, dtype=np.int32).reshape(T * B)
        loss = K.xent_forward(self._probs, self._losses, self._probs, self._targets)
        h = np.stack([lc.h[T] for lc in lcs])
        c = np.stack([lc.c[T] for lc in lcs]) if cfg.cell == "lstm" else state[1].copy()
        return float(loss), (h, c)

    def _project(self, lc: LayerCache, k: int, x, inp):
        """lc.xp = input @ W_x + b_x (+ b_h, except for the GRU, whose b_hn sits inside r*(...))."""
        T, B, GH = lc.xp.shape
        bx, bh = self.p[f"l{k}.bx"], self.p[f"l{k}.bh"]
        bias = bx if self.cfg.cell == "gru" else bx + bh
        xp = lc.xp.reshape(T * B, GH)
        if k == 0:
            idx = np.ascontiguousarray(x, dtype=np.int32).reshape(T * B)
            K.embed_forward(xp, idx, self.p["l0.wx"], bias)
        else:
            np.dot(inp.reshape(T * B, -1), self.p[f"l{k}.wx"], out=xp)
            xp += bias

    def backward(self, x, want_state_grad: bool = False):
        """Gradients of the last forward's mean loss, written into self.grads (zeroed here first).

        Every weight's gradient is one product over all T*B positions, so it is written with
        np.dot(..., out=view): the same as accumulating into the zeroed buffer, without a
        temporary. The one-hot scatter (several positions share a row) accumulates.

        Returns (dh0, dc0), each (L, B, H), when want_state_grad, else None.
        """
        cfg = self.cfg
        T, B = x.shape
        lcs = self._layers  # the windows the last forward filled (with its dropout masks)
        if lcs[0].xp.shape[:2] != (T, B):
            raise ValueError(f"backward for x of shape {(T, B)} after a forward of "
                             f"{lcs[0].xp.shape[:2]}")
        relu = cfg.activation == "relu"
        self.zero_grad()
        N = T * B
        dlogits = self._probs  # (N, V), overwritten in place: forward's probs are not needed again
        K.xent_backward(dlogits, self._probs, self._targets, self.dtype.type(1.0 / N))
        np.dot(self._top.T, dlogits, out=self.g["dec.w"])
        self.g["dec.b"][:] = dlogits.sum(axis=0)
        dout = np.dot(dlogits, self.p["dec.w"].T).reshape(T, B, cfg.hidden)  # (T, B, H)
        dh0 = np.zeros((cfg.layers, B, cfg.hidden), self.dtype) if want_state_grad else None
        dc0 = np.zeros_like(dh0) if want_state_grad else None
        for k in range(cfg.layers - 1, -1, -1):
            lc = lcs[k]
            if lc.drop is not None:
                dout = dout * lc.drop
            layer_backward(lc, dout, self.p[f"l{k}.wh"], relu,
                           None if dh0 is None else dh0[k], None if dc0 is None else dc0[k])
            dout = self._weight_grads(lc, k, x, lcs[k - 1].out if k > 0 else None)
        return (dh0, dc0) if want_state_grad else None

    def _weight_grads(self, lc: LayerCache, k: int, x, inp):
        """Layer k's weight and bias gradients; returns the gradient of its input (k > 0)."""
        T, B, GH = lc.dgx.shape
        H = self.cfg.hidden
        dgx = lc.dgx.reshape(T * B, GH)
        dgh = lc.dgh.reshape(T * B, GH)
        np.dot(lc.h[:T].reshape(T * B, H).T, dgh, out=self.g[f"l{k}.wh"])
        self.g[f"l{k}.bh"][:] = dgh.sum(axis=0)
        self.g[f"l{k}.bx"][:] = dgx.sum(axis=0) if lc.dgh is not lc.dgx else self.g[f"l{k}.bh"]
        if k == 0:
            idx = np.ascontiguousarray(x, dtype=np.int32).reshape(T * B)
            K.embed_backward(self.g["l0.wx"], dgx, idx)
            return None
        # The input seen by layer k is the previous layer's output after its dropout mask.
        prev = self._layers[k - 1]
        xin = inp if prev.drop is None else inp * prev.drop
        np.dot(xin.reshape(T * B, H).T, dgx, out=self.g[f"l{k}.wx"])
        return np.dot(dgx, self.p[f"l{k}.wx"].T).reshape(T, B, H)

    def logits(self, x, state=None):
        """Decoder outputs (T, B, V) for input ids x (T, B) from state (default zeros)."""
        T, B = x.shape
        self.forward(x, np.zeros_like(x), state or self.zero_state(B))
        return (self._top @ self.p["dec.w"] + self.p["dec.b"]).reshape(T, B, -1)

    def sample(self, length: int = 500, temperature: float = 0.8, prime=None, seed=None,
               top_k: int = 0, top_p: float = 1.0) -> str:
        """Generated text, prime included; see charrnn.sample.sample_chunks."""
        from .sample import sample
        return sample(self, length, temperature, prime, seed, top_k, top_p)

    def loss_and_grad(self, x, y, state, rng=None):
        """forward(train=True) then backward; returns (loss, final state)."""
        loss, state = self.forward(x, y, state, train=True, rng=rng)
        self.backward(x)
        return loss, state
