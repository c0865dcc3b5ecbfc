"""The one exception type users see: a problem with their input, not a bug in charrnn."""


class CharrnnError(Exception):
    """Bad input or an unusable file.

    The CLI prints ``error: <message>`` on one line and exits with status 2; the message says what
    is wrong, where, and what to do about it.
    """
