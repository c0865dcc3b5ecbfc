"""Frozen configuration objects: what a model is, and how it is trained.

Both are plain dataclasses of numbers and strings so that they round-trip through JSON inside a
checkpoint (see checkpoint.py) and can be compared field by field when resuming.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

from .cells import CELLS
from .errors import CharrnnError

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
SCHEDULES = ("constant", "step", "cosine")


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a model: one-hot(V) -> `layers` x `cell`(hidden) -> linear(V).

    Attributes
    ----------
    vocab_size : int
        V, the number of distinct characters.
    cell : str
        ``"rnn"``, ``"gru"`` or ``"lstm"``.
    hidden : int
        H, the hidden size of every layer.
    layers : int
        L, the number of stacked recurrent layers.
    dropout : float
        Inverted-dropout probability on the output of every recurrent layer, training only.
    activation : str
        ``"tanh"`` or ``"relu"``; used by the vanilla RNN only.
    """

    vocab_size: int
    cell: str = "lstm"
    hidden: int = 128
    layers: int = 2
    dropout: float = 0.0
    activation: str = "tanh"

    def __post_init__(self):
        check_types(self)
        check(self.cell in CELLS, f"--model must be one of {', '.join(CELLS)}, got {self.cell!r}")
        check(self.activation in ("tanh", "relu"),
              f"--activation must be tanh or relu, got {self.activation!r}")
        check(self.vocab_size >= 1, f"vocabulary size must be >= 1, got {self.vocab_size}")
        check(self.hidden >= 1, f"--hidden must be >= 1, got {self.hidden}")
        check(self.layers >= 1, f"--layers must be >= 1, got {self.layers}")
        check(0.0 <= self.dropout < 1.0, f"--dropout must be in [0, 1), got {self.dropout}")

    @property
    def gates(self) -> int:
        """G: gate blocks per layer (1 for RNN, 3 for GRU, 4 for LSTM)."""
        return CELLS[self.cell].G


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Every field has a CLI option of the same name (underscores become dashes)."""

    seq_len: int = 50
    batch_size: int = 50
    optimizer: str = "adam"
    lr: float = 2e-3
    momentum: float | None = None  # None: 0.9 for sgd, 0 for rmsprop
    nesterov: bool = False
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    clip_mode: str = "norm"
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    lr_decay: float = 0.97
    lr_decay_after: int = 10
    max_steps: int | None = None
    epochs: float | None = None
    time_limit: float | None = None
    val_fraction: float = 0.1
    val_max_chars: int = 1_000_000
    eval_every: int = 200
    checkpoint_every: int = 0
    checkpoint_interval: float | None = None
    keep: int = 0
    seed: int = 0
    encoding: str = "utf-8"
    threads: int | None = None  # worker threads; None: every core this process may use

    def __post_init__(self):
        check_types(self)
        check(self.seed >= 0, f"--seed must be >= 0, got {self.seed}")
        check(self.seq_len >= 1, f"--seq-len must be >= 1, got {self.seq_len}")
        check(self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}")
        check(self.optimizer in OPTIMIZERS,
              f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        check(self.lr > 0, f"--lr must be > 0, got {self.lr}")
        check(self.momentum is None or 0.0 <= self.momentum < 1.0,
              f"--momentum must be in [0, 1), got {self.momentum}")
        check(self.weight_decay >= 0, f"--weight-decay must be >= 0, got {self.weight_decay}")
        check(self.grad_clip >= 0,
              f"--grad-clip must be >= 0 (0 turns it off), got {self.grad_clip}")
        check(self.clip_mode in ("norm", "value"),
              f"--clip-mode must be norm or value, got {self.clip_mode!r}")
        check(self.lr_schedule in SCHEDULES,
              f"--lr-schedule must be one of {', '.join(SCHEDULES)}, got {self.lr_schedule!r}")
        check(self.warmup_steps >= 0, f"--warmup-steps must be >= 0, got {self.warmup_steps}")
        check(0 < self.lr_decay <= 1, f"--lr-decay must be in (0, 1], got {self.lr_decay}")
        check(self.lr_decay_after >= 0, f"--lr-decay-after must be >= 0, got {self.lr_decay_after}")
        check(self.max_steps is None or self.max_steps >= 1,
              f"--max-steps must be >= 1, got {self.max_steps}")
        check(self.epochs is None or self.epochs > 0, f"--epochs must be > 0, got {self.epochs}")
        check(self.time_limit is None or self.time_limit > 0,
              f"--time-limit must be > 0 seconds, got {self.time_limit}")
        check(0.0 < self.val_fraction <= 0.5,
              f"--val-fraction must be in (0, 0.5], got {self.val_fraction}")
        check(self.val_max_chars >= 2, f"--val-max-chars must be >= 2, got {self.val_max_chars}")
        check(self.eval_every >= 1, f"--eval-every must be >= 1, got {self.eval_every}")
        check(self.checkpoint_every >= 0,
              "--checkpoint-every must be >= 0 (0: only at evaluations), "
              f"got {self.checkpoint_every}")
        check(self.checkpoint_interval is None or self.checkpoint_interval > 0,
              f"--checkpoint-interval must be > 0 seconds, got {self.checkpoint_interval}")
        check(self.keep >= 0, f"--keep must be >= 0, got {self.keep}")
        check(self.threads is None or self.threads >= 1,
              f"--threads must be >= 1, got {self.threads}")
        check(self.encoding in ("utf-8", "bytes"),
              f"--encoding must be utf-8 or bytes, got {self.encoding!r}")


def _is(value, kind: str) -> bool:
    """Whether value is of a declared field type: bool, int (not bool), float (any real number
    but bool) or str."""
    if kind == "bool" or isinstance(value, bool):
        return kind == "bool" and isinstance(value, bool)
    return isinstance(value, {"int": numbers.Integral, "float": numbers.Real, "str": str}.get(
        kind, type(None)))


def check_types(cfg) -> None:
    """Raise CharrnnError unless every field of a config holds a value of its declared type
    (None only where the type allows it; numbers finite)."""
    for f in dataclasses.fields(cfg):
        value, kinds = getattr(cfg, f.name), [k.strip() for k in str(f.type).split("|")]
        if value is None and "None" in kinds:
            continue
        name = f"{type(cfg).__name__}.{f.name}"
        check(any(_is(value, k) for k in kinds),
              f"{name} must be {' or '.join(kinds)}, got {value!r}")
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            check(math.isfinite(value), f"{name} must be a finite number, got {value!r}")


def check(ok: bool, message: str) -> None:
    """Raise CharrnnError(message) unless ok."""
    if not ok:
        raise CharrnnError(message)


def to_dict(cfg) -> dict:
    """A config as a JSON-ready dict."""
    return dataclasses.asdict(cfg)


def from_dict(cls, d: dict):
    """Rebuild a config from to_dict's output, ignoring keys this version does not know."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names})
