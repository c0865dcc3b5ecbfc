"""Telling the user when numba is about to compile (the first run), instead of looking frozen."""
from __future__ import annotations

import os

from . import kernels as K

SAMPLE = ("advance", "generate")


def forward_kernels(cell: str) -> tuple:
    """The kernels an evaluation of a `cell` model runs."""
    return ("embed_forward", f"{cell}_step_forward", "xent_forward")


def train_kernels(cell: str) -> tuple:
    """The kernels a training step of a `cell` model runs (with Adam; the other optimizers are
    small and compile in about a second)."""
    return forward_kernels(cell) + (f"{cell}_step_backward", "embed_backward", "xent_backward",
                                    "adam_update")


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
