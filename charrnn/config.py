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
SCHEDULES = ("auto", "constant", "linear", "cosine", "step")
CLIP_MODES = ("norm", "value")
ACTIVATIONS = ("tanh", "relu")
ENCODINGS = ("utf-8", "bytes")
INITS = ("charrnn", "pytorch")  # see cells.charrnn_init


# What a training option may do when a run is resumed (TrainConfig fields declare one each):
# "must match": it changes what the next steps compute, so a resumed run keeps it (a different
#   value is refused); "stopping": when to stop, may change, and a stopping option given on
#   resume replaces all the saved ones (a new --max-steps drops the saved --time-limit);
# "may change": cadence and machine options (validation, checkpoints, threads, patience).
MUST_MATCH, STOPPING, MAY_CHANGE = "must match", "stopping", "may change"
RESUME_POLICIES = (MUST_MATCH, STOPPING, MAY_CHANGE)
STRATEGIES = ("auto", "shards", "panels", "whole", "wave")  # see strategy.py
BATCH_SIZE = 50  # the rows of a run that does not give --batch-size (a budget's: budget.py)
LR = 3e-3  # the learning rate of a run that does not give --lr (a short budget's: budget.py)
EVAL_EVERY = 200  # steps between validations where --eval-every is not given (a budget's: budget.py)


