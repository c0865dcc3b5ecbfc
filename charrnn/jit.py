"""Telling the user when numba is about to compile (the first run), instead of looking frozen."""
from __future__ import annotations

import os

from . import kernels as K

TRAIN = ("embed_forward", "lstm_step_forward", "lstm_step_backward", "embed_backward",
         "xent_forward", "xent_backward", "adam_update")
SAMPLE = ("advance", "generate")


def needs_compiling(names) -> bool:
    """True if any of these kernels has no on-disk cache yet (numba will compile it on first
    use). Reads numba's cache index location; if that ever changes, it answers False."""
    for name in names:
        try:
            if not os.path.exists(getattr(K, name)._cache._cache_file._index_path):
                return True
        except AttributeError:
            return False
    return False


def notice(names, echo) -> None:
    """Say on stderr (via echo) that a one-time compilation is starting, when it is."""
    if needs_compiling(names):
        echo("charrnn: compiling its kernels for the first run (once; up to about 30 s) ...")
