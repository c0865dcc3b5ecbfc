"""What each recurrent cell is, and where every weight lives in the flat parameter buffer.

One description per cell (gate count, the code the compiled kernels dispatch on, its forward
caches, how its biases fold), used by the model, the compiled stack, the sampler, the export and
the compile notice, instead of `if cell == ...` branches in several files.

Parameters live in one flat buffer; each weight is a named view into it. Gradients and optimizer
moments use the same layout, so an optimizer step is one loop and a checkpoint is a few arrays.
Per layer k the views are (D_k = V for k = 0, else H; G gate blocks):
    l{k}.wx (D_k, G*H)   transposed W_ih      l{k}.bx (G*H,)   b_ih
    l{k}.wh (H, G*H)     transposed W_hh      l{k}.bh (G*H,)   b_hh
then dec.w (H, V) (transposed decoder weight) and dec.b (V,).

This module imports nothing from charrnn: configs, the model and checkpoints all build on it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Cell:
    """One recurrent cell, described once.

    Attributes
    ----------
    name : str
        ``"rnn"``, ``"gru"`` or ``"lstm"``.
    code : int
        What the compiled kernels dispatch on (kernels.CELL_*).
    gates : str
        Gate blocks in weight order, PyTorch's: G = len(gates).
    has_c : bool
        Carries a cell state c beside h (LSTM).
    fold_bh : bool
        b_hh can be added to the input projection once per window. The GRU cannot: its b_hn sits
        inside r * (W_hn h + b_hn).
    """

    name: str
    code: int
    gates: str
    has_c: bool
    fold_bh: bool

    @property
    def G(self) -> int:
        """Gate blocks per layer: the G in the (D, G*H) weight shapes."""
        return len(self.gates)


# The codes are the values of kernels.CELL_RNN / CELL_GRU / CELL_LSTM (kernels imports them here).
CELLS = {
    "rnn": Cell("rnn", 0, "n", has_c=False, fold_bh=True),
    "gru": Cell("gru", 1, "rzn", has_c=False, fold_bh=False),
    "lstm": Cell("lstm", 2, "ifgo", has_c=True, fold_bh=True),
}


def param_layout(cfg) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes of the parameter views of a ModelConfig, in buffer order."""
    GH, H, V = CELLS[cfg.cell].G * cfg.hidden, cfg.hidden, cfg.vocab_size
    out = []
    for k in range(cfg.layers):
        D = V if k == 0 else H
        out += [(f"l{k}.wx", (D, GH)), (f"l{k}.wh", (H, GH)),
                (f"l{k}.bx", (GH,)), (f"l{k}.bh", (GH,))]
    return out + [("dec.w", (H, V)), ("dec.b", (V,))]


def views(flat: np.ndarray, cfg) -> dict[str, np.ndarray]:
    """Named views into a flat buffer laid out by param_layout."""
    out, off = {}, 0
    for name, shape in param_layout(cfg):
        size = int(np.prod(shape))
        out[name] = flat[off: off + size].reshape(shape)
        off += size
    return out


def param_offsets(cfg) -> np.ndarray:
    """Start offset of every view, in layout order (what the compiled kernels read)."""
    sizes = [int(np.prod(s)) for _, s in param_layout(cfg)]
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)


def num_params(cfg) -> int:
    """Total number of parameters."""
    return sum(int(np.prod(s)) for _, s in param_layout(cfg))


def init_params(cfg, rng) -> np.ndarray:
    """PyTorch's initialisation (nn.LSTM/GRU/RNN and nn.Linear): every weight and bias, the
    decoder's included, uniform in +-1/sqrt(H).

    No forget-gate bias of 1: measured with the defaults (LSTM 2x256, Adam 3e-3, 3 seeds), it
    slowed learning (validation 1.88-1.99 at step 600 against 1.73-1.87 without;
    bench/init_learning.py), which is most of what a short budget sees."""
    flat = np.zeros(num_params(cfg), np.float32)
    bound = 1.0 / np.sqrt(cfg.hidden)
    for view in views(flat, cfg).values():
        view[...] = rng.uniform(-bound, bound, view.shape)
    return flat


# --init charrnn: the first layer's input weights uniform in +-INPUT_BOUND. Its input is one-hot,
# so each of its pre-activations is one weight (fan-in 1): PyTorch's +-1/sqrt(H), meant for dense
# inputs, makes the characters nearly alike to an untrained model (+-0.06 at H = 256). Measured
# at H = 256, validation at step 600 (bench/results/init_scale.md): without the prior bias
# +-0.06 (PyTorch's) 1.73-1.92, +-0.25 1.68-1.75, +-1 1.61; with it +-1 1.57, +-2 1.55, +-4 1.54,
# and +-2 and +-4 within 0.005 at step 2,000: 2, the further from saturating the gates.
INPUT_BOUND = 2.0


def charrnn_init(flat: np.ndarray, cfg, counts) -> None:
    """--init charrnn, in place on PyTorch's initialisation `flat` (init_params): the first
    layer's input weights scaled to +-INPUT_BOUND (the same draws), and the decoder bias at the
    log-frequencies of the training targets, counts (V,) (prior_bias).

    Measured at the defaults (LSTM 2x256, Adam 3e-3, constant rate, bench/init_learning.py,
    bench/results/init_scale.md): validation at step 600 was 1.73-1.92 over 4 seeds with
    PyTorch's initialisation, 1.63-1.65 with the bias alone, 1.55 with both (2 seeds)."""
    p = views(flat, cfg)
    p["l0.wx"][...] *= INPUT_BOUND * np.sqrt(cfg.hidden)
    p["dec.b"][...] = prior_bias(counts)


def prior_bias(counts) -> np.ndarray:
    """(V,) the decoder bias with which an untrained model predicts the characters at the
    frequencies `counts` (V,) of its training targets: log((n + 1) / (N + V)), add-one so that a
    character never seen in training keeps a finite loss.

    Why: with PyTorch's +-1/sqrt(H) bias the untrained model predicts every character alike (ln V
    nats) and Adam moves each bias by about the rate per step, so at 3e-3 the log-frequencies
    (-1.7 for a space, -12 for a rare letter) take hundreds of steps to learn, and how many
    depends on the seed."""
    counts = np.asarray(counts, np.float64)
    return np.log((counts + 1.0) / (counts.sum() + counts.size)).astype(np.float32)
