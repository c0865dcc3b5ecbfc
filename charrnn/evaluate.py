"""Loss of a model on a text, streamed in parallel rows with carried state and no gradients."""
from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass

import numpy as np

from . import records
from .corpus import load_corpus
from .data import Vocab, unknown_characters
from .errors import CharrnnError


@dataclass(frozen=True)
class EvalResult:
    """Mean loss over `chars` predicted characters."""

    nats_per_char: float
    bits_per_char: float
    perplexity: float
    chars: int

    def to_dict(self) -> dict:
        """The four numbers as a JSON-ready dict (what `charrnn eval --json` prints)."""
        return asdict(self)


# The shortest row evaluation reads: a row starts from a zero state, so rows of a few characters
# would be scored mostly cold (a 20,000-character text at --batch-size 100000 gave 5.23 bits/char
# against 4.55 in one row). More rows than this allows are capped.
MIN_ROW_CHARS = 100


def eval_rows(n: int, batch_size: int) -> int:
    """Rows that evaluation splits n ids (n - 1 predictions) into: batch_size, capped so that
    every row has at least MIN_ROW_CHARS predictions (and at least one row)."""
    return max(1, min(batch_size, (n - 1) // MIN_ROW_CHARS))


def evaluate_ids(model, ids: np.ndarray, batch_size: int = 50, seq_len: int = 100,
                 rows=None) -> EvalResult:
    """Mean cross-entropy of predicting ids[1:] from the characters before them.

    The n-1 predictions are split into `batch_size` contiguous rows (at most one per
    MIN_ROW_CHARS predictions, see eval_rows), each read from a zero state
    in windows of `seq_len` with the state carried between windows. The r < batch_size
    predictions left over continue the last row's state at batch 1, so every character counts
    once. With batch_size 1 the text is one unbroken sequence from a zero state, which is what
    PyTorch computes when run over the whole text.

    rows=(first, stop) evaluates only those rows (and the leftover when stop is the last row);
    `chars` is then the count of their predictions. Distributed validation splits the rows
    across ranks this way and adds up nats_per_char * chars.
    """
    for name, value in (("batch_size", batch_size), ("seq_len", seq_len)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
            raise CharrnnError(f"{name} must be an integer >= 1, got {value!r}")
    n = len(ids)
    if n < 2:
        raise CharrnnError("text has fewer than 2 characters: nothing to predict")
    n_rows = eval_rows(n, batch_size)
    R = (n - 1) // n_rows
    r0, r1 = rows if rows is not None else (0, n_rows)
    idx = np.arange(r0, r1)[:, None] * R + np.arange(R)[None, :]  # (rows, R)
    state = model.zero_state(r1 - r0)
    total = 0.0
    for w in range(0, R, seq_len):
        cols = idx[:, w: w + seq_len].T  # (T', rows)
        loss, state = model.forward(ids[cols], ids[cols + 1], state)
        total += loss * cols.size
    rest = (n - 1) - n_rows * R if r1 == n_rows else 0
    if rest:
        # Continue the last row (it ends exactly where the leftover begins) at batch 1.
        last = (state[0][:, -1:].copy(), state[1][:, -1:].copy())
        for w in range(n_rows * R, n - 1, seq_len):
            cols = np.arange(w, min(w + seq_len, n - 1))[:, None]  # (T', 1)
            loss, last = model.forward(ids[cols], ids[cols + 1], last)
            total += loss * cols.size
    count = (r1 - r0) * R + rest
    nats = total / count
    return EvalResult(nats, nats / math.log(2), perplexity(nats), count)


def perplexity(nats: float) -> float:
    """exp(nats), infinite past float range (an over-confident model can be that wrong)."""
    return math.exp(nats) if nats < 709.0 else math.inf


def evaluate(model, text: str, batch_size: int = 50, seq_len: int = 100,
             skip_unknown: bool = False) -> EvalResult:
    """Perplexity and bits per character of `model` on `text`.

    Parameters
    ----------
    model : Model
        A model with its vocabulary (e.g. from charrnn.load).
    text : str
    batch_size : int
        Parallel rows (1: the text as one unbroken sequence).
    seq_len : int
        Window length; affects speed only, not the result.
    skip_unknown : bool
        Drop characters the model has never seen instead of raising CharrnnError.

    A records model reads each non-empty line as one record from the initial state and predicts
    its characters and its end; `chars` is then the number of predictions (characters + ends).
    """
    if not isinstance(text, str):
        raise CharrnnError(f"text must be a str, got {type(text).__name__}; for a file use "
                           "charrnn.evaluate_file")
    if model.vocab is None:
        raise CharrnnError("the model has no vocabulary: load it with charrnn.load(...)")
    if model.vocab.end is not None:
        return _evaluate_records(model, Vocab.from_text(text), None, text, batch_size,
                                 skip_unknown, "text")
    ids = model.vocab.encode(text, skip_unknown=skip_unknown)
    return evaluate_ids(model, ids, batch_size, seq_len)


def _evaluate_records(model, vocab, ids, text, batch_size, skip_unknown, where, on_start=None):
    """evaluate()'s records path: the lines of a text (or of corpus ids in `vocab`)."""
    if ids is None:
        ids = vocab.encode(text)
    recs, _, _ = records.from_corpus(ids, vocab.chars, where, model.vocab, skip_unknown)
    if on_start is not None:
        on_start()
    return evaluate_records(model, recs, batch_size)


def evaluate_records(model, recs, batch_size: int = 50, part=(0, 1)) -> EvalResult:
    """Mean loss per prediction (every character and every end) of model on the records, each
    from the initial state; records of similar length are batched together.

    part=(k, n) scores only batches k, k + n, k + 2n, ... (`chars` is then their predictions):
    distributed validation deals the batches out to the ranks this way and adds up."""
    if len(recs) == 0:
        raise CharrnnError("no records to evaluate: every line is empty")
    order = np.argsort(recs.lengths, kind="stable")
    total, count = 0.0, 0
    starts = range(0, len(order), batch_size)
    for i in starts[part[0]::part[1]]:
        x, y = records.batch(recs, order[i:i + batch_size], model.vocab.end)
        loss, _ = model.forward(x, y)
        total += loss * model.predictions(y)
        count += model.predictions(y)
    if count == 0:  # a rank with no batch of its own
        return EvalResult(0.0, 0.0, 1.0, 0)
    nats = total / count
    return EvalResult(nats, nats / math.log(2), perplexity(nats), count)


class _Remapped:
    """ids of one vocabulary seen through a lookup table into another, window by window."""

    def __init__(self, ids, table):
        self.ids, self.table = ids, table

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, idx):
        return self.table[self.ids[idx]]


def evaluate_file(model, path, batch_size: int = 50, seq_len: int = 100,
                  skip_unknown: bool = False, on_start=None) -> EvalResult:
    """evaluate() for a file of any size: encoded once to the memory-mapped corpus cache (in the
    encoding the model was trained with), then read window by window. on_start() is called once
    the input has been checked, before the model runs."""
    corpus = load_corpus(path, model.vocab.encoding)
    if model.vocab.end is not None:
        return _evaluate_records(model, corpus.vocab, corpus.ids, None, batch_size, skip_unknown,
                                 path, on_start)
    missing = model.vocab.unknown("".join(corpus.vocab.chars))
    if missing and not skip_unknown:
        raise unknown_characters(missing, path)
    table = np.array([model.vocab.index.get(c, -1) for c in corpus.vocab.chars], np.int64)
    ids = corpus.ids
    if missing:  # dropping characters needs a filtered copy
        ids = np.asarray(table[ids])
        ids = ids[ids >= 0]
        table = np.arange(len(model.vocab), dtype=np.int64)
    if on_start is not None:
        on_start()
    return evaluate_ids(model, _Remapped(ids, table), batch_size, seq_len)
