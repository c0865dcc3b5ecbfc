"""The one exception type users see: a problem with their input, not a bug in charrnn."""
import os


class CharrnnError(ValueError):
    """Bad input or an unusable file.

    The CLI prints ``error: <message>`` on one line and exits with status 2; the message says what
    is wrong, where, and what to do about it. A ValueError, so that library callers may catch
    either.
    """


def check_path(value, what: str) -> None:
    """Raise CharrnnError unless value can name a file (a str or an os.PathLike)."""
    if not isinstance(value, (str, os.PathLike)):
        raise CharrnnError(f"{what} must be a path (str or pathlib.Path), got {value!r}")
