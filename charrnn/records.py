"""Records mode: one thing per line (names, titles, words), each line an independent example.

Every record is read from the initial (zero) state. Its inputs are END followed by its characters
and its targets are its characters followed by END, so the model learns how records begin and when
they end; END (data.END) is one extra vocabulary entry that no text contains.

A batch holds B whole records of similar length: the records are sorted by length (ties in a
random order that changes every epoch), cut into groups of B, and the groups are visited in a
random order. Each group is padded at its end to its longest record; padding is never a target
(data.IGNORE), and because the network reads left to right, padding after a record cannot change
its predictions. The order is a function of (seed, epoch), so a resumed run sees the same batches.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from .corpus import load_corpus
from .data import END, IGNORE, Vocab, unknown_characters
from .errors import CharrnnError

MAX_RECORD = 1000  # characters per record; a longer line is almost surely not a record


@dataclass(frozen=True)
class Records:
    """Records as one id stream without separators, and where each one starts."""

    ids: np.ndarray     # (N,) the records' character ids, back to back
    starts: np.ndarray  # (R + 1,) record r is ids[starts[r]:starts[r + 1]]

    def __len__(self) -> int:
        return len(self.starts) - 1

    @property
    def lengths(self) -> np.ndarray:
        """(R,) characters per record."""
        return np.diff(self.starts)

    @property
    def predictions(self) -> int:
        """Characters plus one end per record: what a pass over them predicts."""
        return int(self.starts[-1]) + len(self)

    def take(self, index) -> Records:
        """The records at `index` (an int array), in that order."""
        lens = self.lengths[index]
        starts = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        parts = [self.ids[self.starts[r]:self.starts[r + 1]] for r in index]
        ids = np.concatenate(parts) if parts else np.zeros(0, self.ids.dtype)
        return Records(ids, starts)

    def texts(self, vocab: Vocab) -> list[str]:
        """Each record as a string."""
        return [vocab.decode(self.ids[a:b]) for a, b in zip(self.starts[:-1], self.starts[1:])]


def from_corpus(ids: np.ndarray, chars: list[str], path, vocab: Vocab | None = None,
                skip_unknown: bool = False):
    """Split a corpus's ids (in the vocabulary `chars`) into records, one per non-empty line.

    A "\\r" before a line's "\\n" is not part of the record (CRLF files). With vocab=None the
    records' own vocabulary is built (END first, then every character they use) and returned
    with them; otherwise ids are mapped into `vocab` (unknown characters raise CharrnnError, or
    are dropped with skip_unknown). Returns (Records, Vocab, skipped empty lines).
    """
    ids = np.asarray(ids)
    n = len(ids)
    index = {c: i for i, c in enumerate(chars)}
    nl, cr = index.get("\n"), index.get("\r")
    breaks = np.flatnonzero(ids == nl) if nl is not None else np.zeros(0, np.int64)
    starts = np.concatenate([[0], breaks + 1]).astype(np.int64)
    stops = np.concatenate([breaks, [n]]).astype(np.int64)
    if cr is not None:
        crlf = (stops > starts) & (ids[np.maximum(stops - 1, 0)] == cr)
        stops -= crlf
    lens = stops - starts
    long = np.flatnonzero(lens > MAX_RECORD)
    if long.size:
        raise CharrnnError(f"{path}: line {long[0] + 1:,} has {lens[long[0]]:,} characters; a "
                           f"record is at most {MAX_RECORD:,} (records mode is for one short "
                           "thing per line; train without --records for running text)")
    keep = lens > 0
    skipped = int(np.count_nonzero(~keep)) - (1 if n and ids[-1] == nl else 0)
    starts, stops = starts[keep], stops[keep]
    # +1 at each record's start, -1 after its end: the running sum is 1 inside a record. Records
    # never overlap, so int8 holds it (one byte per character of a large corpus, not eight).
    inside = np.zeros(n + 1, np.int8)
    inside[starts] += 1
    inside[stops] -= 1
    raw = ids[np.cumsum(inside[:n], dtype=np.int8) > 0]
    table, vocab = _mapping(raw, chars, vocab, path, skip_unknown)
    mapped = table[raw]
    lens = stops - starts
    if np.any(mapped < 0):  # skip_unknown: drop those characters, then records left empty
        owner = np.repeat(np.arange(len(lens)), lens)
        lens = np.bincount(owner[mapped >= 0], minlength=len(lens))
        mapped, lens = mapped[mapped >= 0], lens[lens > 0]
    starts = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    return Records(mapped.astype(vocab.dtype), starts), vocab, max(skipped, 0)


def _mapping(raw, chars, vocab, path, skip_unknown):
    """A table from corpus ids to record-vocabulary ids (-1: unknown), and that vocabulary."""
    used = np.flatnonzero(np.bincount(raw, minlength=len(chars))) if raw.size else []
    if vocab is None:
        vocab = Vocab([END] + [chars[i] for i in used])
    table = np.full(len(chars), -1, np.int64)
    for i in used:
        table[i] = vocab.index.get(chars[i], -1)
    missing = [chars[i] for i in used if table[i] < 0]
    if missing and not skip_unknown:
        raise unknown_characters(missing, path)
    return table, vocab


def known_records(path, encoding: str = "utf-8") -> set[str]:
    """Every record (non-empty line) of a corpus file, as strings: what --novel compares with."""
    if not os.path.isfile(path):
        raise CharrnnError(f"--novel compares samples with the training corpus {path}, which is "
                           "not there; run it where the corpus is")
    corpus = load_corpus(path, encoding)
    recs, vocab, _ = from_corpus(corpus.ids, corpus.vocab.chars, path)
    return set(recs.texts(vocab))


def split(recs: Records, fraction: float, max_chars: int, seed: int):
    """(training, validation): a seeded random `fraction` of the records validates, at most
    max_chars characters of them; both keep the file's order."""
    r = len(recs)
    n_val = min(r - 1, max(1, round(fraction * r)))
    rng = np.random.default_rng([seed, 0x5EC])
    chosen = rng.permutation(r)[:n_val]
    fits = np.cumsum(recs.lengths[chosen] + 1) <= max_chars
    chosen = np.sort(chosen[: max(1, int(np.count_nonzero(fits)))])
    is_val = np.zeros(r, bool)
    is_val[chosen] = True
    return recs.take(np.flatnonzero(~is_val)), recs.take(chosen)


