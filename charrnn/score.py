"""How likely a model finds given text: per line (`score`) and per character (`score_chars`).

A line is scored as the model meets it at the start of a line: from the zero state after the
line start (a records model's end symbol, which begins every record; a text model's newline),
predicting each character of the line and then its end (the end symbol; a text model's newline,
if its vocabulary has one). So a record's score is what `charrnn eval` counts for it, and a text
line's is what `eval` counts for the text "\\n" + line + "\\n" read as one row.

Lines are scored many at a time: sorted by length, padded (padding is not predicted) and run
through the model in windows of WINDOW steps with the state carried.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import SampleConfig as S
from .data import IGNORE, unknown_characters
from .errors import CharrnnError
from .sample import prime_ids, sample_many

LINES_PER_BATCH = 64  # rows of one forward pass
WINDOW = 256          # time steps of one forward pass (longer lines carry the state across)
TOP = 5               # guesses kept per position by score_chars


@dataclass(frozen=True)
class LineScores:
    """Per-line scores, in the order of the lines given.

    nats[i] is the summed surprisal of line i's predictions (its characters and its end), chars[i]
    the number of those predictions; bits_per_char = nats / chars / ln 2.
    """

    lines: list
    nats: np.ndarray           # (n,) float64
    chars: np.ndarray          # (n,) int64
    bits_per_char: np.ndarray  # (n,) float64

    def order(self) -> np.ndarray:
        """Line indices from most to least likely (by bits per character)."""
        return np.argsort(self.bits_per_char, kind="stable")


@dataclass(frozen=True)
class CharScores:
    """Per-position scores of one line: surprisal of each prediction and the model's guesses.

    targets[t] is the character predicted at position t (the line's characters, then its end:
    "" for a records model's end symbol, "\\n" for a text line's newline); nats[t] its surprisal;
    top[t] the TOP most likely characters there and top_p[t] their probabilities.
    """

    targets: list
    nats: np.ndarray   # (n,)
    top: list          # n lists of TOP characters
    top_p: np.ndarray  # (n, TOP)


def _encode_lines(model, lines, skip_unknown: bool):
    """Each line as (inputs, targets) id arrays: the line start, then the line; the line, then
    its end. Unknown characters are an error naming them, or dropped with skip_unknown."""
    vocab = model.vocab
    if vocab is None:
        raise CharrnnError("the model has no vocabulary: load it with charrnn.load(...)")
    if isinstance(lines, str) or not all(isinstance(s, str) for s in lines):
        raise CharrnnError("lines must be a list of str (one per line)")
    lines = [vocab.from_user(s) for s in lines]
    missing = vocab.unknown("".join(lines))
    if missing and not skip_unknown:
        raise unknown_characters(missing)
    if vocab.end is not None:
        start, end = vocab.end, vocab.end
    else:
        start = vocab.index.get("\n", 0)
        end = vocab.index.get("\n")  # a vocabulary without newlines predicts no line end
    out = []
    for s in lines:
        ids = [int(i) for i in vocab.encode(s, skip_unknown=True)]
        x = [start] + ids
        y = ids + ([end] if end is not None else [])
        if len(y) < len(x):
            x = x[:len(y)]
        out.append((np.array(x, np.int64), np.array(y, np.int64)))
    return out


def _surprisal(model, pairs) -> list[np.ndarray]:
    """For each (x, y) pair, the surprisal (nats) of every target. Rows of similar length go
    together, LINES_PER_BATCH at a time."""
    order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][1]))
    result = [np.zeros(0)] * len(pairs)
    for b0 in range(0, len(order), LINES_PER_BATCH):
        rows = order[b0: b0 + LINES_PER_BATCH]
        T = max(len(pairs[i][1]) for i in rows)
        if T == 0:
            for i in rows:
                result[i] = np.zeros(0)
            continue
        x = np.zeros((T, len(rows)), np.int32)
        y = np.full((T, len(rows)), IGNORE, np.int64)
        for j, i in enumerate(rows):
            n = len(pairs[i][1])
            x[:n, j], y[:n, j] = pairs[i][0][:n], pairs[i][1]
        logp = log_probs(model, x)  # (T, B, V)
        nats = -np.take_along_axis(logp, np.maximum(y, 0)[:, :, None], 2)[:, :, 0]  # (T, B)
        for j, i in enumerate(rows):
            result[i] = nats[: len(pairs[i][1]), j].astype(np.float64)
    return result


def log_probs(model, x, window: int = WINDOW, acts=None) -> np.ndarray:
    """log softmax of the logits (T, B, V) for inputs x (T, B) from the zero state, in float64,
    `window` steps at a time with the state carried. With acts, an (L, T, B, H) array, also
    every unit's activation at every step (Model.activations; what `charrnn show` colours by)."""
    T, B = x.shape
    state = model.zero_state(B)
    out = np.empty((T, B, model.cfg.vocab_size))
    for t0 in range(0, T, window):
        logits, state = model.forward(x[t0: t0 + window], None, state)
        z = logits.astype(np.float64)
        z -= z.max(axis=2, keepdims=True)
        out[t0: t0 + window] = z - np.log(np.exp(z).sum(axis=2, keepdims=True))
        if acts is not None:
            acts[:, t0: t0 + window] = model.activations()
    return out


