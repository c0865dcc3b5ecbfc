"""Drivers for one recurrent layer over T steps: the time loop around BLAS and the step kernels.

Per step there is one (B, H) x (H, G*H) product (numpy's BLAS, written into a preallocated buffer)
and one compiled pointwise kernel; nothing is allocated inside the loop. Everything that does not
depend on the previous step (input projections, weight gradients, bias gradients, the gradient to
the layer below) is one large GEMM outside it.
"""
from __future__ import annotations

import copy

import numpy as np

from . import kernels as K


class LayerCache:
    """Buffers for one layer at one (T, B): forward caches, backward scratch, all preallocated.

    window(T') gives the same buffers cut to a shorter window (their leading T' steps), so a short
    last window (evaluation tails) allocates nothing.
    """

    def __init__(self, cell: str, T: int, B: int, D: int, H: int, G: int, dtype):
        z = lambda *shape: np.zeros(shape, dtype)
        self.cell = cell
        self.xp = z(T, B, G * H)     # input projection (+ biases folded in where they can be)
        self.hp = z(B, G * H)        # h_prev @ W_h for the current step
        self.h = z(T + 1, B, H)      # h[0] is the initial state, h[1:] the outputs
        self.c = z(T + 1, B, H) if cell == "lstm" else None
        self.tc = z(T, B, H) if cell == "lstm" else None       # tanh(c[1:])
        self.act = z(T, B, G * H) if cell != "rnn" else None  # activated gates
        self.hn = z(T, B, H) if cell == "gru" else None       # W_hn h + b_hn
        # Gradient of the input-side pre-activations. It reuses xp's memory: backward never reads
        # xp (it reads the activated gates), and this saves a (T, B, G*H) buffer per layer.
        self.dgx = self.xp
        self.dgh = z(T, B, G * H) if cell == "gru" else self.dgx  # hidden-side (GRU differs)
        self.dh_rec = z(B, H)        # gradient through the recurrent product
        self.dc = z(B, H)            # LSTM cell-state gradient
        self.carry = z(B, H)         # GRU direct z*h path
        self.drop = None             # (T, B, H) dropout mask, scaled by 1/(1-p), or None
        self.out = self.h[1:]        # (T, B, H) what the next layer sees (before dropout)

    def window(self, T: int) -> LayerCache:
        """A view of these buffers for a window of T <= capacity steps."""
        v = copy.copy(self)
        cut = lambda a, n: None if a is None else a[:n]
        v.xp, v.h, v.c, v.tc = self.xp[:T], self.h[:T + 1], cut(self.c, T + 1), cut(self.tc, T)
        v.act, v.hn = cut(self.act, T), cut(self.hn, T)
        v.dgx = v.xp
        v.dgh = self.dgh[:T] if self.cell == "gru" else v.dgx
        v.out, v.drop = v.h[1:], None
        return v


def layer_forward(lc: LayerCache, Wh, bh, relu: bool):
    """Run the recurrence given lc.xp, lc.h[0] (and lc.c[0]); fills lc.h[1:] and the caches."""
    T = lc.xp.shape[0]
    for t in range(T):
        np.dot(lc.h[t], Wh, out=lc.hp)
        if lc.cell == "lstm":
            K.lstm_step_forward(lc.h[t + 1], lc.c[t + 1], lc.tc[t], lc.act[t], lc.xp[t], lc.hp,
                                 lc.c[t])
        elif lc.cell == "gru":
            K.gru_step_forward(lc.h[t + 1], lc.act[t], lc.hn[t], lc.xp[t], lc.hp, bh, lc.h[t])
        else:
            K.rnn_step_forward(lc.h[t + 1], lc.xp[t], lc.hp, relu)


def layer_backward(lc: LayerCache, dout, Wh, relu: bool, dh0=None, dc0=None):
    """Backpropagate dout (T, B, H), the gradient of this layer's outputs, through time.

    Fills lc.dgx / lc.dgh (gradients of the pre-activations). If dh0 / dc0 (B, H) are given, the
    gradients of the initial state are written into them.
    """
    T = dout.shape[0]
    lc.dh_rec[:] = 0.0
    lc.dc[:] = 0.0
    lc.carry[:] = 0.0
    for t in range(T - 1, -1, -1):
        if lc.cell == "lstm":
            K.lstm_step_backward(lc.dgx[t], lc.dc, lc.act[t], lc.tc[t], lc.c[t], dout[t],
                                 lc.dh_rec)
        elif lc.cell == "gru":
            K.gru_step_backward(lc.dgx[t], lc.dgh[t], lc.carry, lc.act[t], lc.hn[t], lc.h[t],
                                dout[t], lc.dh_rec)
        else:
            K.rnn_step_backward(lc.dgx[t], lc.h[t + 1], dout[t], lc.dh_rec, relu)
        np.dot(lc.dgh[t], Wh.T, out=lc.dh_rec)
    if dh0 is not None:
        np.add(lc.dh_rec, lc.carry, out=dh0)
    if dc0 is not None:
        dc0[:] = lc.dc
