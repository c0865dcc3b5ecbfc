"""Telling the user when numba is about to compile (the first run), instead of looking frozen.

The compiled entry points are the same for every cell (the cell is a code the kernels dispatch
on, see cells.py), so the lists below name entry points, not cells.
"""
from __future__ import annotations

import os
import time

import numpy as np

from . import generate as G
from . import stack, wave
from . import updates as U
from .optim import Optimizer, clip_gradients
from .sample import sample

SAMPLE = ((G, "advance"), (G, "generate"))                    # one stream
SAMPLE_MANY = ((G, "transposed_weights"), (G, "advance_batch"),
               (G, "generate_batch"))                         # K streams at once


def forward_kernels(cell: str | None = None) -> tuple:
    """The compiled entry points an evaluation runs (any cell)."""
    return ((stack, "stack_forward"),)


WAVE = tuple((wave, name) for name in ("project", "layer_forward", "decode", "top",
                                       "layer_backward", "input_grad", "hidden_grads",
                                       "input_weight_grad"))


def train_kernels(cell: str | None = None, phased: bool = False, wave: bool = False) -> tuple:
    """The compiled entry points a training step runs (with Adam; the other optimizers are
    small and compile in about a second); phased: the backward in phases (an MPI job's
    overlapped Allreduce, Model.backward's reducer); wave: the wave strategy's too (a run
    with it, or a probe that measures it)."""
    backward = (((stack, "stack_backward_top"), (stack, "stack_backward_layer")) if phased
                else ((stack, "stack_backward"),))
    return (forward_kernels(cell) + backward + ((U, "sum_squares"), (U, "adam_update"))
            + (WAVE if wave else ()))


def runs_phased(model, overlap: bool) -> bool:
    """Whether a training step's backward runs in phases (Model.backward with a reducer): an
    overlapped Allreduce (distributed.Group.overlap) and more than one slice to send."""
    return overlap and len(model.grad_segments()) > 1


def needs_compiling(names) -> bool:
    """True if any of these (module, name) kernels has no on-disk cache yet (numba will compile
    it on first use). Reads numba's cache index location; if that ever changes, it answers
    False."""
    for module, name in names:
        try:
            if not os.path.exists(getattr(module, name)._cache._cache_file._index_path):
                return True
        except AttributeError:
            return False
    return False


def notice(names, echo) -> None:
    """Say on stderr (via echo) that a one-time compilation is starting, when it is."""
    if needs_compiling(names):
        echo("charrnn: compiling its kernels for the first run (once; up to about a minute) ...")


def warm_up(model, config, sampling: bool = False, phased: bool = False) -> float:
    """Compile (or load from numba's cache) every kernel a training run calls, on throwaway
    arrays, before the run's clock starts: a first run's compilation is not taken from its
    --time-limit. Leaves the model's parameters, gradients and random state as they were.
    phased: the run's backward goes in phases (train_kernels). Returns the seconds it took."""
    t0 = time.perf_counter()
    x = np.zeros((1, 2), np.int32)  # two rows: the wave strategy needs them (Model._wave)
    model.forward(x, x, model.zero_state(2))
    model.backward(reducer=_Idle() if phased else None)
    model.zero_grad()
    one = np.zeros(1, model.dtype)
    clip_gradients(one, config.grad_clip, config.clip_mode)
    Optimizer.from_config(config, 1).step(one, one.copy(), 0.0)
    if sampling and model.vocab is not None:
        sample(model, 1, 0.8, seed=0)
    return time.perf_counter() - t0


class _Idle:
    """A reducer that sends nothing (Model.backward): the phased backward, compiled alone."""

    every = 1.0

    def start(self, lo: int, hi: int):
        pass

    def progress(self):
        pass
