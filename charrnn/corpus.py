"""Corpora of any size: encode once, in chunks, to a compact binary cache, then memory-map it.

The cache for `dir/name.txt` lives in `dir/.charrnn-cache/` (or, if that directory cannot be
written, in `$XDG_CACHE_HOME/charrnn` / `~/.cache/charrnn`): `name.<key>.ids` holds one uint8 or
uint16 id per character (uint32 past 65,536 distinct characters) and `name.<key>.json` the
vocabulary, the character count and a hash of the whole file. It is reused while the file's size,
modification time and a hash of its first MiB are unchanged. Encoding streams: memory stays at a
few chunks whatever the file size.
"""
from __future__ import annotations

import codecs
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import Vocab
from .errors import CharrnnError
from .fileio import write_bytes, write_file

CHUNK = 8 << 20  # bytes per read: peak memory is a few times this
HEAD = 1 << 20    # bytes hashed for the cache key
CACHE_VERSION = 2  # 2: a leading byte-order mark is dropped


@dataclass(frozen=True)
class Corpus:
    """An encoded corpus: ids (memory-mapped, read-only), its vocabulary and identity."""

    ids: np.ndarray
    vocab: Vocab
    path: str
    hash: str  # blake2b of the file's bytes

    def identity(self) -> dict:
        """What a checkpoint records to recognise this corpus on resume."""
        return {"path": self.path, "chars": len(self.ids), "hash": self.hash}


def load_corpus(path, encoding: str = "utf-8", cache_dir=None) -> Corpus:
    """Encode `path` (or reuse its cache) and memory-map the ids.

    Raises CharrnnError for a missing file, a directory, an empty file, invalid UTF-8 (with the
    byte offset) or a binary file (NUL byte), exactly as data.read_text does.
    """
    path = os.fspath(path)
    st = _stat(path)
    with open(path, "rb") as f:
        head = f.read(HEAD)
    key = hashlib.blake2b(f"{CACHE_VERSION}|{encoding}|{st.st_size}|{st.st_mtime_ns}".encode()
                          + head, digest_size=8).hexdigest()
    folder = cache_folder(path, cache_dir)
    stem = f"{Path(path).name}.{key}"
    meta_path, ids_path = folder / f"{stem}.json", folder / f"{stem}.ids"
    for attempt in range(2):
        meta = _read_cache(meta_path, ids_path)
        ids = _map_ids(ids_path, meta) if meta is not None else None
        if ids is not None:
            return Corpus(ids, Vocab(meta["vocab"]), path, meta["hash"])
        if attempt == 0:  # missing, or damaged (truncated, garbled, half-written): rebuild once
            _encode_to_cache(path, encoding, meta_path, ids_path)
    raise CharrnnError(f"{path}: the corpus cache in {folder} was changed while it was being "
                       "written; run the command again")


def _map_ids(ids_path: Path, meta: dict):
    """The ids memory-mapped, or None if one lies past the vocabulary (a garbled cache).

    One pass (well under a second per GB): an id past the vocabulary would index out of bounds
    in the compiled kernels, so the cache is checked rather than trusted.
    """
    ids = np.memmap(ids_path, dtype=np.dtype(meta["dtype"]), mode="r", shape=(meta["chars"],))
    return ids if int(ids.max()) < len(meta["vocab"]) else None


def _read_cache(meta_path: Path, ids_path: Path):
    """The cache's metadata if both files are whole and agree with each other, else None.

    Checked before mapping, so a truncated ids file is rebuilt instead of failing in mmap.
    """
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        itemsize = np.dtype(meta["dtype"]).itemsize
        whole = (meta["version"] == CACHE_VERSION and isinstance(meta["chars"], int)
                 and isinstance(meta["vocab"], list) and isinstance(meta["hash"], str)
                 and meta["dtype"] in ("uint8", "uint16", "uint32")
                 and meta["chars"] > 0 and len(meta["vocab"]) > 0
                 and ids_path.stat().st_size == meta["chars"] * itemsize)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return meta if whole else None


