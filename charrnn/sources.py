"""Where the text comes from: one file, a directory, several files, or standard input.

One file is read as it is. Anything else is first gathered into one file in the cache folder,
keyed by what it was made from, so the rest of charrnn (the corpus cache, the corpus identity that
--resume checks, records mode) sees a single text. Files are joined with a newline (each file's
lines stay whole lines, so in records mode every line of every file is a record), in the order
given; a directory contributes every regular file under it, recursively, in sorted order (hidden
files and folders left out), and files in it that are not text are skipped and named in one
notice; "-" is standard input, read once.
"""
from __future__ import annotations

import codecs
import hashlib
import os
import sys
from pathlib import Path

from .corpus import CHUNK, cache_folder
from .corpus import chunks as corpus_chunks
from .errors import CharrnnError
from .fileio import write_file

STDIN = "-"


def as_list(sources) -> list[str]:
    """The sources as a list of strings (one path, or a list or tuple of them)."""
    if sources is None:
        return []
    if isinstance(sources, (str, os.PathLike)):
        return [os.fspath(sources)]
    return [os.fspath(s) for s in sources]


def run_name(sources) -> str:
    """A name for the default run directory, read off the sources without opening them."""
    first = as_list(sources)[0]
    if first == STDIN:
        return "stdin"
    path = Path(first)
    return path.resolve().name if path.is_dir() else path.stem


def gather(sources, encoding: str = "utf-8", cache_dir=None, notice=None) -> Path:
    """The one file to read for `sources` (see the module docstring).

    notice(text) receives the one-line notice about skipped files (default: stderr).
    Raises CharrnnError for a missing path, a named file that is not text, a directory with no
    text in it, or an unwritable cache.
    """
    items = as_list(sources)
    if len(items) == 1 and items[0] != STDIN and not os.path.isdir(items[0]):
        return Path(items[0])  # the common case: read the file itself
    if items.count(STDIN) > 1:
        raise CharrnnError("standard input (-) can be given only once")
    files, skipped, data = [], [], None
    for item in items:
        if item == STDIN:
            data = _read_stdin(encoding)
            files.append(item)
        elif os.path.isdir(item):
            found = _text_files(item, encoding, skipped)
            if not found:
                raise CharrnnError(f"{item}: no text files in this directory")
            files += found
        elif not os.path.exists(item):
            raise CharrnnError(f"{item}: no such file; check the path")
        elif encoding != "bytes" and not _is_text(item):
            raise CharrnnError(f"{item}: not a UTF-8 text file (a NUL byte or invalid UTF-8); "
                               "fix it, leave it out, or use --encoding bytes")
        else:
            files.append(item)
    if skipped:
        shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5
                                          else "")
        (notice or _stderr)(f"skipped {len(skipped)} file(s) that are not text: {shown}")
    key = _key(files, encoding, data)
    target = cache_folder(files[0] if files[0] != STDIN else "stdin", cache_dir) / \
        f"gathered.{key}.txt"
    if not target.is_file():
        write_file(target, lambda out: _join(files, data, encoding, out),
                   "free some space, then run again")
    return target


def _read_stdin(encoding: str) -> bytes:
    data = sys.stdin.buffer.read()
    if not data:
        raise CharrnnError("standard input (-) is empty; pipe some text into charrnn")
    if encoding != "bytes":
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise CharrnnError(f"standard input: invalid UTF-8 at byte offset {e.start}; fix "
                               "the text or use --encoding bytes") from None
        if b"\x00" in data:
            raise CharrnnError(f"standard input: looks binary (NUL byte at offset "
                               f"{data.index(0)}); use --encoding bytes to model raw bytes")
    return data


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _text_files(folder: str, encoding: str, skipped: list) -> list[str]:
    out = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            path = os.path.join(root, name)
            if name.startswith(".") or not os.path.isfile(path):
                continue
            if os.path.getsize(path) and (encoding == "bytes" or _is_text(path)):
                out.append(path)
            elif os.path.getsize(path):
                skipped.append(path)
    return out


def _is_text(path: str) -> bool:
    """Valid UTF-8 with no NUL byte: the corpus reader's own check, run over the file."""
    try:
        for _ in corpus_chunks(path, "utf-8"):
            pass
    except (CharrnnError, OSError):
        return False
    return True


def _key(files, encoding, data) -> str:
    h = hashlib.blake2b(digest_size=8)
    h.update(encoding.encode())
    for f in files:
        if f == STDIN:
            h.update(b"stdin" + hashlib.blake2b(data).digest())
        else:
            st = os.stat(f)
            h.update(f"{os.path.abspath(f)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _join(files, data, encoding, out) -> None:
    """Write the files one after another, each ending with a newline."""
    newline, last = b"\n", b"\n"
    for f in files:
        if f == STDIN:
            chunks = [data]
        else:
            chunks = _read_chunks(f, encoding)
        first = True
        for raw in chunks:
            if first and encoding != "bytes" and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]  # each file's own byte-order mark
            first = False
            if raw:
                out.write(raw)
                last = raw[-1:]
        if last != newline:
            out.write(newline)
            last = newline


def _read_chunks(path: str, encoding: str):
    try:
        with open(path, "rb") as f:
            while raw := f.read(CHUNK):
                yield raw
    except OSError as e:
        raise CharrnnError(f"{path}: cannot read ({e.strerror})") from None