def option(default, help: str, *, choices: tuple | None = None, flag: str | None = None,
           on_resume: str | None = None):
    """A config field declared together with its command-line option: the default, the help
    text, the choices, (if not --<field-name>) the flag and, for training options, what resuming
    may do with it (RESUME_POLICIES). cli.py builds the options from these, so each fact is
    written here once."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices,
                                                        "flag": flag, "on_resume": on_resume})


def flag(f: dataclasses.Field) -> str:
    """The command-line flag of a config field."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


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
    cell: str = option("lstm", "Recurrent cell.", choices=tuple(CELLS), flag="--model")
    hidden: int = option(256, "Hidden size per layer (with --time-limit and not given: "
                         "smaller when the budget is short for this size; the run says so).")
    layers: int = option(2, "Stacked layers.")
    dropout: float = option(0.0, "Dropout on every layer's output (training only).")
    activation: str = option("tanh", "Vanilla RNN nonlinearity.", choices=ACTIVATIONS)

    def __post_init__(self):
        check_types(self)
        check(self.cell in CELLS, f"--model must be one of {', '.join(CELLS)}, got {self.cell!r}")
        check(self.activation in ACTIVATIONS,
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

    seq_len: int = option(50, "BPTT window length.", on_resume=MUST_MATCH)
    batch_size: int | None = option(None, f"Parallel rows (not given: {BATCH_SIZE}, but a "
                                    "--time-limit run takes fewer where this machine trains "
                                    "them as fast; the run says so).", on_resume=MUST_MATCH)
    optimizer: str = option("adam", "Optimizer.", choices=OPTIMIZERS, on_resume=MUST_MATCH)
    lr: float | None = option(None, f"Learning rate (not given: {LR:g}, but a short --time-limit "
                              "run of the defaults' model takes a higher one; the run says so).",
                              on_resume=MUST_MATCH)
    momentum: float | None = option(None, "Momentum for sgd (default 0.9) and rmsprop "
                                    "(default 0).", on_resume=MUST_MATCH)
    nesterov: bool = option(False, "Nesterov momentum (sgd).", on_resume=MUST_MATCH)
    weight_decay: float = option(0.0, "L2 penalty (decoupled for adamw).", on_resume=MUST_MATCH)
    grad_clip: float = option(5.0, "Clip gradients at this global norm (0: off).",
                              on_resume=MUST_MATCH)
    clip_mode: str = option("norm", "Clip the global norm, or every element.",
                            choices=CLIP_MODES, on_resume=MUST_MATCH)
    lr_schedule: str = option("auto", "Learning-rate schedule. auto: with --time-limit, hold "
                              "--lr for --decay-from of the budget, then decay linearly to zero "
                              "when the budget ends (the end estimated from the measured speed); "
                              "otherwise constant. linear, cosine: to "
                              "zero at --max-steps or --epochs. step: x --lr-decay per epoch.",
                              choices=SCHEDULES, on_resume=MUST_MATCH)
    # 0.5: from the first 3% (the old start), 3 seeds at 1 and 5 minutes were all better, by
    # 0.11-0.15 and 0.03-0.04 nats (README, "Training on a budget").
    decay_from: float = option(0.5, "--lr-schedule auto with --time-limit: the fraction of the "
                               "budget run at the full --lr before the linear decay to zero "
                               "begins (never before the first 3%, which measure the speed).",
                               on_resume=MUST_MATCH)
    warmup_steps: int = option(0, "Linear warm-up steps.", on_resume=MUST_MATCH)
    lr_decay: float = option(0.97, "Per-epoch factor for --lr-schedule step.",
                             on_resume=MUST_MATCH)
    lr_decay_after: int = option(10, "First epoch that decays, for --lr-schedule step.",
                                 on_resume=MUST_MATCH)
    max_steps: int | None = option(None, "Stop after this many steps.", on_resume=STOPPING)
    epochs: float | None = option(None, "Stop after this many epochs (default 10 when no "
                                  "--max-steps or --time-limit is given).", on_resume=STOPPING)
    time_limit: float | None = option(None, "Stop after this many seconds.", on_resume=STOPPING)
    auto: bool = option(False, "Choose the model (LSTM size, dropout; AdamW weight decay "
                        "for a model large for its text) for the --time-limit budget from a "
                        "short speed probe of this machine; says what it chose and why.",
                        on_resume=MAY_CHANGE)
    patience: int = option(0, "Stop when validation has not improved for N validations in a row "
                           "(0: never); best.npz is the result.", on_resume=MAY_CHANGE)
    val_fraction: float = option(0.1, "The last part of the text held out for validation.",
                                 on_resume=MUST_MATCH)
    val_max_chars: int | None = option(None, "Validate on at most this many characters of the "
                                       "held-out part [default: 1,000,000; in a --time-limit "
                                       "run, what keeps validation near a twentieth of the run, at "
                                       "least 200,000].", on_resume=MAY_CHANGE)
    eval_every: int | None = option(None, f"Validate (and write last.npz) every N steps [not "
                                    f"given: {EVAL_EVERY}, or more in a --time-limit run whose "
                                    "held-out text would take more than a twentieth of it].",
                                    on_resume=MAY_CHANGE)
    checkpoint_every: int = option(0, "Also write last.npz every N steps (0: only at "
                                   "validations).", on_resume=MAY_CHANGE)
    checkpoint_interval: float | None = option(None, "Also write last.npz every this many "
                                               "seconds.", on_resume=MAY_CHANGE)
    keep: int = option(0, "Also keep numbered checkpoints ckpt-<step>.npz, the K newest.",
                       on_resume=MAY_CHANGE)
    seed: int = option(0, "Random seed (initialisation, dropout).", on_resume=MUST_MATCH)
    # charrnn: at the defaults, validation at step 600 1.55 (2 seeds) against 1.73-1.92 (4) with
    # pytorch's (README, "Training on a budget"; bench/init_learning.py; cells.charrnn_init).
    init: str = option("charrnn", "Initialisation: pytorch is PyTorch's (every weight and bias "
                       "uniform in +-1/sqrt(hidden)); charrnn is that with the first layer's "
                       "input weights (one row per character) in +-2 and the output bias at the "
                       "log of the training characters' frequencies, so that an untrained model "
                       "already tells the characters apart and predicts their frequencies. Only "
                       "a fresh run uses it (a resumed one has its weights).",
                       choices=INITS, on_resume=MAY_CHANGE)
    records: bool = option(False, "Records mode: each non-empty line is one example (a name, a "
                           "title), read from the initial state and ended by an end symbol; "
                           "batches hold --batch-size whole lines (--seq-len is not used) and a "
                           "random --val-fraction of the lines validates.", on_resume=MUST_MATCH)
    encoding: str = option("utf-8", "Read the corpus as UTF-8 characters or raw bytes.",
                           choices=ENCODINGS, on_resume=MUST_MATCH)
    threads: int | None = option(None, "Worker threads [default: every core this process may "
                                 "use].", on_resume=MAY_CHANGE)
    strategy: str = option("auto", "How a step uses the threads: shards (each its rows of the "
                           "batch, with its own products), panels (shards whose per-step "
                           "products go to BLAS in narrow column panels), whole (the whole "
                           "batch's products on "
                           "BLAS's threads), wave (a 2-layer model: a layer a thread, each on "
                           "the whole batch), or auto: measured on this machine once per model "
                           "and batch shape, then cached; the choice is saved with the run.",
                           choices=STRATEGIES, on_resume=MAY_CHANGE)

    def __post_init__(self):
        check_types(self)
        check(self.seed >= 0, f"--seed must be >= 0, got {self.seed}")
        check(self.seq_len >= 1, f"--seq-len must be >= 1, got {self.seq_len}")
        check(self.batch_size is None or self.batch_size >= 1,
              f"--batch-size must be >= 1, got {self.batch_size}")
        check(self.optimizer in OPTIMIZERS,
              f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        check(self.lr is None or self.lr > 0, f"--lr must be > 0, got {self.lr}")
        check(self.momentum is None or 0.0 <= self.momentum < 1.0,
              f"--momentum must be in [0, 1), got {self.momentum}")
        check(self.weight_decay >= 0, f"--weight-decay must be >= 0, got {self.weight_decay}")
        check(self.grad_clip >= 0,
              f"--grad-clip must be >= 0 (0 turns it off), got {self.grad_clip}")
        check(self.init in INITS,
              f"--init must be one of {', '.join(INITS)}, got {self.init!r}")
        check(self.strategy in STRATEGIES,
              f"--strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        check(self.clip_mode in CLIP_MODES,
              f"--clip-mode must be norm or value, got {self.clip_mode!r}")
        check(self.lr_schedule in SCHEDULES,
              f"--lr-schedule must be one of {', '.join(SCHEDULES)}, got {self.lr_schedule!r}")
        check(self.patience >= 0, f"--patience must be >= 0, got {self.patience}")
        check(self.warmup_steps >= 0, f"--warmup-steps must be >= 0, got {self.warmup_steps}")
        check(0 <= self.decay_from < 1, f"--decay-from must be in [0, 1), got {self.decay_from}")
        check(0 < self.lr_decay <= 1, f"--lr-decay must be in (0, 1], got {self.lr_decay}")
        check(self.lr_decay_after >= 0, f"--lr-decay-after must be >= 0, got {self.lr_decay_after}")
        check(self.max_steps is None or self.max_steps >= 1,
              f"--max-steps must be >= 1, got {self.max_steps}")
        check(self.epochs is None or self.epochs > 0, f"--epochs must be > 0, got {self.epochs}")
        check(self.time_limit is None or self.time_limit > 0,
              f"--time-limit must be > 0 seconds, got {self.time_limit}")
        check(not self.auto or self.time_limit is not None,
              "--auto needs --time-limit: the budget it sizes the model for")
        check(0.0 < self.val_fraction <= 0.5,
              f"--val-fraction must be in (0, 0.5], got {self.val_fraction}")
        check(self.val_max_chars is None or self.val_max_chars >= 2,
              f"--val-max-chars must be >= 2, got {self.val_max_chars}")
        check(self.eval_every is None or self.eval_every >= 1,
              f"--eval-every must be >= 1, got {self.eval_every}")
        check(self.checkpoint_every >= 0,
              "--checkpoint-every must be >= 0 (0: only at evaluations), "
              f"got {self.checkpoint_every}")
        check(self.checkpoint_interval is None or self.checkpoint_interval > 0,
              f"--checkpoint-interval must be > 0 seconds, got {self.checkpoint_interval}")
        check(self.keep >= 0, f"--keep must be >= 0, got {self.keep}")
        check(self.threads is None or self.threads >= 1,
              f"--threads must be >= 1, got {self.threads}")
        check(self.encoding in ENCODINGS,
              f"--encoding must be utf-8 or bytes, got {self.encoding!r}")


@dataclass(frozen=True)
class SampleConfig:
    """How to sample (see sample.sample_chunks). Sampling functions take these values one by one;
    their defaults and the CLI's come from here, and check_sampling builds one to check them."""

    length: int = option(500, "Characters to generate.")
    temperature: float = option(0.8, "Sampling temperature, 0 for greedy; a list like 0.5,1.0 "
                                "compares several.", flag="--temp")
    top_k: int = option(0, "Sample among the k most likely (0: all).")
    top_p: float = option(1.0, "Nucleus sampling threshold.")
    seed: int | None = option(None, "Random seed for reproducible output.")

    def __post_init__(self):
        check(self.seed is None or (isinstance(self.seed, numbers.Integral)
                                    and not isinstance(self.seed, bool) and self.seed >= 0),
              f"--seed must be an integer >= 0, got {self.seed!r}")
        for name in ("length", "top_k", "temperature", "top_p"):
            value, integer = getattr(self, name), name in ("length", "top_k")
            ok = isinstance(value, numbers.Integral if integer else numbers.Real)
            check(ok and not isinstance(value, bool),
                  f"{name} must be {'an integer' if integer else 'a number'}, got {value!r}")
        check(self.length >= 0, f"--length must be >= 0, got {self.length}")
        check(self.temperature >= 0 and math.isfinite(self.temperature),
              f"--temp must be > 0, or 0 for greedy, got {self.temperature}")
        check(self.top_k >= 0, f"--top-k must be >= 0 (0: off), got {self.top_k}")
        check(0 < self.top_p <= 1, f"--top-p must be in (0, 1], got {self.top_p}")


def resume_config(saved: TrainConfig, given: dict) -> TrainConfig:
    """The options of a resumed run: the saved ones with `given` ({field: value}) over them, by
    each field's on_resume policy. A stopping option given replaces all the saved stopping
    options; a "must match" option that differs is refused, naming each difference. The CLI
    passes the options given on its command line, train() a whole TrainConfig."""
    policy = {f.name: f.metadata["on_resume"] for f in dataclasses.fields(TrainConfig)}
    flags = {f.name: flag(f) for f in dataclasses.fields(TrainConfig)}
    diff = [f"{flags[k]} {getattr(saved, k)} -> {v}" for k, v in given.items()
            if policy[k] == MUST_MATCH and getattr(saved, k) != v]
    check(not diff, "cannot resume with different options: " + "; ".join(diff)
          + " (use the original options, or start a new --checkpoint-dir)")
    if any(policy[k] == STOPPING for k in given):
        saved = dataclasses.replace(saved, **{k: None for k, p in policy.items() if p == STOPPING})
    return dataclasses.replace(saved, **given)


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
        # an option is named by its flag, as every other check here names it
        name = flag(f) if "help" in f.metadata else f"{type(cfg).__name__}.{f.name}"
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
