"""Optimizers over the flat parameter buffer, gradient clipping and learning-rate schedules.

Every update follows the formula of the torch.optim class of the same name, so that losses match
PyTorch step for step (tests/test_reference.py checks 10 Adam steps against PyTorch).
"""
from __future__ import annotations

import math

import numpy as np

from . import updates as U
from .config import LR, TrainConfig

ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8
RMSPROP_ALPHA, RMSPROP_EPS = 0.99, 1e-8


class Optimizer:
    """State (moments) in the parameter layout, plus a step counter.

    Parameters
    ----------
    kind : {"adam", "adamw", "sgd", "rmsprop"}
    size : int
        Number of parameters.
    momentum, nesterov, weight_decay : as torch.optim.
    """

    def __init__(self, kind: str, size: int, momentum: float = 0.9, nesterov: bool = False,
                 weight_decay: float = 0.0, dtype=np.float32):
        self.kind = kind
        self.momentum = momentum if kind in ("sgd", "rmsprop") else 0.0
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.step_count = 0
        # Two state buffers serve every kind: Adam (m, v), SGD (momentum, unused),
        # RMSprop (square average, momentum).
        self.state = {"a": np.zeros(size, dtype), "b": np.zeros(size, dtype)}

    @classmethod
    def from_config(cls, tc: TrainConfig, size: int, dtype=np.float32) -> Optimizer:
        """The optimizer a TrainConfig asks for (momentum None: 0.9 for SGD, 0 for RMSprop)."""
        momentum = tc.momentum
        if momentum is None:
            momentum = 0.9 if tc.optimizer == "sgd" else 0.0
        return cls(tc.optimizer, size, momentum, tc.nesterov, tc.weight_decay, dtype)

    def step(self, params: np.ndarray, grads: np.ndarray, lr: float) -> None:
        """One update of params (in place) from grads."""
        self.step_count += 1
        a, b = self.state["a"], self.state["b"]
        if self.kind in ("adam", "adamw"):
            t = params.dtype.type  # torch.optim.Adam's scalars, in the parameters' precision
            (b1, b2), n = ADAM_BETAS, self.step_count
            decoupled = self.kind == "adamw"
            decay = 1.0 - lr * self.weight_decay if decoupled else self.weight_decay
            U.adam_update(params, a, b, grads, t(lr / (1.0 - b1 ** n)), t(1.0 - b1), t(b2),
                          t(1.0 - b2), t(ADAM_EPS), t(math.sqrt(1.0 - b2 ** n)), t(decay),
                          decoupled)
        elif self.kind == "sgd":
            U.sgd_update(params, a, grads, lr, self.momentum, self.nesterov, self.weight_decay,
                         self.step_count)
        else:
            U.rmsprop_update(params, a, b, grads, lr, RMSPROP_ALPHA, RMSPROP_EPS, self.momentum,
                             self.weight_decay)


def clip_gradients(grads: np.ndarray, limit: float, mode: str = "norm") -> float:
    """Clip in place; returns the global L2 norm before clipping.

    mode "norm" scales all gradients by limit / (norm + 1e-6) when the norm exceeds limit
    (torch.nn.utils.clip_grad_norm_); "value" clamps each element to [-limit, limit]. limit 0 = off.
    """
    # A compiled sum, not np.dot: numpy's BLAS threads would stay awake spinning after the call
    # and take cores from the next step's workers.
    norm = math.sqrt(U.sum_squares(grads))
    if limit > 0:
        if mode == "norm" and norm > limit:
            grads *= grads.dtype.type(limit / (norm + 1e-6))
        elif mode == "value":
            np.clip(grads, -limit, limit, out=grads)
    return norm


def learning_rate(tc: TrainConfig, step: int, epoch: float, total_steps: int | None,
                  plan: tuple[int, int] | None = None) -> float:
    """Learning rate for optimizer step `step` (counted from 0) at `epoch` (fractional).

    constant: lr. step: char-rnn's decay, lr * lr_decay ** (whole epochs past lr_decay_after).
    linear, cosine: from lr down to 0 over total_steps (constant if the run has no step budget).
    auto: lr until plan = (start, end) is known, then linearly down to 0 from step start to step
    end (train.py plans the end of a --time-limit run from its measured speed; no plan: constant).
    A linear warm-up over warmup_steps multiplies any of them.
    """
    lr = LR if tc.lr is None else tc.lr  # train() resolves it (a budget's rate too)
    if tc.lr_schedule == "step":
        # char-rnn decays at the end of every epoch e >= lr_decay_after (epochs counted from 1).
        lr *= tc.lr_decay ** max(0, int(epoch) - max(tc.lr_decay_after, 1) + 1)
    elif tc.lr_schedule == "cosine" and total_steps:
        lr *= 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
    elif tc.lr_schedule == "linear" and total_steps:
        lr *= 1.0 - min(step, total_steps) / total_steps
    elif tc.lr_schedule == "auto" and plan is not None:
        start, end = plan
        lr *= min(1.0, max(0.0, (end - step) / max(end - start, 1)))
    if tc.warmup_steps and step < tc.warmup_steps:
        lr *= (step + 1) / tc.warmup_steps
    return lr
