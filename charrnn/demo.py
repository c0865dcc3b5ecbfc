"""The cs231n "hello" example, live: a vanilla RNN with 3 hidden units learns to spell a word.

The vocabulary is the word's distinct characters in order of appearance (h, e, l, o). For each step
of the word minus its last letter we show the one-hot input, the hidden state, the output scores
and the predicted next character, before and after training; then samples at a few temperatures.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import ModelConfig
from .data import Vocab, one_hot
from .errors import CharrnnError
from .model import Model
from .optim import Optimizer


@dataclass(frozen=True)
class DemoStep:
    """One time step: what went in, the state, the scores and the guess."""

    input: str
    one_hot: np.ndarray  # (V,)
    hidden: np.ndarray   # (H,)
    scores: np.ndarray   # (V,) logits
    predicted: str
    target: str


def walk(model: Model, word: str) -> list[DemoStep]:
    """Run the word (minus its last letter) through the model one step at a time."""
    v = model.vocab
    ids = v.encode(word).astype(np.int64)
    x = ids[:-1, None]  # (T, 1)
    logits = model.logits(x)[:, 0]  # (T, V)
    hidden = model.hidden_states()[0, :, 0]  # (T, H): the states the logits came from
    return [DemoStep(word[t], one_hot(ids[t], len(v), np.float64), hidden[t].copy(),
                     logits[t].copy(), v.chars[int(np.argmax(logits[t]))], word[t + 1])
            for t in range(len(word) - 1)]


def train_word(model: Model, word: str, steps: int, lr: float = 0.05) -> list[float]:
    """Adam on the one sequence word[:-1] -> word[1:] from a zero state; returns the losses."""
    ids = model.vocab.encode(word).astype(np.int64)
    x, y = ids[:-1, None], ids[1:, None]
    opt = Optimizer("adam", model.params.size, dtype=model.dtype)
    losses = []
    for _ in range(steps):
        loss, _ = model.loss_and_grad(x, y, model.zero_state(1))
        opt.step(model.params, model.grads, lr)
        losses.append(loss)
    return losses


def hello(word: str = "hello", hidden: int = 3, steps: int = 300, seed: int = 0,
          temperatures=(0.0, 0.5, 1.0)) -> dict:
    """Everything the demo shows, as data: steps before/after training, losses, samples."""
    if len(word) < 2:
        raise CharrnnError("--word needs at least 2 characters")
    if hidden < 1 or steps < 0:
        raise CharrnnError("--hidden must be >= 1 and --steps >= 0")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise CharrnnError(f"--seed must be an integer >= 0, got {seed!r}")
    vocab = Vocab(list(dict.fromkeys(word)))  # order of first appearance: h, e, l, o
    model = Model(ModelConfig(len(vocab), "rnn", hidden, 1), dtype=np.float64, seed=seed,
                  vocab=vocab)
    before = walk(model, word)
    losses = train_word(model, word, steps)
    after = walk(model, word)
    samples = {t: model.sample(len(word) - 1, t, prime=word[0], seed=seed) for t in temperatures}
    return {"vocab": vocab.chars, "model": model, "before": before, "after": after,
            "losses": losses, "samples": samples}


def format_steps(steps: list[DemoStep], vocab: list[str]) -> str:
    """A table: t, input, one-hot, hidden state, scores per character, prediction."""
    names = " ".join(f"{c!r:>6}" for c in vocab)
    head = f" t  in  one-hot    hidden state              scores {names}   next"
    rows = [head]
    for t, s in enumerate(steps):
        oh = "".join(str(int(v)) for v in s.one_hot)
        hs = " ".join(f"{v:+.3f}" for v in s.hidden)
        sc = " ".join(f"{v:+6.2f}" for v in s.scores)
        mark = "ok" if s.predicted == s.target else f"want {s.target!r}"
        rows.append(f"{t:2d}  {s.input!r:4} {oh:10} {hs:25} {' ' * 7}{sc}   {s.predicted!r} {mark}")
    return "\n".join(rows)
