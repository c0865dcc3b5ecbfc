"""--auto: a model sized for the time budget, from a short measurement of this machine's speed.

The rule: take the largest LSTM of CANDIDATES that can still read the training text at least
MIN_EPOCHS times in the budget, at the speed measured here (a few training steps of each, about a
second in all once the kernels are compiled), but not smaller than the model the defaults train
in that budget (default_hidden); when it has more than DROPOUT_RATIO parameters per
training character, regularise it hard: dropout DROPOUT and AdamW's decoupled weight decay
WEIGHT_DECAY (unless the run chose its own optimizer or decay). The numbers come from the budget
runs in the README ("Training on a budget"): at 300 s on tinyshakespeare (1.0 M training
characters), LSTM 2x256 (15 passes) beat 2x128 (50 passes, overfitting: training loss 1.32,
validation 1.58). At 1800 s (AMD Zen 5, 2026-12-04, --init charrnn, seed 0), LSTM 2x512 (3.3 M
parameters, ~20 passes) with dropout 0.3 was best at step 1,600 of 8,138 (1.462) and ended at
1.558; with 0.5 best at 5,800 of 8,893 (1.457), ending at 1.485; with 0.5 and AdamW decay 0.1
best at 8,200 of 9,491 (1.437), ending at 1.444: the decay is what kept the last half learning.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from . import strategy
from .cells import num_params
from .config import EVAL_EVERY, LR, ModelConfig

CANDIDATES = [("lstm", 2, 128), ("lstm", 2, 256), ("lstm", 2, 384), ("lstm", 2, 512)]
MIN_EPOCHS = 12
DROPOUT_RATIO, DROPOUT, WEIGHT_DECAY = 2.0, 0.5, 0.1
# A --time-limit run without --dropout (and --auto's smaller models) takes PASSES_DROPOUT when
# the budget reads the training text at least DROPOUT_FROM_PASSES times (dropout_for).
DROPOUT_FROM_PASSES, PASSES_DROPOUT = 5.0, 0.2
# A --time-limit run that leaves --hidden to the defaults trains SMALL_HIDDEN units when the
# default size would train on fewer than SMALL_BELOW_CHARS characters in it, LARGE_HIDDEN when
# on at least LARGE_FROM_CHARS (default_hidden), unless LARGE_HIDDEN is large for its text.
SMALL_HIDDEN, SMALL_BELOW_CHARS = 192, 2_000_000
LARGE_HIDDEN, LARGE_FROM_CHARS = 320, 5_000_000
# A --time-limit run that leaves --batch-size to the defaults trains SMALL_BATCH rows when this
# machine trains them at least SAME_SPEED times as fast as config.BATCH_SIZE rows (batch_for),
# each measured BATCH_ROUNDS times, alternating, the best kept.
SMALL_BATCH, SAME_SPEED, BATCH_ROUNDS = 32, 0.85, 3
# A fresh text-mode --time-limit run of the defaults' model without --lr takes the rate of the
# first (budget seconds, rate) of BUDGET_LR whose budget is at least its --time-limit; longer
# budgets config.LR (lr_for).
BUDGET_LR = ((60.0, 5e-3),)
# Validation in a --time-limit run takes near VAL_SHARE of it: the text (val_max_chars) is at
# most VAL_MAX_CHARS held-out characters, what keeps that share, at least VAL_MIN_CHARS; where
# even that takes more (a short held-out text or the floor), validations come less often
# (eval_every). VAL_COST: a validated character's time over a trained one's: 0.38-0.40 for LSTM
# 2x128 to 2x512 at batch 50 x seq-len 50, AMD Zen 5, 2026-12-05; 0.44 for 2x192 at 32 x 50,
# Zen 4, 2026-12-07, where validating every 200 steps took 13% of a 1-minute run.
VAL_MAX_CHARS, VAL_MIN_CHARS, VAL_SHARE, VAL_COST = 1_000_000, 200_000, 0.05, 0.4


@dataclass(frozen=True)
class Choice:
    """What --auto chose, and why (printed, and stored with the run's options)."""

    cell: str
    layers: int
    hidden: int
    dropout: float
    weight_decay: float  # AdamW's decoupled decay for a model large for its text (else 0)
    chars_per_second: float
    epochs: float  # passes over the training text the budget allows at that speed
    reason: str


def measure(cell, layers, hidden, vocab_size, batch_size, seq_len, threads=None) -> float:
    """Training characters per second of one model on this machine (random data), with the step
    strategy it would train with here (strategy.choose: measured once, then cached)."""
    cfg = ModelConfig(vocab_size, cell, hidden, layers)
    return strategy.measure(cfg, batch_size, seq_len, threads,
                            strategy.choose(cfg, batch_size, seq_len, threads).strategy)


def choose(train_chars: int, budget_seconds: float, vocab_size: int, batch_size: int,
           seq_len: int, threads=None, speed=None, ranks: int = 1) -> Choice:
    """The largest candidate that reads the text at least MIN_EPOCHS times in the budget
    (the smallest if none does), but never smaller than the model the defaults train in this
    budget (ModelConfig's, at hidden_for's size): at 60 s on a 2-core Zen 4 the rule's
    LSTM 2x128 (dropout 0.2) was best at 1.5781 (1.5726-1.5807, 3 seeds), the defaults' 2x192
    at 1.5254 (1.5219-1.5263). speed(cell, layers, hidden, ...) -> chars/s; default: measure
    (looked up at call time, so tests can script the speeds). ranks: an MPI job's, each
    training batch_size rows (its share) at the speed rank 0 measured, side by side: the
    Allreduce is left out, so across slow links the choice can be a size too large."""
    speed = speed or measure
    measured = {}

    def cps_of(cell, layers, hidden):  # each model measured once
        if (cell, layers, hidden) not in measured:
            measured[cell, layers, hidden] = ranks * speed(cell, layers, hidden, vocab_size,
                                                           batch_size, seq_len, threads)
        return measured[cell, layers, hidden]
    best = None
    for cell, layers, hidden in CANDIDATES:
        epochs = planned_passes(budget_seconds, cps_of(cell, layers, hidden), train_chars)
        if best is None or epochs >= MIN_EPOCHS:
            best = (cell, layers, hidden)
        if epochs < MIN_EPOCHS:
            break  # larger ones are slower still
    cell, layers, hidden = best
    why = f"the largest with at least {MIN_EPOCHS}"
    floor = hidden_for(planned_chars(budget_seconds, cps_of(  # the defaults' model
        ModelConfig.cell, ModelConfig.layers, ModelConfig.hidden)), train_chars, vocab_size)
    if hidden < floor:  # never smaller than that
        why = (f"the defaults' size for this budget: {layers}x{hidden}, the largest with at "
               f"least {MIN_EPOCHS}, is smaller")
        cell, layers, hidden = ModelConfig.cell, ModelConfig.layers, floor
    cps = cps_of(cell, layers, hidden)
    epochs = planned_passes(budget_seconds, cps, train_chars)
    params = num_params(ModelConfig(vocab_size, cell, hidden, layers))
    large = is_large(params, train_chars)
    dropout = DROPOUT if large else dropout_for(epochs)
    reason = (f"{cell} {layers}x{hidden} trains {cps:,.0f} chars/s here, {epochs:.0f} passes over "
              f"the {train_chars:,} training characters in {budget_seconds:g} s ({why})"
              + (f"; {large_reason(params, train_chars)}" if large
                 else f"; dropout {dropout}: {epochs:.0f} passes" if dropout else ""))
    return Choice(cell, layers, hidden, dropout, WEIGHT_DECAY if large else 0.0, cps, epochs,
                  reason)


def is_large(params: int, train_chars: int) -> bool:
    """A model large for its text (more than DROPOUT_RATIO parameters per training character):
    --auto's and a --time-limit run's get dropout DROPOUT and AdamW's WEIGHT_DECAY. Besides the
    30-minute runs above: the defaults (LSTM 2x256, 0.8 M parameters) on the first 100 KB of
    tinyshakespeare (90,000 training characters), 60 s, seeds 0-2, were best at 1.5390, 1.5344,
    1.5458 with dropout 0.2 and Adam, at 1.5163, 1.5257, 1.5124 so regularised (README)."""
    return params > DROPOUT_RATIO * train_chars


def large_reason(params: int, train_chars: int) -> str:
    """What a large model (is_large) gets and why, as --auto and a --time-limit run print it."""
    return (f"dropout {DROPOUT} and AdamW weight decay {WEIGHT_DECAY}: {params:,} parameters "
            f"for {train_chars:,} training characters")


def dropout_for(passes: float) -> float:
    """The dropout of a --time-limit run without --dropout that will read its training text
    `passes` times (at least DROPOUT_FROM_PASSES: PASSES_DROPOUT, else none).

    Why: LSTM 2x256 at the defaults (--init charrnn) overfits tinyshakespeare after about 4
    passes (validation 1.52 at step 1,600, then rising to 1.56 at the end of 300 s while the
    training loss fell to 1.03), and dropout 0.2 cost 0.035 at 60 s, about 2 passes (README,
    "Training on a budget"). The line was 4 passes until a 2-core AMD Zen 5 (2026-12-07,
    bench/batch_window.py, 3 seeds, bench/results/dropout1min-2026-12-07-zen5.md) planned just
    over 4 for a 1-minute 2x256 run and trained 3.5-3.7 M characters (3.5-3.7 passes): without
    dropout 1.4483 (1.4476-1.4598), with 0.2 1.4712 (1.4641-1.4716), worse on every seed. At 11
    passes 0.2 is the better; between 4 and 11 no pair is measured, and 5 leaves the probe's
    margin (it read this run's speed 10-15% high)."""
    return PASSES_DROPOUT if passes >= DROPOUT_FROM_PASSES else 0.0


def default_hidden(chars: float) -> int:
    """The hidden size of a --time-limit run that did not give --hidden, when the default size
    would train on `chars` characters in its budget: SMALL_HIDDEN below SMALL_BELOW_CHARS,
    LARGE_HIDDEN from LARGE_FROM_CHARS, else ModelConfig.hidden (hidden_for keeps that where
    LARGE_HIDDEN would be large for its text: unmeasured there).

    Why: the best size grows with the characters a budget can train. A minute of 2x256 is too
    few steps for its size: on a 2-core AMD Zen 4 (2026-12-06, tinyshakespeare, 3 seeds each)
    LSTM 2x256 at the defaults trained on 1.6 M characters in 60 s and was best at 1.5436
    (1.5435-1.5477); 2x192, 2.7 M characters in the same minute, at 1.5254 (1.5219-1.5263),
    better on every seed. In 120 s 2x256 trained on 3.0 M and reached 1.4718 and 1.4737 (2
    seeds), 2x192 (with the passes' dropout 0.2) 1.4991 (1.4901-1.5077): the lower line lies
    between 1.6 M and 3.0 M. Five minutes are enough for more: on the same Zen 4 (2026-12-07,
    bench/budget.py, 3 seeds) 2x256 trained on 8.3 M characters in 300 s and was best at
    1.4471 (1.4465-1.4478), 2x320 on 6.2 M at 1.4420 (1.4381-1.4439), better on every seed.
    Both lines keep a margin from what was measured, since the speed probe (a quarter of a
    second) can read 20% slow (README, "Training on a budget")."""
    if chars < SMALL_BELOW_CHARS:
        return SMALL_HIDDEN
    return LARGE_HIDDEN if chars >= LARGE_FROM_CHARS else ModelConfig.hidden


def hidden_for(chars: float, train_chars: int, vocab_size: int,
                    cell: str = ModelConfig.cell, layers: int = ModelConfig.layers) -> int:
    """The hidden size of a --time-limit run (and --auto's floor) that did not give --hidden:
    default_hidden(chars), but ModelConfig.hidden where that is larger and would be large for
    the text (is_large): the larger size was measured on a text it is not large for."""
    hidden = default_hidden(chars)
    if hidden > ModelConfig.hidden and is_large(
            num_params(ModelConfig(vocab_size, cell, hidden, layers)), train_chars):
        return ModelConfig.hidden
    return hidden


@dataclass(frozen=True)
class BatchChoice:
    """The rows of a --time-limit run that did not give --batch-size, and the speeds behind it."""

    batch_size: int
    chars_per_second: float  # at batch_size
    reason: str


def batch_for(speed) -> BatchChoice:
    """SMALL_BATCH when speed(SMALL_BATCH) >= SAME_SPEED x speed(BATCH_SIZE), else BATCH_SIZE;
    speed(rows) -> chars/s, each measured BATCH_ROUNDS times, alternating, the best kept (one
    quarter-second probe read 32 rows at 0.89 of 50's speed where longer ones read 1.04-1.07).

    Why: at equal characters per second, fewer rows are more steps. On a 2-core AMD Zen 4
    (2026-12-07, tinyshakespeare, the defaults, seeds 0-2, bench/batch_window.py) LSTM 2x256
    trained 32 and 50 rows at the same speed; in 300 s, at 32 x 50 it made 4,394 steps to 2,889
    and was best at 1.4461 (1.4456-1.4482), at 50 x 50 at 1.4470 (1.4463-1.4530); 100 x 50 (1.13x
    the characters, 1,673 steps) 1.4533, 50 x 25 1.4589. In 60 s the defaults' 2x192 trained 32
    rows at 0.87 of 50's characters (2.29 M against 2.63 M) and was still better on every seed:
    1.5198 (1.5085-1.5224) against 1.5301 (1.5233-1.5345): SAME_SPEED sits below that. Where a
    BLAS is slower still on thin products, 50 rows stay (unmeasured there)."""
    from .config import BATCH_SIZE
    best = dict.fromkeys((BATCH_SIZE, SMALL_BATCH), 0.0)
    for _ in range(BATCH_ROUNDS):  # alternating
        best = {rows: max(cps, speed(rows)) for rows, cps in best.items()}
    small, default = best[SMALL_BATCH], best[BATCH_SIZE]
    rows = SMALL_BATCH if small >= SAME_SPEED * default else BATCH_SIZE
    reason = (f"{SMALL_BATCH} rows train {small:,.0f} chars/s here, {BATCH_SIZE} rows "
              f"{default:,.0f}: " + ("as fast, and more steps for the same characters"
                                     if rows == SMALL_BATCH else
                                     f"slower than {SAME_SPEED:g} of {BATCH_SIZE}'s speed"))
    return BatchChoice(rows, best[rows], reason)


def lr_for(time_limit: float) -> float:
    """The learning rate of a --time-limit run of the defaults' model: BUDGET_LR's for the
    shortest of its budgets that is at least time_limit, else config.LR.

    Why: with the rate held for half the budget and then decayed to zero, a minute's run gains
    more from the larger early steps than it loses to their noise; five minutes' does not. On a
    2-core AMD Zen 4 (2026-12-07, tinyshakespeare, the defaults' 2x192 at 32 x 50, seeds 0-2,
    bench/batch_window.py, bench/results/lr_budget-2026-12-07-zen4.md), 60 s: 3e-3 1.5297
    (1.5184-1.5337), 5e-3 1.4874 (1.4830-1.4915), 7e-3 1.4857 (1.4785-1.4908), both better on
    every seed; 5e-3, the lower of the two, is taken. At 300 s (2x256, seed 0) 5e-3 reached
    1.4526 against 3e-3's 1.4476, as in the older runs of README's budget section (5e-3 worse
    on every seed at 5 minutes). Budgets between are not measured: they keep config.LR."""
    return next((lr for seconds, lr in BUDGET_LR if time_limit <= seconds), LR)


def planned_chars(budget_seconds: float, chars_per_second: float) -> float:
    """The characters a run of this speed trains on in the budget (90% of it, as choose()
    counts: validation and checkpoints take the rest)."""
    return chars_per_second * 0.9 * budget_seconds


def val_max_chars(config) -> int:
    """The held-out characters a run validates on when --val-max-chars is not given: VAL_MAX_CHARS;
    in a --time-limit run, what keeps validating near VAL_SHARE of the run (at least VAL_MIN_CHARS).

    Why: a validation costs its characters at VAL_COST of a trained character's time, and comes
    every eval_every steps of batch x seq-len characters, so its share of the run depends on the
    held-out size alone, not on the speed. 300 s on 50 MB (LSTM 2x256, 5 M held-out characters,
    capped at 1,000,000) spent about half the budget validating: 18 validations of ~8 s.
    config's batch_size resolved (train() resolves it first: _budget_batch)."""
    if config.val_max_chars is not None:
        return config.val_max_chars
    if config.time_limit is None:
        return VAL_MAX_CHARS
    steps = config.eval_every or EVAL_EVERY
    between = config.batch_size * config.seq_len * steps  # trained chars per validation
    return min(VAL_MAX_CHARS, max(VAL_MIN_CHARS,
                                  int(between * VAL_SHARE / (1 - VAL_SHARE) / VAL_COST)))


def eval_every(config, val_chars: int) -> int:
    """Steps between validations when --eval-every is not given: EVAL_EVERY, or in a text-mode
    --time-limit run the fewer validations that keep them near VAL_SHARE of it, when validating
    val_chars held-out characters every EVAL_EVERY steps would take more (a held-out text
    shorter than val_max_chars can cut, or that size's floor, VAL_MIN_CHARS). config's
    batch_size resolved. Why: tinyshakespeare's 111,539 held-out characters every 200 steps of
    32 x 50 took 13% of a 1-minute run (7 validations, 8 of its 60 s)."""
    if config.eval_every is not None:
        return config.eval_every
    if config.time_limit is None or config.records:
        return EVAL_EVERY
    per_step = config.batch_size * config.seq_len  # trained characters
    need = val_chars * VAL_COST * (1 - VAL_SHARE) / VAL_SHARE / per_step
    return max(EVAL_EVERY, math.ceil(need))


def planned_passes(budget_seconds: float, chars_per_second: float, train_chars: int) -> float:
    """How many times a run of this speed reads its training text in the budget (as choose()
    counts: 90% of the budget trains, validation and checkpoints take the rest)."""
    return planned_chars(budget_seconds, chars_per_second) / train_chars