def batch(recs: Records, members, end: int, steps: int | None = None):
    """Inputs and targets of the records `members`, each int32 (T, B) with T the longest + 1
    (or `steps`, at least that)."""
    lens = recs.lengths[members]
    T, B = steps or int(lens.max()) + 1, len(members)
    x = np.full((T, B), end, np.int32)
    y = np.full((T, B), IGNORE, np.int32)
    for j, r in enumerate(members):
        seq = recs.ids[recs.starts[r]:recs.starts[r + 1]]
        x[1:len(seq) + 1, j] = seq
        y[:len(seq), j] = seq
        y[len(seq), j] = end
    return x, y


class RecordBatches:
    """Training batches of whole records (see the module docstring): window(w, epoch) is the
    w-th group of batch_size records of that epoch's order."""

    def __init__(self, recs: Records, batch_size: int, seed: int, end: int):
        self.recs, self.batch_size, self.seed, self.end = recs, batch_size, seed, end
        self.windows = math.ceil(len(recs) / batch_size)
        self.seq_len = float(recs.lengths.mean()) + 1  # average inputs per record, for speeds
        self._epoch, self._order = None, None

    def window(self, w: int, epoch: int = 0):
        """Inputs and targets (T, B) of group w of the given epoch."""
        return batch(self.recs, self.members(w, epoch), self.end)

    def members(self, w: int, epoch: int = 0) -> np.ndarray:
        """The records of group w of the given epoch."""
        if epoch != self._epoch:
            self._epoch, self._order = epoch, self._groups(epoch)
        return self._order[w]

    def predictions(self, w: int, epoch: int = 0) -> int:
        """Targets of group w (its characters and ends): the loss's divisor."""
        members = self.members(w, epoch)
        return int(self.recs.lengths[members].sum()) + len(members)

    def _groups(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        shuffled = rng.permutation(len(self.recs))
        by_length = shuffled[np.argsort(self.recs.lengths[shuffled], kind="stable")]
        groups = [by_length[i:i + self.batch_size]
                  for i in range(0, len(by_length), self.batch_size)]
        return [groups[g] for g in rng.permutation(len(groups))]
