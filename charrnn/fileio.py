"""Every file charrnn writes for the user goes through `write_file`: whole or not at all.

A regular file (or a new one) is written to a temporary file beside it, flushed, fsynced and
renamed over the target, then the directory is fsynced: a reader sees the old contents or the
new, never a mix, and a full disk leaves the old file as it was. The permissions are the
target's own if it exists, otherwise what the umask gives any new file. A symlink is written
through to its target (the link stays a link). A device or a FIFO (/dev/stdout, a named pipe)
cannot be replaced and is written directly.
"""
from __future__ import annotations

import os
import secrets
import stat
from typing import BinaryIO, Callable

from .errors import CharrnnError

TMP_PREFIX = ".tmp-"  # temporaries are hidden files; a run directory removes stale ones


def write_file(path, write: Callable[[BinaryIO], None], hint: str = "") -> None:
    """Write path by calling write(f) on a binary file object; see the module docstring.

    Raises CharrnnError (one line: the path, the system's reason, then `hint`) on failure.
    """
    path = os.fspath(path)
    target = os.path.realpath(path)  # through symlinks, so the link itself survives
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise _error(path, e, hint) from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise CharrnnError(f"cannot write {path}: it is a directory; give a file name")
    folder = os.path.dirname(target)
    if st is None and not os.path.isdir(folder):  # never create folders the user did not ask for
        raise CharrnnError(f"cannot write {path}: the folder {os.path.dirname(path) or '.'} "
                           "does not exist; create it first, or choose another path")
    if st is not None and not stat.S_ISREG(st.st_mode):
        return _write_direct(path, write, hint)
    _write_replace(target, st, write, path, hint)


def write_bytes(path, data: bytes, hint: str = "") -> None:
    """write_file for data already in memory."""
    write_file(path, lambda f: f.write(data), hint)


def _write_direct(path: str, write, hint: str) -> None:
    try:
        with open(path, "wb") as f:
            write(f)
    except OSError as e:
        raise _error(path, e, hint) from None


def _write_replace(target: str, st, write, shown: str, hint: str) -> None:
    folder, name = os.path.split(target)
    tmp = os.path.join(folder, f"{TMP_PREFIX}{secrets.token_hex(4)}-{name}")
    try:
        # 0o666 through the umask, like any new file; an existing target keeps its own mode
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            if st is not None:
                os.fchmod(f.fileno(), stat.S_IMODE(st.st_mode))
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        tmp = None
        fsync_dir(folder)
    except OSError as e:
        raise _error(shown, e, hint) from None
    finally:
        if tmp is not None and os.path.lexists(tmp):
            os.unlink(tmp)


def fsync_dir(folder: str) -> None:
    """Make a rename in folder durable (best effort: some filesystems refuse)."""
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _error(path: str, e: OSError, hint: str) -> CharrnnError:
    return CharrnnError(f"cannot write {path}: {e.strerror or e}" + (f"; {hint}" if hint else ""))
