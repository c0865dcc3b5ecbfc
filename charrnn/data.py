"""Text in, integer streams out: reading a corpus, the vocabulary, and truncated-BPTT batches.

Batching follows char-rnn: the training stream is cut into B contiguous rows, read left to right in
windows of T characters. Window w of row b starts where window w-1 of row b ended, so the hidden
state a window ends with is the right initial state for the next one. What does not fill a whole
window is not trained on in that epoch: fewer than T characters at the end of each row, and the
(N-1) mod B < B characters that do not divide into rows, so fewer than B*(T+1) in all.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .errors import CharrnnError

END = ""      # records mode's end-of-record symbol: a vocabulary entry no text contains
IGNORE = -1   # a target that is not predicted (padding after a record); it adds no loss


def unknown_characters(missing, where: str | None = None, hint: bool = True) -> CharrnnError:
    """The one error for characters a model does not know (missing: sorted), naming where they
    are and, with hint, how to drop them."""
    shown = ", ".join(repr(c) for c in missing[:20]) + (" ..." if len(missing) > 20 else "")
    return CharrnnError(f"{where + ': ' if where else ''}{len(missing)} character(s) not in the "
                        f"model's vocabulary: {shown}"
                        + (" (use --skip-unknown to ignore them)" if hint else ""))


def read_text(path, encoding: str = "utf-8") -> str:
    """Read a corpus file as one string.

    Parameters
    ----------
    path : str or Path
        The file.
    encoding : {"utf-8", "bytes"}
        ``"utf-8"`` decodes strictly; ``"bytes"`` treats every byte as one symbol (decoded as
        Latin-1, so any file is accepted).

    Raises
    ------
    CharrnnError
        Missing file, a directory, an empty file, invalid UTF-8 (with the byte offset) or a file
        that looks binary.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CharrnnError(f"{path}: no such file; check the path")
    if os.path.isdir(path):
        raise CharrnnError(f"{path}: is a directory, expected a text file")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise CharrnnError(f"{path}: cannot read ({e.strerror})") from None
    if not raw:
        raise CharrnnError(f"{path}: the file is empty; give a text file with some characters "
                           "in it")
    return decode_text(raw, path, encoding)


def decode_text(raw: bytes, where: str, encoding: str = "utf-8") -> str:
    """Bytes as text, as read_text decodes a file (where names them in errors): "bytes" as
    Latin-1; UTF-8 strictly, refusing NUL bytes, without a byte-order mark."""
    if encoding == "bytes":
        return raw.decode("latin-1")
    if b"\x00" in raw:
        off = raw.index(b"\x00")
        raise CharrnnError(f"{where}: looks like a binary file (NUL byte at offset {off}); "
                           "use a text file, or --encoding bytes to model raw bytes")
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")  # a byte-order mark is no character
    except UnicodeDecodeError as e:
        raise CharrnnError(f"{where}: invalid UTF-8 at byte offset {e.start}; "
                           "fix the file or use --encoding bytes") from None