def score(model, lines, skip_unknown: bool = False) -> LineScores:
    """Score each line (see the module docstring).

    Parameters
    ----------
    model : Model (or a checkpoint path, through charrnn.score)
    lines : list of str
        The lines, without their newlines. An empty line scores its end alone.
    skip_unknown : bool
        Drop characters the model has never seen instead of raising CharrnnError.

    Returns
    -------
    LineScores
    """
    if isinstance(lines, str):
        raise CharrnnError("lines must be a list of str (one per line), got one str")
    lines = list(lines)
    pairs = _encode_lines(model, lines, skip_unknown)
    per_char = _surprisal(model, pairs)
    nats = np.array([p.sum() for p in per_char], np.float64)
    chars = np.array([len(p) for p in per_char], np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        bpc = np.where(chars > 0, nats / np.maximum(chars, 1) / math.log(2), np.nan)
    return LineScores(lines, nats, chars, bpc)


def score_chars(model, line: str, skip_unknown: bool = False) -> CharScores:
    """Per-character surprisal of one line and the model's TOP guesses at each position."""
    if not isinstance(line, str):
        raise CharrnnError(f"line must be a str, got {type(line).__name__}")
    (x, y), = _encode_lines(model, [line], skip_unknown)
    if len(y) == 0:
        return CharScores([], np.zeros(0), [], np.zeros((0, TOP)))
    logp = log_probs(model, x[:, None].astype(np.int32))[:, 0]  # (T, V)
    k = min(TOP, logp.shape[1])
    top = np.argsort(-logp, axis=1, kind="stable")[:, :k]  # (T, k)
    chars = model.vocab.chars
    return CharScores([chars[i] for i in y], -logp[np.arange(len(y)), y],
                      [[chars[i] for i in row] for row in top],
                      np.exp(np.take_along_axis(logp, top, 1)))


def continuation_nats(model, prime: str | None, texts) -> np.ndarray:
    """Mean surprisal (nats per character) of each text after its prime, as the model reads it
    from the start of a line (a records model: of a record, its end symbol included)."""
    vocab = model.vocab
    if vocab.end is not None:
        r = score(model, list(texts))
        return r.nats / np.maximum(r.chars, 1)
    start = vocab.index.get("\n", 0)
    skip = len(vocab.from_user(prime)) if prime else 0
    pairs = []
    for t in texts:
        ids = vocab.encode(t).astype(np.int64)
        pairs.append((np.concatenate([[start], ids[:-1]]), ids))
    per_char = _surprisal(model, pairs)
    return np.array([p[skip:].mean() if len(p) > skip else 0.0 for p in per_char])


def best_of(model, k: int, length: int = S.length, temperature: float = S.temperature,
            prime: str | None = None, seed: int | None = None, top_k: int = S.top_k,
            top_p: float = S.top_p, threads: int | None = None, stop=(),
            stop_exclude: bool = False) -> tuple[str, float, int]:
    """The most likely of k samples generated together (seeds seed .. seed + k - 1): the one
    with the lowest mean surprisal per character of its continuation under the model itself.
    Returns (text, its mean nats per character, its index among the k)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise CharrnnError(f"--best-of must be an integer >= 1, got {k!r}")
    texts = sample_many(model, k, length, temperature, prime, seed, top_k, top_p, threads,
                        stop, stop_exclude)
    nats = continuation_nats(model, prime, texts)
    i = int(np.argmin(nats))
    return texts[i], float(nats[i]), i


def beam(model, k: int, length: int = S.length, prime: str | None = None) -> list[tuple[str, float]]:
    """Beam search of width k: the k most likely continuations of the prime, with their total
    log-probabilities (nats, natural log), most likely first.

    A records model searches whole records: a beam ends when it predicts the end symbol (its
    probability is the record's, end included), and the search stops once no open beam can still
    beat the k-th finished one (or after `length` characters). A text model returns the k most
    likely continuations of exactly `length` characters. Width 1 is the greedy output.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise CharrnnError(f"--beam must be an integer >= 1, got {k!r}")
    S(length=length)
    vocab = model.vocab
    ids = prime_ids(vocab, prime)
    head = vocab.from_user(prime) if prime else ""
    end = vocab.end
    state = model.zero_state(1)
    if len(ids) > 1:  # read the prime up to its last character, which is the first input
        _, state = model.forward(np.asarray(ids[:-1], np.int32)[:, None], None, state)
    beams = [([], 0.0)]  # (generated ids, log-probability)
    x = np.array([ids[-1]], np.int32)
    finished = []
    for _ in range(length):
        logits, state = model.forward(x[None, :], None, state)  # (1, n, V)
        z = logits[0].astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))  # (n, V)
        total = np.array([b[1] for b in beams])[:, None] + logp  # (n, V)
        flat = np.argsort(-total, axis=None, kind="stable")[: 2 * k]
        nxt, rows = [], []
        for f in flat:
            i, v = divmod(int(f), total.shape[1])
            cand = (beams[i][0] + [v], float(total[i, v]))
            if end is not None and v == end:
                finished.append((cand[0][:-1], cand[1]))
            elif len(nxt) < k:
                nxt.append(cand)
                rows.append(i)
        finished.sort(key=lambda b: -b[1])
        if not nxt or (len(finished) >= k and finished[k - 1][1] >= nxt[0][1]):
            break  # scores only fall: no open beam can still enter the top k
        beams = nxt
        state = tuple(s[:, rows] for s in state)
        x = np.array([b[0][-1] for b in beams], np.int32)
    results = finished if end is not None else []
    if end is None or len(results) < k:
        results = results + [b for b in beams if b not in results]
    results.sort(key=lambda b: -b[1])
    return [(head + vocab.decode(b[0]), b[1]) for b in results[:k]]