def _stat(path: str):
    if not os.path.exists(path):
        raise CharrnnError(f"{path}: no such file; check the path")
    if os.path.isdir(path):
        raise CharrnnError(f"{path}: is a directory, expected a text file")
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):  # a FIFO, a device: no size to map
        raise CharrnnError(f"{path}: not a regular file (a pipe or a device); give a text file, "
                           f"or feed it on standard input: charrnn train - < {path}")
    if st.st_size == 0:
        raise CharrnnError(f"{path}: the file is empty; give a text file with some characters "
                           "in it")
    return st


def cache_folder(path: str, cache_dir) -> Path:
    candidates = [Path(cache_dir)] if cache_dir else [
        Path(path).resolve().parent / ".charrnn-cache",
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "charrnn"]
    for folder in candidates:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if os.access(folder, os.W_OK):
                return folder
        except OSError:
            continue
    raise CharrnnError(f"{path}: no writable cache directory for the encoded corpus "
                       f"(tried {', '.join(map(str, candidates))})")


def chunks(path: str, encoding: str):
    """Yield (text, raw bytes) per chunk, decoding strictly; errors carry absolute offsets."""
    dec = codecs.getincrementaldecoder("latin-1" if encoding == "bytes" else "utf-8")("strict")
    offset = 0
    with open(path, "rb") as f:
        while True:
            raw = f.read(CHUNK)
            final = not raw
            nul = raw.find(b"\x00") if encoding != "bytes" else -1
            if nul >= 0:
                raise CharrnnError(f"{path}: looks like a binary file (NUL byte at offset "
                                   f"{offset + nul}); use a text file, or --encoding bytes to "
                                   "model raw bytes")
            pending = len(dec.getstate()[0])
            try:
                text = dec.decode(raw, final=final)
            except UnicodeDecodeError as e:
                at = offset - pending + e.start
                raise CharrnnError(f"{path}: invalid UTF-8 at byte offset {at}; "
                                   "fix the file or use --encoding bytes") from None
            if offset == 0 and text.startswith("\ufeff") and encoding != "bytes":
                text = text[1:]  # a UTF-8 byte-order mark is not a character of the text
            yield text, raw
            offset += len(raw)
            if final:
                return


def _codes(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


def _encode_to_cache(path: str, encoding: str, meta_path: Path, ids_path: Path) -> None:
    """Two streaming passes: vocabulary and hash, then ids written to a temporary file + rename."""
    seen, n, h = set(), 0, hashlib.blake2b(digest_size=16)
    for text, raw in chunks(path, encoding):
        h.update(raw)
        if text:
            # bincount over code points: one linear pass (np.unique sorts, ~3x slower here).
            seen.update(np.flatnonzero(np.bincount(_codes(text))).tolist())
            n += len(text)
    if not n:
        raise CharrnnError(f"{path}: the file has no characters (only a byte-order mark); give a "
                           "text file with some characters in it")
    vocab = Vocab(sorted(chr(c) for c in seen))
    table = np.zeros(max(seen) + 1, dtype=vocab.dtype)
    table[sorted(seen)] = np.arange(len(vocab), dtype=vocab.dtype)
    # Each file goes to a private temporary and is renamed into place (fileio.write_file), the
    # ids before the metadata that vouches for them: two first runs racing on one corpus both
    # succeed, and a reader never maps a half-written file.
    def write_ids(out):
        for text, _ in chunks(path, encoding):
            if text:
                out.write(table[_codes(text)].tobytes())

    meta = {"version": CACHE_VERSION, "vocab": vocab.chars, "chars": n,
            "dtype": np.dtype(vocab.dtype).name, "hash": h.hexdigest(), "source": path}
    hint = "free some space, then run again"
    write_file(ids_path, write_ids, hint)
    write_bytes(meta_path, json.dumps(meta).encode(), hint)