class Vocab:
    """A sorted set of characters; character <-> integer id.

    Parameters
    ----------
    chars : sequence of str
        The distinct characters (single-character strings), in id order. A records model's
        vocabulary also holds END (the empty string), the end-of-record symbol.
    encoding : {"utf-8", "bytes"}
        How the corpus was read: "bytes" models see each byte as one character (U+0000-U+00FF).
    """

    def __init__(self, chars, encoding: str = "utf-8"):
        self.chars, self.encoding = list(chars), encoding
        self.index = {ch: i for i, ch in enumerate(self.chars)}
        if len(self.index) != len(self.chars):
            raise CharrnnError("vocabulary has repeated characters")
        self.end = self.index.get(END)  # END's id in a records model, else None

    @classmethod
    def from_text(cls, text: str) -> Vocab:
        """The vocabulary of a text: its sorted distinct characters."""
        return cls(sorted(set(text)))

    def __len__(self) -> int:
        return len(self.chars)

    @property
    def dtype(self):
        """Smallest unsigned integer dtype that holds every id."""
        return np.uint8 if len(self) <= 256 else (np.uint16 if len(self) <= 65536 else np.uint32)

    def from_user(self, text: str) -> str:
        """Text typed by a user (a prime) in this vocabulary's terms: for a bytes model, the
        characters of its UTF-8 bytes."""
        if self.encoding == "bytes":
            return text.encode("utf-8", "surrogateescape").decode("latin-1")
        return text

    def unknown(self, text: str) -> list[str]:
        """Characters of text that are not in the vocabulary, sorted."""
        return sorted(set(text) - set(self.index))

    def encode(self, text: str, skip_unknown: bool = False) -> np.ndarray:
        """Ids of text's characters, shape (len(text),), in the smallest dtype that fits.

        Raises CharrnnError listing unknown characters, unless skip_unknown drops them.
        """
        missing = self.unknown(text)
        if missing and not skip_unknown:
            raise unknown_characters(missing, hint=False)
        if missing:
            drop = set(missing)
            text = "".join(c for c in text if c not in drop)
        # A lookup table over code points turns the whole text into ids in one numpy pass.
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        table = np.zeros(max(ord(c) for c in self.chars if c) + 1, dtype=self.dtype)
        for i, ch in enumerate(self.chars):
            if ch != END:
                table[ord(ch)] = i
        return table[codes] if codes.size else np.zeros(0, self.dtype)

    def decode(self, ids) -> str:
        """The text for a sequence of ids."""
        return "".join(self.chars[int(i)] for i in ids)


def one_hot(ids, vocab_size: int, dtype=np.float32) -> np.ndarray:
    """One-hot rows for integer ids: shape ids.shape + (vocab_size,).

    charrnn never builds these during training (W @ one_hot(x) is the row gather W[x]); this is
    for users and tests that want to see or check that identity.
    """
    ids = np.asarray(ids)
    out = np.zeros(ids.shape + (vocab_size,), dtype=dtype)
    np.put_along_axis(out, ids[..., None].astype(np.intp), 1, axis=-1)
    return out


@dataclass(frozen=True)
class Batches:
    """Truncated-BPTT windows over one integer stream.

    Row b holds inputs data[b*R : b*R + R] and targets one character later, R = (N-1) // B.
    Window w of the epoch is columns [w*T, (w+1)*T) of every row.
    """

    data: np.ndarray  # (N,) character ids
    batch_size: int   # B
    seq_len: int      # T

    @property
    def row_len(self) -> int:
        """R: input characters per row."""
        return (len(self.data) - 1) // self.batch_size

    @property
    def windows(self) -> int:
        """Windows (training steps) per epoch."""
        return self.row_len // self.seq_len

    def window(self, w: int):
        """Inputs and targets of window w, each int32 of shape (T, B)."""
        B, T, R = self.batch_size, self.seq_len, self.row_len
        starts = np.arange(B) * R + w * T  # (B,)
        idx = starts[None, :] + np.arange(T)[:, None]  # (T, B)
        x = np.ascontiguousarray(self.data[idx], dtype=np.int32)
        y = np.ascontiguousarray(self.data[idx + 1], dtype=np.int32)
        return x, y

    def predictions(self, w: int, epoch: int = 0) -> int:
        """Targets of window w in the whole batch (all processes' rows): the loss's divisor."""
        return self.batch_size * self.seq_len


def target_counts(ids: np.ndarray, vocab_size: int) -> np.ndarray:
    """(V,) how often each character is a target in a stream of ids (every id but the first):
    what --init charrnn's output bias starts from (cells.prior_bias)."""
    return np.bincount(ids[1:], minlength=vocab_size)


def split(ids: np.ndarray, val_fraction: float):
    """Training stream and validation stream: the last val_fraction of the text validates."""
    n_val = int(len(ids) * val_fraction)
    return ids[: len(ids) - n_val], ids[len(ids) - n_val:]


def require_windows(n_chars: int, batch_size: int, seq_len: int, what: str, path) -> None:
    """Raise a helpful error if a stream of n_chars cannot fill one (T, B) window."""
    need = batch_size * seq_len + 1
    if n_chars < need:
        raise CharrnnError(
            f"{path}: the {what} text has {n_chars:,} character{'' if n_chars == 1 else 's'}, "
            f"but --batch-size {batch_size} x "
            f"--seq-len {seq_len} needs at least {need}; use a longer text or smaller "
            "--batch-size/--seq-len")
